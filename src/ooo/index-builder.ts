// Rebuilding the DRAM time index after open, off the critical path (instant recovery, seed 002):
// open() hands the queue's recovered slots to an IndexBuilder and returns at once; queries until
// the sorted slots arrive scan those slots instead (late-queue.ts), and a merge waits for them.
//
//   WorkerIndexBuilder   sorts on a worker thread over its own mapping of the queue file and
//                        publishes the result in shared memory (no event loop needed to see it)
//   InlineIndexBuilder   sorts on the calling thread when first asked (small queues, and the
//                        simulated media of the tests, deterministically)

import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../native.js';
import type { MergeCursor } from '../tree/flank.js';
import type { QueueGeometry } from './queue.js';
import { sortByTime } from './time-index.js';

export interface IndexBuilder {
  /** The sorted live slots if they are ready, without waiting. */
  poll(): Int32Array | undefined;
  /** The sorted live slots, waiting for (or doing) the work. */
  finish(): Int32Array;
  close(): void;
}

/** What the sort needs: the queue's rows, how many slots, and which of them a merge already took. */
export interface BaseSlots {
  readonly end: number;
  readonly cursor: MergeCursor | undefined;
  /** The queue file's current view (a getter: the file may grow and be remapped meanwhile). */
  readonly view: DataView;
  /** Where slots lie in the file, for a worker that maps it itself. */
  readonly geometry: QueueGeometry;
  offsetOf(slot: number): number;
}

/** Slots [0, end) that are not below the merge cursor, sorted by (timestamp, slot). */
export function sortBase({ end, cursor, view, offsetOf }: BaseSlots): Int32Array {
  const live = new Int32Array(end);
  let count = 0;
  for (let slot = 0; slot < end; slot++) if (cursor === undefined || !belowCursor(view.getBigInt64(offsetOf(slot), true), slot, cursor)) live[count++] = slot;
  return sortByTime(live.subarray(0, count), view, offsetOf);
}

export function belowCursor(ts: bigint, slot: number, cursor: MergeCursor): boolean {
  return ts < cursor.ts || (ts === cursor.ts && slot < cursor.slot);
}

/**
 * Sorts on the calling thread, on demand: at finish(), or at the poll that finds its countdown
 * run out - 0 sorts at the first query; simulated media (tests) let a few queries take the
 * scanning path first.
 */
export class InlineIndexBuilder implements IndexBuilder {
  private sorted: Int32Array | undefined;

  constructor(
    private readonly base: BaseSlots,
    private pollsUntilReady: number,
  ) {}

  poll(): Int32Array | undefined {
    if (this.sorted === undefined && this.pollsUntilReady-- <= 0) this.finish();
    return this.sorted;
  }

  finish(): Int32Array {
    this.sorted ??= sortBase(this.base);
    return this.sorted;
  }

  close(): void {}
}

export interface IndexWorkerConfig {
  readonly queuePath: string;
  readonly end: number;
  readonly cursor: MergeCursor | undefined;
  readonly geometry: QueueGeometry;
  /** [0] = 1 once done (2 on failure), [1] = live slots; then the sorted slots. */
  readonly shared: SharedArrayBuffer;
}

const DONE = 0;
const COUNT = 1;
const HEADER_WORDS = 2;

/**
 * Starting a thread - and zeroing the shared buffer it sorts into (4 bytes a slot: 10 MiB for a
 * full 100 MiB queue) - costs milliseconds of the caller's time, so both happen from the event
 * loop once open() has returned. A program that never yields to the event loop gets the index
 * built inline when it is first needed (a merge, verify) - queries scan until then.
 */
export class WorkerIndexBuilder implements IndexBuilder {
  private running: { readonly worker: Worker; readonly shared: Int32Array } | undefined;
  private sorted: Int32Array | undefined;
  private closed = false;

  constructor(
    private readonly config: Omit<IndexWorkerConfig, 'shared'>,
    private readonly inline: () => Int32Array,
  ) {
    setImmediate(() => this.start());
  }

  poll(): Int32Array | undefined {
    if (this.sorted === undefined && this.running !== undefined && Atomics.load(this.running.shared, DONE) !== 0) this.adopt(this.running);
    return this.sorted;
  }

  finish(): Int32Array {
    const running = this.running;
    if (running === undefined) this.sorted ??= this.inline();
    while (this.sorted === undefined) {
      Atomics.wait(running!.shared, DONE, 0, 50);
      if (Atomics.load(running!.shared, DONE) !== 0) this.adopt(running!);
    }
    return this.sorted;
  }

  close(): void {
    this.closed = true;
    void this.running?.worker.terminate();
  }

  private start(): void {
    if (this.closed || this.sorted !== undefined) return;
    const shared = new Int32Array(new SharedArrayBuffer((HEADER_WORDS + this.config.end) * 4));
    const worker = new Worker(join(packageRoot(), 'dist', 'src', 'ooo', 'index-builder-worker.js'), { workerData: { ...this.config, shared: shared.buffer } });
    worker.unref();
    worker.on('error', () => {
      Atomics.store(shared, DONE, 2);
      Atomics.notify(shared, DONE);
    });
    this.running = { worker, shared };
  }

  /** Takes the worker's result, or sorts here if the worker failed (it only ever reads). */
  private adopt({ worker, shared }: NonNullable<WorkerIndexBuilder['running']>): void {
    this.sorted = Atomics.load(shared, DONE) === 1 ? shared.slice(HEADER_WORDS, HEADER_WORDS + shared[COUNT]!) : this.inline();
    void worker.terminate();
  }
}

export const INDEX_WORKER_DONE = DONE;
export const INDEX_WORKER_COUNT = COUNT;
export const INDEX_WORKER_HEADER_WORDS = HEADER_WORDS;
