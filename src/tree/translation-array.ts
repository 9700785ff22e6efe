// The address-translation array (paper §4.2): slot i = where leaf i's newest record lies in the
// leaf file. A flat PMem array replaces ChronicleDB's SSD-resident translation tree, so a lookup
// is one 8-byte read and recovery restores at most one batch.
//
// Slot (8 bytes, one aligned word, so a crash leaves it wholly old or wholly new):
//   0  u32  record offset, low 32 bits
//   4  u32  bits 0..7: record offset bits 32..39 (files up to 1 TiB); bits 8..31: record length
// A slot of all zeros means "not written" (offset 0 is the leaf file's header record, never a leaf).
// State block word 0 (u32): durableCount - slots [0, durableCount) are persisted and trusted.
//
// Persistence rule: a slot is written only after its record is durable on SSD (fdatasync
// returned). Slots are persisted in batches of 32 (one 256-byte PMem block), and durableCount is
// advanced and persisted after the batch; on a clean close the partial batch is persisted too,
// and so is it at a leaf close while the writer lags by the whole ring (tree.ts keepRingSlack).
// Recovery trusts [0, durableCount) and rebuilds the rest by scanning the leaf file forward from
// the end of record durableCount-1 (at most one batch plus the leaves that were never synced).

import { BoundsError, invariant } from '../errors.js';
import { FileKind } from '../pmem/file-header.js';
import { FlatArray, STATE_BLOCK_OFFSET } from '../pmem/flat-array.js';
import type { PmemRegion } from '../pmem/region.js';
import type { LeafLocation } from '../ssd/leaf-file.js';

export const TRANSLATION_SLOT_BYTES = 8;
export const TRANSLATION_BATCH = 32;
const INITIAL_SLOTS = 4096;
const MAX_RECORD_BYTES = 2 ** 24 - 1;
const MAX_OFFSET = 2 ** 40 - 1;
const DURABLE_COUNT_OFFSET = STATE_BLOCK_OFFSET;

export class TranslationArray {
  private durable: number;

  private constructor(private readonly array: FlatArray) {
    this.durable = array.head.getUint32(DURABLE_COUNT_OFFSET, true);
  }

  static create(region: PmemRegion, storeId: Uint8Array, streamId: number): TranslationArray {
    return new TranslationArray(FlatArray.create(region, identity(storeId, streamId), INITIAL_SLOTS));
  }

  static open(region: PmemRegion, storeId: Uint8Array, streamId: number): TranslationArray {
    return new TranslationArray(FlatArray.open(region, identity(storeId, streamId)));
  }

  /** Slots [0, durableCount) survived any crash; recovery rebuilds the ones after. */
  get durableCount(): number {
    return this.durable;
  }

  get bytesUsed(): number {
    return this.array.region.size;
  }

  /** REQUIRES: leaf `leafId`'s record at `location` is durable on SSD. */
  set(leafId: number, location: LeafLocation): void {
    if (location.length <= 0 || location.length > MAX_RECORD_BYTES || location.offset <= 0 || location.offset > MAX_OFFSET) {
      throw new BoundsError(`leaf ${leafId}: location ${location.offset}+${location.length} does not fit a translation slot`);
    }
    this.array.ensureCapacity(leafId);
    const at = this.array.slotOffset(leafId);
    const view = this.array.view;
    view.setUint32(at, location.offset % 2 ** 32, true);
    view.setUint32(at + 4, Math.floor(location.offset / 2 ** 32) | (location.length << 8), true);
  }

  get(leafId: number): LeafLocation | undefined {
    if (leafId >= this.array.capacity) return undefined;
    const at = this.array.slotOffset(leafId);
    const view = this.array.view;
    const low = view.getUint32(at, true);
    const high = view.getUint32(at + 4, true);
    if (low === 0 && high === 0) return undefined;
    return { offset: (high & 0xff) * 2 ** 32 + low, length: high >>> 8 };
  }

  /**
   * Persists every whole batch below `count` (all of [durableCount, count) when `partial`), then
   * advances durableCount. REQUIRES: slots [durableCount, count) are set.
   */
  persistThrough(count: number, partial: boolean): void {
    const target = partial ? count : count - (count % TRANSLATION_BATCH);
    if (target <= this.durable) return;
    invariant(this.get(target - 1) !== undefined, () => `translation slot ${target - 1} persisted before it was set`);
    this.array.persistSlots(this.durable, target - this.durable);
    this.array.view.setUint32(DURABLE_COUNT_OFFSET, target, true);
    this.array.region.persist(DURABLE_COUNT_OFFSET, 4);
    this.durable = target;
  }

  /**
   * Forgets slots [count, written) - recovery, before it re-derives them from the leaf file.
   * Slots from `written` on were never set; not touching them keeps recovery independent of the
   * array's size.
   */
  truncate(count: number, written: number): void {
    const end = Math.min(written, this.array.capacity);
    if (count < end) this.array.bytes.fill(0, this.array.slotOffset(count), this.array.slotOffset(end - 1) + this.array.slotBytes);
    if (count < this.durable) {
      this.array.view.setUint32(DURABLE_COUNT_OFFSET, count, true);
      this.array.region.persist(DURABLE_COUNT_OFFSET, 4);
      this.durable = count;
    }
  }

  /** The file's path and how many slots it holds now. */
  get extent(): { readonly path: string; readonly capacity: number } {
    return { path: this.array.region.path, capacity: this.array.capacity };
  }

  close(): void {
    this.array.close();
  }
}

function identity(storeId: Uint8Array, streamId: number) {
  return { kind: FileKind.Translation, storeId, streamId, geometry: [TRANSLATION_SLOT_BYTES] };
}
