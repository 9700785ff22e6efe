// A region in plain DRAM whose persists do nothing: the paper's "flank in DRAM" configuration,
// used as the baseline the PMem flank is measured against (bench/ingest.ts). Nothing in it
// survives the process; a store built on it is for measurement only.

import { MisuseError } from '../errors.js';
import type { PmemRegion } from './region.js';
import { checkRange } from './range.js';

export class VolatileRegion implements PmemRegion {
  readonly durability = 'volatile' as const;
  private bytes: Uint8Array;
  private closed = false;

  constructor(
    readonly path: string,
    contents: number | Uint8Array,
  ) {
    this.bytes = typeof contents === 'number' ? new Uint8Array(contents) : contents;
  }

  /** A new open handle on the same bytes (what reopening a file gives). */
  reopen(): VolatileRegion {
    return new VolatileRegion(this.path, this.bytes);
  }

  get size(): number {
    return this.open().length;
  }

  get buffer(): ArrayBuffer {
    return this.open().buffer as ArrayBuffer;
  }

  persist(offset: number, length: number): void {
    checkRange(offset, length, this.open().length, this.path);
  }

  flush(offset: number, length: number): void {
    checkRange(offset, length, this.open().length, this.path);
  }

  drain(): void {
    this.open();
  }

  readInto(offset: number, into: Uint8Array): void {
    const bytes = this.open();
    checkRange(offset, into.length, bytes.length, this.path);
    into.set(bytes.subarray(offset, offset + into.length));
  }

  grow(newSize: number): void {
    const old = this.open();
    if (newSize < old.length) throw new MisuseError('INVALID_ARGUMENT', `${this.path}: cannot shrink from ${old.length} to ${newSize}`);
    this.bytes = new Uint8Array(newSize);
    this.bytes.set(old);
    structuredClone(old.buffer, { transfer: [old.buffer as ArrayBuffer] });
  }

  close(): void {
    this.closed = true;
  }

  private open(): Uint8Array {
    if (this.closed) throw new MisuseError('REGION_CLOSED', `${this.path}: region is closed`);
    return this.bytes;
  }
}
