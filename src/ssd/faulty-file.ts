// An SSD file in memory that fails on command and can lose power: the test double for every
// I/O fault path (LevelDB's fault_injection_test and redb's crash_consistency are the models).
//
// Crash model: bytes covered by a completed sync() always survive. Every write or truncate since
// the last sync independently took effect or not; the last write that did may be torn at a
// 512-byte sector boundary (only its first sectors reached the disk). Faults: the Nth write,
// sync or read from now fails with EIO, and writes past a byte limit fail with ENOSPC, nothing of
// them landing. Like NodeSsdFile, a failed sync poisons the file.

import { BoundsError, IoError, MisuseError } from '../errors.js';
import { Random } from '../util/random.js';
import type { SsdFile } from './file.js';

const SECTOR_BYTES = 512;

type Pending = { readonly kind: 'write'; readonly offset: number; readonly data: Uint8Array } | { readonly kind: 'truncate'; readonly size: number };

export class FaultyFile implements SsdFile {
  private live: Uint8Array<ArrayBuffer>;
  private liveLength: number;
  private durable: Uint8Array<ArrayBuffer>;
  private pending: Pending[] = [];
  private closed = false;
  private poisoned: IoError | undefined;
  private failures = { write: Infinity, sync: Infinity, read: Infinity };
  private limit = Infinity;
  /** Called after every successful sync (the simulated media counts write-backs with it). */
  onSync: (() => void) | undefined;

  constructor(
    readonly path: string,
    contents: Uint8Array = new Uint8Array(0),
  ) {
    this.live = contents.slice();
    this.liveLength = contents.length;
    this.durable = contents.slice();
  }

  /** A file holding `bytes`, all durable (what a restart after crash() finds). */
  static fromImage(path: string, bytes: Uint8Array): FaultyFile {
    return new FaultyFile(path, bytes);
  }

  /** The Nth write from now (1 = the next) fails with EIO. */
  failWriteAt(n: number): void {
    this.failures.write = n;
  }

  failSyncAt(n: number): void {
    this.failures.sync = n;
  }

  failReadAt(n: number): void {
    this.failures.read = n;
  }

  /** Writes that would make the file larger than `bytes` fail with ENOSPC. */
  spaceLimit(bytes: number): void {
    this.limit = bytes;
  }

  get size(): number {
    return this.liveLength;
  }

  /** The current (not necessarily durable) contents. */
  contents(): Uint8Array {
    return this.live.slice(0, this.liveLength);
  }

  append(data: Uint8Array): number {
    this.checkWritable();
    if (--this.failures.write === 0) throw new IoError('EIO', 'write', this.path, `EIO: injected write failure on ${this.path}`);
    const offset = this.liveLength;
    if (offset + data.length > this.limit) throw new IoError('ENOSPC', 'write', this.path, `ENOSPC: no space left for ${data.length} bytes on ${this.path}`);
    this.ensureCapacity(offset + data.length);
    this.live.set(data, offset);
    this.liveLength += data.length;
    this.pending.push({ kind: 'write', offset, data: data.slice() });
    return offset;
  }

  read(offset: number, length: number): Uint8Array {
    this.checkOpen();
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.liveLength) {
      throw new BoundsError(`${this.path}: read of ${length} bytes at ${offset} is outside the file of ${this.liveLength} bytes`);
    }
    if (--this.failures.read === 0) throw new IoError('EIO', 'read', this.path, `EIO: injected read failure on ${this.path}`);
    return this.live.slice(offset, offset + length);
  }

  sync(): void {
    this.checkWritable();
    if (--this.failures.sync === 0) {
      this.poisoned = new IoError('EIO', 'fdatasync', this.path, `EIO: ${this.path} is unusable after a failed fdatasync`);
      throw new IoError('EIO', 'fdatasync', this.path, `EIO: injected fdatasync failure on ${this.path}`);
    }
    this.durable = this.live.slice(0, this.liveLength);
    this.pending = [];
    this.onSync?.();
  }

  truncate(size: number): void {
    this.checkWritable();
    if (size < this.liveLength) this.live.fill(0, size, this.liveLength);
    this.liveLength = size;
    this.pending.push({ kind: 'truncate', size });
  }

  close(): void {
    this.closed = true;
  }

  /** Opens the file again after close(): same contents, same pending writes, same faults. */
  reopen(): FaultyFile {
    this.closed = false;
    return this;
  }

  /** The bytes a power failure now could leave. Deterministic per seed; the file is unchanged. */
  crash(seed: number): Uint8Array {
    const random = new Random(seed);
    let image = this.durable.slice();
    const kept = this.pending.filter(() => random.nextBoolean());
    kept.forEach((op, i) => {
      if (op.kind === 'truncate') {
        image = image.slice(0, Math.min(image.length, op.size));
        return;
      }
      const torn = i === kept.length - 1 && random.nextBoolean();
      const length = torn ? Math.min(op.data.length, (Math.floor((op.offset + random.nextInt(op.data.length + 1)) / SECTOR_BYTES) * SECTOR_BYTES) - op.offset) : op.data.length;
      if (length <= 0) return;
      if (op.offset + length > image.length) image = grown(image, op.offset + length);
      image.set(op.data.subarray(0, length), op.offset);
    });
    return image;
  }

  private ensureCapacity(size: number): void {
    if (size <= this.live.length) return;
    this.live = grown(this.live, Math.max(size, this.live.length * 2));
  }

  private checkOpen(): void {
    if (this.closed) throw new MisuseError('FILE_CLOSED', `${this.path} is closed`);
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.poisoned !== undefined) throw this.poisoned;
  }
}

function grown(bytes: Uint8Array, size: number): Uint8Array<ArrayBuffer> {
  const copy = new Uint8Array(size);
  copy.set(bytes);
  return copy;
}
