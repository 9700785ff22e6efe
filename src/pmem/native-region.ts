// A PMem region backed by a memory-mapped file (native/chronotier.cc). On a DAX mount (or tmpfs
// with PMEM_IS_PMEM_FORCE=1, the emulation PMDK documents) persist() writes cache lines back with
// CPU instructions; on any other file system it is an msync of the covering pages.
//
// An existing file is opened, mapped and its first page copied with read(2) in one native call:
// open verifies headers and reads state from that copy (takeOpenHead), so the structures map
// the file without touching its pages - on the VMs measured here the first touch of a page of a
// fresh mapping costs ~10-25 µs, a read ~5 µs, and every system call from JS a few µs more.
//
// Persistence rule: see region.ts. Growing remaps the file larger and detaches the old buffer,
// so a stale DataView throws instead of touching unmapped memory.

import { closeSync, openSync, readFileSync, readSync, realpathSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { CorruptionError, IoError, MisuseError } from '../errors.js';
import { type NativeBinding, type NativeMapping, type NativeVariant, loadNative } from '../native.js';
import { checkRange } from './range.js';
import type { DurabilityClass, PmemRegion } from './region.js';

const TMPFS_MAGIC = 0x01021994;
/** What open copies of an existing file: every structure's header and state block fit in a page. */
const OPEN_HEAD_BYTES = 4096;

export class NativeRegion implements PmemRegion {
  private mapping: NativeMapping | undefined;
  private closed = false;
  /**
   * Found at the first persist or flush, not at open: from the file system type the addon's
   * fstatfs gave with the mapping (JS's statfsSync would cost ~0.1-0.2 ms on that first persist);
   * off tmpfs, /proc/mounts says whether the mount is DAX.
   */
  private durabilityClass: DurabilityClass | undefined;
  /** A descriptor for readInto(), opened by its first call (seven per stream would crowd the process's limit). */
  private fd: number | undefined;

  private constructor(
    readonly path: string,
    private readonly native: NativeBinding,
    private fileBytes: number,
    /** The file's first page as open found it, until takeOpenHead() hands it out. */
    private openHead: Uint8Array | undefined,
  ) {}

  get durability(): DurabilityClass {
    this.durabilityClass ??= durabilityOf(this.path, this.mapped().isPmem, this.mapped().fsType);
    return this.durabilityClass;
  }

  /** Cache-line flushes make the data durable here; otherwise msync does. */
  private get cpuFlush(): boolean {
    return this.mapped().isPmem && this.durability !== 'msync';
  }

  /** Opens and maps `path`: `create` makes it (or extends it to `size`), else it must exist (IoError ENOENT). */
  static open(path: string, options: { size?: number; create: boolean; variant?: NativeVariant }): NativeRegion {
    const native = loadNative(options.variant);
    if (options.create) {
      const mapping = native.map(path, options.size ?? 0, true);
      const region = new NativeRegion(path, native, mapping.buffer.byteLength, undefined);
      region.mapping = mapping;
      return region;
    }
    const opened = native.openMapped(path, OPEN_HEAD_BYTES);
    const region = new NativeRegion(path, native, opened.size, new Uint8Array(opened.head));
    // An empty file is not mapped: its header check refuses it before anything maps it.
    if (opened.buffer !== undefined) region.mapping = { buffer: opened.buffer, isPmem: opened.isPmem === true, fsType: opened.fsType };
    return region;
  }

  takeOpenHead(): Uint8Array | undefined {
    const head = this.openHead;
    this.openHead = undefined;
    return head;
  }

  get size(): number {
    if (this.closed) throw this.closedError();
    return this.fileBytes;
  }

  get buffer(): ArrayBuffer {
    return this.mapped().buffer;
  }

  private mapped(): NativeMapping {
    if (this.mapping !== undefined) return this.mapping;
    if (this.closed) throw this.closedError();
    throw new CorruptionError(this.path, 0, 'the file is empty: it holds no structure to map');
  }

  private closeFd(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private closedError(): MisuseError {
    return new MisuseError('REGION_CLOSED', `${this.path}: region is closed`);
  }

  persist(offset: number, length: number): void {
    const buffer = this.buffer;
    checkRange(offset, length, buffer.byteLength, this.path);
    if (this.cpuFlush) this.native.persist(buffer, offset, length);
    else this.native.msync(buffer, offset, length);
  }

  flush(offset: number, length: number): void {
    const buffer = this.buffer;
    checkRange(offset, length, buffer.byteLength, this.path);
    if (this.cpuFlush) this.native.flush(buffer, offset, length);
    else this.native.msync(buffer, offset, length);
  }

  /** Nothing to wait for while unmapped: every flush maps the region first. */
  drain(): void {
    if (this.closed) throw this.closedError();
    if (this.mapping !== undefined && this.cpuFlush) this.native.drain();
  }

  readInto(offset: number, into: Uint8Array): void {
    checkRange(offset, into.length, this.size, this.path);
    try {
      for (let done = 0; done < into.length; ) {
        this.fd ??= openSync(this.path, 'r');
        const read = readSync(this.fd, into, done, into.length - done, offset + done);
        if (read === 0) throw new IoError('EIO', 'read', this.path, `${this.path}: read at ${offset + done} found the end of the mapped file`);
        done += read;
      }
    } catch (err) {
      throw err instanceof IoError ? err : new IoError((err as NodeJS.ErrnoException).code ?? 'EIO', 'read', this.path);
    }
  }

  grow(newSize: number): void {
    const oldSize = this.size;
    if (!Number.isSafeInteger(newSize) || newSize < oldSize) {
      throw new MisuseError('INVALID_ARGUMENT', `${this.path}: cannot grow from ${oldSize} to ${newSize} bytes`);
    }
    if (newSize === oldSize && this.mapping !== undefined) return;
    const grown = this.native.map(this.path, newSize, true);
    if (this.mapping !== undefined) this.native.unmap(this.mapping.buffer);
    this.mapping = grown;
    this.fileBytes = grown.buffer.byteLength;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.mapping !== undefined) this.native.unmap(this.mapping.buffer);
    this.mapping = undefined;
    this.closeFd();
  }
}

/**
 * tmpfs is volatile whatever libpmem says; a mapping libpmem calls PMem on a file system that is
 * neither tmpfs nor mounted with dax is PMEM_IS_PMEM_FORCE misapplied to a disk file, which only
 * msync makes durable.
 */
function durabilityOf(path: string, isPmem: boolean, fsType = statfsSync(path).type): DurabilityClass {
  if (fsType === TMPFS_MAGIC) return 'volatile-pmem';
  return isPmem && isDaxMount(path) ? 'pmem' : 'msync';
}

function isDaxMount(path: string): boolean {
  const real = realpathSync(dirname(path));
  let best = { mountPoint: '', dax: false };
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, mountPoint, , options] = line.split(' ');
    if (mountPoint === undefined || options === undefined) continue;
    const inside = real === mountPoint || real.startsWith(mountPoint.endsWith('/') ? mountPoint : `${mountPoint}/`);
    if (inside && mountPoint.length > best.mountPoint.length) best = { mountPoint, dax: options.split(',').some((o) => o === 'dax' || o.startsWith('dax=')) };
  }
  return best.dax;
}

/** An exclusive advisory lock on `path` (a store's LOCK file) for as long as it is held. */
export function lockFile(path: string): { release(): void } {
  const native = loadNative();
  let fd: number;
  try {
    fd = native.lock(path);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'EWOULDBLOCK' || code === 'EAGAIN') {
      throw new MisuseError('STORE_LOCKED', `${dirname(path)} is already open in another process (or another handle of this one); close it first`);
    }
    throw err;
  }
  let held = true;
  return {
    release: () => {
      if (held) native.unlock(fd);
      held = false;
    },
  };
}
