// The slots an out-of-order queue held at open, answered before the DRAM time index over them is
// rebuilt (instant recovery, seed 002): queries cost what the queue's sorted runs allow, not a
// scan of the whole queue.
//
//   slots [0, sorted x B)    in trusted runs (queue.ts, at most log2(blocks) of them): per run, a
//                            search of its top fences, its fences and then a few entries for the
//                            first timestamp wanted - a handful of pages - then a walk in
//                            (ts, slot) order
//   slots [sorted x B, end)  the tail - the partial last block, and a complete block whose run a
//                            crash left unwritten - scanned (a few pages)
//
// Slots the merge cursor says are in the tree are left out. Within a run they are a prefix: the
// run is in (ts, slot) order and merged events are a prefix of that order - so each run has one
// position from which its slots are live, found once by binary search.

import { invariant } from '../errors.js';
import type { MergeCursor } from '../tree/flank.js';
import type { RowLayout, Timestamp } from '../tree/row-layout.js';
import { belowCursor } from './index-builder.js';
import { FENCE_BYTES, FENCE_EVERY, type OooQueue, type SortedRun, TOP_FENCE_EVERY } from './queue.js';
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

/** The queue file as 32-bit words: timestamps, fences and run entries are read through it. */
interface RunView {
  readonly words: Int32Array;
  readonly entries: Uint32Array;
}

/**
 * The queue's runs as its runs word names them now. Late events appended after open complete
 * blocks and rewrite level areas in place - a run trusted at open may be gone - so they are
 * re-read whenever the word moves, and slots at or past `end` (indexed in DRAM) are skipped.
 */
interface Runs {
  readonly sortedBlocks: number;
  readonly runs: readonly SortedRun[];
  /** Slots [0, tailStart) of those held at open are in the runs; [tailStart, end) are scanned. */
  readonly tailStart: number;
  /** Per run, the first position whose slot is not below the merge cursor (found when first needed). */
  readonly liveFrom: Int32Array;
}

export class RecoveredSlots {
  private current: Runs | undefined;
  private liveCount: number | undefined;

  constructor(
    private readonly queue: OooQueue,
    private readonly layout: RowLayout,
    /** Slots [0, end) were in the queue at open. */
    readonly end: number,
    /** The merge cursor of the queue's generation, if a merge was interrupted. */
    readonly cursor: MergeCursor | undefined,
  ) {}

  /** Calls `visit` for each live slot with from <= ts <= to: each run's in order, then the tail's. */
  forEachBetween(from: Timestamp, to: Timestamp, visit: (slot: number) => void): void {
    if (from > to) return;
    const low = halves(from);
    const high = halves(to);
    const view = this.runView();
    const { runs } = this.runs();
    runs.forEach((run, r) => {
      for (let i = Math.max(this.firstLive(r), this.firstNotBelow(view, run, low, false)); i < run.length; i++) {
        const slot = this.entry(view, run, i);
        if (this.isAbove(view, this.queue.rowOffset(slot), high)) break;
        if (slot < this.end) visit(slot);
      }
    });
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
    this.runs().runs.forEach((run, r) => {
      let last = this.firstNotBelow(view, run, bound, true) - 1;
      while (last >= this.firstLive(r) && this.entry(view, run, last) >= this.end) last--;
      if (last >= this.firstLive(r)) consider(this.entry(view, run, last));
    });
    this.scanTail(lowestTimestamp(this.layout), ts, consider);
    return best;
  }

  /** How many slots are live (not yet merged). */
  count(): number {
    // Without an interrupted merge every slot is live: open() asks, and must not scan the tail.
    if (this.cursor === undefined) return this.end;
    if (this.liveCount === undefined) {
      const { runs, tailStart, sortedBlocks } = this.runs();
      // A merge left unfinished is finished before the next late event is queued: no run holds a later slot.
      invariant(tailStart === sortedBlocks * this.queue.blockSlots, 'late events queued while a merge was unfinished');
      let count = 0;
      runs.forEach((run, r) => (count += run.length - this.firstLive(r)));
      this.scanTail(lowestTimestamp(this.layout), highestTimestamp(this.layout), () => count++);
      this.liveCount = count;
    }
    return this.liveCount;
  }

  private runs(): Runs {
    const sortedBlocks = this.queue.sortedBlocks;
    if (this.current?.sortedBlocks !== sortedBlocks) {
      const runs = this.queue.sortedRuns();
      this.current = { sortedBlocks, runs, tailStart: Math.min(sortedBlocks * this.queue.blockSlots, this.end), liveFrom: new Int32Array(runs.length).fill(-1) };
    }
    return this.current;
  }

  private runView(): RunView {
    const view = this.queue.view;
    return { words: new Int32Array(view.buffer, view.byteOffset, view.byteLength >>> 2), entries: new Uint32Array(view.buffer, view.byteOffset, view.byteLength >>> 2) };
  }

  /** The slot at position `i` of `run` (a damaged entry naming no slot of it is refused). */
  private entry({ entries }: RunView, run: SortedRun, i: number): number {
    const offset = entries[(run.entriesOffset >>> 2) + i]!;
    return offset < run.length ? run.firstSlot + offset : this.queue.runSlot(run, i); // the latter throws the CorruptionError
  }

  /** Whether the timestamp at byte `at` is below `bound` (or, when `inclusive`, at or below it). */
  private isBelow({ words }: RunView, at: number, bound: Int64Halves, inclusive: boolean): boolean {
    const hi = words[(at >>> 2) + 1]!;
    const lo = words[at >>> 2]! >>> 0;
    return hi < bound.hi || (hi === bound.hi && (lo < bound.lo || (inclusive && lo === bound.lo)));
  }

  private isAbove(view: RunView, at: number, bound: Int64Halves): boolean {
    return !this.isBelow(view, at, bound, true);
  }

  /**
   * The first position of `run` whose timestamp is not below `bound` (or, when `inclusive`, is
   * above it). The top fences narrow it to T entries, the fences among those to F, and F's
   * log2 slot reads find it: a few pages of a cold mapping, whatever the run's length.
   */
  private firstNotBelow(view: RunView, run: SortedRun, bound: Int64Halves, inclusive: boolean): number {
    const below = (at: number) => this.isBelow(view, at, bound, inclusive);
    const tops = Math.ceil(run.length / TOP_FENCE_EVERY);
    const top = lowerBound(0, tops, (t) => below(run.topFencesOffset + t * FENCE_BYTES));
    if (top === 0) return 0;
    // The answer p lies in [first, last]: entry (top - 1) x T is below, entry top x T (if any) is not.
    let first = (top - 1) * TOP_FENCE_EVERY + 1;
    let last = top < tops ? top * TOP_FENCE_EVERY : run.length;
    const firstFence = Math.ceil(first / FENCE_EVERY);
    const lastFence = Math.floor(Math.min(last, run.length - 1) / FENCE_EVERY);
    const fence = lowerBound(firstFence, lastFence + 1, (f) => below(run.fencesOffset + f * FENCE_BYTES));
    if (fence > firstFence) first = (fence - 1) * FENCE_EVERY + 1;
    if (fence <= lastFence) last = fence * FENCE_EVERY;
    return lowerBound(first, last, (i) => below(this.queue.rowOffset(this.entry(view, run, i))));
  }

  /** The first position of run `r` whose slot is not below the merge cursor. */
  private firstLive(r: number): number {
    const cursor = this.cursor;
    if (cursor === undefined) return 0;
    const { runs, liveFrom } = this.runs();
    if (liveFrom[r]! < 0) {
      const run = runs[r]!;
      const view = this.runView();
      liveFrom[r] = lowerBound(0, run.length, (i) => {
        const slot = this.entry(view, run, i);
        return belowCursor(this.queue.view.getBigInt64(this.queue.rowOffset(slot), true), slot, cursor);
      });
    }
    return liveFrom[r]!;
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
    for (let first = this.runs().tailStart; first < this.end; ) {
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

/** The first i in [low, high) for which `below(i)` is false, or high: `below` must be true on a prefix. */
function lowerBound(low: number, high: number, below: (i: number) => boolean): number {
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (below(mid)) low = mid + 1;
    else high = mid;
  }
  return low;
}
