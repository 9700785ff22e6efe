// The out-of-order queue in PMem (paper §4.3): late events in arrival order, each insert
// persisted before it is acknowledged, so the queue needs no copy on SSD and loses nothing.
// The DRAM application-time index (time-index.ts) orders its slots by timestamp; the queue
// itself keeps *sorted runs* - its complete blocks of B slots, merged binary-counter style into
// at most log2(blocks) runs, each ordered by (timestamp, slot) and indexed by fences - so that
// right after open a query makes a few reads per run instead of scanning every slot
// (recovered-slots.ts), and the index can be rebuilt in the background.
//
// File layout (a flat array of P-byte physical slots, pmem/flat-array.ts), geometry =
// [P = slotBytes, rowBytes, B = slotsPerBlock, F = FENCE_EVERY, T = TOP_FENCE_EVERY, 12 = bytes per entry]:
//   [0, 256)            file header
//   256  u32  generation     } one aligned 8-byte word, stored and persisted at once
//   260  u32  trusted count  }
//   264  i64  newest timestamp among slots [0, covered) of generation `covered generation`
//   272  u32  covered generation, 276 u32 covered (how many slots the newest timestamp covers)
//   280  u32  acknowledged generation } one aligned 8-byte word: slots [0, acknowledged) of that
//   284  u32  acknowledged count      } generation were persisted before their appends returned
//   288  u32  runs generation } one aligned 8-byte word: blocks [0, sorted) of that generation
//   292  u32  sorted blocks   } are in persisted runs
//   512                  physical slots: block b's B slots, and after block 2^k - 1 the area of
//                        level k (so slot s lies at physical slot s + the areas of levels
//                        0 .. bitLength(s / B) - 1)
//   level-k area (n = B x 2^k entries, each part 8-byte aligned):
//        ceil(n / T) i64  top fences: the timestamp of entry i x T
//        ceil(n / F) i64  fences: the timestamp of entry i x F
//        n i64            timestamps: entry i's (so merges read runs in sequence, not rows at random)
//        n u32            entries: the run's slots in (timestamp, slot) order, each as its
//                         distance from the run's first slot
//   slot:  0  u32  check word: CRC-32 of the row, seeded with (generation, slot)
//          4  row (rowBytes, the stream's row layout), then zero padding to a multiple of 8
// The runs are the binary digits of `sorted`: for each set bit k, from the highest down, a run of
// 2^k blocks in level k's area, the first of them covering blocks [0, 2^K). B is a power of two
// in [64, 512], chosen at creation from the queue's capacity.
//
// Persistence rules:
//   * insert: row and check word written, then the slot persisted, then the acknowledged word
//     (generation, slots persisted) stored and persisted - before the append returns. At open a
//     slot below the acknowledged count that fails its check was damaged after it was
//     acknowledged: the queue is refused (CorruptionError), never silently cut there;
//   * when block b completes (sorted becomes c = b + 1, k = the trailing zero bits of c), the
//     runs of levels 0 .. k-1 and block b are sorted into level k's area: area persisted, then
//     the runs word (generation, c). Level k's area holds no live run while bit k of c - 1 is
//     clear, so the write never touches a run the persisted word names: a crash before the word
//     leaves the old runs intact, and block b counts as unsorted (scanned by queries) until the
//     next persistPending() sorts it again. The word never names a run that is not durable, so a
//     trusted run is a sorted permutation of its blocks with true fences (verify({ full: true })
//     checks it). One word per block: merging several blocks before one word would overwrite a
//     run the persisted word still names;
//   * every TRUST_EVERY inserts: the newest timestamp so far is persisted, then its coverage
//     word, then the state word's trusted count (slots below it were all persisted and verify).
//     open() checks only the slots after the trusted count, up to the first failure, and finds
//     the queue's newest timestamp from the coverage word and the slots after it - bounded work
//     (a torn pair over-covers at worst: the newest timestamp of more valid slots than it says);
//   * emptying the queue (after a merge) stores generation + 1 and trusted count 0 in one word:
//     every older slot then fails its check word, whatever bytes it still holds, and every run
//     is of an older generation than the runs word must name. The acknowledged word keeps the
//     old generation's count until the next insert: the tree checks that its merge cursor
//     covered those events (a one-bit flip turns generation g into g + 1 too).
// A slot past the end therefore never verifies (old generation, zero, or torn), and the valid
// slots are exactly a prefix of the file.

import { crc32 } from 'node:zlib';
import { CorruptionError, invariant } from '../errors.js';
import { FileKind, readHead, storedGeometryWord, verifyFileHeader } from '../pmem/file-header.js';
import { FlatArray, SLOTS_OFFSET, STATE_BLOCK_OFFSET } from '../pmem/flat-array.js';
import { ColdReader } from '../pmem/cold-reader.js';
import type { PmemRegion } from '../pmem/region.js';
import { type RowLayout, type Timestamp, maxTimestamp } from '../tree/row-layout.js';
import { sortByTime } from './time-index.js';

export const CHECK_BYTES = 4;
export const GENERATION_OFFSET = STATE_BLOCK_OFFSET;
const TRUSTED_OFFSET = STATE_BLOCK_OFFSET + 4;
const NEWEST_OFFSET = STATE_BLOCK_OFFSET + 8;
const COVERED_GENERATION_OFFSET = STATE_BLOCK_OFFSET + 16;
const COVERED_OFFSET = STATE_BLOCK_OFFSET + 20;
const ACKNOWLEDGED_GENERATION_OFFSET = STATE_BLOCK_OFFSET + 24;
const ACKNOWLEDGED_OFFSET = STATE_BLOCK_OFFSET + 28;
const RUNS_GENERATION_OFFSET = STATE_BLOCK_OFFSET + 32;
const SORTED_BLOCKS_OFFSET = STATE_BLOCK_OFFSET + 36;
/** Inserts between two advances of the trusted count: bounds open()'s verification work. */
export const TRUST_EVERY = 256;
const INITIAL_SLOTS = 1024;
export const ENTRY_BYTES = 4;
export const FENCE_BYTES = 8;
export const TIMESTAMP_BYTES = 8;
/** Every FENCE_EVERY-th entry's timestamp is a fence: a search ends reading F kept timestamps. */
export const FENCE_EVERY = 8;
/** Every TOP_FENCE_EVERY-th entry's is a top fence: the fences between two fill one page. */
export const TOP_FENCE_EVERY = 4096;
const MIN_BLOCK_SLOTS = 64;
/** Queries scan the partial last block: it must stay a few pages. */
const MAX_BLOCK_SLOTS = 512;
/** Aim for about this many blocks in a full queue, with B clamped to [MIN, MAX]. */
const BLOCKS_PER_FULL_QUEUE = 1024;
/** Slots a kept scratch buffer holds at most (12 bytes each): larger merges allocate their own. */
const MAX_KEPT_SCRATCH = 2 ** 17;
/** The deepest level a file can have: blocks are counted in a u32. */
const MAX_LEVELS = 32;
/** The capacity a queue is created for when the caller does not say (the default oooQueueBytes). */
const DEFAULT_CAPACITY_BYTES = 100 * 2 ** 20;

/** Bytes of one queue slot for rows of `rowBytes`. */
export function queueSlotBytes(rowBytes: number): number {
  return Math.ceil((CHECK_BYTES + rowBytes) / 8) * 8;
}

/**
 * Where slots and runs lie in the queue file: everything a reader on another thread needs
 * (index-builder-worker.ts) to find slot i's row. Plain data: it crosses to a worker.
 */
export interface QueueGeometry {
  readonly slotBytes: number;
  readonly blockSlots: number;
  /** log2(blockSlots): slot >>> blockShift is the slot's block. */
  readonly blockShift: number;
  /** areaSlotsBefore[m]: physical slots taken by the areas of levels 0 .. m-1. */
  readonly areaSlotsBefore: readonly number[];
}

/** A sorted run: slots [firstSlot, firstSlot + length) in level `level`'s area. */
export interface SortedRun {
  readonly level: number;
  readonly firstSlot: number;
  readonly length: number;
  /** Byte offsets in the file of its top fences, fences, timestamps and entries. */
  readonly topFencesOffset: number;
  readonly fencesOffset: number;
  readonly timestampsOffset: number;
  readonly entriesOffset: number;
}

/** Byte offset of slot `slot`'s row in a queue file of geometry `g`. */
export function queueRowOffset(g: QueueGeometry, slot: number): number {
  return SLOTS_OFFSET + physicalSlot(g, slot) * g.slotBytes + CHECK_BYTES;
}

function bitLength(n: number): number {
  return 32 - Math.clz32(n);
}

function physicalSlot(g: QueueGeometry, slot: number): number {
  // On every row access (the DRAM index compares through it): shifts, no division.
  return slot + g.areaSlotsBefore[32 - Math.clz32(slot >>> g.blockShift)]!;
}

/** Bytes of the area of a level whose runs hold `entries` slots. */
function areaBytes(entries: number): number {
  return (Math.ceil(entries / TOP_FENCE_EVERY) + Math.ceil(entries / FENCE_EVERY) + entries) * TIMESTAMP_BYTES + entries * ENTRY_BYTES;
}

/** Slots per block for a queue of `capacitySlots`: a power of two, about capacity / 1024. */
function blockSlotsFor(capacitySlots: number): number {
  let slots = MIN_BLOCK_SLOTS;
  while (slots * 2 <= Math.min(MAX_BLOCK_SLOTS, capacitySlots / BLOCKS_PER_FULL_QUEUE)) slots *= 2;
  return slots;
}

function geometryFor(rowBytes: number, blockSlots: number): QueueGeometry {
  const slotBytes = queueSlotBytes(rowBytes);
  const areaSlotsBefore = [0];
  for (let level = 0; level < MAX_LEVELS; level++) areaSlotsBefore.push(areaSlotsBefore[level]! + Math.ceil(areaBytes(blockSlots * 2 ** level) / slotBytes));
  return { slotBytes, blockSlots, blockShift: 31 - Math.clz32(blockSlots), areaSlotsBefore };
}

export class OooQueue {
  private readonly rowBytes: number;
  private generationNumber: number;
  private used: number;
  /** Slots [persisted, used) are written but not yet persisted. */
  private persisted: number;
  private trusted: number;
  /** Blocks [0, sorted) of this generation have a persisted run. */
  private sorted: number;
  /** The newest timestamp in the queue's valid slots (undefined when empty). */
  private newest: Timestamp | undefined;
  /** See acknowledgedBeforeEmptying; found by recover(). */
  private acknowledgedByPreviousGeneration = 0;
  /** Two buffers the merges of runs alternate between (see scratch()). */
  private readonly scratchBuffers: (SortedSlots | undefined)[] = [undefined, undefined];

  private constructor(
    private readonly array: FlatArray,
    private readonly layout: RowLayout,
    readonly geometry: QueueGeometry,
    /** Slots the queue may hold before it must be merged. */
    readonly capacity: number,
  ) {
    this.rowBytes = layout.rowBytes;
    const view = array.head;
    this.generationNumber = view.getUint32(GENERATION_OFFSET, true);
    this.trusted = view.getUint32(TRUSTED_OFFSET, true);
    this.sorted = view.getUint32(RUNS_GENERATION_OFFSET, true) === this.generationNumber ? view.getUint32(SORTED_BLOCKS_OFFSET, true) : 0;
    this.used = this.persisted = 0;
  }

  /** Creates an empty queue file; its block size is chosen for `capacityBytes` (see blockSlotsFor). */
  static create(region: PmemRegion, layout: RowLayout, storeId: Uint8Array, streamId: number, capacityBytes = DEFAULT_CAPACITY_BYTES): void {
    const geometry = geometryFor(layout.rowBytes, blockSlotsFor(capacityBytes / queueSlotBytes(layout.rowBytes)));
    const array = FlatArray.create(region, identity(layout, geometry, storeId, streamId), INITIAL_SLOTS);
    array.view.setUint32(GENERATION_OFFSET, 1, true);
    array.view.setUint32(TRUSTED_OFFSET, 0, true);
    region.persist(GENERATION_OFFSET, 8);
    array.close();
  }

  /** Opens the queue and finds its valid slots (work bounded by TRUST_EVERY past the trusted count). */
  static open(region: PmemRegion, layout: RowLayout, storeId: Uint8Array, streamId: number, capacityBytes: number): OooQueue {
    const head = readHead(region, SLOTS_OFFSET);
    const geometry = geometryFor(layout.rowBytes, blockSlotsOf(head));
    const array = openArray(region, head, layout, geometry, storeId, streamId);
    const queue = new OooQueue(array, layout, geometry, Math.max(1, Math.floor(capacityBytes / array.slotBytes)));
    queue.recover();
    return queue;
  }

  get generation(): number {
    return this.generationNumber;
  }

  /** The newest timestamp among the queue's slots, merged or not; known at open without a scan. */
  get newestTimestamp(): Timestamp | undefined {
    return this.newest;
  }

  /** Slots in use (valid events of this generation, merged or not). */
  get length(): number {
    return this.used;
  }

  get isFull(): boolean {
    return this.used >= this.capacity;
  }

  get slotBytes(): number {
    return this.geometry.slotBytes;
  }

  /** Slots per block (and entries per run). */
  get blockSlots(): number {
    return this.geometry.blockSlots;
  }

  /** Blocks [0, sortedBlocks) have a trusted run: slots below sortedBlocks x blockSlots are in runs. */
  get sortedBlocks(): number {
    return this.sorted;
  }

  get bytesUsed(): number {
    return this.array.region.size;
  }

  get path(): string {
    return this.array.region.path;
  }

  /**
   * Slots the previous generation had acknowledged, when the queue was emptied since and nothing
   * was inserted after (0 otherwise): a merge must have taken them (Tree checks its cursor).
   */
  get acknowledgedBeforeEmptying(): number {
    return this.acknowledgedByPreviousGeneration;
  }

  /** The current view of the file (re-fetch after an insert: the file may have grown). */
  get view(): DataView {
    return this.array.view;
  }

  /** Copies slot `slot`'s row into `into` through read(2), without faulting its page in (reads right after open). */
  readRow(slot: number, into: Uint8Array): void {
    this.array.region.readInto(this.rowOffset(slot), into.subarray(0, this.rowBytes));
  }

  /** A reader of the file's words that does not fault its pages in (for reads right after open). */
  coldReader(): ColdReader {
    return new ColdReader(this.array.region);
  }

  /** Byte offset of slot `slot`'s row. */
  rowOffset(slot: number): number {
    return this.array.slotOffset(physicalSlot(this.geometry, slot)) + CHECK_BYTES;
  }

  timestamp(slot: number): Timestamp {
    return this.layout.readTimestamp(this.array.view, this.rowOffset(slot));
  }

  /** The trusted runs, in slot order: one per set bit of sortedBlocks, the highest first. */
  sortedRuns(): SortedRun[] {
    const runs: SortedRun[] = [];
    const { blockSlots } = this.geometry;
    let firstSlot = 0;
    for (let level = bitLength(this.sorted) - 1; level >= 0; level--) {
      if ((this.sorted & (2 ** level)) === 0) continue;
      runs.push(this.runAt(level, firstSlot));
      firstSlot += blockSlots * 2 ** level;
    }
    return runs;
  }

  private runAt(level: number, firstSlot: number): SortedRun {
    const length = this.geometry.blockSlots * 2 ** level;
    const topFencesOffset = this.array.slotOffset(this.areaSlot(level));
    const fencesOffset = topFencesOffset + Math.ceil(length / TOP_FENCE_EVERY) * FENCE_BYTES;
    const timestampsOffset = fencesOffset + Math.ceil(length / FENCE_EVERY) * FENCE_BYTES;
    return { level, firstSlot, length, topFencesOffset, fencesOffset, timestampsOffset, entriesOffset: timestampsOffset + length * TIMESTAMP_BYTES };
  }

  /** The physical slot where level `level`'s area starts: right after block 2^level - 1. */
  private areaSlot(level: number): number {
    return this.geometry.blockSlots * 2 ** level + this.geometry.areaSlotsBefore[level]!;
  }

  /** The physical slot just past level `level`'s area. */
  private areaEnd(level: number): number {
    return this.geometry.blockSlots * 2 ** level + this.geometry.areaSlotsBefore[level + 1]!;
  }

  /**
   * The slot at position `i` of `run` (its slots in (timestamp, slot) order). A damaged entry
   * that names no slot of the run is refused.
   */
  runSlot(run: SortedRun, i: number): number {
    const at = run.entriesOffset + i * ENTRY_BYTES;
    const offset = this.array.view.getUint32(at, true);
    if (offset >= run.length) throw new CorruptionError(this.array.region.path, at, `out-of-order queue run of level ${run.level} names slot ${offset} of its ${run.length}`);
    return run.firstSlot + offset;
  }

  /** Why `run` is not its slots in (timestamp, slot) order with true timestamps and fences, or undefined if it is. */
  runProblem(run: SortedRun): string | undefined {
    const view = this.array.view;
    const seen = new Uint8Array(run.length);
    const slots: number[] = [];
    for (let i = 0; i < run.length; i++) {
      const offset = view.getUint32(run.entriesOffset + i * ENTRY_BYTES, true);
      if (offset >= seen.length || seen[offset] !== 0) return `entry ${i} names slot ${offset} of the run: not a permutation`;
      seen[offset] = 1;
      const [previous, slot] = [slots[i - 1], run.firstSlot + offset];
      if (previous !== undefined && !(this.timestamp(previous) < this.timestamp(slot) || (this.timestamp(previous) === this.timestamp(slot) && previous < slot))) {
        return `entry ${i} (slot ${slot}, ts ${this.timestamp(slot)}) follows slot ${previous} (ts ${this.timestamp(previous)}): not in (timestamp, slot) order`;
      }
      slots.push(slot);
    }
    for (let i = 0; i < run.length; i++) {
      const ts = view.getBigInt64(this.rowOffset(slots[i]!), true);
      if (view.getBigInt64(run.timestampsOffset + i * TIMESTAMP_BYTES, true) !== ts) return `the timestamp kept with entry ${i} is not its slot's ${ts}`;
      if (i % FENCE_EVERY === 0 && view.getBigInt64(run.fencesOffset + (i / FENCE_EVERY) * FENCE_BYTES, true) !== ts) return `fence ${i / FENCE_EVERY} is not entry ${i}'s timestamp ${ts}`;
      if (i % TOP_FENCE_EVERY === 0 && view.getBigInt64(run.topFencesOffset + (i / TOP_FENCE_EVERY) * FENCE_BYTES, true) !== ts) return `top fence ${i / TOP_FENCE_EVERY} is not entry ${i}'s timestamp ${ts}`;
    }
    return undefined;
  }

  /**
   * Writes the next slot: `writeRow` stores the row at the offset it is given. Not durable until
   * persistPending(). REQUIRES: !isFull.
   */
  insert(writeRow: (view: DataView, offset: number) => void): number {
    invariant(!this.isFull, () => `out-of-order queue full (${this.capacity} slots)`);
    const slot = this.used;
    this.array.ensureCapacity(physicalSlot(this.geometry, slot));
    const row = this.rowOffset(slot);
    writeRow(this.array.view, row);
    this.array.view.setUint32(row - CHECK_BYTES, this.checkWord(slot, this.mappedRow(row)), true);
    this.used++;
    const ts = this.timestamp(slot);
    if (this.newest === undefined || ts > this.newest) this.newest = ts;
    return slot;
  }

  /**
   * Persists every slot inserted since the last call; the events are acknowledged after it.
   * Then writes the run of every block that is now complete (see the persistence rules).
   */
  persistPending(): void {
    if (this.persisted === this.used) return;
    this.persistSlotRange(this.persisted, this.used);
    this.persisted = this.used;
    const view = this.array.view;
    view.setUint32(ACKNOWLEDGED_GENERATION_OFFSET, this.generationNumber, true);
    view.setUint32(ACKNOWLEDGED_OFFSET, this.persisted, true);
    this.array.region.persist(ACKNOWLEDGED_GENERATION_OFFSET, 8);
    if (this.persisted - this.trusted >= TRUST_EVERY) this.advanceTrust();
    this.sortCompleteBlocks();
  }

  /** Persists slots [first, end), block by block (runs lie between blocks). */
  private persistSlotRange(first: number, end: number): void {
    const { blockSlots } = this.geometry;
    for (let from = first; from < end; ) {
      const to = Math.min(end, (Math.floor(from / blockSlots) + 1) * blockSlots);
      this.array.persistSlots(physicalSlot(this.geometry, from), to - from);
      from = to;
    }
  }

  /**
   * Sorts each complete block into the runs, one block and one persisted runs word at a time
   * (see the persistence rules: the word must name only runs no later write touches).
   */
  private sortCompleteBlocks(): void {
    const complete = Math.floor(this.persisted / this.geometry.blockSlots);
    for (let count = this.sorted + 1; count <= complete; count++) {
      this.writeLevel(count);
      const view = this.array.view; // after writeLevel: the file may have grown
      view.setUint32(RUNS_GENERATION_OFFSET, this.generationNumber, true);
      view.setUint32(SORTED_BLOCKS_OFFSET, count, true);
      this.array.region.persist(RUNS_GENERATION_OFFSET, 8);
      this.sorted = count;
    }
  }

  /**
   * Writes and persists the run that block `count - 1`'s completion makes: its block and the runs
   * of the levels below, merged into level k's area (k = trailing zero bits of `count`).
   */
  private writeLevel(count: number): void {
    const level = bitLength(count & -count) - 1;
    const run = this.runAt(level, (count - 2 ** level) * this.geometry.blockSlots);
    this.array.ensureCapacity(this.areaEnd(level) - 1);
    const area = this.areaOf(run);
    if (!this.mergeLevelInto(count, level, area)) this.sortInto(area);
    const view = this.array.view;
    const words = new Int32Array(view.buffer, view.byteOffset, view.byteLength >>> 2);
    for (let i = 0; i < run.length; i += FENCE_EVERY) copyTimestamp(area.timestamps, i, words, (run.fencesOffset + (i / FENCE_EVERY) * FENCE_BYTES) >>> 2);
    for (let i = 0; i < run.length; i += TOP_FENCE_EVERY) copyTimestamp(area.timestamps, i, words, (run.topFencesOffset + (i / TOP_FENCE_EVERY) * FENCE_BYTES) >>> 2);
    this.array.region.persist(run.topFencesOffset, run.entriesOffset + run.length * ENTRY_BYTES - run.topFencesOffset);
  }

  /** A run's timestamps and entries, as views of the file (little-endian words, as the host's). */
  private areaOf(run: SortedRun): SortedSlots {
    const { buffer, byteOffset } = this.array.view;
    return { base: run.firstSlot, offsets: new Uint32Array(buffer, byteOffset + run.entriesOffset, run.length), timestamps: new Int32Array(buffer, byteOffset + run.timestampsOffset, run.length * 2) };
  }

  /**
   * Sorts block `count - 1` and merges it with the runs of levels 0 .. level-1 into `area`: each
   * a linear merge reading the runs' kept timestamps in sequence, so a slot costs one step per
   * level. False if one of those runs names a slot outside itself (damaged).
   */
  private mergeLevelInto(count: number, level: number, area: SortedSlots): boolean {
    if (level === 0) {
      this.sortInto(area);
      return true;
    }
    const { blockSlots } = this.geometry;
    let merged = this.sortInto({
      base: (count - 1) * blockSlots,
      offsets: new Uint32Array(blockSlots),
      timestamps: new Int32Array(2 * blockSlots),
    });
    // Level j's run covers the 2^j blocks before those of levels below it: lower slots, which
    // come first among equal timestamps. Intermediate merges alternate between two scratch buffers.
    for (let j = 0; j < level; j++) {
      const lower = this.areaOf(this.runAt(j, (count - 2 ** (j + 1)) * blockSlots));
      const out = j === level - 1 ? area : this.scratch(j % 2, lower.offsets.length + merged.offsets.length);
      if (!mergeInto(lower, merged, out)) return false;
      merged = out;
    }
    return true;
  }

  /**
   * Sorts slots [area.base, area.base + its length) from their rows into `area`, with their
   * timestamps: a new block, or a level whose lower runs were damaged.
   */
  private sortInto(area: SortedSlots): SortedSlots {
    const slots = new Int32Array(area.offsets.length);
    for (let i = 0; i < slots.length; i++) slots[i] = area.base + i;
    const sorted = sortByTime(slots, this.array.view, (slot) => this.rowOffset(slot));
    const view = this.array.view;
    const words = new Int32Array(view.buffer, view.byteOffset, view.byteLength >>> 2);
    for (let i = 0; i < sorted.length; i++) {
      area.offsets[i] = sorted[i]! - area.base;
      const w = this.rowOffset(sorted[i]!) >>> 2;
      area.timestamps[2 * i] = words[w]!;
      area.timestamps[2 * i + 1] = words[w + 1]!;
    }
    return area;
  }

  /**
   * Scratch buffer `which` (0 or 1) for `length` slots. Kept between merges up to
   * MAX_KEPT_SCRATCH slots - fresh pages cost a fault each on these VMs - and allocated for the
   * rare larger merge.
   */
  private scratch(which: number, length: number): SortedSlots {
    let kept = this.scratchBuffers[which];
    if (kept === undefined || kept.offsets.length < length) {
      kept = { base: 0, offsets: new Uint32Array(length), timestamps: new Int32Array(length * 2) };
      if (length <= MAX_KEPT_SCRATCH) this.scratchBuffers[which] = kept;
    }
    return { base: 0, offsets: kept.offsets.subarray(0, length), timestamps: kept.timestamps.subarray(0, length * 2) };
  }

  /** Persists the newest timestamp and what it covers, then the trusted count (see the rules above). */
  private advanceTrust(): void {
    const view = this.array.view;
    this.layout.writeTimestamp(view, NEWEST_OFFSET, this.newest ?? 0);
    this.array.region.persist(NEWEST_OFFSET, 8);
    view.setUint32(COVERED_GENERATION_OFFSET, this.generationNumber, true);
    view.setUint32(COVERED_OFFSET, this.persisted, true);
    this.array.region.persist(COVERED_GENERATION_OFFSET, 8);
    this.storeState(this.generationNumber, this.persisted);
  }

  /** Empties the queue: every slot and run becomes invalid at once (its generation is over). */
  reset(): void {
    invariant(this.persisted === this.used, 'emptying the out-of-order queue with unpersisted inserts');
    this.storeState(this.generationNumber + 1, 0);
    this.used = this.persisted = this.sorted = 0;
    this.newest = undefined;
  }

  close(): void {
    this.array.close();
  }

  /** Slots whose bytes the file holds. */
  private slotsInFile(): number {
    const physical = this.array.capacity;
    const { blockSlots } = this.geometry;
    // The last block that starts inside the file: a binary search (level areas put thousands of
    // physical slots per level between blocks, so stepping down a block at a time costs open()).
    let block = 0;
    for (let high = Math.floor(physical / blockSlots); block < high; ) {
      const mid = (block + high + 1) >>> 1;
      if (physicalSlot(this.geometry, mid * blockSlots) < physical) block = mid;
      else high = mid - 1;
    }
    return block * blockSlots + Math.max(0, Math.min(blockSlots, physical - physicalSlot(this.geometry, block * blockSlots)));
  }

  private recover(): void {
    const fileSlots = this.slotsInFile();
    if (this.generationNumber === 0 || this.trusted > fileSlots) {
      throw new CorruptionError(this.array.region.path, GENERATION_OFFSET, `out-of-order queue state: generation ${this.generationNumber}, ${this.trusted} trusted slots of ${fileSlots}`);
    }
    const view = this.array.head;
    const acknowledgedGeneration = view.getUint32(ACKNOWLEDGED_GENERATION_OFFSET, true);
    // Emptying the queue advances the generation by one; the acknowledged word follows at the next insert.
    if (acknowledgedGeneration !== this.generationNumber && acknowledgedGeneration !== this.generationNumber - 1) {
      throw new CorruptionError(this.array.region.path, GENERATION_OFFSET, `out-of-order queue: generation ${this.generationNumber}, but its acknowledged word names generation ${acknowledgedGeneration}`);
    }
    const acknowledged = acknowledgedGeneration === this.generationNumber ? view.getUint32(ACKNOWLEDGED_OFFSET, true) : 0;
    if (acknowledgedGeneration !== this.generationNumber) this.acknowledgedByPreviousGeneration = view.getUint32(ACKNOWLEDGED_OFFSET, true);
    if (acknowledged > fileSlots) throw new CorruptionError(this.array.region.path, ACKNOWLEDGED_OFFSET, `out-of-order queue: ${acknowledged} acknowledged slots, the file holds ${fileSlots}`);
    // The trusted count is raised only after the slots below it were acknowledged.
    if (this.trusted > acknowledged) throw new CorruptionError(this.array.region.path, TRUSTED_OFFSET, `out-of-order queue: ${this.trusted} trusted slots, but only ${acknowledged} acknowledged`);
    const coveredWord = view.getUint32(COVERED_GENERATION_OFFSET, true) === this.generationNumber ? view.getUint32(COVERED_OFFSET, true) : 0;
    const untrusted = this.scanUntrusted(acknowledged, fileSlots, coveredWord);
    this.used = this.persisted = untrusted.end;
    // A run is persisted only after its block's slots were acknowledged, and lies in the file.
    const { blockSlots } = this.geometry;
    if (this.sorted * blockSlots > Math.max(acknowledged, this.trusted)) {
      throw new CorruptionError(this.array.region.path, SORTED_BLOCKS_OFFSET, `out-of-order queue: ${this.sorted} sorted blocks of ${blockSlots} slots, but only ${Math.max(acknowledged, this.trusted)} slots were acknowledged`);
    }
    for (let level = 0; level < bitLength(this.sorted); level++) {
      if ((this.sorted & (2 ** level)) !== 0 && this.areaEnd(level) > this.array.capacity) {
        throw new CorruptionError(this.array.region.path, SORTED_BLOCKS_OFFSET, `out-of-order queue: ${this.sorted} sorted blocks name a run of level ${level} past the end of the file`);
      }
    }
    const newestCovered = Math.min(coveredWord, this.used) > 0 ? this.layout.readTimestamp(view, NEWEST_OFFSET) : undefined;
    this.newest = maxTimestamp(newestCovered, untrusted.newest);
  }

  /**
   * The valid slots past the trusted count - each below `acknowledged` must pass its check word
   * (else CorruptionError), the first past it that fails ends the queue - and the newest
   * timestamp among the valid slots from `newestFrom` on. Read a block at a time through read(2)
   * (ColdReader): open() does not fault the queue's pages in.
   */
  private scanUntrusted(acknowledged: number, fileSlots: number, newestFrom: number): { end: number; newest: Timestamp | undefined } {
    const cold = this.coldReader();
    const { slotBytes, blockSlots } = this.geometry;
    let newest: Timestamp | undefined;
    for (let first = Math.min(this.trusted, newestFrom); first < fileSlots; ) {
      const stop = Math.min(fileSlots, (Math.floor(first / blockSlots) + 1) * blockSlots);
      const words = cold.words(this.rowOffset(first) - CHECK_BYTES, ((stop - first) * slotBytes) >>> 2);
      const bytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
      const view = new DataView(words.buffer, words.byteOffset, words.byteLength);
      for (let slot = first, at = 0; slot < stop; slot++, at += slotBytes) {
        const row = at + CHECK_BYTES;
        if (slot >= this.trusted && words[at >>> 2]! >>> 0 !== this.checkWord(slot, bytes.subarray(row, row + this.rowBytes))) {
          if (slot < acknowledged) {
            throw new CorruptionError(this.array.region.path, this.rowOffset(slot) - CHECK_BYTES, `out-of-order queue slot ${slot} was acknowledged but fails its check word: its late event is damaged - restore the PMem directory, or open with { rebuild: true } (queued late events are lost then)`);
          }
          return { end: slot, newest };
        }
        if (slot >= newestFrom) newest = maxTimestamp(newest, this.layout.readTimestamp(view, row));
      }
      first = stop;
    }
    return { end: fileSlots, newest };
  }

  /** Whether slot `slot`'s check word matches its row (verify() asks it of every trusted slot). */
  verifies(slot: number): boolean {
    const row = this.rowOffset(slot);
    return this.array.view.getUint32(row - CHECK_BYTES, true) === this.checkWord(slot, this.mappedRow(row));
  }

  /** The row at byte `row` of the mapping. */
  private mappedRow(row: number): Uint8Array {
    return this.array.bytes.subarray(row, row + this.rowBytes);
  }

  /** The check word of slot `slot` holding `row`. */
  private checkWord(slot: number, row: Uint8Array): number {
    const seed = (Math.imul(this.generationNumber, 0x9e3779b1) ^ Math.imul(slot + 1, 0x85ebca77)) >>> 0;
    return crc32(row, seed);
  }

  private storeState(generation: number, trusted: number): void {
    const view = this.array.view;
    view.setUint32(GENERATION_OFFSET, generation, true);
    view.setUint32(TRUSTED_OFFSET, trusted, true);
    this.array.region.persist(GENERATION_OFFSET, 8);
    this.generationNumber = generation;
    this.trusted = trusted;
  }
}

/**
 * The block size a queue file was created with, read from its header before the header is
 * verified against it: a damaged value makes that verification fail.
 */
function blockSlotsOf(head: Uint8Array): number {
  const blockSlots = storedGeometryWord(head, 2);
  const isPowerOfTwo = blockSlots >= MIN_BLOCK_SLOTS && blockSlots <= MAX_BLOCK_SLOTS && (blockSlots & (blockSlots - 1)) === 0;
  return isPowerOfTwo ? blockSlots : MIN_BLOCK_SLOTS;
}

/** The array, or a CorruptionError - one that names the older layout of a queue written by one. */
function openArray(region: PmemRegion, head: Uint8Array, layout: RowLayout, geometry: QueueGeometry, storeId: Uint8Array, streamId: number): FlatArray {
  try {
    return FlatArray.open(region, identity(layout, geometry, storeId, streamId), head);
  } catch (err) {
    const older = err instanceof CorruptionError ? olderLayout(region, head, layout, storeId, streamId) : undefined;
    if (older !== undefined) {
      throw new CorruptionError(region.path, 0, `out-of-order queue file of an older format (${older}): open the store with the chronotier version that wrote it and merge its late events (stream.mergeLateEvents()) before upgrading, or open with { rebuild: true } to rebuild the stream from SSD (its queued late events are lost then)`);
    }
    throw err;
  }
}

/** Which older queue layout the file's header names, if it names one. */
function olderLayout(region: PmemRegion, head: Uint8Array, layout: RowLayout, storeId: Uint8Array, streamId: number): string | undefined {
  const slotBytes = queueSlotBytes(layout.rowBytes);
  const blockSlots = storedGeometryWord(head, 2);
  const olderGeometries: [string, number[]][] = [
    ['without sorted runs, geometry [slotBytes, rowBytes]', [slotBytes, layout.rowBytes]],
    ['one sorted run per block, geometry [slotBytes, rowBytes, B, runSlots]', [slotBytes, layout.rowBytes, blockSlots, Math.ceil((blockSlots * 2) / slotBytes)]],
    ['merged runs without their timestamps, geometry [slotBytes, rowBytes, B, F, T]', [slotBytes, layout.rowBytes, blockSlots, FENCE_EVERY, TOP_FENCE_EVERY]],
  ];
  return olderGeometries.find(([, geometry]) => {
    try {
      verifyFileHeader(region, { kind: FileKind.OooQueue, storeId, streamId, geometry }, head);
      return true;
    } catch {
      return false;
    }
  })?.[0];
}

/**
 * Slots in (timestamp, slot) order: the i-th is base + offsets[i], its timestamp's halves (lo, hi)
 * at timestamps[2i] and [2i + 1] - a run's area in the file, or a scratch buffer.
 */
interface SortedSlots {
  readonly base: number;
  readonly offsets: Uint32Array;
  readonly timestamps: Int32Array;
}

/** Copies timestamp i of `timestamps` to words[w], words[w + 1]. */
function copyTimestamp(timestamps: Int32Array, i: number, words: Int32Array, w: number): void {
  words[w] = timestamps[2 * i]!;
  words[w + 1] = timestamps[2 * i + 1]!;
}

/**
 * Merges `lower` and `upper` into `out` (as long as both), every slot of `lower` below every slot
 * of `upper`, so on equal timestamps `lower`'s come first. False if `lower` - a run read from the
 * file - names a slot outside itself.
 */
function mergeInto(lower: SortedSlots, upper: SortedSlots, out: SortedSlots): boolean {
  const { offsets: aOffsets, timestamps: aTs } = lower;
  const { offsets: bOffsets, timestamps: bTs } = upper;
  const { offsets: outOffsets, timestamps: outTs } = out;
  const aLength = aOffsets.length;
  const bLength = bOffsets.length;
  const aShift = lower.base - out.base;
  const bShift = upper.base - out.base;
  let a = 0;
  let b = 0;
  for (let i = 0; i < aLength + bLength; i++) {
    const fromLower = b === bLength || (a < aLength && (aTs[2 * a + 1]! < bTs[2 * b + 1]! || (aTs[2 * a + 1] === bTs[2 * b + 1] && aTs[2 * a]! >>> 0 <= bTs[2 * b]! >>> 0)));
    if (fromLower) {
      if (aOffsets[a]! >= aLength) return false;
      outOffsets[i] = aOffsets[a]! + aShift;
      outTs[2 * i] = aTs[2 * a]!;
      outTs[2 * i + 1] = aTs[2 * a + 1]!;
      a++;
    } else {
      outOffsets[i] = bOffsets[b]! + bShift;
      outTs[2 * i] = bTs[2 * b]!;
      outTs[2 * i + 1] = bTs[2 * b + 1]!;
      b++;
    }
  }
  return true;
}

function identity(layout: RowLayout, geometry: QueueGeometry, storeId: Uint8Array, streamId: number) {
  return { kind: FileKind.OooQueue, storeId, streamId, geometry: [geometry.slotBytes, layout.rowBytes, geometry.blockSlots, FENCE_EVERY, TOP_FENCE_EVERY, TIMESTAMP_BYTES + ENTRY_BYTES] };
}
