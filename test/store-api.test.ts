import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BoundsError, CorruptionError, MisuseError, open } from '../src/index.js';
import { STOCK, type StockEvent, StockModel } from './model.js';

const roots: string[] = [];
afterAll(() => roots.forEach((root) => rmSync(root, { recursive: true, force: true })));

function dirs(): { dir: string; pmemDir: string } {
  const root = mkdtempSync(join(tmpdir(), 'chronotier-api-'));
  const pmemDir = mkdtempSync('/dev/shm/chronotier-api-');
  roots.push(root, pmemDir);
  return { dir: join(root, 'store'), pmemDir };
}

const event = (ts: number) => ({ ts, seq: ts, symbol: 1, price: 2.5, volume: 3 });

/** A closed store of `events` in-order events whose flank file `damage` then changed. */
function storeWithDamagedFlank(events: number, damage: (bytes: Buffer) => void): { dir: string; pmemDir: string; flank: string } {
  const { dir, pmemDir } = dirs();
  const db = open(dir, { pmemDir, nodeSize: 1024 });
  db.createStream('stock', STOCK).appendBatch(Array.from({ length: events }, (_, i) => event(i)));
  db.close();
  const [storeDir] = readdirSync(pmemDir);
  const flank = join(pmemDir, storeDir!, 'stream-0.flank');
  const bytes = readFileSync(flank);
  damage(bytes);
  writeFileSync(flank, bytes);
  return { dir, pmemDir, flank };
}

describe('store API', () => {
  it('leaves the stream unchanged after any bad append', () => {
    const { dir, pmemDir } = dirs();
    const db = open(dir, { pmemDir });
    const stock = db.createStream('stock', STOCK);
    stock.appendBatch([event(1), event(2), event(3)]);
    const bad: Array<[() => void, unknown]> = [
      [() => stock.append({ ...event(4), price: NaN }), MisuseError],
      [() => stock.append({ ts: 4, seq: 1 }), MisuseError],
      [() => stock.append({ ...event(4), extra: 1 }), MisuseError],
      [() => stock.append({ ...event(4), ts: 4.5 }), BoundsError],
      [() => stock.append({ ...event(4), ts: 2 ** 54 }), BoundsError],
      [() => stock.append({ ...event(4), seq: 2 ** 33 }), BoundsError],
      [() => stock.append({ ...event(1), price: NaN }), MisuseError],
      [() => stock.append({ ...event(1), ts: 1.5 }), BoundsError],
      [() => stock.appendBatch([event(5), event(2), { ...event(1), volume: 2 ** 40 }]), BoundsError],
      [() => stock.appendBatch([event(4), event(5), { ...event(6), volume: -1 }]), BoundsError],
      [() => stock.appendBatch({ ts: [4, 5], seq: [1, 2], symbol: [1, 2], price: [1, 'x' as unknown as number], volume: [1, 2] }), MisuseError],
    ];
    for (const [append, error] of bad) expect(append).toThrow(error as never);
    expect([...stock.replay()]).toEqual([event(1), event(2), event(3)]);
    expect(stock.stats().events).toBe(3);
    db.close();
  });

  it('refuses every method after close with STORE_CLOSED', () => {
    const { dir, pmemDir } = dirs();
    const db = open(dir, { pmemDir });
    const stock = db.createStream('stock', STOCK);
    stock.append(event(1));
    const iterator = stock.range(0, 10);
    db.close();
    for (const call of [() => stock.append(event(2)), () => stock.get(1), () => stock.aggregate(0, 1), () => db.stream('stock'), () => db.streams(), () => iterator.next(), () => stock.stats()]) {
      expect(call).toThrow(expect.objectContaining({ code: 'STORE_CLOSED' }));
      expect(call).toThrow(TypeError);
    }
    db.close();
  });

  it('reopens streams with their schema, and refuses a second open of the same store', () => {
    const { dir, pmemDir } = dirs();
    const db = open(dir, { pmemDir });
    db.createStream('stock', STOCK);
    db.createStream('ticks', { v: 'i64' }, { timestamp: 'bigint' });
    expect(() => open(dir, { pmemDir })).toThrow(expect.objectContaining({ code: 'STORE_LOCKED' }));
    expect(() => db.createStream('stock', STOCK)).toThrow(expect.objectContaining({ code: 'ALREADY_EXISTS' }));
    expect(() => db.createStream('bad', { price: 'double' as never })).toThrow(expect.objectContaining({ code: 'INVALID_SCHEMA' }));
    db.stream('ticks').append({ ts: 2n ** 62n, v: -5n });
    db.close();
    const again = open(dir);
    expect(again.streams().sort()).toEqual(['stock', 'ticks']);
    expect(again.stream('ticks').get(2n ** 62n)).toEqual([{ ts: 2n ** 62n, v: -5n }]);
    expect(() => again.stream('nope')).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    again.close();
  });

  it('refuses to open as if empty when its PMem files vanished, and rebuilds from SSD when asked', () => {
    const { dir, pmemDir } = dirs();
    const db = open(dir, { pmemDir, nodeSize: 1024 });
    const all = Array.from({ length: 5000 }, (_, i) => event(i));
    db.createStream('stock', STOCK).appendBatch(all);
    const inOpenLeaf = db.stream('stock').stats().events - 34 * Math.floor(5000 / 34);
    db.close();
    rmSync(pmemDir, { recursive: true, force: true });
    expect(() => open(dir, { pmemDir })).toThrow(CorruptionError);
    expect(() => open(dir, { pmemDir })).toThrow(/missing.*rebuild: true/);
    const rebuilt = open(dir, { pmemDir, rebuild: true });
    const stock = rebuilt.stream('stock');
    const events = [...stock.replay()];
    // Every leaf on SSD comes back; only the open leaf, which lived in PMem alone, is lost.
    expect(events).toEqual(all.slice(0, events.length));
    expect(events.length).toBeGreaterThanOrEqual(5000 - Math.max(inOpenLeaf, 34));
    expect(rebuilt.rebuildReport()).toEqual([
      { stream: 'stock', leaves: expect.any(Number), events: events.length, lostEvents: undefined, lostEventsUnknownReason: 'the flank file is gone', damagedRecords: 0, skippedRecords: 0, skippedEvents: 0, cutBytes: 0, setAside: undefined },
    ]);
    expect(rebuilt.verify({ full: true })).toEqual({ stock: [] });
    expect(stock.aggregate(0, 5000).count).toBe(events.length);
    stock.append(event(events.length));
    rebuilt.close();
    const again = open(dir, { pmemDir });
    expect(again.rebuildReport()).toEqual([]);
    expect(again.stream('stock').stats().events).toBe(events.length + 1);
    again.close();
  });

  it('rebuilds a stream whose late events were merged: superseded leaves stay out, merged events come back once', () => {
    const { dir, pmemDir } = dirs();
    const db = open(dir, { pmemDir, nodeSize: 1024, oooQueueBytes: 200 * 32 });
    const stock = db.createStream('stock', STOCK);
    const model = new StockModel();
    const add = (e: StockEvent) => {
      stock.append(e);
      model.append(e);
    };
    let seq = 0;
    for (let i = 0; i < 6000; i++) {
      add({ ts: 2 * i, seq: seq++, symbol: 1, price: 2.5, volume: 1 });
      // A burst into the past every 100 events, and a late event somewhere every 7.
      if (i % 100 === 99) for (let k = 0; k < 60; k++) add({ ts: 2 * i - 150 + k, seq: seq++, symbol: 2, price: 1, volume: 2 });
      if (i % 7 === 6) add({ ts: (i * 7919) % (2 * i), seq: seq++, symbol: 3, price: 3, volume: 3 });
    }
    stock.mergeLateEvents();
    expect(stock.stats().outOfOrder.supersededLeaves).toBeGreaterThan(0);
    const merged = [...stock.replay()];
    expect(merged).toEqual(model.events);
    db.close();
    rmSync(pmemDir, { recursive: true, force: true });
    const rebuilt = open(dir, { pmemDir, rebuild: true });
    const events = [...rebuilt.stream('stock').replay()];
    // Everything but the open leaf at close (never written to SSD) comes back, each event once.
    expect(events).toEqual(merged.slice(0, events.length));
    expect(events.length).toBeGreaterThan(merged.length - 40);
    expect(rebuilt.verify({ full: true })).toEqual({ stock: [] });
    rebuilt.close();
  });

  it('refuses a damaged PMem file, and rebuilds the stream from SSD when asked', () => {
    const { dir, pmemDir, flank } = storeWithDamagedFlank(3000, (bytes) => (bytes[40] = bytes[40]! ^ 0xff));
    expect(() => open(dir, { pmemDir })).toThrow(expect.objectContaining({ code: 'CORRUPTION', file: flank }));
    const rebuilt = open(dir, { pmemDir, rebuild: true });
    expect(rebuilt.rebuildReport()[0]?.events).toBeGreaterThan(2900);
    expect(rebuilt.verify({ full: true })).toEqual({ stock: [] });
    rebuilt.close();
  });

  it("refuses a first leaf whose page header damage zeroed, instead of reading its flushed rows as none", () => {
    // Leaf 0's page header: count, CRC, leaf id, seed mark, lineage.
    const { dir, pmemDir } = storeWithDamagedFlank(5, (bytes) => bytes.fill(0, 1024, 1024 + 24));
    expect(() => open(dir, { pmemDir })).toThrow(/leaf 0's page header is damaged/);
  });

  it('reports the events a rebuild could not bring back when the damaged PMem files still count them', () => {
    const { dir, pmemDir } = dirs();
    const db = open(dir, { pmemDir, nodeSize: 1024 });
    const stock = db.createStream('stock', STOCK);
    stock.appendBatch(Array.from({ length: 3000 }, (_, i) => event(i)));
    stock.append(event(10)); // late: only in the PMem queue
    db.close();
    const [storeDir] = readdirSync(pmemDir);
    const nodes = join(pmemDir, storeDir!, 'stream-0.nodes');
    const bytes = readFileSync(nodes);
    bytes[8] = bytes[8]! ^ 0xff; // the index-node file's header: foreign now
    writeFileSync(nodes, bytes);
    const rebuilt = open(dir, { pmemDir, rebuild: true });
    const [report] = rebuilt.rebuildReport();
    expect(report!.events).toBe(rebuilt.stream('stock').stats().events);
    expect(report!.lostEvents, 'the open leaf and the queued late event').toBe(3001 - report!.events);
    expect(report!.lostEvents).toBeGreaterThan(1);
    rebuilt.close();
  });

  it('replays with for await, and stops a range at its limit', async () => {
    const { dir, pmemDir } = dirs();
    const db = open(dir, { pmemDir });
    const stock = db.createStream('stock', STOCK);
    stock.appendBatch(Array.from({ length: 1000 }, (_, i) => event(i)));
    const seen: number[] = [];
    for await (const e of stock.replay({ from: 10, to: 20 })) seen.push(e.ts as number);
    expect(seen).toEqual(Array.from({ length: 11 }, (_, i) => 10 + i));
    expect([...stock.range(0, 999, { limit: 5 })].length).toBe(5);
    expect(stock.aggregate(0, 999)).toMatchObject({ count: 1000, price: { sum: 2500, min: 2.5, max: 2.5, avg: 2.5 } });
    expect(stock.asOf(-1)).toBeUndefined();
    expect(stock.stats()).toMatchObject({ events: 1000, durability: 'volatile-pmem', unflushedEvents: expect.any(Number) });
    expect(db.verify({ full: true })).toEqual({ stock: [] });
    db.close();
  });
});
