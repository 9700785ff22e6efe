// Who turns closed leaves into durable leaf records. The tree hands a leaf over once its rows sit
// complete in its PMem ring page; the writer encodes, compresses, appends and fdatasyncs it, and
// reports it durable with its location. Only then may the tree set its translation slot and
// reuse its ring page.
//
//   SyncLeafWriter    does the work on the caller's thread, fdatasyncing every `syncEvery`
//                     leaves; deterministic, so the simulated-crash tests use it.
//   WorkerLeafWriter  (leaf-writer-worker.ts) does it on a worker thread, so ingest never waits
//                     on compression or fdatasync - only on a full ring.

import { IoError } from '../errors.js';
import type { Lineage } from '../tree/flank.js';
import type { LeafLocation, LeafSink } from './leaf-file.js';

export interface DurableLeaf {
  readonly leafId: number;
  readonly location: LeafLocation;
}

export interface LeafWriter {
  /** Hands over closed leaf `leafId` (the next in sequence), whose `count` rows are in its ring page. */
  submit(leafId: number, count: number): void;
  /**
   * The leaves that became durable since the last call, in id order. Blocks until every leaf
   * below `until` is durable, when given; throws the writer's IoError if it failed.
   */
  takeDurable(until?: number): DurableLeaf[];
  /** Stops the writer. Leaves it has not reported durable are still in the ring for recovery. */
  close(): void;
}

/** A ring page as the writer reads it: the leaf's rows and, for a merge's leaf, its lineage. */
export type RingPage = (leafId: number, count: number) => { rows: Uint8Array; lineage: Lineage | undefined };

export class SyncLeafWriter implements LeafWriter {
  private written: DurableLeaf[] = [];
  private durable: DurableLeaf[] = [];

  constructor(
    private readonly sink: LeafSink,
    private readonly ringPage: RingPage,
    private readonly syncEvery: number,
  ) {}

  submit(leafId: number, count: number): void {
    const { rows, lineage } = this.ringPage(leafId, count);
    this.written.push({ leafId, location: this.sink.append(leafId, rows, count, lineage) });
    if (this.written.length >= this.syncEvery) this.sync();
  }

  takeDurable(until?: number): DurableLeaf[] {
    if (until !== undefined && this.written.some((leaf) => leaf.leafId < until)) this.sync();
    const taken = this.durable;
    this.durable = [];
    return taken;
  }

  /** Leaves written but not synced (after an I/O failure) stay in their ring pages: recovery writes them. */
  close(): void {
    this.written = [];
  }

  private sync(): void {
    this.sink.sync();
    this.durable.push(...this.written);
    this.written = [];
  }
}

/** Slots of the shared control block between the tree and its worker. */
export const enum Control {
  /** Leaves below this id have been submitted. */
  Submitted = 0,
  /** Leaves below this id are durable. */
  Durable = 1,
  /** Non-zero once the worker failed; the message arrives by postMessage. */
  Failed = 2,
  /** Set to ask the worker to stop. */
  Stop = 3,
  Words = 4,
}

/** Turns a failure reported by the worker into the IoError it was. */
export function workerFailure(message: { code: string; syscall: string; path: string; message: string }): IoError {
  return new IoError(message.code, message.syscall, message.path, `leaf writer: ${message.message}`);
}
