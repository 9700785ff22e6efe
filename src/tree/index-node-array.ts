// The index-node array (paper §4.1, "index nodes on PMem"): slot i = index node i, nodeSize bytes,
// so navigating the tree never touches the SSD. Index-node ids are their own sequence, apart from
// leaf ids, so this array and the leaf file are both written sequentially.
//
// Slot (nodeSize bytes, a multiple of 256):
//   0   u32  entry count (meaningful once the node is closed; an open node's count lives in the
//            flank's root record, see flank.ts)
//   4   u16  level (1 = children are leaves)
//   6   u16  reserved
//   8   56   reserved (header is one cache line)
//   64  entries, 16 bytes each, ordered by key:
//         i64  key: smallest timestamp of the child (raw 8 bytes)
//         u32  child id (a leaf id at level 1, an index-node id above)
//         u32  bit 0: the child is an index node (the paper's bit telling the two id
//              sequences apart; redundant with the level, and checked against it by verify())
// Persistence rule: an entry is persisted before the commit that makes it reachable (the flank's
// root record for an open node); a closing node's count is persisted before its parent's entry.
// Entries past the committed count are garbage and are overwritten without being read.

import { invariant } from '../errors.js';
import { FileKind } from '../pmem/file-header.js';
import { FlatArray } from '../pmem/flat-array.js';
import type { PmemRegion } from '../pmem/region.js';
import type { RowLayout, Timestamp } from './row-layout.js';

const COUNT_OFFSET = 0;
const LEVEL_OFFSET = COUNT_OFFSET + 4;
const NODE_HEADER_BYTES = 64;
const ENTRY_BYTES = 16;
const ENTRY_CHILD_OFFSET = 8;
const ENTRY_FLAGS_OFFSET = ENTRY_CHILD_OFFSET + 4;
const CHILD_IS_INDEX = 1;
const INITIAL_SLOTS = 16;

/** How many entries a node of `nodeSize` bytes holds (with `inlineBytes` more per entry, as the SSD baseline keeps its children's aggregates). */
export function indexNodeCapacity(nodeSize: number, inlineBytes = 0): number {
  return Math.floor((nodeSize - NODE_HEADER_BYTES) / (ENTRY_BYTES + inlineBytes));
}

export class IndexNodeArray {
  readonly capacity: number;

  private constructor(
    private readonly array: FlatArray,
    private readonly layout: RowLayout,
  ) {
    this.capacity = indexNodeCapacity(array.slotBytes);
  }

  static create(region: PmemRegion, layout: RowLayout, nodeSize: number, storeId: Uint8Array, streamId: number): IndexNodeArray {
    return new IndexNodeArray(FlatArray.create(region, identity(nodeSize, storeId, streamId), INITIAL_SLOTS), layout);
  }

  static open(region: PmemRegion, layout: RowLayout, nodeSize: number, storeId: Uint8Array, streamId: number): IndexNodeArray {
    return new IndexNodeArray(FlatArray.open(region, identity(nodeSize, storeId, streamId)), layout);
  }

  get bytesUsed(): number {
    return this.array.region.size;
  }

  /** Starts node `id` at `level` with no entries; persisted before it becomes reachable. */
  initialize(id: number, level: number): void {
    this.array.ensureCapacity(id);
    const at = this.array.slotOffset(id);
    const view = this.array.view;
    view.setUint32(at + COUNT_OFFSET, 0, true);
    view.setUint16(at + LEVEL_OFFSET, level, true);
    this.array.region.persist(at, NODE_HEADER_BYTES);
  }

  /** Writes and persists entry `index` of node `id`. */
  writeEntry(id: number, index: number, key: Timestamp, child: number, childIsIndex: boolean): void {
    invariant(index < this.capacity, () => `index node ${id}: entry ${index} past capacity ${this.capacity}`);
    const at = this.entryOffset(id, index);
    const view = this.array.view;
    this.layout.writeTimestamp(view, at, key);
    view.setUint32(at + ENTRY_CHILD_OFFSET, child, true);
    view.setUint32(at + ENTRY_FLAGS_OFFSET, childIsIndex ? CHILD_IS_INDEX : 0, true);
    this.array.region.persist(at, ENTRY_BYTES);
  }

  /** The file's path and how many slots it holds now. */
  get extent(): { readonly path: string; readonly capacity: number } {
    return { path: this.array.region.path, capacity: this.array.capacity };
  }

  /** Records the final entry count of a node that closes; persisted. */
  close(id: number, count: number): void {
    const at = this.array.slotOffset(id);
    this.array.view.setUint32(at + COUNT_OFFSET, count, true);
    this.array.region.persist(at + COUNT_OFFSET, 4);
  }

  /** The entry count a closed node was closed with. */
  closedCount(id: number): number {
    return nodeCount(this.array.view, this.array.slotOffset(id));
  }

  level(id: number): number {
    return this.array.view.getUint16(this.array.slotOffset(id) + LEVEL_OFFSET, true);
  }

  key(id: number, index: number): Timestamp {
    return this.layout.readTimestamp(this.array.view, this.entryOffset(id, index));
  }

  child(id: number, index: number): number {
    return nodeChild(this.array.view, this.array.slotOffset(id), index);
  }

  /** Node `id`'s bytes as a closed node keeps them: header and its `count` entries (a view). */
  nodeBytes(id: number, count: number): Uint8Array {
    return this.array.bytes.subarray(this.array.slotOffset(id), this.entryOffset(id, count));
  }

  childIsIndex(id: number, index: number): boolean {
    return (this.array.view.getUint32(this.entryOffset(id, index) + ENTRY_FLAGS_OFFSET, true) & CHILD_IS_INDEX) !== 0;
  }

  /**
   * How many of entries [0, count) have a key below `ts` (or at most `ts` when `inclusive`):
   * the keys are sorted, so this is a binary search.
   */
  countKeysBelow(id: number, count: number, ts: Timestamp, inclusive: boolean): number {
    return keysBelow(this.layout, this.array.view, this.array.slotOffset(id), count, ts, inclusive);
  }

  childSpan(id: number, count: number, from: Timestamp, to: Timestamp): [number, number] {
    return childSpanAt(this.layout, this.array.view, this.array.slotOffset(id), count, from, to);
  }

  closeFile(): void {
    this.array.close();
  }

  private entryOffset(id: number, index: number): number {
    return this.array.slotOffset(id) + NODE_HEADER_BYTES + index * ENTRY_BYTES;
  }
}

// A node's bytes read the same wherever they are: in this array, or copied to SSD (node-file.ts).

/** The entry count stored in the node at byte `at` of `view` (a closed node's). */
export function nodeCount(view: DataView, at: number): number {
  return view.getUint32(at + COUNT_OFFSET, true);
}

export function nodeChild(view: DataView, at: number, index: number): number {
  return view.getUint32(at + NODE_HEADER_BYTES + index * ENTRY_BYTES + ENTRY_CHILD_OFFSET, true);
}

/** How many of entries [0, count) have a key below `ts` (at most `ts` when `inclusive`): a binary search of the sorted keys. */
export function keysBelow(layout: RowLayout, view: DataView, at: number, count: number, ts: Timestamp, inclusive: boolean): number {
  let low = 0;
  let high = count;
  while (low < high) {
    const mid = (low + high) >>> 1;
    const key = layout.readTimestamp(view, at + NODE_HEADER_BYTES + mid * ENTRY_BYTES);
    if (key < ts || (inclusive && key === ts)) low = mid + 1;
    else high = mid;
  }
  return low;
}

/**
 * Entries [first, end) of a node whose children may hold timestamps in [from, to]. A child's
 * key is its smallest timestamp, so the child before the first key >= from may still hold
 * events at `from`; children past the last key <= to cannot.
 */
export function childSpanAt(layout: RowLayout, view: DataView, at: number, count: number, from: Timestamp, to: Timestamp): [number, number] {
  return [Math.max(0, keysBelow(layout, view, at, count, from, false) - 1), keysBelow(layout, view, at, count, to, true)];
}

/** Bytes of a node's header and `count` entries. */
export function nodeBytesFor(count: number): number {
  return NODE_HEADER_BYTES + count * ENTRY_BYTES;
}

function identity(nodeSize: number, storeId: Uint8Array, streamId: number) {
  return { kind: FileKind.IndexNodes, storeId, streamId, geometry: [nodeSize] };
}
