// The aggregate array (paper §4.1, "lightweight indexing"): slot = the aggregates of one node, so
// temporal aggregation adds up whole subtrees and filters skip subtrees whose [min, max] misses.
// Two instances per stream: one indexed by leaf id, one by index-node id (the two id sequences).
//
// Slot (64-byte aligned, 24 + 24 * attributes bytes rounded up to 64):
//   0   f64  event count
//   8   i64  smallest timestamp (raw 8 bytes, as in a row)
//   16  i64  largest timestamp
//   24  per numeric attribute a, in schema order, 24 bytes each:
//         f64 min, f64 max, f64 sum   (i64/u64 attributes: the nearest doubles; exact below 2^53)
// Persistence rule: a node's slot is written once, when the node closes, and persisted before
// the node's entry in its parent is persisted - so a reachable child always has its aggregates.
// A slot is never rewritten in place except by an out-of-order merge, which writes a new node id.

import { extractColumn } from '../leaf/columns.js';
import { FileKind } from '../pmem/file-header.js';
import { FlatArray } from '../pmem/flat-array.js';
import type { PmemRegion } from '../pmem/region.js';
import type { RowLayout, Timestamp } from './row-layout.js';

const COUNT_OFFSET = 0;
const MIN_TS_OFFSET = COUNT_OFFSET + 8;
const MAX_TS_OFFSET = MIN_TS_OFFSET + 8;
const ATTRIBUTES_OFFSET = MAX_TS_OFFSET + 8;
const ATTRIBUTE_BYTES = 24;
const INITIAL_SLOTS = 1024;

/** The largest lsn among the events `aggregate` sums up (the lsn is the numeric attribute after the schema's). */
export function newestLsnOf(layout: RowLayout, aggregate: Aggregate): number {
  return aggregate.max[layout.attributes]!;
}

/** Aggregates of a set of events, in DRAM. */
export class Aggregate {
  count = 0;
  minTs: Timestamp = 0;
  maxTs: Timestamp = 0;
  readonly min: Float64Array;
  readonly max: Float64Array;
  readonly sum: Float64Array;

  constructor(attributes: number) {
    this.min = new Float64Array(attributes).fill(Infinity);
    this.max = new Float64Array(attributes).fill(-Infinity);
    this.sum = new Float64Array(attributes);
  }

  /** Folds `other` into this. */
  add(other: Aggregate): void {
    if (other.count === 0) return;
    if (this.count === 0 || other.minTs < this.minTs) this.minTs = other.minTs;
    if (this.count === 0 || other.maxTs > this.maxTs) this.maxTs = other.maxTs;
    this.count += other.count;
    for (let a = 0; a < this.sum.length; a++) {
      if (other.min[a]! < this.min[a]!) this.min[a] = other.min[a]!;
      if (other.max[a]! > this.max[a]!) this.max[a] = other.max[a]!;
      this.sum[a]! += other.sum[a]!;
    }
  }

  /** Folds rows [first, end) of a row-major buffer into this, a column at a time. */
  addRows(layout: RowLayout, view: DataView, rowsOffset: number, first: number, end: number): void {
    const count = end - first;
    if (count <= 0) return;
    const base = rowsOffset + first * layout.rowBytes;
    for (let r = 0; r < count; r++) {
      const ts = layout.readTimestamp(view, base + r * layout.rowBytes);
      if (this.count === 0 || ts < this.minTs) this.minTs = ts;
      if (this.count === 0 || ts > this.maxTs) this.maxTs = ts;
      this.count++;
    }
    const values = columnScratch(count);
    layout.numeric.forEach((attribute, a) => {
      if (attribute.columnType === undefined) {
        for (let r = 0; r < count; r++) values[r] = attribute.readNumber(view, base + r * layout.rowBytes);
      } else {
        extractColumn(view, attribute.columnType, base + attribute.offset, layout.rowBytes, count, values);
      }
      this.foldColumn(a, values, count);
    });
  }

  private foldColumn(a: number, values: Float64Array, count: number): void {
    let min = this.min[a]!;
    let max = this.max[a]!;
    let sum = this.sum[a]!;
    for (let r = 0; r < count; r++) {
      const value = values[r]!;
      if (value < min) min = value;
      if (value > max) max = value;
      sum += value;
    }
    this.min[a] = min;
    this.max[a] = max;
    this.sum[a] = sum;
  }
}

let scratch = new Float64Array(1024);

function columnScratch(count: number): Float64Array {
  if (scratch.length < count) scratch = new Float64Array(count);
  return scratch;
}

export class AggregateArray {
  private constructor(
    private readonly array: FlatArray,
    private readonly layout: RowLayout,
  ) {}

  static create(region: PmemRegion, layout: RowLayout, storeId: Uint8Array, streamId: number, kind: AggregateKind): AggregateArray {
    return new AggregateArray(FlatArray.create(region, identity(layout, storeId, streamId, kind), INITIAL_SLOTS), layout);
  }

  static open(region: PmemRegion, layout: RowLayout, storeId: Uint8Array, streamId: number, kind: AggregateKind): AggregateArray {
    return new AggregateArray(FlatArray.open(region, identity(layout, storeId, streamId, kind)), layout);
  }

  get bytesUsed(): number {
    return this.array.region.size;
  }

  /** Writes and persists the aggregates of node `id`. */
  write(id: number, aggregate: Aggregate): void {
    this.array.ensureCapacity(id);
    writeAggregateSlot(this.layout, this.array.view, this.array.slotOffset(id), aggregate);
    this.array.persistSlots(id, 1);
  }

  /** Reads node `id`'s aggregates into `into` (replacing its contents). */
  read(id: number, into: Aggregate): Aggregate {
    return readAggregateSlot(this.layout, this.array.view, this.array.slotOffset(id), into);
  }

  /** The aggregates of the nodes `ids` together. */
  sum(ids: Iterable<number>): Aggregate {
    const total = new Aggregate(this.layout.numeric.length);
    const one = new Aggregate(this.layout.numeric.length);
    for (const id of ids) total.add(this.read(id, one));
    return total;
  }

  /** Node `id`'s slot bytes (a view), for a copy kept elsewhere (node-file.ts). */
  slotBytes(id: number): Uint8Array {
    const at = this.array.slotOffset(id);
    return this.array.bytes.subarray(at, at + this.array.slotBytes);
  }

  count(id: number): number {
    return this.array.view.getFloat64(this.array.slotOffset(id) + COUNT_OFFSET, true);
  }

  /** Reads only the time span of node `id` (the hot field of every descent). */
  minTs(id: number): Timestamp {
    return slotMinTs(this.layout, this.array.view, this.array.slotOffset(id));
  }

  maxTs(id: number): Timestamp {
    return slotMaxTs(this.layout, this.array.view, this.array.slotOffset(id));
  }

  /** [min, max] of numeric attribute `a` in node `id`, for where-clause pruning. */
  attributeBounds(id: number, a: number): [number, number] {
    return slotAttributeBounds(this.array.view, this.array.slotOffset(id), a);
  }

  /** The file's path and how many slots it holds now. */
  get extent(): { readonly path: string; readonly capacity: number } {
    return { path: this.array.region.path, capacity: this.array.capacity };
  }

  close(): void {
    this.array.close();
  }
}

// A slot reads the same wherever it is: in this array, inline in a node kept on SSD (node-file.ts),
// or as an open node's running aggregates in the flank file (open-node-aggregates.ts).

export function readAggregateSlot(layout: RowLayout, view: DataView, at: number, into: Aggregate): Aggregate {
  into.count = view.getFloat64(at + COUNT_OFFSET, true);
  into.minTs = layout.readTimestamp(view, at + MIN_TS_OFFSET);
  into.maxTs = layout.readTimestamp(view, at + MAX_TS_OFFSET);
  for (let a = 0; a < into.sum.length; a++) {
    const base = at + ATTRIBUTES_OFFSET + a * ATTRIBUTE_BYTES;
    into.min[a] = view.getFloat64(base, true);
    into.max[a] = view.getFloat64(base + 8, true);
    into.sum[a] = view.getFloat64(base + 16, true);
  }
  return into;
}

export function writeAggregateSlot(layout: RowLayout, view: DataView, at: number, aggregate: Aggregate): void {
  view.setFloat64(at + COUNT_OFFSET, aggregate.count, true);
  layout.writeTimestamp(view, at + MIN_TS_OFFSET, aggregate.minTs);
  layout.writeTimestamp(view, at + MAX_TS_OFFSET, aggregate.maxTs);
  for (let a = 0; a < aggregate.sum.length; a++) {
    const base = at + ATTRIBUTES_OFFSET + a * ATTRIBUTE_BYTES;
    view.setFloat64(base, aggregate.min[a]!, true);
    view.setFloat64(base + 8, aggregate.max[a]!, true);
    view.setFloat64(base + 16, aggregate.sum[a]!, true);
  }
}

export function slotMinTs(layout: RowLayout, view: DataView, at: number): Timestamp {
  return layout.readTimestamp(view, at + MIN_TS_OFFSET);
}

export function slotMaxTs(layout: RowLayout, view: DataView, at: number): Timestamp {
  return layout.readTimestamp(view, at + MAX_TS_OFFSET);
}

export function slotAttributeBounds(view: DataView, at: number, a: number): [number, number] {
  const base = at + ATTRIBUTES_OFFSET + a * ATTRIBUTE_BYTES;
  return [view.getFloat64(base, true), view.getFloat64(base + 8, true)];
}

export type AggregateKind = 'leaf' | 'index';

/** Bytes of one slot for `attributes` numeric attributes. */
export function aggregateSlotBytes(attributes: number): number {
  return Math.ceil((ATTRIBUTES_OFFSET + attributes * ATTRIBUTE_BYTES) / 64) * 64;
}

function identity(layout: RowLayout, storeId: Uint8Array, streamId: number, kind: AggregateKind) {
  return {
    kind: FileKind.Aggregates,
    storeId,
    streamId,
    geometry: [aggregateSlotBytes(layout.numeric.length), layout.numeric.length, kind === 'leaf' ? 0 : 1],
  };
}
