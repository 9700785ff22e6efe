import { describe, expect, it } from 'vitest';
import { IoError } from '../src/errors.js';
import { SimulatedMedia } from '../src/media.js';
import { Store } from '../src/store.js';
import type { Stream } from '../src/stream.js';
import { STOCK, type StockEvent, StockModel } from './model.js';

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
    checkReadOnly(store, stream, run.acknowledged);
  }
  try {
    store.close();
  } catch (err) {
    expect(err, 'close after a fault').toBeInstanceOf(IoError);
  }
  return run;
}

/** After an I/O error every writing method refuses with READ_ONLY and every reading one still answers. */
function checkReadOnly(store: Store, stream: Stream, acknowledged: number): void {
  for (const write of [() => stream.append(event(1_000_000)), () => stream.appendBatch([event(1_000_000)]), () => stream.append(event(0)), () => stream.mergeLateEvents()]) {
    expect(write).toThrow(expect.objectContaining({ code: 'READ_ONLY' }));
  }
  const events = [...stream.replay()];
  expect(events.length).toBeGreaterThanOrEqual(acknowledged);
  expect(stream.aggregate(-Infinity, Infinity).count).toBe(events.length);
  expect(stream.get(3)).toEqual(events.filter((e) => e.ts === 3));
  expect(stream.asOf(Infinity)).toEqual(events.at(-1));
  expect([...stream.range(0, 10, { where: { price: [0, 100] } })].length).toBeGreaterThan(0);
  expect(stream.stats().events).toBe(events.length);
  expect(stream.verify()).toEqual([]);
  stream.flush();
  const snapshot = store.snapshot();
  expect([...snapshot.stream('stock').replay()]).toEqual(events);
  snapshot.close();
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

/** A store of a few hundred leaves, closed cleanly, reopened with no cache so queries read the file. */
function storeToRead(): { media: SimulatedMedia; events: StockEvent[] } {
  const media = new SimulatedMedia();
  const store = Store.openOn(media, OPTIONS, FRESH);
  const stream = store.createStream('stock', STOCK);
  const events = Array.from({ length: 20 }, (_, b) => batch(b)).flat();
  stream.appendBatch(events);
  store.close();
  return { media, events };
}

describe('I/O faults of the leaf file at every step', () => {
  it('a failed write or fdatasync during a merge of late events loses none of them, and the merge can be done after reopening', () => {
    let injected = 0;
    for (const fault of ['write', 'sync'] as const) {
      for (let step = 1; step <= 12; step++) {
        const media = new SimulatedMedia();
        const store = Store.openOn(media, { ...OPTIONS, oooQueueBytes: 4096 * 32 }, FRESH);
        const stream = store.createStream('stock', STOCK);
        const model = new StockModel();
        const add = (e: StockEvent) => {
          stream.append(e);
          model.append(e);
        };
        for (let i = 0; i < 600; i++) {
          add(event(2 * i));
          if (i % 5 === 4) add({ ...event(2 * i), ts: (i * 37) % (2 * i), seq: 10_000 + i });
        }
        stream.flush();
        const file = media.files.get('stream-0.leaves')!;
        if (fault === 'write') file.failWriteAt(step);
        else file.failSyncAt(step);
        try {
          stream.mergeLateEvents();
          store.close();
        } catch (err) {
          expect(err, `${fault} ${step}`).toBeInstanceOf(IoError);
          injected++;
          checkReadOnly(store, stream, model.events.length);
        }
        for (const after of [media.restart(), media.crash(step)]) {
          const reopened = Store.openOn(after, OPTIONS, FRESH);
          const recovered = reopened.stream('stock');
          expect([...recovered.replay()], `${fault} ${step}`).toEqual(model.events);
          expect(recovered.verify({ full: true })).toEqual([]);
          recovered.mergeLateEvents();
          expect([...recovered.replay()], `${fault} ${step}, merged after reopening`).toEqual(model.events);
          reopened.close();
        }
      }
    }
    expect(injected, 'the merges must reach the injected faults').toBeGreaterThan(5);
  });


  for (const code of ['EIO', 'ESHORTREAD'] as const) {
    it(`a failed read (${code}) surfaces as IoError to that query only; the store stays writable and whole`, () => {
      const { media, events } = storeToRead();
      let injected = 0;
      for (let step = 1; step <= 30; step++) {
        const reopened = media.restart();
        const store = Store.openOn(reopened, { ...OPTIONS, cacheBytes: 0 }, FRESH);
        const stream = store.stream('stock');
        reopened.files.get('stream-0.leaves')!.failReadAt(step, code);
        const queries = [() => stream.aggregate(100, 600).count, () => stream.get(250).length, () => [...stream.range(0, 700)].length, () => stream.asOf(400)?.ts];
        let failed = false;
        for (const query of queries) {
          try {
            query();
          } catch (err) {
            expect(err, `read ${step}`).toBeInstanceOf(IoError);
            expect((err as IoError).code).toBe(code);
            failed = true;
          }
        }
        if (failed) injected++;
        expect([...stream.replay()], `after read fault ${step}`).toEqual(events);
        stream.append(event(events.length));
        expect(stream.verify({ full: true })).toEqual([]);
        store.close();
      }
      expect(injected, 'the queries must reach the injected faults').toBeGreaterThan(5);
    });
  }


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
