// The slots an out-of-order queue held at open, answered before the DRAM time index over them is
// rebuilt (instant recovery, seed 002): queries cost what the queue's sorted runs allow, not a
// scan of the whole queue.
//
//   slots [0, runs x B)      in trusted runs (queue.ts): per run, a binary search for the first
//                            timestamp wanted, then a walk in (ts, slot) order
//   slots [runs x B, end)    the tail - the partial last block, and complete blocks whose run a
//                            crash left unwritten - scanned (a few blocks at most)
//
// Slots the merge cursor says are in the tree are left out. Within a run they are a prefix: the
// run is in (ts, slot) order and merged events are a prefix of that order - so each run has one
// position from which its slots are live, found once by binary search.

import type { MergeCursor } from '../tree/flank.js';
import type { RowLayout, Timestamp } from '../tree/row-layout.js';
import { belowCursor } from './index-builder.js';
import type { OooQueue } from './queue.js';
import { sortByTime } from './time-index.js';

/** The smallest timestamp a stream of `layout` can hold (a bound for "every event"). */
export function lowestTimestamp(layout: RowLayout): Timestamp {
  return layout.timestampColumn === undefined ? -(2n ** 63n) : -Infinity;
}

/** The largest timestamp a stream of `layout` can hold. */
export function highestTimestamp(layout: RowLayout): Timestamp {
  return layout.timestampColumn === undefined ? 2n ** 63n - 1n : Infinity;
}

/**
 * A timestamp as the two 32-bit halves of its int64 (hi signed, lo unsigned): compared half by
 * half it orders like the int64, for number and bigint streams alike, with no allocation - what
 * the binary searches below compare against (they read the halves straight from the queue).
 */
interface Int64Halves {
  readonly hi: number;
  readonly lo: number;
}

const TWO_32 = 4294967296;
const INT64_MIN: Int64Halves = { hi: -0x80000000, lo: 0 };
const INT64_MAX: Int64Halves = { hi: 0x7fffffff, lo: 0xffffffff };

function halves(ts: Timestamp): Int64Halves {
  if (typeof ts === 'bigint') return { hi: Number(BigInt.asIntN(32, ts >> 32n)), lo: Number(BigInt.asUintN(32, ts)) };
  if (ts === -Infinity) return INT64_MIN;
  if (ts === Infinity) return INT64_MAX;
  const hi = Math.floor(ts / TWO_32);
  return { hi, lo: ts - hi * TWO_32 };
}

/** The queue's words and run entries, and where run `run`'s slots start in them. */
interface RunView {
  readonly words: Int32Array;
  readonly entries: Uint16Array;
}

export class RecoveredSlots {
  /** Blocks [0, runs) are answered through their runs. */
  readonly runs: number;
  private readonly tailStart: number;
  /** Per run, the first position whose slot is not below the merge cursor (found when first needed). */
  private liveFrom: Int32Array | undefined;
  private liveCount: number | undefined;

  constructor(
    private readonly queue: OooQueue,
    private readonly layout: RowLayout,
    /** Slots [0, end) were in the queue at open. */
    readonly end: number,
    /** The merge cursor of the queue's generation, if a merge was interrupted. */
    readonly cursor: MergeCursor | undefined,
  ) {
    this.runs = Math.min(queue.sortedBlocks, Math.floor(end / queue.blockSlots));
    this.tailStart = this.runs * queue.blockSlots;
  }

  /** Calls `visit` for each live slot with from <= ts <= to: each run's in order, then the tail's. */
  forEachBetween(from: Timestamp, to: Timestamp, visit: (slot: number) => void): void {
    if (from > to) return;
    const low = halves(from);
    const high = halves(to);
    const view = this.runView();
    const { blockSlots } = this.queue;
    for (let run = 0; run < this.runs; run++) {
      const { entries, words } = view;
      const entriesAt = this.entriesIndex(run);
      const firstWord = this.firstWord(run);
      const stride = this.queue.slotBytes >>> 2;
      for (let i = Math.max(this.firstLive(run), this.firstNotBelow(view, run, low, false)); i < blockSlots; i++) {
        const j = this.entry(entries, entriesAt, run, i);
        const w = firstWord + j * stride;
        const hi = words[w + 1]!;
        if (hi > high.hi || (hi === high.hi && words[w]! >>> 0 > high.lo)) break;
        visit(run * blockSlots + j);
      }
    }
    this.scanTail(from, to, visit);
  }

  /** The live slots with from <= ts <= to, in (timestamp, slot) order. */
  between(from: Timestamp, to: Timestamp): Int32Array {
    const found: number[] = [];
    this.forEachBetween(from, to, (slot) => found.push(slot));
    return sortByTime(Int32Array.from(found), this.queue.view, (slot) => this.queue.rowOffset(slot));
  }

  /** The live slot with the largest (ts, slot) among those with ts <= `ts`, or -1. */
  lastAtOrBefore(ts: Timestamp): number {
    let best = -1;
    let bestTs: Timestamp = 0;
    const consider = (slot: number) => {
      const slotTs = this.queue.timestamp(slot);
      if (best < 0 || slotTs > bestTs || (slotTs === bestTs && slot > best)) [best, bestTs] = [slot, slotTs];
    };
    const bound = halves(ts);
    const view = this.runView();
    for (let run = 0; run < this.runs; run++) {
      const last = this.firstNotBelow(view, run, bound, true) - 1;
      if (last >= this.firstLive(run)) consider(this.queue.runSlot(run, last));
    }
    this.scanTail(lowestTimestamp(this.layout), ts, consider);
    return best;
  }

  /** How many slots are live (not yet merged). */
  count(): number {
    // Without an interrupted merge every slot is live: open() asks, and must not scan the tail.
    if (this.cursor === undefined) return this.end;
    if (this.liveCount === undefined) {
      let count = 0;
      for (let run = 0; run < this.runs; run++) count += this.queue.blockSlots - this.firstLive(run);
      this.scanTail(lowestTimestamp(this.layout), highestTimestamp(this.layout), () => count++);
      this.liveCount = count;
    }
    return this.liveCount;
  }

  private runView(): RunView {
    const view = this.queue.view;
    return { words: new Int32Array(view.buffer, view.byteOffset, view.byteLength >>> 2), entries: new Uint16Array(view.buffer, view.byteOffset, view.byteLength >>> 1) };
  }

  /** Index in RunView.entries of run `run`'s first entry. */
  private entriesIndex(run: number): number {
    return this.queue.runOffset(run) >>> 1;
  }

  /** Index in RunView.words of the low half of the timestamp of run `run`'s block's first slot. */
  private firstWord(run: number): number {
    return this.queue.rowOffset(run * this.queue.blockSlots) >>> 2;
  }

  /** Entry `i` of run `run`: the slot's place in its block (a damaged entry naming no slot of it is refused). */
  private entry(entries: Uint16Array, entriesAt: number, run: number, i: number): number {
    const j = entries[entriesAt + i]!;
    if (j >= this.queue.blockSlots) this.queue.runSlot(run, i); // throws the CorruptionError
    return j;
  }

  /**
   * The first position of run `run` whose timestamp is not below `bound` (or, when `inclusive`,
   * is above it): one binary search of 32-bit compares - no calls per probe, as this runs once
   * per run for every query during recovery, cold code included.
   */
  private firstNotBelow({ words, entries }: RunView, run: number, bound: Int64Halves, inclusive: boolean): number {
    const entriesAt = this.entriesIndex(run);
    const firstWord = this.firstWord(run);
    const stride = this.queue.slotBytes >>> 2;
    let low = 0;
    let high = this.queue.blockSlots;
    while (low < high) {
      const mid = (low + high) >>> 1;
      const w = firstWord + this.entry(entries, entriesAt, run, mid) * stride;
      const hi = words[w + 1]!;
      const lo = words[w]! >>> 0;
      const below = hi < bound.hi || (hi === bound.hi && (lo < bound.lo || (inclusive && lo === bound.lo)));
      if (below) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** The first position of run `run` whose slot is not below the merge cursor. */
  private firstLive(run: number): number {
    const cursor = this.cursor;
    if (cursor === undefined) return 0;
    this.liveFrom ??= new Int32Array(this.runs).fill(-1);
    if (this.liveFrom[run]! < 0) {
      let low = 0;
      let high = this.queue.blockSlots;
      while (low < high) {
        const mid = (low + high) >>> 1;
        const slot = this.queue.runSlot(run, mid);
        if (belowCursor(this.queue.view.getBigInt64(this.queue.rowOffset(slot), true), slot, cursor)) low = mid + 1;
        else high = mid;
      }
      this.liveFrom[run] = low;
    }
    return this.liveFrom[run]!;
  }
  /** Calls `visit` for each live tail slot with from <= ts <= to, in slot order. */
  private scanTail(from: Timestamp, to: Timestamp, visit: (slot: number) => void): void {
    const { queue } = this;
    const view = queue.view;
    const cursor = this.cursor;
    const wanted = (slot: number, at: number) => cursor === undefined || !belowCursor(view.getBigInt64(at, true), slot, cursor);
    const words = new Int32Array(view.buffer, view.byteOffset, view.byteLength >>> 2);
    const read = this.layout.readTimestamp;
    const numeric = typeof from === 'number' && typeof to === 'number';
    // Slots of one block are contiguous; runs lie between blocks.
    for (let first = this.tailStart; first < this.end; ) {
      const stop = Math.min(this.end, (Math.floor(first / queue.blockSlots) + 1) * queue.blockSlots);
      const slotBytes = queue.slotBytes;
      if (numeric) {
        // The common case in one tight loop over 32-bit words: a DataView call per slot costs
        // several times more (rows and slots are 4-byte aligned).
        const stride = slotBytes >>> 2;
        for (let slot = first, w = queue.rowOffset(first) >>> 2; slot < stop; slot++, w += stride) {
          const ts = words[w + 1]! * 4294967296 + (words[w]! >>> 0);
          if (ts >= from && ts <= to && wanted(slot, w << 2)) visit(slot);
        }
      } else {
        for (let slot = first, at = queue.rowOffset(first); slot < stop; slot++, at += slotBytes) {
          const ts = read(view, at);
          if (ts >= from && ts <= to && wanted(slot, at)) visit(slot);
        }
      }
      first = stop;
    }
  }
}
