// An SSD file in memory that fails on command and can lose power: the test double for every
// I/O fault path (LevelDB's fault_injection_test and redb's crash_consistency are the models).
// In memory so that a test can afford thousands of crashes.
//
// Crash model (crash(seed), deterministic per seed): bytes covered by a completed sync() always
// survive. Every write and truncate since the last sync independently took effect or not, in
// program order; a dropped write leaves the range's previous contents, and a dropped append
// leaves the file shorter (its length is the end of the furthest surviving write, or what
// surviving truncates left). The last surviving write may be torn at a 512-byte sector boundary:
// only its first sectors reached the media (sectors are atomic), and then either the file ends
// there or, as when the size reached the disk but the data did not (ext4 delayed allocation),
// the rest of the write's range reads as zeros.
//
// Faults, each armed once: the Nth write, sync or read from now fails (EIO; a write may land
// some bytes first, a read may instead come up short); writes that would grow the file past a
// byte limit fail with ENOSPC, nothing of them landing. The file keeps NodeSsdFile's contract:
// a failed write leaves the size unchanged (landed bytes past the end are cut off again, which
// is one more unsynced truncate a crash may drop), and a failed sync poisons the file.

import { BoundsError, IoError, MisuseError } from '../errors.js';
import { Random } from '../util/random.js';
import { checkRange, checkTruncate, checkWrite, poisonedError, type PoisonCause, type SsdFile } from './file.js';

/** Writes reach the media in whole sectors of this size, or not at all. */
export const SECTOR_BYTES = 512;

type Unsynced = { readonly kind: 'write'; readonly offset: number; readonly data: Uint8Array } | { readonly kind: 'truncate'; readonly size: number };

type Fault = 'write' | 'sync' | 'read';

export class FaultyFile implements SsdFile {
  private live: Uint8Array<ArrayBuffer>;
  private liveLength: number;
  private durable: Uint8Array;
  private unsynced: Unsynced[] = [];
  private closed = false;
  private poisoned: PoisonCause | undefined;
  /** Calls of each kind until its fault fires; 0 = none armed. */
  private readonly countdown: Record<Fault, number> = { write: 0, sync: 0, read: 0 };
  private landedOnFailure = 0;
  private readFailure: 'EIO' | 'ESHORTREAD' = 'EIO';
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

  /**
   * The file a process crash (kill -9) now leaves to the next process: everything written reads
   * back (the page cache outlives the process), but only what was synced is durable - a power
   * failure after the restart may still drop the rest. Armed faults and poison do not carry over.
   */
  afterKill(): FaultyFile {
    const after = new FaultyFile(this.path, this.contents());
    after.durable = this.durable.slice();
    after.unsynced = [...this.unsynced];
    return after;
  }

  /** The Nth write (append or write) from now, 1 = the next, fails with EIO after landing its first `landed` bytes. */
  failWriteAt(n: number, { landed = 0 }: { landed?: number } = {}): void {
    this.arm('write', n);
    this.landedOnFailure = nonNegative(landed, 'landed');
  }

  /** The Nth sync from now fails with EIO and poisons the file. */
  failSyncAt(n: number): void {
    this.arm('sync', n);
  }

  /** The Nth read from now fails: EIO, or ESHORTREAD as if the file had shrunk under the reader. */
  failReadAt(n: number, code: 'EIO' | 'ESHORTREAD' = 'EIO'): void {
    this.arm('read', n);
    this.readFailure = code;
  }

  /** Writes that would make the file larger than `bytes` fail with ENOSPC. */
  spaceLimit(bytes: number): void {
    this.limit = nonNegative(bytes, 'space limit');
  }

  get size(): number {
    return this.liveLength;
  }

  /** A copy of the current contents, synced or not. */
  contents(): Uint8Array {
    return this.live.slice(0, this.liveLength);
  }

  /** A copy of what the last completed sync made durable. */
  durableContents(): Uint8Array {
    return this.durable.slice();
  }

  /** Writes and truncates since the last completed sync. */
  get unsyncedCount(): number {
    return this.unsynced.length;
  }

  append(data: Uint8Array): number {
    this.checkWritable('write');
    const offset = this.liveLength;
    this.writeAt(offset, data);
    return offset;
  }

  write(offset: number, data: Uint8Array): void {
    this.checkWritable('write');
    checkWrite(this.path, offset, data.length, this.liveLength);
    this.writeAt(offset, data);
  }

  read(offset: number, length: number): Uint8Array {
    this.checkReadable(offset, length);
    return this.live.slice(offset, offset + length);
  }

  readInto(offset: number, target: Uint8Array): void {
    this.checkReadable(offset, target.length);
    target.set(this.live.subarray(offset, offset + target.length));
  }

  sync(): void {
    this.checkWritable('fdatasync');
    if (this.fires('sync')) {
      this.poisoned = 'a failed sync';
      throw new IoError('EIO', 'fdatasync', this.path, `EIO: injected fdatasync failure on ${this.path}`);
    }
    this.durable = this.contents();
    this.unsynced = [];
    this.onSync?.();
  }

  truncate(size: number): void {
    this.checkWritable('ftruncate');
    checkTruncate(this.path, size, this.liveLength);
    this.cut(size);
  }

  /** Unsynced writes stay unsynced: closing is not syncing. */
  close(): void {
    this.closed = true;
  }

  /** Opens the file again after close(): same contents, unsynced writes, armed faults and poison. */
  reopen(): FaultyFile {
    this.closed = false;
    return this;
  }

  /** The bytes a power failure now could leave (see the crash model above); the file is unchanged. */
  crash(seed: number): Uint8Array {
    const random = new Random(seed);
    const survivors = this.unsynced.filter(() => random.nextBoolean());
    let image = this.durable.slice();
    survivors.forEach((op, i) => {
      if (op.kind === 'truncate') {
        image = image.slice(0, Math.min(image.length, op.size));
        return;
      }
      const reached = i === survivors.length - 1 ? tornLength(op.offset, op.data.length, random) : op.data.length;
      image = overlaid(image, op.offset, op.data.subarray(0, reached));
      if (reached < op.data.length && random.nextBoolean()) image = grownTo(image, op.offset + op.data.length);
    });
    return image;
  }

  private writeAt(offset: number, data: Uint8Array): void {
    const end = offset + data.length;
    const room = Math.max(this.liveLength, this.limit) - offset;
    if (this.fires('write')) {
      const oldLength = this.liveLength;
      this.land(offset, data.subarray(0, Math.min(this.landedOnFailure, data.length, room)));
      if (this.liveLength > oldLength) this.cut(oldLength);
      throw new IoError('EIO', 'write', this.path, `EIO: injected write failure on ${this.path}`);
    }
    if (end > this.liveLength && end > this.limit) throw new IoError('ENOSPC', 'write', this.path, `ENOSPC: no space left for ${data.length} bytes at ${offset} on ${this.path}`);
    this.land(offset, data);
  }

  private land(offset: number, data: Uint8Array): void {
    if (data.length === 0) return;
    const end = offset + data.length;
    if (end > this.live.length) this.live = grownTo(this.live, Math.max(end, this.live.length * 2));
    this.live.set(data, offset);
    this.liveLength = Math.max(this.liveLength, end);
    this.unsynced.push({ kind: 'write', offset, data: data.slice() });
  }

  /** Zeroes what is cut off, so that growing the file again reads zeros, as on a real file. */
  private cut(size: number): void {
    this.live.fill(0, size, this.liveLength);
    this.liveLength = size;
    this.unsynced.push({ kind: 'truncate', size });
  }

  private arm(fault: Fault, n: number): void {
    if (!Number.isSafeInteger(n) || n < 1) throw new BoundsError(`a ${fault} fault must be armed for call 1 or later, got ${String(n)}`);
    this.countdown[fault] = n;
  }

  private fires(fault: Fault): boolean {
    const left = this.countdown[fault];
    if (left > 0) this.countdown[fault] = left - 1;
    return left === 1;
  }

  private checkReadable(offset: number, length: number): void {
    this.checkOpen();
    checkRange(this.path, offset, length, this.liveLength);
    if (this.fires('read')) throw new IoError(this.readFailure, 'read', this.path, `${this.readFailure}: injected read failure on ${this.path}`);
  }

  private checkOpen(): void {
    if (this.closed) throw new MisuseError('FILE_CLOSED', `${this.path} is closed`);
  }

  private checkWritable(syscall: string): void {
    this.checkOpen();
    if (this.poisoned !== undefined) throw poisonedError(this.path, syscall, this.poisoned);
  }
}

/**
 * How many bytes of a write at `offset` reached the media before the power failed: all of them
 * (half the time), or up to a sector boundary strictly inside it (none, if it spans no boundary).
 */
function tornLength(offset: number, length: number, random: Random): number {
  if (random.nextBoolean()) return length;
  const firstBoundary = (Math.floor(offset / SECTOR_BYTES) + 1) * SECTOR_BYTES;
  const boundaries = Math.max(0, Math.ceil((offset + length - firstBoundary) / SECTOR_BYTES));
  const cut = random.nextInt(boundaries + 1);
  return cut === 0 ? 0 : firstBoundary + (cut - 1) * SECTOR_BYTES - offset;
}

/** `bytes` with `data` written at `offset`, grown as needed; may be `bytes` itself. */
function overlaid(bytes: Uint8Array<ArrayBuffer>, offset: number, data: Uint8Array): Uint8Array<ArrayBuffer> {
  const result = grownTo(bytes, offset + data.length);
  result.set(data, offset);
  return result;
}

/** `bytes` zero-filled to at least `size` bytes; may be `bytes` itself. */
function grownTo(bytes: Uint8Array<ArrayBuffer>, size: number): Uint8Array<ArrayBuffer> {
  if (size <= bytes.length) return bytes;
  const grown = new Uint8Array(size);
  grown.set(bytes);
  return grown;
}

function nonNegative(value: number, what: string): number {
  if (!(value >= 0)) throw new BoundsError(`${what} must be a non-negative number, got ${String(value)}`);
  return value;
}
