// The out-of-order queue in PMem (paper §4.3): late events in arrival order, each insert
// persisted before it is acknowledged, so the queue needs no copy on SSD and loses nothing.
// The DRAM application-time index (time-index.ts) orders its slots by timestamp; the queue
// itself keeps *sorted runs* - each full block of B slots ordered by (timestamp, slot) - so that
// right after open a query binary-searches the runs instead of scanning every slot
// (recovered-slots.ts), and the index can be rebuilt in the background.
//
// File layout (a flat array of P-byte physical slots, pmem/flat-array.ts), geometry =
// [P = slotBytes, rowBytes, B = slotsPerBlock, R = runSlots]:
//   [0, 256)            file header
//   256  u32  generation     } one aligned 8-byte word, stored and persisted at once
//   260  u32  trusted count  }
//   264  i64  newest timestamp among slots [0, covered) of generation `covered generation`
//   272  u32  covered generation, 276 u32 covered (how many slots the newest timestamp covers)
//   280  u32  acknowledged generation } one aligned 8-byte word: slots [0, acknowledged) of that
//   284  u32  acknowledged count      } generation were persisted before their appends returned
//   288  u32  runs generation } one aligned 8-byte word: blocks [0, sorted) of that generation
//   292  u32  sorted blocks   } have a persisted run
//   512 + k * (B + R) * P    block k: B slots (slot k*B + j at physical slot k*(B + R) + j),
//                            then its run: B u16 entries in R physical slots, entry i = j of the
//                            block's i-th slot in (timestamp, slot) order
//   slot:  0  u32  check word: CRC-32 of the row, seeded with (generation, slot)
//          4  row (rowBytes, the stream's row layout), then zero padding to a multiple of 8
// B is a power of two in [64, 16384], chosen at creation from the queue's capacity.
//
// Persistence rules:
//   * insert: row and check word written, then the slot persisted, then the acknowledged word
//     (generation, slots persisted) stored and persisted - before the append returns. At open a
//     slot below the acknowledged count that fails its check was damaged after it was
//     acknowledged: the queue is refused (CorruptionError), never silently cut there;
//   * a block's run is written once every slot of the block is acknowledged: run persisted, then
//     the runs word (generation, sorted blocks). A crash between leaves the word old: the block
//     counts as unsorted (scanned by queries) until the next persistPending() writes its run
//     again. The word never counts a run that is not durable, so a trusted run is a sorted
//     permutation of its block (verify({ full: true }) checks it);
//   * every TRUST_EVERY inserts: the newest timestamp so far is persisted, then its coverage
//     word, then the state word's trusted count (slots below it were all persisted and verify).
//     open() checks only the slots after the trusted count, up to the first failure, and finds
//     the queue's newest timestamp from the coverage word and the slots after it - bounded work
//     (a torn pair over-covers at worst: the newest timestamp of more valid slots than it says);
//   * emptying the queue (after a merge) stores generation + 1 and trusted count 0 in one word:
//     every older slot then fails its check word, whatever bytes it still holds, and every run
//     is of an older generation than the runs word must name.
// A slot past the end therefore never verifies (old generation, zero, or torn), and the valid
// slots are exactly a prefix of the file.

import { crc32 } from 'node:zlib';
import { CorruptionError, invariant } from '../errors.js';
import { FileKind, storedGeometryWord, verifyFileHeader } from '../pmem/file-header.js';
import { FlatArray, SLOTS_OFFSET, STATE_BLOCK_OFFSET } from '../pmem/flat-array.js';
import type { PmemRegion } from '../pmem/region.js';
import type { RowLayout, Timestamp } from '../tree/row-layout.js';
import { sortByTime } from './time-index.js';

const CHECK_BYTES = 4;
const GENERATION_OFFSET = STATE_BLOCK_OFFSET;
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
const RUN_ENTRY_BYTES = 2;
const MIN_BLOCK_SLOTS = 64;
const MAX_BLOCK_SLOTS = 16_384;
/** Aim for about this many runs in a full queue: a query costs runs x log B + B slot reads. */
const RUNS_PER_FULL_QUEUE = 128;
/** The capacity a queue is created for when the caller does not say (the default oooQueueBytes). */
const DEFAULT_CAPACITY_BYTES = 100 * 2 ** 20;

/** Bytes of one queue slot for rows of `rowBytes`. */
export function queueSlotBytes(rowBytes: number): number {
  return Math.ceil((CHECK_BYTES + rowBytes) / 8) * 8;
}

/**
 * Where slots and runs lie in the queue file: everything a reader on another thread needs
 * (index-builder-worker.ts) to find slot i's row.
 */
export interface QueueGeometry {
  readonly slotBytes: number;
  readonly blockSlots: number;
  readonly runSlots: number;
}

/** Byte offset of slot `slot`'s row in a queue file of geometry `g`. */
export function queueRowOffset(g: QueueGeometry, slot: number): number {
  return SLOTS_OFFSET + physicalSlot(g, slot) * g.slotBytes + CHECK_BYTES;
}

function physicalSlot(g: QueueGeometry, slot: number): number {
  return slot + Math.floor(slot / g.blockSlots) * g.runSlots;
}

/** Slots per block for a queue of `capacitySlots`: a power of two, about capacity / 128. */
function blockSlotsFor(capacitySlots: number): number {
  let slots = MIN_BLOCK_SLOTS;
  while (slots * 2 <= Math.min(MAX_BLOCK_SLOTS, capacitySlots / RUNS_PER_FULL_QUEUE)) slots *= 2;
  return slots;
}

function geometryFor(rowBytes: number, blockSlots: number): QueueGeometry {
  const slotBytes = queueSlotBytes(rowBytes);
  return { slotBytes, blockSlots, runSlots: Math.ceil((blockSlots * RUN_ENTRY_BYTES) / slotBytes) };
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

  private constructor(
    private readonly array: FlatArray,
    private readonly layout: RowLayout,
    readonly geometry: QueueGeometry,
    /** Slots the queue may hold before it must be merged. */
    readonly capacity: number,
  ) {
    this.rowBytes = layout.rowBytes;
    const view = array.view;
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
    const geometry = geometryFor(layout.rowBytes, blockSlotsOf(region));
    const array = openArray(region, layout, geometry, storeId, streamId);
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

  /** The current view of the file (re-fetch after an insert: the file may have grown). */
  get view(): DataView {
    return this.array.view;
  }

  /** Byte offset of slot `slot`'s row. */
  rowOffset(slot: number): number {
    return this.array.slotOffset(physicalSlot(this.geometry, slot)) + CHECK_BYTES;
  }

  timestamp(slot: number): Timestamp {
    return this.layout.readTimestamp(this.array.view, this.rowOffset(slot));
  }

  /**
   * The slot at position `i` of block `block`'s run (its slots in (timestamp, slot) order).
   * REQUIRES: block < sortedBlocks. A damaged entry that names no slot of the block is refused.
   */
  runSlot(block: number, i: number): number {
    const j = this.array.view.getUint16(this.runOffset(block) + i * RUN_ENTRY_BYTES, true);
    if (j >= this.geometry.blockSlots) throw new CorruptionError(this.array.region.path, this.runOffset(block) + i * RUN_ENTRY_BYTES, `out-of-order queue run ${block} names slot ${j} of a ${this.geometry.blockSlots}-slot block`);
    return block * this.geometry.blockSlots + j;
  }

  /** Why block `block`'s run is not its slots in (timestamp, slot) order, or undefined if it is. */
  runProblem(block: number): string | undefined {
    const seen = new Uint8Array(this.geometry.blockSlots);
    let previous = -1;
    for (let i = 0; i < this.geometry.blockSlots; i++) {
      const j = this.array.view.getUint16(this.runOffset(block) + i * RUN_ENTRY_BYTES, true);
      if (j >= seen.length || seen[j] !== 0) return `entry ${i} names slot ${j} of the block: not a permutation`;
      seen[j] = 1;
      const slot = block * this.geometry.blockSlots + j;
      if (previous >= 0 && !(this.timestamp(previous) < this.timestamp(slot) || (this.timestamp(previous) === this.timestamp(slot) && previous < slot))) {
        return `entry ${i} (slot ${slot}, ts ${this.timestamp(slot)}) follows slot ${previous} (ts ${this.timestamp(previous)}): not in (timestamp, slot) order`;
      }
      previous = slot;
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
    this.array.view.setUint32(row - CHECK_BYTES, this.checkWord(slot, row), true);
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

  /** Writes and persists the run of each complete block without one, then the runs word. */
  private sortCompleteBlocks(): void {
    const complete = Math.floor(this.persisted / this.geometry.blockSlots);
    if (complete === this.sorted) return;
    for (let block = this.sorted; block < complete; block++) this.writeRun(block);
    const view = this.array.view;
    view.setUint32(RUNS_GENERATION_OFFSET, this.generationNumber, true);
    view.setUint32(SORTED_BLOCKS_OFFSET, complete, true);
    this.array.region.persist(RUNS_GENERATION_OFFSET, 8);
    this.sorted = complete;
  }

  private writeRun(block: number): void {
    const { blockSlots, runSlots } = this.geometry;
    const first = block * blockSlots;
    this.array.ensureCapacity(physicalSlot(this.geometry, first) + blockSlots + runSlots - 1);
    const slots = new Int32Array(blockSlots);
    for (let j = 0; j < blockSlots; j++) slots[j] = first + j;
    const order = sortByTime(slots, this.array.view, (slot) => this.rowOffset(slot));
    const run = new Uint16Array(blockSlots);
    for (let i = 0; i < blockSlots; i++) run[i] = order[i]! - first;
    const at = this.runOffset(block);
    // Little-endian u16 entries, as every other word of the file (the host is little-endian).
    this.array.bytes.set(new Uint8Array(run.buffer), at);
    this.array.region.persist(at, blockSlots * RUN_ENTRY_BYTES);
  }

  /** Byte offset of block `block`'s run (its first u16 entry). */
  runOffset(block: number): number {
    const { blockSlots } = this.geometry;
    return this.array.slotOffset(physicalSlot(this.geometry, block * blockSlots) + blockSlots);
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

  /** Slots whose bytes (and, for a complete block, whose run) the file holds. */
  private slotsInFile(): number {
    const { blockSlots, runSlots } = this.geometry;
    const physical = this.array.capacity;
    const blocks = Math.floor(physical / (blockSlots + runSlots));
    return blocks * blockSlots + Math.min(blockSlots, physical - blocks * (blockSlots + runSlots));
  }

  private recover(): void {
    const fileSlots = this.slotsInFile();
    if (this.generationNumber === 0 || this.trusted > fileSlots) {
      throw new CorruptionError(this.array.region.path, GENERATION_OFFSET, `out-of-order queue state: generation ${this.generationNumber}, ${this.trusted} trusted slots of ${fileSlots}`);
    }
    const view = this.array.view;
    const acknowledgedGeneration = view.getUint32(ACKNOWLEDGED_GENERATION_OFFSET, true);
    // Emptying the queue advances the generation by one; the acknowledged word follows at the next insert.
    if (acknowledgedGeneration !== this.generationNumber && acknowledgedGeneration !== this.generationNumber - 1) {
      throw new CorruptionError(this.array.region.path, GENERATION_OFFSET, `out-of-order queue: generation ${this.generationNumber}, but its acknowledged word names generation ${acknowledgedGeneration}`);
    }
    const acknowledged = acknowledgedGeneration === this.generationNumber ? view.getUint32(ACKNOWLEDGED_OFFSET, true) : 0;
    if (acknowledged > fileSlots) throw new CorruptionError(this.array.region.path, ACKNOWLEDGED_OFFSET, `out-of-order queue: ${acknowledged} acknowledged slots, the file holds ${fileSlots}`);
    // The trusted count is raised only after the slots below it were acknowledged.
    if (this.trusted > acknowledged) throw new CorruptionError(this.array.region.path, TRUSTED_OFFSET, `out-of-order queue: ${this.trusted} trusted slots, but only ${acknowledged} acknowledged`);
    let slot = this.trusted;
    for (; slot < acknowledged; slot++) {
      if (!this.verifies(slot)) throw new CorruptionError(this.array.region.path, this.rowOffset(slot) - CHECK_BYTES, `out-of-order queue slot ${slot} was acknowledged but fails its check word: its late event is damaged - restore the PMem directory, or open with { rebuild: true } (queued late events are lost then)`);
    }
    while (slot < fileSlots && this.verifies(slot)) slot++;
    this.used = this.persisted = slot;
    // A run is persisted only after its block's slots were acknowledged, and lies in the file.
    const { blockSlots, runSlots } = this.geometry;
    if (this.sorted * blockSlots > Math.max(acknowledged, this.trusted) || this.sorted > Math.floor(this.array.capacity / (blockSlots + runSlots))) {
      throw new CorruptionError(this.array.region.path, SORTED_BLOCKS_OFFSET, `out-of-order queue: ${this.sorted} sorted blocks of ${blockSlots} slots, but only ${Math.max(acknowledged, this.trusted)} slots were acknowledged`);
    }
    const covered = view.getUint32(COVERED_GENERATION_OFFSET, true) === this.generationNumber ? Math.min(view.getUint32(COVERED_OFFSET, true), this.used) : 0;
    this.newest = covered > 0 ? this.layout.readTimestamp(view, NEWEST_OFFSET) : undefined;
    for (let s = covered; s < this.used; s++) {
      const ts = this.timestamp(s);
      if (this.newest === undefined || ts > this.newest) this.newest = ts;
    }
  }

  /** Whether slot `slot`'s check word matches its row (verify() asks it of every trusted slot). */
  verifies(slot: number): boolean {
    const row = this.rowOffset(slot);
    return this.array.view.getUint32(row - CHECK_BYTES, true) === this.checkWord(slot, row);
  }

  /** The check word of slot `slot`, whose row is at byte `row`. */
  private checkWord(slot: number, row: number): number {
    const seed = (Math.imul(this.generationNumber, 0x9e3779b1) ^ Math.imul(slot + 1, 0x85ebca77)) >>> 0;
    return crc32(this.array.bytes.subarray(row, row + this.rowBytes), seed);
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
function blockSlotsOf(region: PmemRegion): number {
  const blockSlots = storedGeometryWord(region, 2);
  const isPowerOfTwo = blockSlots >= MIN_BLOCK_SLOTS && blockSlots <= MAX_BLOCK_SLOTS && (blockSlots & (blockSlots - 1)) === 0;
  return isPowerOfTwo ? blockSlots : MIN_BLOCK_SLOTS;
}

/** The array, or a CorruptionError - one that says so for a queue of the layout before sorted runs. */
function openArray(region: PmemRegion, layout: RowLayout, geometry: QueueGeometry, storeId: Uint8Array, streamId: number): FlatArray {
  try {
    return FlatArray.open(region, identity(layout, geometry, storeId, streamId));
  } catch (err) {
    if (err instanceof CorruptionError && isUnsortedLayout(region, layout, storeId, streamId)) {
      throw new CorruptionError(region.path, 0, 'out-of-order queue file of the older format without sorted runs (geometry [slotBytes, rowBytes]): open the store with the chronotier version that wrote it and merge its late events (stream.mergeLateEvents()) before upgrading, or open with { rebuild: true } to rebuild the stream from SSD (its queued late events are lost then)');
    }
    throw err;
  }
}

function isUnsortedLayout(region: PmemRegion, layout: RowLayout, storeId: Uint8Array, streamId: number): boolean {
  try {
    verifyFileHeader(region, { kind: FileKind.OooQueue, storeId, streamId, geometry: [queueSlotBytes(layout.rowBytes), layout.rowBytes] });
    return true;
  } catch {
    return false;
  }
}

function identity(layout: RowLayout, geometry: QueueGeometry, storeId: Uint8Array, streamId: number) {
  return { kind: FileKind.OooQueue, storeId, streamId, geometry: [geometry.slotBytes, layout.rowBytes, geometry.blockSlots, geometry.runSlots] };
}
