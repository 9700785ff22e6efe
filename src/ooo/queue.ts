// The out-of-order queue in PMem (paper §4.3): late events in arrival order, each insert
// persisted before it is acknowledged, so the queue needs no copy on SSD and loses nothing.
// The DRAM application-time index (time-index.ts) orders its slots by timestamp.
//
// File layout (a flat array, pmem/flat-array.ts), geometry = [slotBytes, rowBytes]:
//   [0, 256)            file header
//   256  u32  generation     } one aligned 8-byte word, stored and persisted at once
//   260  u32  trusted count  }
//   264  i64  newest timestamp among slots [0, covered) of generation `covered generation`
//   272  u32  covered generation, 276 u32 covered (how many slots the newest timestamp covers)
//   280  u32  acknowledged generation } one aligned 8-byte word: slots [0, acknowledged) of that
//   284  u32  acknowledged count      } generation were persisted before their appends returned
//   512 + i * slotBytes      slot i:
//     0  u32  check word: CRC-32 of the row, seeded with (generation, i)
//     4  row (rowBytes, the stream's row layout), then zero padding to a multiple of 8
//
// Persistence rules:
//   * insert: row and check word written, then the slot persisted, then the acknowledged word
//     (generation, slots persisted) stored and persisted - before the append returns. At open a
//     slot below the acknowledged count that fails its check was damaged after it was
//     acknowledged: the queue is refused (CorruptionError), never silently cut there;
//   * every TRUST_EVERY inserts: the newest timestamp so far is persisted, then its coverage
//     word, then the state word's trusted count (slots below it were all persisted and verify).
//     open() checks only the slots after the trusted count, up to the first failure, and finds
//     the queue's newest timestamp from the coverage word and the slots after it - bounded work
//     (a torn pair over-covers at worst: the newest timestamp of more valid slots than it says);
//   * emptying the queue (after a merge) stores generation + 1 and trusted count 0 in one word:
//     every older slot then fails its check word, whatever bytes it still holds.
// A slot past the end therefore never verifies (old generation, zero, or torn), and the valid
// slots are exactly a prefix of the file.

import { crc32 } from 'node:zlib';
import { CorruptionError, invariant } from '../errors.js';
import { FileKind } from '../pmem/file-header.js';
import { FlatArray, STATE_BLOCK_OFFSET } from '../pmem/flat-array.js';
import type { PmemRegion } from '../pmem/region.js';
import type { RowLayout, Timestamp } from '../tree/row-layout.js';

const CHECK_BYTES = 4;
const GENERATION_OFFSET = STATE_BLOCK_OFFSET;
const TRUSTED_OFFSET = STATE_BLOCK_OFFSET + 4;
const NEWEST_OFFSET = STATE_BLOCK_OFFSET + 8;
const COVERED_GENERATION_OFFSET = STATE_BLOCK_OFFSET + 16;
const COVERED_OFFSET = STATE_BLOCK_OFFSET + 20;
const ACKNOWLEDGED_GENERATION_OFFSET = STATE_BLOCK_OFFSET + 24;
const ACKNOWLEDGED_OFFSET = STATE_BLOCK_OFFSET + 28;
/** Inserts between two advances of the trusted count: bounds open()'s verification work. */
export const TRUST_EVERY = 1024;
const INITIAL_SLOTS = 1024;

/** Bytes of one queue slot for rows of `rowBytes`. */
export function queueSlotBytes(rowBytes: number): number {
  return Math.ceil((CHECK_BYTES + rowBytes) / 8) * 8;
}

export class OooQueue {
  private readonly rowBytes: number;
  private generationNumber: number;
  private used: number;
  /** Slots [persisted, used) are written but not yet persisted. */
  private persisted: number;
  private trusted: number;
  /** The newest timestamp in the queue's valid slots (undefined when empty). */
  private newest: Timestamp | undefined;

  private constructor(
    private readonly array: FlatArray,
    private readonly layout: RowLayout,
    /** Slots the queue may hold before it must be merged. */
    readonly capacity: number,
  ) {
    this.rowBytes = layout.rowBytes;
    this.generationNumber = array.view.getUint32(GENERATION_OFFSET, true);
    this.trusted = array.view.getUint32(TRUSTED_OFFSET, true);
    this.used = this.persisted = 0;
  }

  static create(region: PmemRegion, layout: RowLayout, storeId: Uint8Array, streamId: number): void {
    const array = FlatArray.create(region, identity(layout, storeId, streamId), INITIAL_SLOTS);
    array.view.setUint32(GENERATION_OFFSET, 1, true);
    array.view.setUint32(TRUSTED_OFFSET, 0, true);
    region.persist(GENERATION_OFFSET, 8);
    array.close();
  }

  /** Opens the queue and finds its valid slots (work bounded by TRUST_EVERY past the trusted count). */
  static open(region: PmemRegion, layout: RowLayout, storeId: Uint8Array, streamId: number, capacityBytes: number): OooQueue {
    const array = FlatArray.open(region, identity(layout, storeId, streamId));
    const queue = new OooQueue(array, layout, Math.max(1, Math.floor(capacityBytes / array.slotBytes)));
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
    return this.array.slotBytes;
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
    return this.array.slotOffset(slot) + CHECK_BYTES;
  }

  timestamp(slot: number): Timestamp {
    return this.layout.readTimestamp(this.array.view, this.rowOffset(slot));
  }

  /**
   * Writes the next slot: `writeRow` stores the row at the offset it is given. Not durable until
   * persistPending(). REQUIRES: !isFull.
   */
  insert(writeRow: (view: DataView, offset: number) => void): number {
    invariant(!this.isFull, () => `out-of-order queue full (${this.capacity} slots)`);
    const slot = this.used;
    this.array.ensureCapacity(slot);
    const at = this.array.slotOffset(slot);
    writeRow(this.array.view, at + CHECK_BYTES);
    this.array.view.setUint32(at, this.checkWord(slot), true);
    this.used++;
    const ts = this.timestamp(slot);
    if (this.newest === undefined || ts > this.newest) this.newest = ts;
    return slot;
  }

  /** Persists every slot inserted since the last call; the events are acknowledged after it. */
  persistPending(): void {
    if (this.persisted === this.used) return;
    this.array.persistSlots(this.persisted, this.used - this.persisted);
    this.persisted = this.used;
    const view = this.array.view;
    view.setUint32(ACKNOWLEDGED_GENERATION_OFFSET, this.generationNumber, true);
    view.setUint32(ACKNOWLEDGED_OFFSET, this.persisted, true);
    this.array.region.persist(ACKNOWLEDGED_GENERATION_OFFSET, 8);
    if (this.persisted - this.trusted >= TRUST_EVERY) this.advanceTrust();
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

  /** Empties the queue: every slot becomes invalid at once (its generation is over). */
  reset(): void {
    invariant(this.persisted === this.used, 'emptying the out-of-order queue with unpersisted inserts');
    this.storeState(this.generationNumber + 1, 0);
    this.used = this.persisted = 0;
    this.newest = undefined;
  }

  close(): void {
    this.array.close();
  }

  private recover(): void {
    const fileSlots = this.array.capacity;
    if (this.generationNumber === 0 || this.trusted > fileSlots) {
      throw new CorruptionError(this.array.region.path, GENERATION_OFFSET, `out-of-order queue state: generation ${this.generationNumber}, ${this.trusted} trusted slots of ${fileSlots}`);
    }
    const view = this.array.view;
    const acknowledged = view.getUint32(ACKNOWLEDGED_GENERATION_OFFSET, true) === this.generationNumber ? view.getUint32(ACKNOWLEDGED_OFFSET, true) : 0;
    if (acknowledged > fileSlots) throw new CorruptionError(this.array.region.path, ACKNOWLEDGED_OFFSET, `out-of-order queue: ${acknowledged} acknowledged slots, the file holds ${fileSlots}`);
    let slot = this.trusted;
    for (; slot < acknowledged; slot++) {
      if (!this.verifies(slot)) throw new CorruptionError(this.array.region.path, this.array.slotOffset(slot), `out-of-order queue slot ${slot} was acknowledged but fails its check word: its late event is damaged - restore the PMem directory, or open with { rebuild: true } (queued late events are lost then)`);
    }
    while (slot < fileSlots && this.verifies(slot)) slot++;
    this.used = this.persisted = slot;
    const covered = view.getUint32(COVERED_GENERATION_OFFSET, true) === this.generationNumber ? Math.min(view.getUint32(COVERED_OFFSET, true), this.used) : 0;
    this.newest = covered > 0 ? this.layout.readTimestamp(view, NEWEST_OFFSET) : undefined;
    for (let s = covered; s < this.used; s++) {
      const ts = this.timestamp(s);
      if (this.newest === undefined || ts > this.newest) this.newest = ts;
    }
  }

  /** Whether slot `slot`'s check word matches its row (verify() asks it of every trusted slot). */
  verifies(slot: number): boolean {
    return this.array.view.getUint32(this.array.slotOffset(slot), true) === this.checkWord(slot);
  }

  private checkWord(slot: number): number {
    const seed = (Math.imul(this.generationNumber, 0x9e3779b1) ^ Math.imul(slot + 1, 0x85ebca77)) >>> 0;
    return crc32(this.array.bytes.subarray(this.rowOffset(slot), this.rowOffset(slot) + this.rowBytes), seed);
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

function identity(layout: RowLayout, storeId: Uint8Array, streamId: number) {
  return { kind: FileKind.OooQueue, storeId, streamId, geometry: [queueSlotBytes(layout.rowBytes), layout.rowBytes] };
}
