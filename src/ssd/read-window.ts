// A read-only SsdFile over bytes already read from a file at `base`: recovery reads the leaf
// file's tail with one large read and scans the records in it from memory, instead of two small
// reads per record.

import { BoundsError, MisuseError } from '../errors.js';
import type { SsdFile } from './file.js';

export class ReadWindow implements SsdFile {
  constructor(
    readonly path: string,
    private readonly base: number,
    private readonly bytes: Uint8Array,
  ) {}

  get size(): number {
    return this.base + this.bytes.length;
  }

  /** Lengths come from the media: checked before anything is allocated. */
  read(offset: number, length: number): Uint8Array {
    this.checkWithin(offset, length);
    return this.bytes.slice(offset - this.base, offset - this.base + length);
  }

  readInto(offset: number, target: Uint8Array): void {
    this.checkWithin(offset, target.length);
    target.set(this.bytes.subarray(offset - this.base, offset - this.base + target.length));
  }

  private checkWithin(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || length < 0 || offset < this.base || offset + length > this.size) {
      throw new BoundsError(`${this.path}: read of ${length} bytes at ${offset} is outside the window [${this.base}, ${this.size})`);
    }
  }

  append(): number {
    return this.refuse();
  }

  write(): void {
    this.refuse();
  }

  sync(): void {
    this.refuse();
  }

  truncate(): void {
    this.refuse();
  }

  close(): void {}

  private refuse(): never {
    throw new MisuseError('READ_ONLY', `${this.path}: a read window cannot be written`);
  }
}
