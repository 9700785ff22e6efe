// The tree's side of the worker thread that writes leaves (leaf-writer-worker.ts). They share a
// small control block (submitted / durable watermarks, failure, stop) and, per ring page, the
// row count of the leaf handed over and the location it was written at. A slot is reused only
// after the tree took its location, which it does before the ring page can be reused.

import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { invariant } from '../errors.js';
import { packageRoot } from '../native.js';
import { utf8Decoder } from '../util/utf8.js';
import type { FlankGeometry } from '../tree/flank.js';
import { Control, type DurableLeaf, type LeafWriter, workerFailure } from './leaf-writer.js';

export interface WorkerConfig {
  readonly flankPath: string;
  readonly leafPath: string;
  readonly storeId: Uint8Array;
  readonly streamId: number;
  readonly geometry: FlankGeometry;
  readonly schema: Uint8Array;
  readonly firstLeaf: number;
  readonly control: SharedArrayBuffer;
  readonly counts: SharedArrayBuffer;
  readonly locations: SharedArrayBuffer;
  readonly failure: SharedArrayBuffer;
}

const WAIT_SLICE_MS = 50;

export class WorkerLeafWriter implements LeafWriter {
  private readonly control: Int32Array;
  private readonly counts: Int32Array;
  private readonly locations: Float64Array;
  private readonly failureText: Uint8Array;
  private worker: Worker | undefined;
  private startScheduled = false;
  private readonly config: WorkerConfig;
  private taken: number;

  constructor(settings: Omit<WorkerConfig, 'control' | 'counts' | 'locations' | 'failure'>) {
    const ring = settings.geometry.ringPages;
    const config: WorkerConfig = {
      ...settings,
      control: new SharedArrayBuffer(Control.Words * 4),
      counts: new SharedArrayBuffer(ring * 4),
      locations: new SharedArrayBuffer(ring * 16),
      failure: new SharedArrayBuffer(1024),
    };
    this.control = new Int32Array(config.control);
    this.counts = new Int32Array(config.counts);
    this.locations = new Float64Array(config.locations);
    this.failureText = new Uint8Array(config.failure);
    this.control[Control.Submitted] = this.control[Control.Durable] = this.taken = settings.firstLeaf;
    this.config = config;
  }

  submit(leafId: number, count: number): void {
    this.throwIfFailed();
    this.startSoon();
    invariant(leafId === Atomics.load(this.control, Control.Submitted), () => `leaf ${leafId} submitted out of order`);
    this.counts[leafId % this.counts.length] = count;
    Atomics.store(this.control, Control.Submitted, leafId + 1);
    Atomics.notify(this.control, Control.Submitted);
  }

  takeDurable(until?: number): DurableLeaf[] {
    invariant(until === undefined || until <= Atomics.load(this.control, Control.Submitted), () => `waiting for leaf ${until! - 1}, which was never handed over: it would never become durable`);
    // A caller that waits cannot leave the start to the event loop.
    if (until !== undefined && until > Atomics.load(this.control, Control.Durable)) this.startOnce();
    for (;;) {
      this.throwIfFailed();
      const durable = Atomics.load(this.control, Control.Durable);
      if (until === undefined || durable >= until) break;
      Atomics.wait(this.control, Control.Durable, durable, WAIT_SLICE_MS);
    }
    const durable = Atomics.load(this.control, Control.Durable);
    const leaves: DurableLeaf[] = [];
    for (let leafId = this.taken; leafId < durable; leafId++) {
      const slot = (leafId % this.counts.length) * 2;
      leaves.push({ leafId, location: { offset: this.locations[slot]!, length: this.locations[slot + 1]! } });
    }
    this.taken = durable;
    return leaves;
  }

  /**
   * Starting a thread costs the caller milliseconds: the first hand-off - often of the leaves a
   * crash left in the ring, by the first append that closes a leaf - starts it from the event loop
   * instead; takeDurable() starts it at once when it must wait. A store that only reads, or has
   * not filled a leaf yet, never pays it.
   */
  private startSoon(): void {
    if (this.worker !== undefined || this.startScheduled) return;
    this.startScheduled = true;
    setImmediate(() => this.startOnce());
  }

  private startOnce(): void {
    if (this.worker !== undefined || Atomics.load(this.control, Control.Stop) !== 0) return;
    // Workers run compiled JavaScript: the tests run this module from src/, the worker from dist/.
    this.worker = new Worker(join(packageRoot(), 'dist', 'src', 'ssd', 'leaf-writer-worker.js'), { workerData: this.config });
    this.worker.unref();
  }

  /** Asks the worker to stop; it wakes, closes its files and ends on its own (it is unref'd). */
  close(): void {
    Atomics.store(this.control, Control.Stop, 1);
    Atomics.notify(this.control, Control.Submitted);
  }

  private throwIfFailed(): void {
    if (Atomics.load(this.control, Control.Failed) === 0) return;
    const text = utf8Decoder.decode(this.failureText).replace(/\0+$/, '');
    throw workerFailure(JSON.parse(text) as { code: string; syscall: string; path: string; message: string });
  }
}
