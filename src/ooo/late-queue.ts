// The late events a stream holds outside its tree: the PMem queue (queue.ts) with its DRAM
// application-time index (time-index.ts), seen through the merge cursor - queue events a merge
// has already put into the tree are not indexed, so every event is counted once.
//
// After open, the slots the queue already held are indexed in the background (index-builder.ts):
// until they are, queries answer them through the queue's sorted runs (recovered-slots.ts) -
// binary searches, not a scan of the queue - and a merge waits for them.
//
// Readers (range and replay iterators, snapshots) fix the slots they will read when they start
// (LateRows). When the queue is emptied after a merge, the rows of every live reader are copied
// to DRAM first: a reader never sees a slot reused, and a merge never waits for a reader.

import type { Aggregate } from '../tree/aggregate-array.js';
import type { MergeCursor } from '../tree/flank.js';
import type { RowLayout, Timestamp } from '../tree/row-layout.js';
import type { OooQueue } from './queue.js';
import type { BaseSlots, IndexBuilder } from './index-builder.js';
import { RecoveredSlots, highestTimestamp, lowestTimestamp } from './recovered-slots.js';
import { TimeIndex } from './time-index.js';

/** A row found in the queue or a snapshot: valid until the next call that moves the reader. */
export interface QueueRow {
  readonly view: DataView;
  readonly offset: number;
}

/** Results of at most this many late rows are copied with read(2) while the queue's mapping is cold. */
const COLD_COPY_ROWS = 256;

/** The largest merge cursor: every event of its generation is merged. */
export function completeCursor(generation: number): MergeCursor {
  return { generation, ts: 2n ** 63n - 1n, slot: 0xffffffff };
}

/** What queries need of the late events: the live queue, or the ones a snapshot fixed. */
export interface LateEvents {
  /** Folds the late events with from <= ts <= to into `total`. */
  aggregateInto(total: Aggregate, from: Timestamp, to: Timestamp): void;
  /** The latest late event (by ts, then arrival) with ts <= `ts`. */
  lastAtOrBefore(ts: Timestamp): QueueRow | undefined;
  /** The late events with from <= ts <= to in index order, fixed now. */
  cursor(from: Timestamp, to: Timestamp): LateCursor;
}

/** Starts sorting the slots a queue held at open (slots [0, base.end)). */
export type StartIndexBuilder = (base: BaseSlots) => IndexBuilder;

export class LateQueue implements LateEvents {
  private readonly sortedIndex: TimeIndex;
  private readers = new Set<WeakRef<LateRows>>();
  /** The slots held at open, while their sort is under way; the index holds only later slots. */
  private base: { readonly recovered: RecoveredSlots; readonly builder: IndexBuilder } | undefined;

  constructor(
    readonly queue: OooQueue,
    private readonly layout: RowLayout,
    cursor: MergeCursor,
    startBuilder: StartIndexBuilder,
  ) {
    this.sortedIndex = new TimeIndex((slot) => queue.timestamp(slot));
    if (queue.length === 0 || isComplete(cursor, queue.generation)) return;
    const recovered = new RecoveredSlots(queue, layout, queue.length, cursor.generation === queue.generation ? cursor : undefined);
    const base: BaseSlots = {
      end: recovered.end,
      cursor: recovered.cursor,
      get view() {
        return queue.view;
      },
      geometry: queue.geometry,
      offsetOf: (slot: number) => queue.rowOffset(slot),
    };
    this.base = { recovered, builder: startBuilder(base) };
  }

  /** The index over every late event, once the background sort has delivered (it waits for it). */
  get index(): TimeIndex {
    this.adoptBase(true);
    return this.sortedIndex;
  }

  /** Whether the slots held at open are still being indexed. */
  get indexing(): boolean {
    this.adoptBase(false);
    return this.base !== undefined;
  }

  /** Waits until the index covers every late event. */
  finishIndexing(): void {
    this.adoptBase(true);
  }

  /** Late events not yet in the tree. */
  get size(): number {
    this.adoptBase(false);
    return this.sortedIndex.size + (this.base?.recovered.count() ?? 0);
  }

  /** Rows copied to DRAM for readers that outlived a merge, and readers holding queue slots. */
  get pinned(): { readers: number } {
    return { readers: [...this.readers].filter((ref) => ref.deref() !== undefined).length };
  }

  /** Whether the queue holds slots of a merge that was not finished (a crash interrupted it). */
  mergeInterrupted(cursor: MergeCursor): boolean {
    return cursor.generation === this.queue.generation && !isComplete(cursor, this.queue.generation) && this.queue.length > 0;
  }

  /** Appends an event (not durable until persist()). */
  insert(writeRow: (view: DataView, offset: number) => void): void {
    this.sortedIndex.insert(this.queue.insert(writeRow));
  }

  persist(): void {
    this.queue.persistPending();
  }

  timestamp(slot: number): Timestamp {
    return this.queue.timestamp(slot);
  }

  row(slot: number): QueueRow {
    return { view: this.queue.view, offset: this.queue.rowOffset(slot) };
  }

  aggregateInto(total: Aggregate, from: Timestamp, to: Timestamp): void {
    this.adoptBase(false);
    const view = this.queue.view;
    const add = (slot: number) => total.addRows(this.layout, view, this.queue.rowOffset(slot), 0, 1);
    this.sortedIndex.forEachBetween(from, to, add);
    this.base?.recovered.forEachBetween(from, to, add);
  }

  lastAtOrBefore(ts: Timestamp): QueueRow | undefined {
    this.adoptBase(false);
    let slot = this.sortedIndex.lastAtOrBefore(ts);
    // Base slots arrived before every indexed one: one wins only with a later timestamp.
    const bestBase = this.base?.recovered.lastAtOrBefore(ts) ?? -1;
    if (bestBase >= 0 && (slot < 0 || this.queue.timestamp(bestBase) > this.queue.timestamp(slot))) slot = bestBase;
    return slot < 0 ? undefined : this.row(slot);
  }

  cursor(from: Timestamp, to: Timestamp): LateCursor {
    const rows = this.fix(this.slotsBetween(from, to));
    return new LateCursor(rows, 0, rows.length, () => rows.release());
  }

  /** Every late event as it is now, for a snapshot. */
  fixAll(): LateRows {
    this.adoptBase(false);
    return this.fix(this.base === undefined ? this.sortedIndex.all() : this.slotsBetween(lowestTimestamp(this.layout), highestTimestamp(this.layout)));
  }

  /** The slots with from <= ts <= to in index order: the index's, merged with the base's while it is unsorted. */
  private slotsBetween(from: Timestamp, to: Timestamp): Int32Array {
    this.adoptBase(false);
    const indexed = this.sortedIndex.between(from, to);
    if (this.base === undefined) return indexed;
    const fromBase = this.base.recovered.between(from, to);
    return fromBase.length === 0 ? indexed : mergeByTime(fromBase, indexed, (slot) => this.queue.timestamp(slot));
  }

  /** Puts the base's sorted slots in front of the index's once they are ready (or waits for them). */
  private adoptBase(wait: boolean): void {
    const base = this.base;
    if (base === undefined) return;
    const sorted = wait ? base.builder.finish() : base.builder.poll();
    if (sorted === undefined) return;
    this.sortedIndex.build(mergeByTime(sorted, this.sortedIndex.all(), (slot) => this.queue.timestamp(slot)));
    base.builder.close();
    this.base = undefined;
  }

  /** Forgets the first `n` events in index order: a merge step put them into the tree. */
  dropMerged(n: number): void {
    this.index.dropFirst(n);
  }

  /** Empties the queue once everything in it is in the tree; live readers keep their rows. */
  reset(): void {
    for (const ref of this.readers) ref.deref()?.detach();
    this.readers.clear();
    this.base?.builder.close();
    this.base = undefined;
    this.sortedIndex.clear();
    this.queue.reset();
  }

  close(): void {
    this.base?.builder.close();
  }

  forget(rows: LateRows): void {
    for (const ref of this.readers) if (ref.deref() === rows || ref.deref() === undefined) this.readers.delete(ref);
  }

  private fix(slots: Int32Array): LateRows {
    const rows = new LateRows(this, slots, this.layout);
    // While the slots held at open are being indexed the queue's mapping is still cold: a few
    // rows are copied with read(2), cheaper than a page fault for each (pmem/region.ts readInto).
    if (this.base !== undefined && slots.length <= COLD_COPY_ROWS) rows.detach((slot, into) => this.queue.readRow(slot, into));
    else if (rows.length > 0) this.readers.add(new WeakRef(rows));
    return rows;
  }
}

function isComplete(cursor: MergeCursor, generation: number): boolean {
  return cursor.generation === generation && cursor.slot === 0xffffffff && cursor.ts === 2n ** 63n - 1n;
}

/** Two slot lists sorted by (timestamp, slot) merged into one. */
function mergeByTime(a: Int32Array, b: Int32Array, timestampOf: (slot: number) => Timestamp): Int32Array {
  const out = new Int32Array(a.length + b.length);
  let i = 0;
  let j = 0;
  for (let k = 0; k < out.length; k++) {
    const takeA = j >= b.length || (i < a.length && (timestampOf(a[i]!) < timestampOf(b[j]!) || (timestampOf(a[i]!) === timestampOf(b[j]!) && a[i]! < b[j]!)));
    out[k] = takeA ? a[i++]! : b[j++]!;
  }
  return out;
}

/**
 * Late events fixed at one instant, in index order: read from the queue, or from a DRAM copy
 * once the queue has been emptied under them.
 */
export class LateRows implements LateEvents {
  private copy: DataView | undefined;

  constructor(
    private readonly owner: LateQueue,
    private readonly slots: Int32Array,
    private readonly layout: RowLayout,
  ) {}

  get length(): number {
    return this.slots.length;
  }

  row(i: number): QueueRow {
    if (this.copy !== undefined) return { view: this.copy, offset: i * this.layout.rowBytes };
    return this.owner.row(this.slots[i]!);
  }

  timestamp(i: number): Timestamp {
    const row = this.row(i);
    return this.layout.readTimestamp(row.view, row.offset);
  }

  aggregateInto(total: Aggregate, from: Timestamp, to: Timestamp): void {
    for (let i = this.countBelow(from, false), end = this.countBelow(to, true); i < end; i++) {
      const row = this.row(i);
      total.addRows(this.layout, row.view, row.offset, 0, 1);
    }
  }

  lastAtOrBefore(ts: Timestamp): QueueRow | undefined {
    const below = this.countBelow(ts, true);
    return below === 0 ? undefined : this.row(below - 1);
  }

  cursor(from: Timestamp, to: Timestamp): LateCursor {
    return new LateCursor(this, this.countBelow(from, false), this.countBelow(to, true), () => {});
  }

  /** Copies every row out of the queue: it is about to be emptied, or `readRow` reads around its cold mapping. */
  detach(readRow: (slot: number, into: Uint8Array) => void = (slot, into) => this.copyFromQueue(slot, into)): void {
    if (this.copy !== undefined) return;
    const rowBytes = this.layout.rowBytes;
    const bytes = new Uint8Array(this.slots.length * rowBytes);
    for (let i = 0; i < this.slots.length; i++) readRow(this.slots[i]!, bytes.subarray(i * rowBytes, (i + 1) * rowBytes));
    this.copy = new DataView(bytes.buffer);
  }

  private copyFromQueue(slot: number, into: Uint8Array): void {
    const row = this.owner.row(slot);
    into.set(new Uint8Array(row.view.buffer, row.view.byteOffset + row.offset, into.length));
  }

  /** The reader is done: the queue need not copy these rows any more. */
  release(): void {
    this.owner.forget(this);
  }

  /** How many rows have a timestamp below `ts` (or at most `ts` when `inclusive`). */
  private countBelow(ts: Timestamp, inclusive: boolean): number {
    let low = 0;
    let high = this.slots.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      const rowTs = this.timestamp(mid);
      if (rowTs < ts || (inclusive && rowTs === ts)) low = mid + 1;
      else high = mid;
    }
    return low;
  }
}

/** Reads rows [position, end) of a LateRows, one at a time. */
export class LateCursor {
  constructor(
    private readonly rows: LateRows,
    private position: number,
    private readonly end: number,
    private readonly onClose: () => void,
  ) {}

  get isEmpty(): boolean {
    return this.position >= this.end;
  }

  /** The next row's timestamp, or undefined at the end. */
  peekTimestamp(): Timestamp | undefined {
    return this.position < this.end ? this.rows.timestamp(this.position) : undefined;
  }

  /** The next row; advances. REQUIRES: not at the end. */
  take(): QueueRow {
    return this.rows.row(this.position++);
  }

  close(): void {
    this.position = this.end;
    this.onClose();
  }
}
