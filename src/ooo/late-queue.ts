// The late events a stream holds outside its tree: the PMem queue (queue.ts) with its DRAM
// application-time index (time-index.ts), seen through the merge cursor - queue events a merge
// has already put into the tree are not indexed, so every event is counted once.
//
// Readers (range and replay iterators, snapshots) fix the slots they will read when they start
// (LateRows). When the queue is emptied after a merge, the rows of every live reader are copied
// to DRAM first: a reader never sees a slot reused, and a merge never waits for a reader.

import type { Aggregate } from '../tree/aggregate-array.js';
import type { MergeCursor } from '../tree/flank.js';
import type { RowLayout, Timestamp } from '../tree/row-layout.js';
import type { OooQueue } from './queue.js';
import { TimeIndex, sortByTime } from './time-index.js';

/** A row found in the queue or a snapshot: valid until the next call that moves the reader. */
export interface QueueRow {
  readonly view: DataView;
  readonly offset: number;
}

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

export class LateQueue implements LateEvents {
  readonly index: TimeIndex;
  private readers = new Set<WeakRef<LateRows>>();

  constructor(
    readonly queue: OooQueue,
    private readonly layout: RowLayout,
    cursor: MergeCursor,
  ) {
    this.index = new TimeIndex((slot) => queue.timestamp(slot));
    this.rebuildIndex(cursor);
  }

  /** Late events not yet in the tree. */
  get size(): number {
    return this.index.size;
  }

  /** Rows copied to DRAM for readers that outlived a merge, and readers holding queue slots. */
  get pinned(): { readers: number } {
    return { readers: [...this.readers].filter((ref) => ref.deref() !== undefined).length };
  }

  /** Whether the queue holds slots of a merge that was not finished (a crash interrupted it). */
  mergeInterrupted(cursor: MergeCursor): boolean {
    return cursor.generation === this.queue.generation && this.index.size > 0;
  }

  /** Appends an event (not durable until persist()). */
  insert(writeRow: (view: DataView, offset: number) => void): void {
    this.index.insert(this.queue.insert(writeRow));
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
    const view = this.queue.view;
    this.index.forEachBetween(from, to, (slot) => total.addRows(this.layout, view, this.queue.rowOffset(slot), 0, 1));
  }

  lastAtOrBefore(ts: Timestamp): QueueRow | undefined {
    const slot = this.index.lastAtOrBefore(ts);
    return slot < 0 ? undefined : this.row(slot);
  }

  cursor(from: Timestamp, to: Timestamp): LateCursor {
    const rows = this.fix(this.index.between(from, to));
    return new LateCursor(rows, 0, rows.length, () => rows.release());
  }

  /** Every late event as it is now, for a snapshot. */
  fixAll(): LateRows {
    return this.fix(this.index.all());
  }

  /** Forgets the first `n` events in index order: a merge step put them into the tree. */
  dropMerged(n: number): void {
    this.index.dropFirst(n);
  }

  /** Empties the queue once everything in it is in the tree; live readers keep their rows. */
  reset(): void {
    for (const ref of this.readers) ref.deref()?.detach();
    this.readers.clear();
    this.index.clear();
    this.queue.reset();
  }

  forget(rows: LateRows): void {
    for (const ref of this.readers) if (ref.deref() === rows || ref.deref() === undefined) this.readers.delete(ref);
  }

  private fix(slots: Int32Array): LateRows {
    const rows = new LateRows(this, slots, this.layout);
    if (rows.length > 0) this.readers.add(new WeakRef(rows));
    return rows;
  }

  private rebuildIndex(cursor: MergeCursor): void {
    const merging = cursor.generation === this.queue.generation;
    const live: number[] = [];
    for (let slot = 0; slot < this.queue.length; slot++) {
      if (!merging || !belowCursor(BigInt(this.queue.timestamp(slot)), slot, cursor)) live.push(slot);
    }
    this.index.build(sortByTime(Int32Array.from(live), this.queue.view, (slot) => this.queue.rowOffset(slot)));
  }
}

function belowCursor(ts: bigint, slot: number, cursor: MergeCursor): boolean {
  return ts < cursor.ts || (ts === cursor.ts && slot < cursor.slot);
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

  /** Copies every row out of the queue, which is about to be emptied. */
  detach(): void {
    if (this.copy !== undefined) return;
    const rowBytes = this.layout.rowBytes;
    const bytes = new Uint8Array(this.slots.length * rowBytes);
    for (let i = 0; i < this.slots.length; i++) {
      const row = this.owner.row(this.slots[i]!);
      bytes.set(new Uint8Array(row.view.buffer, row.view.byteOffset + row.offset, rowBytes), i * rowBytes);
    }
    this.copy = new DataView(bytes.buffer);
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
