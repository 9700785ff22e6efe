import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { type EventIterator, type Snapshot, type Store, type Stream, open } from '../src/index.js';
import { STOCK, type StockEvent, StockModel, expectAggregatesClose } from './model.js';

// Snapshots and iterators interleaved with appends (in order and late) and merges: each must keep
// answering exactly as the model did when it was taken (Aspen's snapshot isolation, seed 003).

const SMALL_TREE = { nodeSize: 1024, spare: 0.5, ringLeaves: 4, syncEvery: 2, oooQueueBytes: 30 * 32, flushEvery: 5 } as const;

const roots: string[] = [];
afterAll(() => roots.forEach((root) => rmSync(root, { recursive: true, force: true })));

interface Taken {
  readonly snapshot: Snapshot;
  readonly events: StockEvent[];
}

interface Paused {
  readonly iterator: EventIterator;
  readonly expected: StockEvent[];
  read: number;
}

interface Real {
  readonly store: Store;
  readonly stream: Stream;
  readonly snapshots: Taken[];
  readonly iterators: Paused[];
}

const eventAt = (ts: number, seq: number, price: number): StockEvent => ({ ts, seq, symbol: seq % 10, price, volume: 1 + (seq % 100) });

class AppendCommand implements fc.Command<StockModel, Real> {
  constructor(
    readonly fractions: number[],
    readonly batch: boolean,
  ) {}
  check = () => true;
  run(model: StockModel, real: Real): void {
    const span = (model.newest ?? 0) + 3;
    let seq = model.events.length;
    // Fractions above 1 are in-order events after the newest; the rest are late.
    const events = this.fractions.map((f) => eventAt(f > 1 ? span + Math.floor(f) : Math.floor(f * span), seq++, (seq % 500) / 4));
    if (this.batch) real.stream.appendBatch(events);
    else events.forEach((e) => real.stream.append(e));
    events.forEach((e) => model.append(e));
  }
  toString = () => `append(${this.batch ? 'batch' : 'single'}: ${this.fractions.map((f) => f.toFixed(2)).join(' ')})`;
}

class MergeCommand implements fc.Command<StockModel, Real> {
  check = () => true;
  run(_model: StockModel, real: Real): void {
    real.stream.mergeLateEvents();
  }
  toString = () => 'merge';
}

class SnapshotCommand implements fc.Command<StockModel, Real> {
  check = () => true;
  run(model: StockModel, real: Real): void {
    real.snapshots.push({ snapshot: real.store.snapshot(), events: [...model.events] });
  }
  toString = () => 'snapshot';
}

class IterateCommand implements fc.Command<StockModel, Real> {
  constructor(readonly from: number) {}
  check = () => true;
  run(model: StockModel, real: Real): void {
    const from = Math.floor(this.from * ((model.newest ?? 0) + 1));
    real.iterators.push({ iterator: real.stream.range(from, Infinity), expected: model.range(from, Infinity), read: 0 });
  }
  toString = () => `iterate(from ${this.from.toFixed(2)})`;
}

class AdvanceCommand implements fc.Command<StockModel, Real> {
  constructor(readonly steps: number) {}
  check = () => true;
  run(_model: StockModel, real: Real): void {
    for (const paused of real.iterators) {
      for (let k = 0; k < this.steps && paused.read < paused.expected.length; k++) expect(paused.iterator.next().value).toEqual(paused.expected[paused.read++]);
    }
  }
  toString = () => `advance(${this.steps})`;
}

class CheckSnapshotsCommand implements fc.Command<StockModel, Real> {
  constructor(readonly at: number) {}
  check = () => true;
  run(_model: StockModel, real: Real): void {
    for (const { snapshot, events } of real.snapshots) {
      const reader = snapshot.stream('stock');
      const fixed = new StockModel();
      events.forEach((e) => fixed.append(e));
      expect([...reader.replay()]).toEqual(events);
      const ts = Math.floor(this.at * ((fixed.newest ?? 0) + 1));
      expect(reader.asOf(ts)).toEqual(fixed.asOf(ts));
      expect(reader.get(ts)).toEqual(fixed.range(ts, ts));
      expectAggregatesClose(reader.aggregate(0, ts), fixed.aggregate(0, ts));
    }
  }
  toString = () => `checkSnapshots(${this.at.toFixed(2)})`;
}

const fraction = fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 2, max: 4 }));
const commands = [
  fc.tuple(fc.array(fraction, { minLength: 1, maxLength: 60 }), fc.boolean()).map(([fractions, batch]) => new AppendCommand(fractions, batch)),
  fc.constant(new MergeCommand()),
  fc.constant(new SnapshotCommand()),
  fc.double({ min: 0, max: 1, noNaN: true }).map((from) => new IterateCommand(from)),
  fc.integer({ min: 1, max: 40 }).map((steps) => new AdvanceCommand(steps)),
  fc.double({ min: 0, max: 1, noNaN: true }).map((at) => new CheckSnapshotsCommand(at)),
];

describe('snapshots and iterators', () => {
  it('see exactly the events committed before them while appends and merges go on', () => {
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 40, size: '+1' }), (cmds) => {
        const root = mkdtempSync(join(tmpdir(), 'chronotier-snapshot-'));
        const pmemDir = mkdtempSync('/dev/shm/chronotier-snapshot-');
        roots.push(root, pmemDir);
        const store = open(join(root, 'store'), { pmemDir, ...SMALL_TREE });
        const real: Real = { store, stream: store.createStream('stock', STOCK), snapshots: [], iterators: [] };
        try {
          fc.modelRun(() => ({ model: new StockModel(), real }), cmds);
          new AdvanceCommand(1e9).run(new StockModel(), real);
          new CheckSnapshotsCommand(0.5).run(new StockModel(), real);
        } finally {
          real.snapshots.forEach(({ snapshot }) => snapshot.close());
          store.close();
        }
      }),
      { numRuns: Number(process.env.MODEL_RUNS ?? 40), verbose: 1 },
    );
  });

  it('refuses reads after the snapshot or the store is closed, and releases what it pinned', () => {
    const root = mkdtempSync(join(tmpdir(), 'chronotier-snapshot-'));
    const pmemDir = mkdtempSync('/dev/shm/chronotier-snapshot-');
    roots.push(root, pmemDir);
    const store = open(join(root, 'store'), { pmemDir, ...SMALL_TREE });
    const stream = store.createStream('stock', STOCK);
    stream.append(eventAt(10, 0, 1));
    stream.flush();
    stream.append(eventAt(5, 1, 2)); // late, behind a flushed row: queued
    const snapshot = store.snapshot();
    const reader = snapshot.stream('stock');
    const iterator = reader.replay();
    expect(stream.stats().outOfOrder.pinnedReaders).toBe(1);
    expect(() => snapshot.stream('nope')).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    snapshot.close();
    expect(stream.stats().outOfOrder.pinnedReaders).toBe(0);
    for (const call of [() => reader.replay(), () => reader.aggregate(0, 10), () => iterator.next(), () => snapshot.streams()]) {
      expect(call).toThrow(expect.objectContaining({ code: 'SNAPSHOT_CLOSED' }));
    }
    const another = store.snapshot();
    store.close();
    expect(() => another.stream('stock')).toThrow(expect.objectContaining({ code: 'STORE_CLOSED' }));
  });
});
