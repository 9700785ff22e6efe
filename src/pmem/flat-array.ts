// A PMem file holding a flat array of fixed-size slots, slot i at a computable offset: the shape
// the paper gives the index-node array, the aggregate array and the translation array (§4.1,
// §4.2), so that "node i" is one multiplication away and writes go sequentially.
//
//   [0, 256)            file header (file-header.ts), geometry = [slotBytes, ...extra]
//   [256, 512)          state block: a few words of per-file mutable state, owned by the user
//   [512 + i*slotBytes)  slot i, for i < capacity; slotBytes is a multiple of 8 (one atomic word)
// The file grows by doubling; growing remaps the region, so views are re-taken afterwards and
// never cached by callers across ensureCapacity(). Open reads the header and the state block
// with one read (`head`): it maps the file but touches none of its pages.
// Persistence rule: the array persists nothing by itself; each user states which slot bytes it
// persists and when (see the users' opening comments).

import { CorruptionError, invariant } from '../errors.js';
import { FILE_HEADER_BYTES, type FileIdentity, readHead, verifyFileHeader, writeFileHeader } from './file-header.js';
import { ATOMIC_WORD_BYTES, type PmemRegion } from './region.js';

export const STATE_BLOCK_OFFSET = FILE_HEADER_BYTES;
export const STATE_BLOCK_BYTES = 256;
export const SLOTS_OFFSET = STATE_BLOCK_OFFSET + STATE_BLOCK_BYTES;

/** Opens or creates region files by name; the store's media (disk or simulated) provides it. */
export type RegionOpener = (size: number, create: boolean) => PmemRegion;

export class FlatArray {
  private dataView: DataView;
  private byteView: Uint8Array;
  private slots: number;

  private constructor(
    readonly region: PmemRegion,
    readonly slotBytes: number,
    /**
     * The file's header and state block as they were at open (a copy), at their file offsets:
     * users read their open-time state from it, without touching the mapping.
     */
    readonly head: DataView,
  ) {
    invariant(slotBytes > 0 && slotBytes % ATOMIC_WORD_BYTES === 0, `slot size ${slotBytes} is not a multiple of 8`);
    // Views of the mapping, taken now: the readers of every descent load them, and a field that
    // is always a view keeps those loads as cheap as they can be (a lazy one cost ~8 % of an
    // aggregation over a whole store).
    this.dataView = new DataView(region.buffer);
    this.byteView = new Uint8Array(region.buffer);
    this.slots = this.slotsIn(region.size);
  }

  /** Creates the file with room for `initialSlots`, writing and persisting its header. */
  static create(region: PmemRegion, identity: FileIdentity, initialSlots: number): FlatArray {
    const slotBytes = identity.geometry[0] ?? 0;
    const needed = SLOTS_OFFSET + initialSlots * slotBytes;
    if (region.size < needed) region.grow(needed);
    writeFileHeader(region, identity);
    return new FlatArray(region, slotBytes, new DataView(new Uint8Array(region.buffer, 0, SLOTS_OFFSET).slice().buffer));
  }

  /** Opens an existing file; throws CorruptionError if it is not the file `identity` describes. */
  static open(region: PmemRegion, identity: FileIdentity, head = readHead(region, SLOTS_OFFSET)): FlatArray {
    verifyFileHeader(region, identity, head);
    // Users read their state block right away: a file cut inside it is damage, not a short read.
    if (region.size < SLOTS_OFFSET) throw new CorruptionError(region.path, region.size, `file is ${region.size} bytes, shorter than its header and state block (${SLOTS_OFFSET})`);
    return new FlatArray(region, identity.geometry[0] ?? 0, new DataView(head.buffer, head.byteOffset, head.byteLength));
  }

  get capacity(): number {
    return this.slots;
  }

  /** The current view over the whole file. Invalidated by ensureCapacity(). */
  get view(): DataView {
    return this.dataView;
  }

  get bytes(): Uint8Array {
    return this.byteView;
  }

  /**
   * Byte offset of slot `index`. Indexes come from other PMem words (child ids, leaf ids), which
   * damage can change: one past the file is refused here rather than read out of bounds.
   */
  slotOffset(index: number): number {
    if (!(index >= 0 && index < this.slots)) throw new CorruptionError(this.region.path, 0, `slot ${index} named, the file holds ${this.slots}: a damaged reference`);
    return SLOTS_OFFSET + index * this.slotBytes;
  }

  private slotsIn(size: number): number {
    return Math.max(0, Math.floor((size - SLOTS_OFFSET) / this.slotBytes));
  }

  /** Grows the file (doubling) until slot `index` exists. */
  ensureCapacity(index: number): void {
    if (index < this.capacity) return;
    let size = this.region.size;
    while (this.slotsIn(size) <= index) size = SLOTS_OFFSET + 2 * (size - SLOTS_OFFSET);
    this.region.grow(size);
    this.dataView = new DataView(this.region.buffer);
    this.byteView = new Uint8Array(this.region.buffer);
    this.slots = this.slotsIn(this.region.size);
  }

  persistSlots(first: number, count: number): void {
    if (count > 0) this.region.persist(this.slotOffset(first), count * this.slotBytes);
  }

  close(): void {
    this.region.close();
  }
}
