import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CorruptionError } from '../src/errors.js';
import { OooQueue, TRUST_EVERY, queueSlotBytes } from '../src/ooo/queue.js';
import { TimeIndex, sortByTime } from '../src/ooo/time-index.js';
import { SimulatedRegion } from '../src/pmem/simulated-region.js';
import { parseSchema } from '../src/schema.js';
import { rowLayout } from '../src/tree/row-layout.js';
import { Random } from '../src/util/random.js';

const STORE = new Uint8Array(16).fill(3);
const layout = rowLayout(parseSchema({ value: 'u32' }, { timestamp: 'number' }));
const bigLayout = rowLayout(parseSchema({ value: 'u32' }, { timestamp: 'bigint' }));

function newQueue(bytes = 1 << 20): { region: SimulatedRegion; queue: OooQueue } {
  const created = SimulatedRegion.create('queue', 4096);
  OooQueue.create(created, layout, STORE, 0);
  const region = created.reopen();
  return { region, queue: OooQueue.open(region, layout, STORE, 0, bytes) };
}

function insert(queue: OooQueue, ts: number, value: number): number {
  return queue.insert((view, offset) => {
    layout.writeTimestamp(view, offset, ts);
    view.setUint32(offset + 8, value, true);
  });
}

function reopen(image: Uint8Array, bytes = 1 << 20): OooQueue {
  return OooQueue.open(SimulatedRegion.fromImage('queue', image), layout, STORE, 0, bytes);
}

describe('OooQueue', () => {
  it('keeps every persisted insert across a power failure and loses only unpersisted ones', () => {
    const { region, queue } = newQueue();
    for (let i = 0; i < 10; i++) insert(queue, 100 - i, i);
    queue.persistPending();
    insert(queue, 5, 10);
    for (let seed = 0; seed < 50; seed++) {
      const after = reopen(region.crash(seed));
      expect(after.length === 10 || after.length === 11).toBe(true);
      for (let slot = 0; slot < 10; slot++) expect(after.timestamp(slot)).toBe(100 - slot);
    }
  });

  it('verifies only the slots after the trusted count: an acknowledged one that fails is damage, an unacknowledged one a torn insert', () => {
    const { region, queue } = newQueue();
    for (let i = 0; i < TRUST_EVERY; i++) insert(queue, i, i);
    queue.persistPending();
    for (let i = 0; i < 10; i++) {
      insert(queue, i, i);
      queue.persistPending();
    }
    insert(queue, 99, 99);
    insert(queue, 98, 98);
    region.persist(512 + (TRUST_EVERY + 10) * queue.slotBytes, 2 * queue.slotBytes); // written back, never acknowledged
    const image = region.crash(1);
    const rowByte = (slot: number) => 512 + slot * queue.slotBytes + 6;
    expect(reopen(image.slice()).length, 'unacknowledged but intact slots are kept').toBe(TRUST_EVERY + 12);
    const torn = image.slice();
    torn[rowByte(TRUST_EVERY + 10)]! ^= 1;
    expect(reopen(torn).length, 'the queue ends at a torn unacknowledged slot').toBe(TRUST_EVERY + 10);
    const damaged = image.slice();
    damaged[rowByte(TRUST_EVERY + 5)]! ^= 1;
    expect(() => reopen(damaged)).toThrow(/slot 1029 was acknowledged/);
    // A trusted slot is not read again at open (verify() checks it).
    const trusted = image.slice();
    trusted[rowByte(3)]! ^= 1;
    expect(reopen(trusted).length).toBe(TRUST_EVERY + 12);
  });

  it('is emptied by one store: after reset() no old slot verifies, even with its bytes intact', () => {
    const { region, queue } = newQueue();
    for (let i = 0; i < 20; i++) insert(queue, i, i);
    queue.persistPending();
    queue.reset();
    insert(queue, 7, 7);
    queue.persistPending();
    const after = reopen(region.crash(2));
    expect(after.length).toBe(1);
    expect(after.generation).toBe(2);
    expect(after.timestamp(0)).toBe(7);
  });

  it('refuses a state word that cannot be true', () => {
    const { region } = newQueue();
    const image = region.crash(0);
    new DataView(image.buffer).setUint32(260, 1 << 30, true);
    expect(() => reopen(image)).toThrow(CorruptionError);
  });

  it('is full at its capacity in slots', () => {
    const { queue } = newQueue(3 * queueSlotBytes(layout.rowBytes));
    for (let i = 0; i < 3; i++) insert(queue, i, i);
    expect(queue.isFull).toBe(true);
    expect(() => insert(queue, 9, 9)).toThrow(/full/);
  });
});

describe('TimeIndex', () => {
  it('orders slots by (timestamp, slot) through inserts and dropped prefixes, like a sorted array', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: -50, max: 50 }), fc.nat(40)), { maxLength: 3000 }), fc.nat(3000), (inserts, drop) => {
        const ts = inserts.map(([t]) => t);
        const index = new TimeIndex((slot) => ts[slot]!);
        ts.forEach((_, slot) => index.insert(slot));
        const model = ts.map((_, slot) => slot).sort((a, b) => ts[a]! - ts[b]! || a - b);
        expect([...index.all()]).toEqual(model);
        const from = Math.min(...inserts.map(([, f]) => f - 20), 0);
        expect([...index.between(from, from + 10)]).toEqual(model.filter((slot) => ts[slot]! >= from && ts[slot]! <= from + 10));
        expect(index.lastAtOrBefore(from)).toBe(model.filter((slot) => ts[slot]! <= from).at(-1) ?? -1);
        const dropped = Math.min(drop, model.length);
        index.dropFirst(dropped);
        expect([...index.all()]).toEqual(model.slice(dropped));
        expect(index.size).toBe(model.length - dropped);
      }),
      { numRuns: 200 },
    );
  });
});

describe('sortByTime', () => {
  it('sorts raw int64 timestamps, negative and beyond 2^53 too, keeping slot order among equals', () => {
    fc.assert(
      fc.property(fc.array(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { maxLength: 500 }), fc.integer({ min: 1, max: 5 }), (values, spread) => {
        const ts = values.map((v) => v / BigInt(spread) / 2n ** 40n);
        const rows = new DataView(new ArrayBuffer(ts.length * 12));
        ts.forEach((t, slot) => bigLayout.writeTimestamp(rows, slot * 12, t));
        const slots = Int32Array.from(ts.keys());
        const sorted = sortByTime(slots, rows, (slot) => slot * 12);
        expect([...sorted]).toEqual([...slots].sort((a, b) => (ts[a]! < ts[b]! ? -1 : ts[a]! > ts[b]! ? 1 : a - b)));
      }),
      { numRuns: 200 },
    );
  });

  it('sorts a random queue of a million events like a comparison sort', () => {
    const random = new Random(9);
    const n = 1 << 20;
    const rows = new DataView(new ArrayBuffer(n * 8));
    const ts = Float64Array.from({ length: n }, () => random.nextInt(1 << 16) - (1 << 15));
    ts.forEach((t, slot) => layout.writeTimestamp(rows, slot * 8, t));
    const sorted = sortByTime(Int32Array.from(ts.keys()), rows, (slot) => slot * 8);
    for (let i = 1; i < n; i++) {
      const [a, b] = [sorted[i - 1]!, sorted[i]!];
      if (!(ts[a]! < ts[b]! || (ts[a] === ts[b] && a < b))) throw new Error(`position ${i}: slot ${b} (ts ${ts[b]}) after slot ${a} (ts ${ts[a]})`);
    }
  });
});
