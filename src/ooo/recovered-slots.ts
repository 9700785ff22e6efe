// The slots an out-of-order queue held at open, answered before the DRAM time index over them is
// rebuilt (instant recovery, seed 002): queries cost what the queue's sorted runs allow, not a
// scan of the whole queue.
//
//   slots [0, sorted x B)    in trusted runs (queue.ts, at most log2(blocks) + 1 of them): per
//                            run, three reads - top fences, one fence page, F kept timestamps;
//                            one read of all its timestamps for a run of at most 4096 - find the
//                            first timestamp wanted, then a walk in (ts, slot) order
//   slots [sorted x B, end)  the tail - the partial last block, and a complete block whose run a
//                            crash left unwritten - scanned (one read a block)
// All of it is read through read(2) (pmem/cold-reader.ts), not the queue's fresh mapping.
//
// Slots the merge cursor says are in the tree are left out. Within a run they are a prefix: the
// run is in (ts, slot) order and merged events are a prefix of that order - so each run has one
// position from which its slots are live, found once by binary search.

import { invariant } from '../errors.js';
import type { ColdReader } from '../pmem/cold-reader.js';
import type { MergeCursor } from '../tree/flank.js';
import type { RowLayout, Timestamp } from '../tree/row-layout.js';
import { belowCursor } from './index-builder.js';
import { CHECK_BYTES, ENTRY_BYTES, FENCE_BYTES, FENCE_EVERY, type OooQueue, type SortedRun, TIMESTAMP_BYTES, TOP_FENCE_EVERY } from './queue.js';
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
 * half it orders like the int64, for number and bigint streams alike - what the searches below
 * compare, reading the halves straight from the queue file.
 */
interface Int64Halves {
  readonly hi: number;
  readonly lo: number;
}

const TWO_32 = 4294967296;
/** Entries a walk through a run reads at a time. */
const WALK_CHUNK = 64;
/** A run whose timestamps take at most this many bytes is searched in them directly (one read). */
const WHOLE_RUN_SEARCH_BYTES = 32 * 1024;
const INT64_MIN: Int64Halves = { hi: -0x80000000, lo: 0 };
const INT64_MAX: Int64Halves = { hi: 0x7fffffff, lo: 0xffffffff };

function halves(ts: Timestamp): Int64Halves {
  if (typeof ts === 'bigint') return { hi: Number(BigInt.asIntN(32, ts >> 32n)), lo: Number(BigInt.asUintN(32, ts)) };
  if (ts === -Infinity) return INT64_MIN;
  if (ts === Infinity) return INT64_MAX;
  const hi = Math.floor(ts / TWO_32);
  return { hi, lo: ts - hi * TWO_32 };
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
  /** Fences, entries and timestamps are read through it, not the mapping (see ColdReader). */
  private readonly cold: ColdReader;
  /**
   * A walk's chunk of timestamps and entries, copied out of the reader's scratch buffer (a visit
   * may read again); kept, since fresh buffers cost page faults right after open. The search
   * leaves the timestamps from its answer on in `walkTimestamps` (Found.following of them).
   */
  private readonly walkTimestamps = new Int32Array(2 * WALK_CHUNK);
  private readonly walkOffsets = new Int32Array(WALK_CHUNK);

  constructor(
    private readonly queue: OooQueue,
    private readonly layout: RowLayout,
    /** Slots [0, end) were in the queue at open. */
    readonly end: number,
    /** The merge cursor of the queue's generation, if a merge was interrupted. */
    readonly cursor: MergeCursor | undefined,
  ) {
    this.cold = queue.coldReader();
  }

  /** Calls `visit` for each live slot with from <= ts <= to (and its timestamp's halves): each run's in order, then the tail's. */
  forEachBetween(from: Timestamp, to: Timestamp, visit: SlotVisitor): void {
    if (from > to) return;
    const low = halves(from);
    const high = halves(to);
    this.runs().runs.forEach((run, r) => {
      const start = this.firstNotBelow(run, low, false);
      // The search read the first entry's timestamp: a run with nothing in range costs no more reads.
      if (start.timestamp !== undefined && compareHalves(start.timestamp, high) > 0) return;
      const first = Math.max(this.firstLive(r), start.position);
      this.walk(run, first, high, visit, first === start.position ? start.following : 0);
    });
    this.scanTail(from, to, visit);
  }

  /**
   * Calls `visit` for the slots of `run` from position `first` on, in its order, while their
   * timestamps are <= high; the first `known` timestamps from `first` on are in walkTimestamps
   * already (the search read them).
   */
  private walk(run: SortedRun, first: number, high: Int64Halves, visit: SlotVisitor, known: number): void {
    const timestamps = this.walkTimestamps;
    const offsets = this.walkOffsets;
    for (let i = first; i < run.length; known = 0) {
      const n = Math.min(WALK_CHUNK, run.length - i, known > 0 ? known : WALK_CHUNK);
      if (known === 0) timestamps.set(this.cold.words(run.timestampsOffset + i * TIMESTAMP_BYTES, n * 2));
      offsets.set(this.cold.words(run.entriesOffset + i * ENTRY_BYTES, n));
      for (let k = 0; k < n; k++, i++) {
        if (compareHalves(halvesOf(timestamps, k), high) > 0) return;
        if (offsets[k]! >>> 0 >= run.length) this.queue.runSlot(run, i); // throws the CorruptionError
        const slot = run.firstSlot + (offsets[k]! >>> 0);
        if (slot < this.end) visit(slot, timestamps[2 * k + 1]!, timestamps[2 * k]!);
      }
    }
  }

  /**
   * The live slots with from <= ts <= to, in (timestamp, slot) order: sorted by the timestamps
   * the search read, not through the queue's mapping (whose pages a fresh process faults in). The
   * search finds equal timestamps in slot order (runs in slot order, each by (ts, slot), then the
   * tail), which the stable sort keeps.
   */
  between(from: Timestamp, to: Timestamp): Int32Array {
    const found: number[] = [];
    const timestamps: number[] = [];
    this.forEachBetween(from, to, (slot, hi, lo) => {
      found.push(slot);
      timestamps.push(lo, hi);
    });
    const raw = new DataView(Int32Array.from(timestamps).buffer);
    return sortByTime(Int32Array.from(found, (_, i) => i), raw, (i) => i * TIMESTAMP_BYTES).map((i) => found[i]!);
  }

  /** The live slot with the largest (ts, slot) among those with ts <= `ts`, or -1. */
  lastAtOrBefore(ts: Timestamp): number {
    let best = -1;
    let bestTs: Int64Halves = INT64_MIN;
    const consider = (slot: number) => {
      const slotTs = this.halvesAt(this.queue.rowOffset(slot));
      const order = compareHalves(slotTs, bestTs);
      if (best < 0 || order > 0 || (order === 0 && slot > best)) [best, bestTs] = [slot, slotTs];
    };
    const bound = halves(ts);
    this.runs().runs.forEach((run, r) => {
      let last = this.firstNotBelow(run, bound, true).position - 1;
      while (last >= this.firstLive(r) && this.entry(run, last) >= this.end) last--;
      if (last >= this.firstLive(r)) consider(this.entry(run, last));
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

  /** The slot at position `i` of `run` (a damaged entry naming no slot of it is refused). */
  private entry(run: SortedRun, i: number): number {
    const offset = this.cold.words(run.entriesOffset + i * ENTRY_BYTES, 1)[0]! >>> 0;
    return offset < run.length ? run.firstSlot + offset : this.queue.runSlot(run, i); // the latter throws the CorruptionError
  }

  /** The timestamp at byte `at` (a row's, or a fence's). */
  private halvesAt(at: number): Int64Halves {
    const words = this.cold.words(at, 2);
    return { hi: words[1]!, lo: words[0]! >>> 0 };
  }

  /**
   * The first position of `run` whose timestamp is not below `bound` (or, when `inclusive`, is
   * above it). The top fences narrow it to T entries, the fences among those to F, and the F
   * timestamps kept with the entries find it: at most three reads, whatever the run's length. Each step
   * is one bulk read and a tight loop: this runs cold - interpreted - right after open.
   */
  private firstNotBelow(run: SortedRun, bound: Int64Halves, inclusive: boolean): Found {
    if (run.length * TIMESTAMP_BYTES <= WHOLE_RUN_SEARCH_BYTES) {
      // A small run: one read of all its timestamps costs less than three dependent ones.
      const timestamps = this.cold.words(run.timestampsOffset, run.length * 2);
      const found = firstTimestampNotBelow(timestamps, bound, inclusive);
      return { position: found, timestamp: found < run.length ? halvesOf(timestamps, found) : undefined, following: this.keepFollowing(timestamps, found) };
    }
    const tops = Math.ceil(run.length / TOP_FENCE_EVERY);
    const topFences = this.cold.words(run.topFencesOffset, tops * 2);
    const top = firstTimestampNotBelow(topFences, bound, inclusive);
    if (top === 0) return { position: 0, timestamp: tops > 0 ? halvesOf(topFences, 0) : undefined, following: 0 };
    // The answer p lies in [first, last]: entry (top - 1) x T is below, entry top x T (if any) is
    // not - its timestamp is lastTimestamp.
    let first = (top - 1) * TOP_FENCE_EVERY + 1;
    let last = top < tops ? top * TOP_FENCE_EVERY : run.length;
    let lastTimestamp = top < tops ? halvesOf(topFences, top) : undefined;
    const firstFence = Math.ceil(first / FENCE_EVERY);
    const fenceCount = Math.floor(Math.min(last, run.length - 1) / FENCE_EVERY) - firstFence + 1;
    if (fenceCount > 0) {
      const fences = this.cold.words(run.fencesOffset + firstFence * FENCE_BYTES, fenceCount * 2);
      const fence = firstTimestampNotBelow(fences, bound, inclusive);
      if (fence > 0) first = (firstFence + fence - 1) * FENCE_EVERY + 1;
      if (fence < fenceCount) [last, lastTimestamp] = [(firstFence + fence) * FENCE_EVERY, halvesOf(fences, fence)];
    }
    // Read past `last` too (at most F more entries): a walk from the answer starts with them.
    const readEnd = Math.min(run.length, last + FENCE_EVERY);
    const timestamps = this.cold.words(run.timestampsOffset + first * TIMESTAMP_BYTES, (readEnd - first) * 2);
    const found = firstTimestampNotBelow(timestamps.subarray(0, (last - first) * 2), bound, inclusive);
    return { position: first + found, timestamp: first + found < last ? halvesOf(timestamps, found) : lastTimestamp, following: this.keepFollowing(timestamps, found) };
  }

  /** Copies up to WALK_CHUNK timestamps from entry `i` of `words` on into walkTimestamps; returns how many. */
  private keepFollowing(words: Int32Array, i: number): number {
    const count = Math.max(0, Math.min(WALK_CHUNK, (words.length >>> 1) - i));
    this.walkTimestamps.set(words.subarray(2 * i, 2 * (i + count)));
    return count;
  }

  /** The first position of run `r` whose slot is not below the merge cursor. */
  private firstLive(r: number): number {
    const cursor = this.cursor;
    if (cursor === undefined) return 0;
    const { runs, liveFrom } = this.runs();
    if (liveFrom[r]! < 0) {
      const run = runs[r]!;
      liveFrom[r] = lowerBound(0, run.length, (i) => {
        const slot = this.entry(run, i);
        return belowCursor(this.queue.view.getBigInt64(this.queue.rowOffset(slot), true), slot, cursor);
      });
    }
    return liveFrom[r]!;
  }

  /** Calls `visit` for each live tail slot with from <= ts <= to, in slot order. */
  private scanTail(from: Timestamp, to: Timestamp, visit: SlotVisitor): void {
    const { queue, cursor } = this;
    const low = halves(from);
    const high = halves(to);
    const stride = queue.slotBytes >>> 2;
    // Slots of one block are contiguous - one read each - and level areas lie between blocks.
    for (let first = this.runs().tailStart; first < this.end; ) {
      const stop = Math.min(this.end, (Math.floor(first / queue.blockSlots) + 1) * queue.blockSlots);
      const words = this.cold.words(queue.rowOffset(first), ((stop - first) * queue.slotBytes - CHECK_BYTES) >>> 2);
      const found: number[] = [];
      for (let slot = first, w = 0; slot < stop; slot++, w += stride) {
        const hi = words[w + 1]!;
        const lo = words[w]! >>> 0;
        if (hi < low.hi || (hi === low.hi && lo < low.lo) || hi > high.hi || (hi === high.hi && lo > high.lo)) continue;
        if (cursor === undefined || !belowCursor(queue.view.getBigInt64(queue.rowOffset(slot), true), slot, cursor)) found.push(slot, hi, lo);
      }
      // Visited once the scratch buffer is no longer read: `visit` may read through it.
      for (let f = 0; f < found.length; f += 3) visit(found[f]!, found[f + 1]!, found[f + 2]!);
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

/** Called with a slot and its timestamp as int64 halves (hi signed, lo unsigned or its int32 bits). */
type SlotVisitor = (slot: number, hi: number, lo: number) => void;

/** Where a search of a run ended, and the timestamp of the entry there if the search read it. */
interface Found {
  readonly position: number;
  readonly timestamp: Int64Halves | undefined;
  /** How many timestamps from `position` on the search read and left in walkTimestamps: a walk from `position` starts with them. */
  readonly following: number;
}

/** The timestamp words[2i], words[2i + 1] (lo, hi). */
function halvesOf(words: Int32Array, i: number): Int64Halves {
  return { hi: words[2 * i + 1]!, lo: words[2 * i]! >>> 0 };
}

/** -1, 0 or 1 as timestamp a is below, equal to or above b. */
function compareHalves(a: Int64Halves, b: Int64Halves): number {
  if (a.hi !== b.hi) return a.hi < b.hi ? -1 : 1;
  return a.lo === b.lo ? 0 : a.lo < b.lo ? -1 : 1;
}

/** The first i whose timestamp words[2i], words[2i + 1] (lo, hi) is not below `bound` (or, when `inclusive`, is above it). */
function firstTimestampNotBelow(words: Int32Array, bound: Int64Halves, inclusive: boolean): number {
  let low = 0;
  let high = words.length >>> 1;
  while (low < high) {
    const mid = (low + high) >>> 1;
    const hi = words[2 * mid + 1]!;
    const lo = words[2 * mid]! >>> 0;
    if (hi < bound.hi || (hi === bound.hi && (lo < bound.lo || (inclusive && lo === bound.lo)))) low = mid + 1;
    else high = mid;
  }
  return low;
}
