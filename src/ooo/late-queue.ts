// The late events a stream holds outside its tree: the PMem queue (queue.ts) with its DRAM
// application-time index (time-index.ts), seen through the merge cursor - queue events a merge
// has already put into the tree are not indexed, so every event is counted once.
//
// Readers (range and replay iterators) take a snapshot of the slots they will read. When the
// queue is emptied after a merge, the rows of every live snapshot are copied to DRAM first: a
// reader never sees a slot reused, and a merge never waits for a reader.

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

export class LateQueue {
  readonly index: TimeIndex;
  private readers = new Set<WeakRef<QueueSnapshot>>();

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

  /** Folds the late events with from <= ts <= to into `total`. */
  aggregateInto(total: Aggregate, from: Timestamp, to: Timestamp): void {
    const view = this.queue.view;
    this.index.forEachBetween(from, to, (slot) => total.addRows(this.layout, view, this.queue.rowOffset(slot), 0, 1));
  }

  /** The latest late event (by ts, then arrival) with ts <= `ts`. */
  lastAtOrBefore(ts: Timestamp): QueueRow | undefined {
    const slot = this.index.lastAtOrBefore(ts);
    return slot < 0 ? undefined : this.row(slot);
  }

  /** A reader over the late events with from <= ts <= to as they are now. */
  snapshot(from: Timestamp, to: Timestamp): QueueSnapshot {
    const snapshot = new QueueSnapshot(this, this.index.between(from, to), this.layout.rowBytes);
    if (snapshot.length > 0) this.readers.add(new WeakRef(snapshot));
    return snapshot;
  }

  /** Forgets the first `n` events in index order: a merge step put them into the tree. */
  dropMerged(n: number): void {
    this.index.dropFirst(n);
  }

  /** Empties the queue once everything in it is in the tree; live snapshots keep their rows. */
  reset(): void {
    for (const ref of this.readers) ref.deref()?.detach();
    this.readers.clear();
    this.index.clear();
    this.queue.reset();
  }

  forget(snapshot: QueueSnapshot): void {
    for (const ref of this.readers) if (ref.deref() === snapshot || ref.deref() === undefined) this.readers.delete(ref);
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

/** The late events of one range, fixed when a reader starts. */
export class QueueSnapshot {
  private position = 0;
  /** After detach(): the rows from `copyBase` on, in DRAM. */
  private copy: DataView | undefined;
  private copyBase = 0;

  constructor(
    private readonly owner: LateQueue,
    private readonly slots: Int32Array,
    private readonly rowBytes: number,
  ) {}

  get length(): number {
    return this.slots.length;
  }

  /** The next row's timestamp, or undefined at the end. */
  peekTimestamp(layout: RowLayout): Timestamp | undefined {
    if (this.position >= this.slots.length) return undefined;
    const row = this.rowAt(this.position);
    return layout.readTimestamp(row.view, row.offset);
  }

  /** The next row; advances. REQUIRES: not at the end. */
  take(): QueueRow {
    return this.rowAt(this.position++);
  }

  close(): void {
    this.position = this.slots.length;
    this.copy = undefined;
    this.owner.forget(this);
  }

  /** Copies the rows not yet read out of the queue, which is about to be emptied. */
  detach(): void {
    if (this.copy !== undefined || this.position >= this.slots.length) return;
    const rest = this.slots.length - this.position;
    const bytes = new Uint8Array(rest * this.rowBytes);
    for (let i = 0; i < rest; i++) {
      const row = this.owner.row(this.slots[this.position + i]!);
      bytes.set(new Uint8Array(row.view.buffer, row.view.byteOffset + row.offset, this.rowBytes), i * this.rowBytes);
    }
    this.copy = new DataView(bytes.buffer);
    this.copyBase = this.position;
  }

  private rowAt(position: number): QueueRow {
    if (this.copy !== undefined) return { view: this.copy, offset: (position - this.copyBase) * this.rowBytes };
    return this.owner.row(this.slots[position]!);
  }
}
