// An SSD file written by positional appends and made durable by fdatasync.
//
// Persistence rule: bytes are durable only after sync() returns. A failed write leaves the size
// where it was (the partial bytes past it are truncated away, or ignored and overwritten by the
// next append). A failed sync poisons the file: the kernel may have dropped the dirty pages and
// cleared the error, so a retried fdatasync could "succeed" without the data ever reaching the
// disk (PostgreSQL's fsync lesson). A poisoned file refuses every write and sync.

import { closeSync, constants, fdatasyncSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { BoundsError, IoError, MisuseError, toIoError } from '../errors.js';

export interface SsdFile {
  readonly path: string;
  /** Bytes written so far, synced or not. */
  readonly size: number;
  /** Writes `data` at the end; returns where it starts. All or nothing (IoError). */
  append(data: Uint8Array): number;
  /** Exactly `length` bytes from `offset`; BoundsError past the end. */
  read(offset: number, length: number): Uint8Array;
  /** fdatasync: everything written before is durable when it returns. */
  sync(): void;
  /** Cuts the file to `size` bytes (recovery drops a torn tail). */
  truncate(size: number): void;
  close(): void;
}

export class NodeSsdFile implements SsdFile {
  private fd: number | undefined;
  private length: number;
  private poisoned: IoError | undefined;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
    this.length = fstatSync(fd).size;
  }

  static open(path: string, options: { create: boolean }): NodeSsdFile {
    try {
      return new NodeSsdFile(path, openSync(path, constants.O_RDWR | (options.create ? constants.O_CREAT : 0), 0o644));
    } catch (err) {
      return toIoError(err, 'open', path);
    }
  }

  /** Includes what another handle on the file (the leaf writer's worker) appended. */
  get size(): number {
    if (this.fd !== undefined && this.poisoned === undefined) this.length = Math.max(this.length, fstatSync(this.fd).size);
    return this.length;
  }

  append(data: Uint8Array): number {
    const fd = this.writable();
    const offset = this.length;
    try {
      for (let done = 0; done < data.length; ) done += writeSync(fd, data, done, data.length - done, offset + done);
    } catch (err) {
      this.dropPartialWrite(fd, offset);
      toIoError(err, 'write', this.path);
    }
    this.length = offset + data.length;
    return offset;
  }

  read(offset: number, length: number): Uint8Array {
    const fd = this.open();
    // Past the cached length, re-stat once: the leaf writer's thread may have appended.
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || (offset + length > this.length && offset + length > this.size)) {
      throw new BoundsError(`${this.path}: read of ${length} bytes at ${offset} is outside the file of ${this.length} bytes`);
    }
    const bytes = new Uint8Array(length);
    try {
      for (let done = 0; done < length; ) {
        const n = readSync(fd, bytes, done, length - done, offset + done);
        if (n === 0) throw new IoError('ESHORTREAD', 'read', this.path, `ESHORTREAD: ${this.path} ended at ${offset + done} while reading ${length} bytes at ${offset}`);
        done += n;
      }
    } catch (err) {
      toIoError(err, 'read', this.path);
    }
    return bytes;
  }

  sync(): void {
    const fd = this.writable();
    try {
      fdatasyncSync(fd);
    } catch (err) {
      this.poisoned = new IoError('EIO', 'fdatasync', this.path, `EIO: ${this.path} is unusable after a failed fdatasync (${(err as Error).message}); reopen the store to recover`);
      toIoError(err, 'fdatasync', this.path);
    }
  }

  truncate(size: number): void {
    const fd = this.writable();
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

  private open(): number {
    if (this.fd === undefined) throw new MisuseError('FILE_CLOSED', `${this.path} is closed`);
    return this.fd;
  }

  private writable(): number {
    const fd = this.open();
    if (this.poisoned !== undefined) throw this.poisoned;
    return fd;
  }

  /** Best effort: if the truncate fails too, the next append overwrites the partial bytes. */
  private dropPartialWrite(fd: number, size: number): void {
    try {
      ftruncateSync(fd, size);
    } catch {
      // The size we keep in memory is what counts; stray bytes past it are never read.
    }
  }
}
