// A stream: the public face of one TAB+-tree. Validates every input before anything is written
// (a bad event or batch changes nothing), keeps timestamps in order, and turns query results into
// event objects.

import { ArrivalSignal, type ConsumedEvent, Consumer, type ConsumerOptions, type ConsumerSource, checkBatchSize, startingLsn } from './consumer/consumer.js';
import type { ConsumerSlots } from './consumer/consumer-slots.js';
import { BoundsError, MisuseError } from './errors.js';
import { visitArrivals } from './query/arrivals.js';
import { aggregateRange } from './query/aggregate.js';
import { findAsOf } from './query/point.js';
import { type AttributeFilter, scanRows } from './query/scan.js';
import { type ReadView, fixedView, liveView } from './query/view.js';
import type { Event, EventCodec, EventInput, PreparedRows } from './event-codec.js';
import type { Schema } from './schema.js';
import type { Timestamp } from './tree/row-layout.js';
import type { Tree } from './tree/tree.js';
import type { NodeStorageKind } from './tree/node-storage.js';
import { type Violation, verifyTree } from './tree/verify.js';
import type { DurabilityClass } from './pmem/region.js';
import type { CacheStats } from './cache/leaf-cache.js';

export type { Event, EventInput, Violation };

/** Columns of a batch: `ts` and one array (or typed array) per attribute, all of one length. */
export type ColumnBatch = { readonly ts: ArrayLike<number | bigint> };

export interface AttributeSummary {
  readonly sum: number;
  readonly min: number | undefined;
  readonly max: number | undefined;
  readonly avg: number | undefined;
}

export type AggregateResult = { readonly count: number } & { readonly [attribute: string]: AttributeSummary | number };

export interface RangeOptions {
  /** Keep only events whose attribute lies in [low, high] (inclusive), for every attribute named. */
  readonly where?: Readonly<Record<string, readonly [number, number]>>;
  /** Stop after this many events. */
  readonly limit?: number;
}

export interface StreamStats {
  readonly events: number;
  readonly leaves: number;
  readonly height: number;
  readonly unflushedEvents: number;
  readonly bytesOnSsd: number;
  readonly bytesOnPmem: number;
  readonly durability: DurabilityClass;
  readonly cache: CacheStats;
  readonly outOfOrder: OutOfOrderStats;
  readonly indexNodes: IndexNodeStats;
  /**
   * True while open's recovery of the leaf file's tail and of the ring pages a crash left runs
   * on the event loop (queries meanwhile read those leaves from PMem, checking each first). It
   * stays true if that recovery failed: the requests that need it throw what it failed with.
   */
  readonly recoveringLeafFile: boolean;
}

export interface IndexNodeStats {
  /** Where queries read closed index nodes (StreamOptions.nodeStorage). */
  readonly storage: NodeStorageKind;
  /** Closed index nodes read from the node file on SSD since open (cache misses; 0 for 'pmem'). */
  readonly readsFromSsd: number;
  /** Index nodes copied to the node file (0 for 'pmem'). */
  readonly onSsd: number;
}

export interface OutOfOrderStats {
  /** Late events waiting in the PMem queue (queries see them; a merge moves them into the tree). */
  readonly queuedEvents: number;
  /** True while the queue's DRAM index is rebuilt in the background after open (queries scan meanwhile). */
  readonly indexing: boolean;
  /** Events the queue holds before it is merged (oooQueueBytes / slot size). */
  readonly queueCapacity: number;
  readonly queueBytes: number;
  /** Merges since the store was opened, the events they moved and the time they took. */
  readonly merges: number;
  readonly mergedEvents: number;
  readonly mergeMilliseconds: number;
  /** Leaves superseded by merges since the stream was created (their records stay on SSD until space is reclaimed). */
  readonly supersededLeaves: number;
  /** Open iterators and snapshots holding queued late events (a merge copies their rows to DRAM). */
  readonly pinnedReaders: number;
}

/** Throws if the store (or the snapshot) a reader belongs to is closed. */
export interface OpenCheck {
  checkOpen(): void;
}

/** What a stream needs from its store. */
export interface StreamHost extends OpenCheck {
  readonly durability: DurabilityClass;
  bytesOnSsd(streamId: number): number;
  bytesOnPmem(streamId: number): number;
  cacheStats(streamId: number): CacheStats;
}

/** An iterator over events in timestamp order that can be closed early (releases nothing yet, but is the contract). */
export class EventIterator implements IterableIterator<Event>, AsyncIterable<Event> {
  private done = false;

  constructor(
    private readonly rows: Iterator<{ view: DataView; offset: number }>,
    private readonly codec: EventCodec,
    private remaining: number,
    private readonly host: OpenCheck,
  ) {}

  next(): IteratorResult<Event> {
    this.host.checkOpen();
    if (this.done || this.remaining <= 0) return this.finish();
    const row = this.rows.next();
    if (row.done === true) return this.finish();
    this.remaining--;
    return { done: false, value: this.codec.decode(row.value.view, row.value.offset) };
  }

  return(): IteratorResult<Event> {
    return this.finish();
  }

  close(): void {
    this.finish();
  }

  [Symbol.iterator](): this {
    return this;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Event, void, undefined> {
    try {
      for (let next = this.next(); next.done !== true; next = this.next()) yield next.value;
    } finally {
      this.finish();
    }
  }

  private finish(): IteratorResult<Event> {
    if (!this.done) {
      this.done = true;
      this.rows.return?.();
    }
    return { done: true, value: undefined };
  }
}

/**
 * The queries of a stream, over a view of it: the live stream (Stream), or the stream as a
 * snapshot fixed it (Snapshot.stream()).
 */
export class StreamReader {
  constructor(
    readonly name: string,
    readonly schema: Schema,
    protected readonly tree: Tree,
    protected readonly codec: EventCodec,
    protected readonly host: OpenCheck,
    private readonly view: () => ReadView,
  ) {}

  /** All events with exactly this timestamp, in arrival order. */
  get(ts: Timestamp): Event[] {
    const at = this.checkTimestamp(ts, 'ts');
    return [...this.iterate(at, at, [], Infinity)];
  }

  /** The latest event with a timestamp <= ts (time travel), or undefined. */
  asOf(ts: Timestamp): Event | undefined {
    this.host.checkOpen();
    const row = findAsOf(this.view(), this.checkTimestamp(ts, 'ts'));
    return row === undefined ? undefined : this.codec.decode(row.view, row.offset);
  }

  /** Events with from <= ts <= to in timestamp order; `where` skips subtrees by their aggregates. */
  range(from: Timestamp, to: Timestamp, options: RangeOptions = {}): EventIterator {
    const limit = options.limit ?? Infinity;
    if (limit !== Infinity && (!Number.isSafeInteger(limit) || limit < 0)) throw new BoundsError(`limit must be a non-negative integer, got ${limit}`);
    return this.iterate(this.checkTimestamp(from, 'from'), this.checkTimestamp(to, 'to'), this.filters(options.where ?? {}), limit);
  }

  /** Replays events in timestamp order; iterate with for..of or for await..of. */
  replay(options: { from?: Timestamp; to?: Timestamp } = {}): EventIterator {
    const from = options.from === undefined ? this.codec.minTimestamp : this.checkTimestamp(options.from, 'from');
    const to = options.to === undefined ? this.codec.maxTimestamp : this.checkTimestamp(options.to, 'to');
    return this.iterate(from, to, [], Infinity);
  }

  /** count, and sum / min / max / avg of every attribute, over [from, to]. */
  aggregate(from: Timestamp, to: Timestamp): AggregateResult {
    this.host.checkOpen();
    const total = aggregateRange(this.view(), this.checkTimestamp(from, 'from'), this.checkTimestamp(to, 'to'));
    const result: Record<string, AttributeSummary | number> = { count: total.count };
    this.tree.layout.numeric.slice(0, this.tree.layout.attributes).forEach((attribute, a) => {
      const empty = total.count === 0;
      result[attribute.name] = {
        sum: total.sum[a]!,
        min: empty ? undefined : total.min[a]!,
        max: empty ? undefined : total.max[a]!,
        avg: empty ? undefined : total.sum[a]! / total.count,
      };
    });
    return result as AggregateResult;
  }

  private iterate(from: Timestamp, to: Timestamp, filters: AttributeFilter[], limit: number): EventIterator {
    this.host.checkOpen();
    return new EventIterator(scanRows(this.view(), from, to, filters), this.codec, limit, this.host);
  }

  private filters(where: Readonly<Record<string, readonly [number, number]>>): AttributeFilter[] {
    return Object.entries(where).map(([name, bounds]) => {
      const attribute = this.schema.attributes.findIndex((a) => a.name === name);
      if (attribute < 0) throw new MisuseError('INVALID_ARGUMENT', `stream '${this.name}' has no attribute '${name}'`);
      const [low, high] = Array.isArray(bounds) ? bounds : [];
      if (typeof low !== 'number' || typeof high !== 'number' || Number.isNaN(low) || Number.isNaN(high)) {
        throw new MisuseError('INVALID_ARGUMENT', `where.${name} must be [low, high] numbers`);
      }
      return { attribute, low, high };
    });
  }

  private checkTimestamp(ts: Timestamp, what: string): Timestamp {
    return this.codec.checkQueryTimestamp(ts, what);
  }
}

export class Stream extends StreamReader {
  private readonly consumersByName = new Map<string, Consumer>();
  private readonly arrivals = new ArrivalSignal();

  constructor(
    name: string,
    readonly id: number,
    schema: Schema,
    tree: Tree,
    codec: EventCodec,
    private readonly consumerSlots: ConsumerSlots,
    private readonly store: StreamHost,
  ) {
    super(name, schema, tree, codec, store, () => liveView(tree));
  }

  /**
   * The consumer `name`: registered now (starting at `from`, durably) if it is new, else resumed
   * right after the lsn it last committed. One handle per name.
   */
  consumer(name: string, options: ConsumerOptions = {}): Consumer {
    this.host.checkOpen();
    const open = this.consumersByName.get(name);
    if (open !== undefined) return open;
    const batchSize = checkBatchSize(options.batchSize);
    let committed = this.consumerSlots.committed(name);
    if (committed === undefined) {
      committed = startingLsn(options.from, this.tree.durableLsn);
      this.consumerSlots.register(name, committed);
    }
    const consumer = new Consumer(name, committed, this.consumerSource(), batchSize);
    this.consumersByName.set(name, consumer);
    return consumer;
  }

  /** The names of the stream's registered consumers. */
  consumers(): string[] {
    this.host.checkOpen();
    return this.consumerSlots.names;
  }

  /** Forgets consumer `name` and its position. */
  removeConsumer(name: string): void {
    this.host.checkOpen();
    this.consumersByName.get(name)?.checkIdle();
    this.consumersByName.delete(name);
    this.consumerSlots.remove(name);
  }

  /** Ends every subscription and consumer iteration (the store is closing). */
  endConsumers(): void {
    this.arrivals.close();
  }

  private consumerSource(): ConsumerSource {
    const { tree, codec, arrivals, consumerSlots } = this;
    const host = this.host;
    return {
      checkOpen: () => host.checkOpen(),
      get isOpen() {
        return arrivals.isOpen;
      },
      durableLsn: () => tree.durableLsn,
      read: (first, last) => {
        const batch: ConsumedEvent[] = [];
        visitArrivals(tree, first, last, codec.minTimestamp, codec.maxTimestamp, (view, offset, lsn) => {
          const event = codec.decode(view, offset) as Record<string, unknown>;
          event.lsn = lsn;
          batch.push(event as ConsumedEvent);
        });
        return batch;
      },
      arrivals: () => arrivals.wait(),
      commit: (name, lsn) => consumerSlots.commit(name, lsn),
    };
  }

  /** A reader over the stream as it is now, unchanged by later appends and merges until released. */
  fix(check: OpenCheck): { readonly reader: StreamReader; release(): void } {
    const fixed = fixedView(this.tree);
    return { reader: new StreamReader(this.name, this.schema, this.tree, this.codec, check, () => fixed.view), release: fixed.release };
  }

  /**
   * Appends one event, in order or late. Durable in PMem at the next flush point (see README); a
   * late event that goes to the out-of-order queue is durable when this returns.
   */
  append<E extends EventInput>(event: E): void {
    this.host.checkOpen();
    const ts = this.codec.timestampOf(event);
    this.codec.validate(event);
    const write = (view: DataView, offset: number) => this.codec.encode(event, view, offset);
    if (!this.tree.isLate(ts)) {
      this.tree.append(ts, write);
      this.arrivals.notify();
      return;
    }
    try {
      this.tree.insertLate(ts, write);
    } finally {
      this.tree.persistLate();
      this.arrivals.notify();
    }
  }

  /**
   * Appends many events: an array of event objects, or columns ({ ts: [...], price: Float64Array, ... }).
   * The whole batch is validated first; a bad event anywhere means nothing is appended.
   */
  appendBatch<E extends EventInput, C extends ColumnBatch>(batch: readonly E[] | C): void {
    this.host.checkOpen();
    const rows = Array.isArray(batch) ? this.codec.prepareEvents(batch as readonly EventInput[]) : this.codec.prepareColumns(batch as unknown as Readonly<Record<string, ArrayLike<number | bigint>>>);
    if (rows.count === 0) return;
    if (rows.inOrder && !this.tree.isLate(rows.firstTimestamp)) this.tree.appendBatch(rows.count, rows.lastTimestamp, rows.write);
    else this.appendMixed(rows);
    this.arrivals.notify();
  }

  /** Merges every late event waiting in the out-of-order queue into the tree now. */
  mergeLateEvents(): void {
    this.host.checkOpen();
    this.tree.mergeLateEvents();
  }

  /** A batch with late events: runs of in-order rows go in whole, late rows one by one. */
  private appendMixed(rows: PreparedRows): void {
    try {
      for (let i = 0; i < rows.count; ) {
        const first = i;
        const ts = rows.timestamp(first);
        if (this.tree.isLate(ts)) {
          this.tree.insertLate(ts, (view, offset) => rows.write(view, offset, first, 1));
          i++;
          continue;
        }
        let last = ts;
        for (i++; i < rows.count && rows.timestamp(i) >= last; i++) last = rows.timestamp(i);
        this.tree.appendBatch(i - first, last, (view, offset, from, n) => rows.write(view, offset, first + from, n));
      }
    } finally {
      this.tree.persistLate();
    }
  }

  /** Returns when everything appended so far is durable. */
  flush(): void {
    this.host.checkOpen();
    this.tree.flush();
    this.arrivals.notify();
  }

  /** Every invariant of the stream's tree; `full` also reads and checks every leaf. Empty when sound. */
  verify(options: { full?: boolean } = {}): Violation[] {
    this.host.checkOpen();
    return verifyTree(this.tree, options.full ?? false);
  }

  stats(): StreamStats {
    this.host.checkOpen();
    return {
      events: this.tree.events,
      leaves: this.tree.leafCount,
      height: this.tree.height,
      unflushedEvents: this.tree.unflushed,
      bytesOnSsd: this.store.bytesOnSsd(this.id),
      bytesOnPmem: this.store.bytesOnPmem(this.id),
      durability: this.store.durability,
      cache: this.store.cacheStats(this.id),
      outOfOrder: {
        queuedEvents: this.tree.late.size,
        indexing: this.tree.late.indexing,
        queueCapacity: this.tree.late.queue.capacity,
        queueBytes: this.tree.late.queue.bytesUsed,
        merges: this.tree.mergeStats.merges,
        mergedEvents: this.tree.mergeStats.mergedEvents,
        mergeMilliseconds: this.tree.mergeStats.milliseconds,
        supersededLeaves: this.tree.supersededLeaves,
        pinnedReaders: this.tree.late.pinned.readers,
      },
      indexNodes: this.tree.indexNodeStats,
      recoveringLeafFile: this.tree.recoveringLeafFile,
    };
  }
}
