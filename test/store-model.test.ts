import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { open, type Store, type Stream } from '../src/index.js';
import { STOCK, type StockEvent, StockModel, expectAggregatesClose } from './model.js';
import { NODE_STORAGE_KINDS } from '../src/tree/node-storage.js';

// Small nodes and a large spare fraction make leaves, index nodes and the PMem ring turn over
// after a few dozen events, so short command sequences exercise every structural path.
// A queue of 40 slots fills (and merges) every few dozen late events.
const SMALL_TREE = { nodeSize: 1024, spare: 0.5, ringLeaves: 4, syncEvery: 2, oooQueueBytes: 40 * 32 } as const;

const roots: string[] = [];
afterAll(() => roots.forEach((root) => rmSync(root, { recursive: true, force: true })));

function newStoreDir(): { dir: string; pmemDir: string } {
  const root = mkdtempSync(join(tmpdir(), 'chronotier-model-'));
  const pmemRoot = mkdtempSync('/dev/shm/chronotier-model-');
  roots.push(root, pmemRoot);
  return { dir: join(root, 'store'), pmemDir: pmemRoot };
}

interface Real {
  store: Store;
  stream: Stream;
  readonly dir: string;
  readonly pmemDir: string;
  readonly flushEvery: number;
}

/** An event whose `ts` is the gap to the previous one: 0 (equal timestamps) to 3. */
const relativeEvent: fc.Arbitrary<StockEvent> = fc.record({
  ts: fc.integer({ min: 0, max: 3 }),
  seq: fc.constant(0),
  symbol: fc.integer({ min: 0, max: 9 }),
  price: fc.integer({ min: 1, max: 100_000 }).map((cents) => cents / 100),
  volume: fc.integer({ min: 1, max: 10_000 }),
});

const eventsAfter = (min: number, max: number) => fc.array(relativeEvent, { minLength: min, maxLength: max });

function absolutize(model: StockModel, relative: StockEvent[]): StockEvent[] {
  let ts = model.newest ?? 0;
  let seq = model.events.length;
  return relative.map((e) => ({ ...e, ts: (ts += e.ts), seq: seq++ }));
}

/** Events anywhere in [0, newest + 2]: mostly late, some in order; `at` is a fraction of that span. */
const lateEvent: fc.Arbitrary<StockEvent> = fc.record({
  ts: fc.double({ min: 0, max: 1, noNaN: true }),
  seq: fc.constant(0),
  symbol: fc.integer({ min: 0, max: 9 }),
  price: fc.integer({ min: 1, max: 100_000 }).map((cents) => cents / 100),
  volume: fc.integer({ min: 1, max: 10_000 }),
});

type AppendMode = 'single' | 'batch' | 'columns';

function appendAll(real: Real, events: StockEvent[], mode: AppendMode): void {
  if (mode === 'single') events.forEach((e) => real.stream.append(e));
    else if (mode === 'batch') real.stream.appendBatch(events);
    else {
      real.stream.appendBatch({
        ts: events.map((e) => e.ts),
        seq: Uint32Array.from(events, (e) => e.seq),
        symbol: Uint32Array.from(events, (e) => e.symbol),
        price: Float64Array.from(events, (e) => e.price),
        volume: Uint32Array.from(events, (e) => e.volume),
      });
  }
}

class AppendCommand implements fc.Command<StockModel, Real> {
  constructor(readonly relative: StockEvent[], readonly mode: AppendMode) {}
  check = () => true;
  run(model: StockModel, real: Real): void {
    const events = absolutize(model, this.relative);
    appendAll(real, events, this.mode);
    events.forEach((e) => model.append(e));
    expect(real.stream.stats().events).toBe(model.events.length);
  }
  toString = () => `append(${this.mode}, ${this.relative.length})`;
}

class LateAppendCommand implements fc.Command<StockModel, Real> {
  constructor(readonly fractions: StockEvent[], readonly mode: AppendMode) {}
  check = () => true;
  run(model: StockModel, real: Real): void {
    const span = (model.newest ?? 0) + 2;
    let seq = model.events.length;
    const events = this.fractions.map((e) => ({ ...e, ts: Math.floor(e.ts * span), seq: seq++ }));
    appendAll(real, events, this.mode);
    events.forEach((e) => model.append(e));
    expect([...real.stream.replay()]).toEqual(model.events);
  }
  toString = () => `late(${this.mode}, ${this.fractions.map((e) => e.ts.toFixed(3)).join(' ')})`;
}

class MergeCommand implements fc.Command<StockModel, Real> {
  check = () => true;
  run(model: StockModel, real: Real): void {
    real.stream.mergeLateEvents();
    expect(real.stream.stats().outOfOrder.queuedEvents).toBe(0);
    expect(real.stream.verify({ full: true })).toEqual([]);
    expect([...real.stream.replay()]).toEqual(model.events);
  }
  toString = () => 'merge';
}

class ReopenCommand implements fc.Command<StockModel, Real> {
  check = () => true;
  run(_model: StockModel, real: Real): void {
    real.store.close();
    real.store = open(real.dir, { pmemDir: real.pmemDir, flushEvery: real.flushEvery, ...SMALL_TREE });
    real.stream = real.store.stream('stock');
    expect(real.stream.verify({ full: true })).toEqual([]);
  }
  toString = () => 'reopen';
}

class FlushCommand implements fc.Command<StockModel, Real> {
  check = () => true;
  run(_model: StockModel, real: Real): void {
    real.stream.flush();
    expect(real.stream.stats().unflushedEvents).toBe(0);
  }
  toString = () => 'flush';
}

class QueryCommand implements fc.Command<StockModel, Real> {
  constructor(
    readonly a: number,
    readonly b: number,
    readonly price: [number, number],
    readonly limit: number,
  ) {}
  check = () => true;
  run(model: StockModel, real: Real): void {
    const span = (model.newest ?? 0) + 2;
    const from = Math.floor(this.a * span) - 1;
    const to = from + Math.floor(this.b * span);
    expect([...real.stream.range(from, to)]).toEqual(model.range(from, to));
    expect([...real.stream.range(from, to, { where: { price: this.price }, limit: this.limit })]).toEqual(model.range(from, to, { price: this.price }, this.limit));
    expect(real.stream.get(from)).toEqual(model.range(from, from));
    expect(real.stream.asOf(to)).toEqual(model.asOf(to));
    expectAggregatesClose(real.stream.aggregate(from, to), model.aggregate(from, to));
  }
  toString = () => `query(${this.a.toFixed(2)}, ${this.b.toFixed(2)}, price ${this.price}, limit ${this.limit})`;
}

const commands = [
  fc.tuple(eventsAfter(1, 40), fc.constantFrom('single' as const, 'batch' as const, 'columns' as const)).map(([events, mode]) => new AppendCommand(events, mode)),
  eventsAfter(100, 400).map((events) => new AppendCommand(events, 'columns')),
  fc.tuple(fc.array(lateEvent, { minLength: 1, maxLength: 30 }), fc.constantFrom('single' as const, 'batch' as const, 'columns' as const)).map(([events, mode]) => new LateAppendCommand(events, mode)),
  fc.constant(new MergeCommand()),
  fc.constant(new FlushCommand()),
  fc.constant(new ReopenCommand()),
  fc
    .tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 50 }))
    .map(([a, b, p1, p2, limit]) => new QueryCommand(a, b, [Math.min(p1, p2), Math.max(p1, p2)], limit)),
];

const queryCommand = fc
  .tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 50 }))
  .map(([a, b, p1, p2, limit]) => new QueryCommand(a, b, [Math.min(p1, p2), Math.max(p1, p2)], limit));

/** Mostly late events, merged by a full queue or on demand, checked after every step. */
const lateCommands = [
  eventsAfter(50, 300).map((events) => new AppendCommand(events, 'columns')),
  fc.tuple(fc.array(lateEvent, { minLength: 1, maxLength: 60 }), fc.constantFrom('single' as const, 'batch' as const, 'columns' as const)).map(([events, mode]) => new LateAppendCommand(events, mode)),
  fc.tuple(fc.array(lateEvent, { minLength: 1, maxLength: 10 }), fc.constant('single' as const)).map(([events, mode]) => new LateAppendCommand(events, mode)),
  fc.constant(new MergeCommand()),
  fc.constant(new ReopenCommand()),
  queryCommand,
  queryCommand,
];

describe('store against a sorted-array model', () => {
  it('keeps late events in timestamp order, equal timestamps in arrival order, through merges and reopens', () => {
    fc.assert(
      fc.property(eventsAfter(50, 200), fc.commands(lateCommands, { maxCommands: 30, size: '+1' }), fc.constantFrom(1, 7, 25), fc.constantFrom(...NODE_STORAGE_KINDS), (initial, cmds, flushEvery, nodeStorage) => {
        const { dir, pmemDir } = newStoreDir();
        const store = open(dir, { pmemDir, flushEvery, ...SMALL_TREE });
        const real: Real = { store, stream: store.createStream('stock', STOCK, { nodeStorage }), dir, pmemDir, flushEvery };
        try {
          fc.modelRun(() => {
            const model = new StockModel();
            new AppendCommand(initial, 'columns').run(model, real);
            return { model, real };
          }, cmds);
          expect(real.stream.verify({ full: true })).toEqual([]);
        } finally {
          real.store.close();
        }
      }),
      { numRuns: Number(process.env.MODEL_RUNS ?? 40), verbose: 1 },
    );
  });

  it('answers every query like the model, across in-order and late appends, merges, flushes and reopens', () => {
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 40 }), fc.constantFrom(1, 7, 25), fc.constantFrom(...NODE_STORAGE_KINDS), (cmds, flushEvery, nodeStorage) => {
        const { dir, pmemDir } = newStoreDir();
        const store = open(dir, { pmemDir, flushEvery, ...SMALL_TREE });
        const real: Real = { store, stream: store.createStream('stock', STOCK, { nodeStorage }), dir, pmemDir, flushEvery };
        try {
          fc.modelRun(() => ({ model: new StockModel(), real }), cmds);
          const model = new StockModel();
          for (const e of real.stream.replay()) model.append(e as unknown as StockEvent);
          expect(model.events.length).toBe(real.stream.stats().events);
        } finally {
          real.store.close();
        }
      }),
      { numRuns: Number(process.env.MODEL_RUNS ?? 40), verbose: 1 },
    );
  });

  it('builds a multi-level tree and answers across every level', () => {
    const { dir, pmemDir } = newStoreDir();
    const store = open(dir, { pmemDir, ...SMALL_TREE });
    const stream = store.createStream('stock', STOCK);
    const model = new StockModel();
    const n = 20_000;
    const events = Array.from({ length: n }, (_, i) => ({ ts: Math.floor(i / 3), seq: i, symbol: i % 10, price: (i % 997) / 4, volume: 1 + (i % 500) }));
    for (let i = 0; i < n; i += 1000) stream.appendBatch(events.slice(i, i + 1000));
    events.forEach((e) => model.append(e));
    expect(stream.stats().height).toBeGreaterThanOrEqual(3);
    for (const [from, to] of [
      [0, n],
      [17, 17],
      [100, 4000],
      [6665, 6666],
      [-5, 2],
    ] as const) {
      expect([...stream.range(from, to)]).toEqual(model.range(from, to));
      expectAggregatesClose(stream.aggregate(from, to), model.aggregate(from, to));
      expect(stream.asOf(to)).toEqual(model.asOf(to));
    }
    expect([...stream.range(0, n, { where: { price: [10, 10.5] } })]).toEqual(model.range(0, n, { price: [10, 10.5] }));
    store.close();
    const reopened = open(dir, { pmemDir, ...SMALL_TREE });
    expect([...reopened.stream('stock').replay()]).toEqual(model.events);
    reopened.close();
  });
});
