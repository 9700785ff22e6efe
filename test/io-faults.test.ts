import { describe, expect, it } from 'vitest';
import { IoError } from '../src/errors.js';
import { SimulatedMedia } from '../src/media.js';
import { Store } from '../src/store.js';
import type { Stream } from '../src/stream.js';
import { STOCK, type StockEvent } from './model.js';

// Every I/O fault of the leaf file - a failed write, a failed fdatasync, a full disk - injected
// at every step of a short workload. Each must surface as a typed IoError to the caller that
// triggered it, turn the stream read-only, lose nothing acknowledged, and leave a store that
// opens and verifies after a process crash or a power failure.

const OPTIONS = { flushEvery: 5, nodeSize: 1024, spare: 0.5, ringLeaves: 8, syncEvery: 2 } as const;
const FRESH = { storeId: new Uint8Array(16).fill(2), pmemDir: '/simulated' };
const BATCHES = 24;
const event = (i: number): StockEvent => ({ ts: i, seq: i, symbol: i % 7, price: (i % 500) / 4, volume: 1 + (i % 90) });
const batch = (b: number) => Array.from({ length: 37 }, (_, i) => event(b * 37 + i));

type Fault = 'write' | 'sync' | 'space';

interface Run {
  acknowledged: number;
  failure: unknown;
  media: SimulatedMedia;
}

function runWithFault(fault: Fault, step: number): Run {
  const media = new SimulatedMedia();
  const store = Store.openOn(media, OPTIONS, FRESH);
  const stream = store.createStream('stock', STOCK);
  const file = media.files.get('stream-0.leaves')!;
  if (fault === 'write') file.failWriteAt(step);
  if (fault === 'sync') file.failSyncAt(step);
  if (fault === 'space') file.spaceLimit(file.size + step * 150);
  const run: Run = { acknowledged: 0, failure: undefined, media };
  try {
    for (let b = 0; b < BATCHES; b++) {
      if (b % 2 === 0) stream.appendBatch(batch(b));
      else batch(b).forEach((e) => stream.append(e));
      stream.flush();
      run.acknowledged = stream.stats().events;
    }
  } catch (err) {
    run.failure = err;
    checkReadOnly(stream, run.acknowledged);
  }
  try {
    store.close();
  } catch (err) {
    expect(err, 'close after a fault').toBeInstanceOf(IoError);
  }
  return run;
}

function checkReadOnly(stream: Stream, acknowledged: number): void {
  expect(() => stream.append(event(1_000_000))).toThrow(expect.objectContaining({ code: 'READ_ONLY' }));
  expect(() => stream.appendBatch([event(1_000_000)])).toThrow(expect.objectContaining({ code: 'READ_ONLY' }));
  expect([...stream.replay()].length).toBeGreaterThanOrEqual(acknowledged);
}

function checkReopened(media: SimulatedMedia, acknowledged: number, label: string): void {
  const store = Store.openOn(media, OPTIONS, FRESH);
  try {
    const stream = store.stream('stock');
    const events = [...stream.replay()];
    expect(events.length, `${label}: ${events.length} events, ${acknowledged} acknowledged`).toBeGreaterThanOrEqual(acknowledged);
    expect(events, label).toEqual(Array.from({ length: events.length }, (_, i) => event(i)));
    expect(stream.verify({ full: true }), label).toEqual([]);
    stream.append(event(events.length));
  } finally {
    store.close();
  }
}

describe('I/O faults of the leaf file at every step', () => {
  for (const fault of ['write', 'sync', 'space'] as const) {
    it(`a failed ${fault} surfaces as IoError, makes the stream read-only and loses nothing`, () => {
      let injected = 0;
      for (let step = 1; step <= 40; step++) {
        const run = runWithFault(fault, step);
        if (run.failure === undefined) continue;
        injected++;
        expect(run.failure, `${fault} at step ${step}`).toBeInstanceOf(IoError);
        expect(['EIO', 'ENOSPC']).toContain((run.failure as IoError).code);
        checkReopened(run.media.restart(), run.acknowledged, `${fault} at step ${step}, then kill -9`);
        checkReopened(run.media.crash(step), run.acknowledged, `${fault} at step ${step}, then power failure`);
      }
      expect(injected, 'the workload must reach the injected faults').toBeGreaterThan(10);
    });
  }
});
