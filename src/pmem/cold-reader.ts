// Reads a region's 32-bit words through PmemRegion.readInto, not through its mapping: for the
// few scattered reads of a freshly mapped file right after open (queries before the queue index
// is rebuilt), where a page's first touch through the mapping costs a fault several times dearer
// than a read (region.ts). Every read lands in one scratch buffer that the process reuses, so
// that it does not fault in fresh heap pages either. Nothing is written through it.

import type { PmemRegion } from './region.js';

let scratch = new Int32Array(1024);

export class ColdReader {
  constructor(private readonly region: PmemRegion) {}

  /**
   * `count` 32-bit words from byte `at` (a multiple of 4), in one read. The result is a view of
   * the scratch buffer: valid until the next read by any ColdReader - copy what must outlive it.
   */
  words(at: number, count: number): Int32Array {
    if (scratch.length < count) scratch = new Int32Array(Math.max(count, scratch.length * 2));
    const words = scratch.subarray(0, count);
    this.region.readInto(at, new Uint8Array(words.buffer, 0, count * 4));
    return words;
  }
}
