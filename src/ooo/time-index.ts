// The DRAM application-time index over the out-of-order queue (paper §4.3, Fig. 4 B.c): queue
// slot numbers ordered by (timestamp, slot) - slot order is arrival order - and nothing else; the
// events themselves stay in PMem, read through their slot. Not persisted: rebuilt on open.
//
// Shape: a list of sorted chunks of at most CHUNK slots (a two-level B+-tree): an insert is a
// binary search over the chunks' first keys, one within the chunk and a short copyWithin;
// range lookups and in-order walks are binary searches plus sequential reads.

import { invariant } from '../errors.js';
import type { Timestamp } from '../tree/row-layout.js';

const CHUNK = 512;
const BUILD_FILL = 384;

interface Chunk {
  readonly slots: Int32Array;
  length: number;
}

/** A place in the index: chunk number and index within it. */
interface Position {
  chunk: number;
  index: number;
}

export class TimeIndex {
  private chunks: Chunk[] = [];
  private count = 0;

  constructor(private readonly timestampOf: (slot: number) => Timestamp) {}

  get size(): number {
    return this.count;
  }

  /** Adds `slot`, which must be newer (larger) than every slot in the index. */
  insert(slot: number): void {
    if (this.chunks.length === 0) {
      this.build(Int32Array.of(slot));
      return;
    }
    const at = this.upperBound(this.timestampOf(slot));
    if (at.chunk === this.chunks.length) {
      at.chunk--;
      at.index = this.chunks[at.chunk]!.length;
    }
    const chunk = this.chunks[at.chunk]!;
    chunk.slots.copyWithin(at.index + 1, at.index, chunk.length);
    chunk.slots[at.index] = slot;
    chunk.length++;
    this.count++;
    if (chunk.length === CHUNK) this.split(at.chunk);
  }

  /** Replaces the contents with `slots`, already sorted by (timestamp, slot). */
  build(slots: Int32Array): void {
    this.chunks = [];
    for (let first = 0; first < slots.length; first += BUILD_FILL) {
      const part = slots.subarray(first, Math.min(slots.length, first + BUILD_FILL));
      const chunk: Chunk = { slots: new Int32Array(CHUNK), length: part.length };
      chunk.slots.set(part);
      this.chunks.push(chunk);
    }
    this.count = slots.length;
  }

  clear(): void {
    this.chunks = [];
    this.count = 0;
  }

  /** Removes the first `n` entries (the ones a merge step moved into the tree). */
  dropFirst(n: number): void {
    invariant(n <= this.count, () => `dropping ${n} of ${this.count} index entries`);
    let left = n;
    let whole = 0;
    while (whole < this.chunks.length && this.chunks[whole]!.length <= left) left -= this.chunks[whole++]!.length;
    this.chunks.splice(0, whole);
    const first = this.chunks[0];
    if (first !== undefined && left > 0) {
      first.slots.copyWithin(0, left, first.length);
      first.length -= left;
    }
    this.count -= n;
  }

  /** The slots with from <= ts <= to, in index order (a copy). */
  between(from: Timestamp, to: Timestamp): Int32Array {
    const out: number[] = [];
    this.forEachBetween(from, to, (slot) => out.push(slot));
    return Int32Array.from(out);
  }

  /** Calls `visit` for each slot with from <= ts <= to, in index order. */
  forEachBetween(from: Timestamp, to: Timestamp, visit: (slot: number) => void): void {
    if (from > to || this.count === 0) return;
    const start = this.lowerBound(from);
    const end = this.upperBound(to);
    for (let c = start.chunk; c <= end.chunk && c < this.chunks.length; c++) {
      const chunk = this.chunks[c]!;
      const last = c === end.chunk ? end.index : chunk.length;
      for (let i = c === start.chunk ? start.index : 0; i < last; i++) visit(chunk.slots[i]!);
    }
  }

  /** The last slot (in index order) with ts <= `ts`, or -1. */
  lastAtOrBefore(ts: Timestamp): number {
    const at = this.upperBound(ts);
    if (at.index > 0) return this.chunks[at.chunk]!.slots[at.index - 1]!;
    if (at.chunk === 0) return -1;
    const previous = this.chunks[at.chunk - 1]!;
    return previous.slots[previous.length - 1]!;
  }

  /** The last slot in index order (the newest timestamp), or -1. */
  last(): number {
    const chunk = this.chunks[this.chunks.length - 1];
    return chunk === undefined ? -1 : chunk.slots[chunk.length - 1]!;
  }

  /** Every slot in index order (a copy). */
  all(): Int32Array {
    const out = new Int32Array(this.count);
    let at = 0;
    for (const chunk of this.chunks) {
      out.set(chunk.slots.subarray(0, chunk.length), at);
      at += chunk.length;
    }
    return out;
  }

  /** First position whose timestamp is >= ts. */
  private lowerBound(ts: Timestamp): Position {
    return this.bound((slotTs) => slotTs < ts);
  }

  /** First position whose timestamp is > ts. */
  private upperBound(ts: Timestamp): Position {
    return this.bound((slotTs) => slotTs <= ts);
  }

  /** The first position whose entry is not `before` (entries satisfying it form a prefix). */
  private bound(before: (slotTs: Timestamp) => boolean): Position {
    let low = 0;
    let high = this.chunks.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (before(this.timestampOf(this.chunks[mid]!.slots[0]!))) low = mid + 1;
      else high = mid;
    }
    // Chunks [0, low) start before the bound: it lies in chunk low - 1, or at chunk low's start.
    if (low === 0) return { chunk: 0, index: 0 };
    const chunk = this.chunks[low - 1]!;
    let lo = 1;
    let hi = chunk.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(this.timestampOf(chunk.slots[mid]!))) lo = mid + 1;
      else hi = mid;
    }
    return lo === chunk.length ? { chunk: low, index: 0 } : { chunk: low - 1, index: lo };
  }

  private split(c: number): void {
    const chunk = this.chunks[c]!;
    const half = chunk.length >>> 1;
    const right: Chunk = { slots: new Int32Array(CHUNK), length: chunk.length - half };
    right.slots.set(chunk.slots.subarray(half, chunk.length));
    chunk.length = half;
    this.chunks.splice(c + 1, 0, right);
  }
}

/**
 * Sorts `slots` (given in increasing slot order) by timestamp, keeping slot order among equal
 * timestamps: an LSD radix sort on the raw little-endian int64 timestamp at `offsetOf(slot)` in
 * `view` - stable passes, no comparisons, the same for number and bigint streams. Digits are 8
 * bits for up to 64 Ki slots (a block's run, a query's result: the counting arrays stay small
 * next to the input) and 16 bits beyond; a digit all timestamps share costs no pass.
 */
export function sortByTime(slots: Int32Array, view: DataView, offsetOf: (slot: number) => number): Int32Array {
  const n = slots.length;
  const low = new Uint32Array(n);
  const high = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const at = offsetOf(slots[i]!);
    low[i] = view.getUint32(at, true);
    high[i] = (view.getUint32(at + 4, true) ^ 0x80000000) >>> 0;
  }
  const digitBits = n <= 1 << 16 ? 8 : 16;
  const digitMask = (1 << digitBits) - 1;
  let order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  let spare = new Int32Array(n);
  const counts = new Uint32Array(digitMask + 2);
  for (let bit = 0; bit < 64 && n > 1; bit += digitBits) {
    const words = bit < 32 ? low : high;
    const shift = bit & 31;
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[((words[i]! >>> shift) & digitMask) + 1]!++;
    if (counts[((words[0]! >>> shift) & digitMask) + 1] === n) continue;
    for (let d = 1; d < counts.length; d++) counts[d]! += counts[d - 1]!;
    for (let i = 0; i < n; i++) {
      const item = order[i]!;
      spare[counts[(words[item]! >>> shift) & digitMask]!++] = item;
    }
    [order, spare] = [spare, order];
  }
  for (let i = 0; i < n; i++) spare[i] = slots[order[i]!]!;
  return spare;
}
