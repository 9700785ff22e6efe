import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { open } from '../src/index.js';
import { STOCK } from './model.js';

// better-sqlite3's integrity matrix, for chronotier: what works while an iterator is open,
// what an open iterator sees while ingestion goes on, and what every handle does after close.

const roots: string[] = [];
afterAll(() => roots.forEach((root) => rmSync(root, { recursive: true, force: true })));

function fresh(leafWriter: 'worker' | 'inline') {
  const root = mkdtempSync(join(tmpdir(), 'chronotier-life-'));
  const pmemDir = mkdtempSync('/dev/shm/chronotier-life-');
  roots.push(root, pmemDir);
  // A tiny ring: appends during an iteration reuse the pages the iterator started in.
  const db = open(join(root, 'store'), { pmemDir, leafWriter, nodeSize: 1024, ringLeaves: 4, syncEvery: 2 });
  return { db, stock: db.createStream('stock', STOCK) };
}

const event = (i: number) => ({ ts: i, seq: i, symbol: i % 5, price: (i % 300) / 2, volume: 1 + (i % 40) });
const events = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => event(from + k));

describe('lifecycle', () => {
  for (const leafWriter of ['worker', 'inline'] as const) {
    it(`an open iterator sees exactly the events that existed when it was created (${leafWriter} writer)`, async () => {
      const { db, stock } = fresh(leafWriter);
      stock.appendBatch(events(0, 1000));
      const range = stock.range(0, Number.MAX_SAFE_INTEGER);
      const replay = stock.replay();
      // Paused inside the open leaf, whose ring page the appends below will reuse.
      const tail = stock.range(995, Number.MAX_SAFE_INTEGER);
      const tailSeen = [tail.next().value, tail.next().value];
      const seen = [range.next().value, range.next().value];
      const asyncSeen: unknown[] = [];
      const asyncIterator = replay[Symbol.asyncIterator]();
      asyncSeen.push((await asyncIterator.next()).value);
      stock.appendBatch(events(1000, 20_000));
      for (let i = 20_000; i < 20_100; i++) stock.append(event(i));
      stock.flush();
      for (const e of range) seen.push(e);
      for (const e of tail) tailSeen.push(e);
      expect(tailSeen).toEqual(events(995, 1000));
      for (let next = await asyncIterator.next(); next.done !== true; next = await asyncIterator.next()) asyncSeen.push(next.value);
      expect(seen).toEqual(events(0, 1000));
      expect(asyncSeen).toEqual(events(0, 1000));
      expect([...stock.replay()]).toEqual(events(0, 20_100));
      db.close();
    });
  }

  it('allows every method while an iterator is open, and an early close ends it', () => {
    const { db, stock } = fresh('inline');
    stock.appendBatch(events(0, 500));
    const iterator = stock.range(0, 499);
    iterator.next();
    stock.append(event(500));
    stock.flush();
    expect(stock.get(10)).toEqual([event(10)]);
    expect(stock.asOf(700)).toEqual(event(500));
    expect(stock.aggregate(0, 500).count).toBe(501);
    expect(stock.stats().events).toBe(501);
    expect(db.verify({ full: true })).toEqual({ stock: [] });
    const other = db.createStream('other', { v: 'f64' });
    other.append({ ts: 1, v: 2 });
    expect(db.streams().sort()).toEqual(['other', 'stock']);
    iterator.close();
    expect(iterator.next()).toEqual({ done: true, value: undefined });
    let broken = 0;
    for (const _ of stock.range(0, 499)) if (++broken === 3) break;
    expect([...stock.range(0, 2)]).toEqual(events(0, 3));
    db.close();
  });

  it('refuses everything after close, including iterators opened before, and close is idempotent', async () => {
    const { db, stock } = fresh('worker');
    stock.appendBatch(events(0, 300));
    const range = stock.range(0, 299);
    const asyncReplay = stock.replay()[Symbol.asyncIterator]();
    range.next();
    db.close();
    db.close();
    const calls: Array<() => unknown> = [
      () => stock.append(event(300)),
      () => stock.appendBatch([event(300)]),
      () => stock.flush(),
      () => stock.get(1),
      () => stock.asOf(1),
      () => stock.range(0, 1),
      () => stock.replay(),
      () => stock.aggregate(0, 1),
      () => stock.stats(),
      () => stock.verify(),
      () => range.next(),
      () => db.createStream('x', STOCK),
      () => db.stream('stock'),
      () => db.streams(),
      () => db.verify(),
    ];
    for (const call of calls) expect(call).toThrow(expect.objectContaining({ code: 'STORE_CLOSED', name: 'MisuseError' }));
    await expect(asyncReplay.next()).rejects.toThrow(expect.objectContaining({ code: 'STORE_CLOSED' }));
  });
});
