// Where a store's bytes live. The store asks its Media for PMem regions, SSD files and the small
// catalog file by name, so the same engine runs on real files (DiskMedia) and on the simulated,
// crashable media of the tests (SimulatedMedia), which can cut the power to every region and
// file at once and hand back the surviving images.

import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IoError, MisuseError, toIoError } from './errors.js';
import { NativeRegion, lockFile } from './pmem/native-region.js';
import type { DurabilityClass, PmemRegion } from './pmem/region.js';
import { SimulatedRegion } from './pmem/simulated-region.js';
import { VolatileRegion } from './pmem/volatile-region.js';
import { FaultyFile } from './ssd/faulty-file.js';
import { NodeSsdFile, type SsdFile } from './ssd/file.js';
import { Random } from './util/random.js';

export interface Media {
  /** Opens (or creates, zero-filled, of `size` bytes) a PMem region. */
  openRegion(name: string, size: number, create: boolean): PmemRegion;
  regionExists(name: string): boolean;
  /** Deletes a region file (a rebuild removes the files an interrupted rebuild of its own left). */
  removeRegion(name: string): void;
  /**
   * Renames a region file, replacing any file called `to`; durable when it returns (a rebuild
   * sets damaged PMem files aside for forensics instead of overwriting them).
   */
  renameRegion(from: string, to: string): void;
  openFile(name: string, create: boolean): SsdFile;
  fileExists(name: string): boolean;
  /** Reads a small file whole, or undefined if it does not exist. */
  readSmall(name: string): Uint8Array | undefined;
  /** Replaces a small file atomically and durably. */
  writeSmallAtomically(name: string, bytes: Uint8Array): void;
  /** Takes the store's exclusive lock; throws MisuseError('STORE_LOCKED') if another holder has it. */
  lock(): { release(): void };
  /** What a persisted PMem byte survives, for stats() and the README's table. */
  durability(): DurabilityClass;
  /** File paths another thread can open (the leaf writer's worker), or undefined if the media is in-process only. */
  pathsForWorker(region: string, file: string): { regionPath: string; filePath: string } | undefined;
}

/** A small file's bytes, or undefined if there is no such file (one read, no existence check first). */
export function readFileIfExists(path: string): Uint8Array | undefined {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return toIoError(err, 'read', path);
  }
}

/**
 * Real files: SSD files in `dir`, PMem regions in `pmemDir` (a DAX mount, tmpfs, or any
 * directory). With `volatileRegions` the regions are plain DRAM instead (the paper's DRAM-flank
 * baseline, for benchmarks: nothing in them survives the process).
 */
export class DiskMedia implements Media {
  private readonly volatileRegions = new Map<string, VolatileRegion>();
  /** Directories are made when the first file is created in them, not at construction: opening an existing store makes none. */
  private pmemDirMade = false;

  constructor(
    readonly dir: string,
    readonly pmemDir: string,
    private readonly options: { readonly volatileRegions?: boolean } = {},
  ) {}

  openRegion(name: string, size: number, create: boolean): PmemRegion {
    if (this.options.volatileRegions !== true) {
      if (create) this.makePmemDir();
      return NativeRegion.open(join(this.pmemDir, name), { size, create });
    }
    const region = create ? new VolatileRegion(name, size) : this.volatileRegions.get(name)?.reopen();
    if (region === undefined) throw new MisuseError('NOT_FOUND', `volatile region ${name} does not exist`);
    this.volatileRegions.set(name, region);
    return region;
  }

  regionExists(name: string): boolean {
    return this.options.volatileRegions === true ? this.volatileRegions.has(name) : existsSync(join(this.pmemDir, name));
  }

  removeRegion(name: string): void {
    this.volatileRegions.delete(name);
    rmSync(join(this.pmemDir, name), { force: true });
  }

  renameRegion(from: string, to: string): void {
    if (this.options.volatileRegions === true) {
      const region = this.volatileRegions.get(from);
      if (region === undefined) throw new MisuseError('NOT_FOUND', `volatile region ${from} does not exist`);
      this.volatileRegions.delete(from);
      this.volatileRegions.set(to, region);
      return;
    }
    try {
      renameSync(join(this.pmemDir, from), join(this.pmemDir, to));
      fsyncPath(this.pmemDir);
    } catch (err) {
      toIoError(err, 'rename', join(this.pmemDir, from));
    }
  }

  openFile(name: string, create: boolean): SsdFile {
    return NodeSsdFile.open(join(this.dir, name), { create });
  }

  fileExists(name: string): boolean {
    return existsSync(join(this.dir, name));
  }

  readSmall(name: string): Uint8Array | undefined {
    return readFileIfExists(join(this.dir, name));
  }

  writeSmallAtomically(name: string, bytes: Uint8Array): void {
    const path = join(this.dir, name);
    const temporary = `${path}.tmp`;
    try {
      writeFileSync(temporary, bytes);
      fsyncPath(temporary);
      renameSync(temporary, path);
      fsyncPath(this.dir);
    } catch (err) {
      rmSync(temporary, { force: true });
      toIoError(err, 'write', path);
    }
  }

  lock(): { release(): void } {
    return lockStoreDirectory(this.dir);
  }

  pathsForWorker(region: string, file: string): { regionPath: string; filePath: string } | undefined {
    return this.options.volatileRegions === true ? undefined : { regionPath: join(this.pmemDir, region), filePath: join(this.dir, file) };
  }

  durability(): DurabilityClass {
    if (this.options.volatileRegions === true) return 'volatile';
    this.makePmemDir();
    const probe = NativeRegion.open(join(this.pmemDir, '.durability-probe'), { size: 4096, create: true });
    try {
      return probe.durability;
    } finally {
      probe.close();
      rmSync(join(this.pmemDir, '.durability-probe'), { force: true });
    }
  }

  private makePmemDir(): void {
    if (!this.pmemDirMade) makeDirectory(this.pmemDir);
    this.pmemDirMade = true;
  }
}

/** Takes the lock of the store in `dir`; its LOCK file is the first file a new store creates, so the directory is made when missing. */
export function lockStoreDirectory(dir: string): { release(): void } {
  const path = join(dir, 'LOCK');
  try {
    return lockFile(path);
  } catch (err) {
    if (!(err instanceof IoError && err.code === 'ENOENT')) throw err;
  }
  makeDirectory(dir);
  return lockFile(path);
}

function makeDirectory(path: string): void {
  try {
    mkdirSync(path, { recursive: true });
  } catch (err) {
    toIoError(err, 'mkdir', path);
  }
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Media in process memory whose regions and files can all lose power at once. A test builds a
 * store on it, runs a workload, calls crash(seed) at any instant and opens a new store on the
 * media returned: the images a real power failure could have left.
 */
export class SimulatedMedia implements Media {
  readonly regions = new Map<string, SimulatedRegion>();
  readonly files = new Map<string, FaultyFile>();
  private readonly small = new Map<string, Uint8Array>();
  private locked = false;
  private writeBacks = 0;
  /**
   * Called after every PMem write-back (persist or drain) and every file sync on this media, with
   * their running count; a crash test throws from it to stop the program at that instant.
   */
  onWriteBack: ((count: number) => void) | undefined;

  openRegion(name: string, size: number, create: boolean): PmemRegion {
    const existing = this.regions.get(name);
    if (create) return this.adopt(name, SimulatedRegion.create(name, size));
    if (existing === undefined) throw new MisuseError('NOT_FOUND', `simulated region ${name} does not exist`);
    return this.adopt(name, existing.reopen());
  }

  regionExists(name: string): boolean {
    return this.regions.has(name);
  }

  removeRegion(name: string): void {
    if (this.regions.delete(name)) this.noteWriteBack();
  }

  /** Atomic, like rename(2) followed by an fsync of the directory; counted as a write-back, so crash tests cut between renames. */
  renameRegion(from: string, to: string): void {
    const region = this.regions.get(from);
    if (region === undefined) throw new MisuseError('NOT_FOUND', `simulated region ${from} does not exist`);
    this.regions.delete(from);
    this.regions.set(to, region);
    this.noteWriteBack();
  }

  openFile(name: string, create: boolean): SsdFile {
    const existing = this.files.get(name);
    if (existing !== undefined && !create) return existing.reopen();
    if (!create) throw new MisuseError('NOT_FOUND', `simulated file ${name} does not exist`);
    return this.adoptFile(name, new FaultyFile(name));
  }

  fileExists(name: string): boolean {
    return this.files.has(name);
  }

  readSmall(name: string): Uint8Array | undefined {
    return this.small.get(name)?.slice();
  }

  writeSmallAtomically(name: string, bytes: Uint8Array): void {
    this.small.set(name, bytes.slice());
  }

  lock(): { release(): void } {
    if (this.locked) throw new MisuseError('STORE_LOCKED', 'simulated store is already open');
    this.locked = true;
    return { release: () => (this.locked = false) };
  }

  durability(): DurabilityClass {
    return 'simulated';
  }

  pathsForWorker(): undefined {
    return undefined;
  }

  /** Write-backs so far: crash tests draw their crash instant from this range. */
  get writeBackCount(): number {
    return this.writeBacks;
  }

  /**
   * The media a process crash (kill -9) now leaves: everything written survives, synced or not
   * (the page cache and tmpfs outlive the process), though a power failure later may still drop
   * file writes that were never synced; handles, faults and poisoned files do not survive.
   */
  restart(): SimulatedMedia {
    const after = new SimulatedMedia();
    for (const [name, region] of this.regions) after.adopt(name, SimulatedRegion.fromImage(name, region.liveImage()));
    for (const [name, file] of this.files) after.adoptFile(name, file.afterKill());
    for (const [name, bytes] of this.small) after.small.set(name, bytes.slice());
    return after;
  }

  /** The media a power failure now could leave; this media is unchanged. */
  crash(seed: number): SimulatedMedia {
    const random = new Random(seed);
    const after = new SimulatedMedia();
    for (const [name, region] of this.regions) after.adopt(name, SimulatedRegion.fromImage(name, region.crash(random.nextUint32())));
    for (const [name, file] of this.files) after.adoptFile(name, FaultyFile.fromImage(name, file.crash(random.nextUint32())));
    for (const [name, bytes] of this.small) after.small.set(name, bytes.slice());
    return after;
  }

  private adopt(name: string, region: SimulatedRegion): SimulatedRegion {
    region.onPersist = () => this.noteWriteBack();
    this.regions.set(name, region);
    return region;
  }

  private adoptFile(name: string, file: FaultyFile): FaultyFile {
    file.onSync = () => this.noteWriteBack();
    this.files.set(name, file);
    return file;
  }

  private noteWriteBack(): void {
    this.writeBacks++;
    this.onWriteBack?.(this.writeBacks);
  }
}
