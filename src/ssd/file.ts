// An SSD file written by positional writes and made durable by fdatasync.
//
// Persistence rule: bytes are durable only after sync() returns; truncate() too. A failed write
// leaves the size where it was: whatever it landed past the old end is truncated away at once,
// so the next append never leaves a torn fragment (or, from a multi-record write, complete but
// unacknowledged records) in the middle of the file; if that truncate fails as well, the file is
// poisoned. A failed sync poisons the file: the kernel may have dropped the dirty pages and
// cleared the error, so a retried fdatasync could "succeed" without the data ever reaching the
// disk (PostgreSQL's fsync lesson). A poisoned file refuses every write, truncate and sync; it
// can still be read and closed. A file created by open() has its directory entry fsynced, or a
// power failure could lose the whole file however often its data was synced.
//
// One writer per file: size is re-read from the file system only to see what another handle
// (the leaf writer's worker thread) appended; appends by two handles would overwrite each other.

import { closeSync, constants, fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { BoundsError, IoError, MisuseError, toIoError } from '../errors.js';

export interface SsdFile {
  readonly path: string;
  /** Bytes written so far, synced or not. */
  readonly size: number;
  /** Writes `data` at the end; returns where it starts. All or error: on IoError the size is unchanged. */
  append(data: Uint8Array): number;
  /** Writes `data` at `offset` <= size (recovery rewrites a tail). On IoError the size is unchanged and the bytes in the range are unspecified. */
  write(offset: number, data: Uint8Array): void;
  /**
   * Exactly `length` bytes from `offset`; BoundsError past the end (checked before anything is
   * allocated: lengths come from the media), IoError('ESHORTREAD') if the file shrank meanwhile.
   */
  read(offset: number, length: number): Uint8Array;
  /** Fills `target` from `offset`, as read() does. */
  readInto(offset: number, target: Uint8Array): void;
  /** fdatasync: everything written (and truncated) before is durable when it returns. */
  sync(): void;
  /** Cuts the file to `size` <= this.size bytes (recovery drops a torn tail). */
  truncate(size: number): void;
  close(): void;
}

/** Why a file refuses writes: after either, its contents past the last sync are unknown. */
export type PoisonCause = 'a failed sync' | 'a failed write that could not be cut off';

/** What a poisoned file throws for every write, truncate and sync. */
export function poisonedError(path: string, syscall: string, cause: PoisonCause): IoError {
  return new IoError('EIO', syscall, path, `EIO: ${path}: file is poisoned after ${cause}; reopen the store to recover`);
}

/** REQUIRES nothing; throws BoundsError unless [offset, offset + length) lies within [0, size]. */
export function checkRange(path: string, offset: number, length: number, size: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new BoundsError(`${path}: ${length} bytes at ${offset} are outside the file of ${size} bytes`);
  }
}

/** REQUIRES nothing; throws BoundsError unless a write of `length` bytes at `offset` leaves no hole. */
export function checkWrite(path: string, offset: number, length: number, size: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset > size || !Number.isSafeInteger(offset + length)) {
    throw new BoundsError(`${path}: a write at ${offset} would leave a hole after the end of the file (${size} bytes)`);
  }
}

/** REQUIRES nothing; throws BoundsError unless `newSize` does not grow the file. */
export function checkTruncate(path: string, newSize: number, size: number): void {
  if (!Number.isSafeInteger(newSize) || newSize < 0 || newSize > size) {
    throw new BoundsError(`${path}: cannot truncate a file of ${size} bytes to ${String(newSize)}`);
  }
}

export class NodeSsdFile implements SsdFile {
  private fd: number | undefined;
  private length: number;
  private poisoned: PoisonCause | undefined;

  private constructor(
    readonly path: string,
    fd: number,
    length: number,
  ) {
    this.fd = fd;
    this.length = length;
  }

  /** Opens `path` read-write; with `create`, creates it if missing and makes its name durable. */
  static open(path: string, options: { create: boolean }): NodeSsdFile {
    const { fd, created } = openFd(path, options.create);
    try {
      if (created) fsyncDirectory(dirname(path));
      return new NodeSsdFile(path, fd, fstatSize(fd, path));
    } catch (err) {
      ignoringErrors(() => closeSync(fd));
      // A name that may not be durable is taken back, so that a retry creates and syncs it anew.
      if (created) ignoringErrors(() => unlinkSync(path));
      throw err;
    }
  }

  /** Includes what another handle on the file (the leaf writer's worker) appended. */
  get size(): number {
    if (this.fd !== undefined && this.poisoned === undefined) this.length = Math.max(this.length, fstatSize(this.fd, this.path));
    return this.length;
  }

  append(data: Uint8Array): number {
    const fd = this.writable('write');
    const offset = this.length;
    this.writeAt(fd, offset, data);
    return offset;
  }

  write(offset: number, data: Uint8Array): void {
    const fd = this.writable('write');
    checkWrite(this.path, offset, data.length, this.length);
    this.writeAt(fd, offset, data);
  }

  read(offset: number, length: number): Uint8Array {
    const fd = this.open();
    this.checkRange(offset, length);
    const bytes = new Uint8Array(length);
    this.readAt(fd, offset, bytes);
    return bytes;
  }

  readInto(offset: number, target: Uint8Array): void {
    const fd = this.open();
    this.checkRange(offset, target.length);
    this.readAt(fd, offset, target);
  }

  sync(): void {
    const fd = this.writable('fdatasync');
    try {
      fdatasyncSync(fd);
    } catch (err) {
      this.poisoned = 'a failed sync';
      toIoError(err, 'fdatasync', this.path);
    }
  }

  truncate(size: number): void {
    const fd = this.writable('ftruncate');
    checkTruncate(this.path, size, this.length);
    try {
      ftruncateSync(fd, size);
    } catch (err) {
      toIoError(err, 'ftruncate', this.path);
    }
    this.length = size;
  }

  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      closeSync(fd);
    } catch (err) {
      toIoError(err, 'close', this.path);
    }
  }

  private writeAt(fd: number, offset: number, data: Uint8Array): void {
    try {
      for (let done = 0; done < data.length; ) done += writeSync(fd, data, done, data.length - done, offset + done);
    } catch (err) {
      this.dropLandedTail(fd);
      toIoError(err, 'write', this.path);
    }
    this.length = Math.max(this.length, offset + data.length);
  }

  /**
   * After a failed write: cuts off whatever it landed past the logical end. If even that fails,
   * the file's tail is unknown, and appending after it could bury a fragment mid-file; poisoned.
   */
  private dropLandedTail(fd: number): void {
    try {
      ftruncateSync(fd, this.length);
    } catch {
      this.poisoned = 'a failed write that could not be cut off';
    }
  }

  private readAt(fd: number, offset: number, target: Uint8Array): void {
    const length = target.length;
    try {
      for (let done = 0; done < length; ) {
        const n = readSync(fd, target, done, length - done, offset + done);
        if (n === 0) throw new IoError('ESHORTREAD', 'read', this.path, `ESHORTREAD: ${this.path} ended at ${offset + done} while reading ${length} bytes at ${offset}`);
        done += n;
      }
    } catch (err) {
      toIoError(err, 'read', this.path);
    }
  }

  /** Re-stats only for a range past the cached end: reads of records already seen cost no fstat. */
  private checkRange(offset: number, length: number): void {
    checkRange(this.path, offset, length, offset + length > this.length ? this.size : this.length);
  }

  private open(): number {
    if (this.fd === undefined) throw new MisuseError('FILE_CLOSED', `${this.path} is closed`);
    return this.fd;
  }

  private writable(syscall: string): number {
    const fd = this.open();
    if (this.poisoned !== undefined) throw poisonedError(this.path, syscall, this.poisoned);
    return fd;
  }
}

/** Opens without O_CREAT first, so that `created` is true only for a file this call made. */
function openFd(path: string, create: boolean): { fd: number; created: boolean } {
  try {
    return { fd: openSync(path, constants.O_RDWR), created: false };
  } catch (err) {
    if (!create || (err as { code?: unknown }).code !== 'ENOENT') return toIoError(err, 'open', path);
  }
  try {
    return { fd: openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o644), created: true };
  } catch (err) {
    // Another process created it between the two opens: it is theirs to make durable.
    if ((err as { code?: unknown }).code === 'EEXIST') return openFd(path, false);
    return toIoError(err, 'open', path);
  }
}

function fsyncDirectory(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, constants.O_RDONLY);
  } catch (err) {
    return toIoError(err, 'open', dir);
  }
  try {
    fsyncSync(fd);
  } catch (err) {
    toIoError(err, 'fsync', dir);
  } finally {
    closeSync(fd);
  }
}

/** For cleanup on a path that is already failing: the first error is the one to report. */
function ignoringErrors(cleanup: () => void): void {
  try {
    cleanup();
  } catch {
    // Deliberately dropped; see above.
  }
}

function fstatSize(fd: number, path: string): number {
  try {
    return fstatSync(fd).size;
  } catch (err) {
    return toIoError(err, 'fstat', path);
  }
}
