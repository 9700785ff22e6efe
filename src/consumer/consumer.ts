// Push consumers with durable offsets (seed 000, AIMSS). A consumer reads the stream in arrival
// order - lsn order, late events included - from the store itself, never from a buffer of its
// own: a slow consumer costs ingestion nothing and holds no memory beyond the batch it is given.
// It sees only durable events (lsn <= the stream's durable lsn), so no crash can take back an
// event it was given. Its committed lsn lives in PMem (consumer-slots.ts); after a restart it
// resumes right after it: exactly once, counted from the last commit.

import { BoundsError, MisuseError } from '../errors.js';
import type { Event } from '../event-codec.js';

/** Where a new consumer starts; a consumer already registered resumes after its committed lsn. */
export type ConsumerStart = 'earliest' | 'latest' | { readonly lsn: number };

/** An event as consumers get it: its timestamp, attributes and arrival sequence number. */
export type ConsumedEvent = Event & { readonly lsn: number };

export interface ConsumerOptions {
  readonly from?: ConsumerStart;
  /** The most events one batch holds (default 4096). */
  readonly batchSize?: number;
}

export interface SubscribeOptions {
  /** Commit each batch's last lsn once the handler has returned (or its promise resolved). */
  readonly autoCommit?: boolean;
}

/** A running subscribe(): `done` settles when it stops - rejected with the handler's error, if it threw. */
export interface Subscription {
  readonly done: Promise<void>;
  unsubscribe(): void;
}

/** What a consumer needs of its stream. */
export interface ConsumerSource {
  checkOpen(): void;
  readonly isOpen: boolean;
  /** Every event with an lsn up to this one is durable. */
  durableLsn(): number;
  /** The events with first <= lsn <= last, in lsn order. */
  read(first: number, last: number): ConsumedEvent[];
  /** Resolves when events may have become durable, or the store closes. */
  arrivals(): Promise<void>;
  /** Persists the committed lsn. */
  commit(name: string, lsn: number): void;
}

const DEFAULT_BATCH = 4096;

export class Consumer implements AsyncIterable<ConsumedEvent[]> {
  private delivered: number;
  private committedLsn: number;
  /** Set while a subscription or an async iteration pulls batches. */
  private pulling = false;
  /** Ends the wait of a subscription that is waiting for events (unsubscribe). */
  private wakeWaiter: (() => void) | undefined;

  constructor(
    readonly name: string,
    committed: number,
    private readonly source: ConsumerSource,
    private readonly batchSize: number,
  ) {
    this.delivered = this.committedLsn = committed;
  }

  /** Every event with an lsn up to this one was consumed (persisted: survives a restart). */
  get committed(): number {
    return this.committedLsn;
  }

  /** The lsn of the last event handed out. */
  get position(): number {
    return this.delivered;
  }

  /**
   * The next batch of durable events in arrival order, at most batchSize; empty when there is
   * none yet. Pull-style; not while a subscription or an async iteration runs.
   */
  next(): ConsumedEvent[] {
    this.source.checkOpen();
    if (this.pulling) throw new MisuseError('CONSUMER_BUSY', `consumer '${this.name}' is being iterated or has a subscription; take batches from it there`);
    return this.take();
  }

  /** Persists the position: after a restart, delivery resumes after `lsn` (default: the last event handed out). */
  commit(lsn: number = this.delivered): void {
    this.source.checkOpen();
    if (!Number.isSafeInteger(lsn) || lsn < this.committedLsn || lsn > this.delivered) {
      throw new BoundsError(`consumer '${this.name}': commit(${String(lsn)}) must name an lsn between the committed ${this.committedLsn} and the last delivered ${this.delivered}`);
    }
    if (lsn === this.committedLsn) return;
    this.source.commit(this.name, lsn);
    this.committedLsn = lsn;
  }

  /**
   * Pushes batches to `handler` as events become durable, one at a time: the next batch waits
   * for the handler (and its promise). Stops on unsubscribe(), when the store closes, or when the
   * handler throws (then `done` rejects with its error).
   */
  subscribe(handler: (batch: ConsumedEvent[]) => void | Promise<void>, options: SubscribeOptions = {}): Subscription {
    this.source.checkOpen();
    if (typeof handler !== 'function') throw new MisuseError('INVALID_ARGUMENT', 'subscribe() needs a handler function');
    this.checkIdle();
    let stopped = false;
    const done = (async () => {
      for await (const batch of this.batches(() => stopped)) {
        await handler(batch);
        if (options.autoCommit === true && this.source.isOpen) this.commit(batch[batch.length - 1]!.lsn);
      }
    })();
    return {
      done,
      unsubscribe: () => {
        stopped = true;
        this.wakeWaiter?.();
      },
    };
  }

  /** `for await (const batch of consumer)`: batches as events become durable, until the store closes or the loop breaks. */
  [Symbol.asyncIterator](): AsyncGenerator<ConsumedEvent[], void, undefined> {
    this.source.checkOpen();
    return this.batches(() => false);
  }

  /** Throws unless no subscription or iteration is pulling from the consumer. */
  checkIdle(): void {
    if (this.pulling) throw new MisuseError('CONSUMER_BUSY', `consumer '${this.name}' already has a subscription or an iteration`);
  }

  /** Batches until the store closes or `stop()`; waits while there are none. */
  private async *batches(stop: () => boolean): AsyncGenerator<ConsumedEvent[], void, undefined> {
    this.checkIdle();
    this.pulling = true;
    try {
      while (this.source.isOpen && !stop()) {
        const batch = this.take();
        if (batch.length > 0) yield batch;
        else await new Promise<void>((resolve) => {
          this.wakeWaiter = resolve;
          void this.source.arrivals().then(resolve);
        });
      }
    } finally {
      this.pulling = false;
      this.wakeWaiter = undefined;
    }
  }

  /** Reads windows of lsns after the position until one holds events (a crash may leave gaps) or none is durable. */
  private take(): ConsumedEvent[] {
    const durable = this.source.durableLsn();
    while (this.delivered < durable) {
      const last = Math.min(durable, this.delivered + this.batchSize);
      const batch = this.source.read(this.delivered + 1, last);
      this.delivered = last;
      if (batch.length > 0) return batch;
    }
    return [];
  }
}

/** The committed lsn a new consumer starts at (it is given the events after it). */
export function startingLsn(start: ConsumerStart | undefined, durableLsn: number): number {
  if (start === undefined || start === 'earliest') return 0;
  if (start === 'latest') return durableLsn;
  if (typeof start === 'object' && start !== null && Number.isSafeInteger(start.lsn) && start.lsn >= 1) return start.lsn - 1;
  throw new MisuseError('INVALID_ARGUMENT', `a consumer's 'from' must be 'earliest', 'latest' or { lsn } with an integer lsn >= 1, got ${JSON.stringify(start)}`);
}

export function checkBatchSize(batchSize: number | undefined): number {
  if (batchSize === undefined) return DEFAULT_BATCH;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > 1 << 20) throw new BoundsError(`batchSize must be an integer in [1, 2^20], got ${String(batchSize)}`);
  return batchSize;
}

/** Wakes the consumers waiting for events: appends and flushes call notify(), store close close(). */
export class ArrivalSignal {
  private waiting: (() => void)[] = [];
  private ended = false;

  get isOpen(): boolean {
    return !this.ended;
  }

  wait(): Promise<void> {
    return this.ended ? Promise.resolve() : new Promise((resolve) => this.waiting.push(resolve));
  }

  notify(): void {
    if (this.waiting.length === 0) return;
    const waiting = this.waiting;
    this.waiting = [];
    for (const resolve of waiting) resolve();
  }

  close(): void {
    this.ended = true;
    this.notify();
  }
}
