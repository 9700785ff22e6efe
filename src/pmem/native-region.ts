// A PMem region backed by a memory-mapped file (native/chronotier.cc). On a DAX mount (or tmpfs
// with PMEM_IS_PMEM_FORCE=1, the emulation PMDK documents) persist() writes cache lines back with
// CPU instructions; on any other file system it is an msync of the covering pages.
//
// Persistence rule: see region.ts. Growing remaps the file larger and detaches the old buffer,
// so a stale DataView throws instead of touching unmapped memory.

import { closeSync, openSync, readFileSync, readSync, realpathSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { IoError, MisuseError } from '../errors.js';
import { type NativeBinding, type NativeVariant, loadNative } from '../native.js';
import { checkRange } from './range.js';
import type { DurabilityClass, PmemRegion } from './region.js';

const TMPFS_MAGIC = 0x01021994;

export class NativeRegion implements PmemRegion {
  private current: ArrayBuffer | undefined;
  private readonly isPmem: boolean;
  /** Found at the first persist or flush, not at open: statfs of every region would delay open. */
  private durabilityClass: DurabilityClass | undefined;
  /** A read-only descriptor for readInto(), opened at its first call. */
  private readFd: number | undefined;

  private constructor(
    readonly path: string,
    private readonly native: NativeBinding,
    mapping: { buffer: ArrayBuffer; isPmem: boolean },
  ) {
    this.current = mapping.buffer;
    this.isPmem = mapping.isPmem;
  }

  get durability(): DurabilityClass {
    this.durabilityClass ??= durabilityOf(this.path, this.isPmem);
    return this.durabilityClass;
  }

  /** Cache-line flushes make the data durable here; otherwise msync does. */
  private get cpuFlush(): boolean {
    return this.isPmem && this.durability !== 'msync';
  }

  /** Maps `path`; `create` makes it (or extends it to `size`), else it must exist (IoError ENOENT). */
  static open(path: string, options: { size?: number; create: boolean; variant?: NativeVariant }): NativeRegion {
    const native = loadNative(options.variant);
    return new NativeRegion(path, native, native.map(path, options.create ? (options.size ?? 0) : 0, options.create));
  }

  get size(): number {
    return this.buffer.byteLength;
  }

  get buffer(): ArrayBuffer {
    if (this.current === undefined) throw new MisuseError('REGION_CLOSED', `${this.path}: region is closed`);
    return this.current;
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

  drain(): void {
    this.buffer;
    if (this.cpuFlush) this.native.drain();
  }

  readInto(offset: number, into: Uint8Array): void {
    checkRange(offset, into.length, this.buffer.byteLength, this.path);
    try {
      this.readFd ??= openSync(this.path, 'r');
      for (let done = 0; done < into.length; ) {
        const read = readSync(this.readFd, into, done, into.length - done, offset + done);
        if (read === 0) throw new IoError('EIO', 'read', this.path, `${this.path}: read at ${offset + done} found the end of the mapped file`);
        done += read;
      }
    } catch (err) {
      throw err instanceof IoError ? err : new IoError((err as NodeJS.ErrnoException).code ?? 'EIO', 'read', this.path);
    }
  }

  grow(newSize: number): void {
    const old = this.buffer;
    if (!Number.isSafeInteger(newSize) || newSize < old.byteLength) {
      throw new MisuseError('INVALID_ARGUMENT', `${this.path}: cannot grow from ${old.byteLength} to ${newSize} bytes`);
    }
    if (newSize === old.byteLength) return;
    const grown = this.native.map(this.path, newSize, true);
    this.native.unmap(old);
    this.current = grown.buffer;
  }

  close(): void {
    if (this.current === undefined) return;
    this.native.unmap(this.current);
    this.current = undefined;
    if (this.readFd !== undefined) closeSync(this.readFd);
    this.readFd = undefined;
  }
}

/**
 * tmpfs is volatile whatever libpmem says; a mapping libpmem calls PMem on a file system that is
 * neither tmpfs nor mounted with dax is PMEM_IS_PMEM_FORCE misapplied to a disk file, which only
 * msync makes durable.
 */
function durabilityOf(path: string, isPmem: boolean): DurabilityClass {
  if (statfsSync(path).type === TMPFS_MAGIC) return 'volatile-pmem';
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
