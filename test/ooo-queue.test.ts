import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CorruptionError } from '../src/errors.js';
import { OooQueue, TRUST_EVERY, queueSlotBytes } from '../src/ooo/queue.js';
import { RecoveredSlots } from '../src/ooo/recovered-slots.js';
import { TimeIndex, sortByTime } from '../src/ooo/time-index.js';
import { FileKind, writeFileHeader } from '../src/pmem/file-header.js';
import { SimulatedRegion } from '../src/pmem/simulated-region.js';
import { parseSchema } from '../src/schema.js';
import { rowLayout } from '../src/tree/row-layout.js';
import { Random } from '../src/util/random.js';

const STORE = new Uint8Array(16).fill(3);
const layout = rowLayout(parseSchema({ value: 'u32' }, { timestamp: 'number' }));
const bigLayout = rowLayout(parseSchema({ value: 'u32' }, { timestamp: 'bigint' }));

function newQueue(bytes = 1 << 20): { region: SimulatedRegion; queue: OooQueue } {
  const created = SimulatedRegion.create('queue', 4096);
  OooQueue.create(created, layout, STORE, 0, bytes);
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
    for (const slot of [TRUST_EVERY + 10, TRUST_EVERY + 11]) region.persist(queue.rowOffset(slot) - 4, queue.slotBytes); // written back, never acknowledged
    const image = region.crash(1);
    const rowByte = (slot: number) => queue.rowOffset(slot) + 2;
    expect(reopen(image.slice()).length, 'unacknowledged but intact slots are kept').toBe(TRUST_EVERY + 12);
    const torn = image.slice();
    torn[rowByte(TRUST_EVERY + 10)]! ^= 1;
    expect(reopen(torn).length, 'the queue ends at a torn unacknowledged slot').toBe(TRUST_EVERY + 10);
    const damaged = image.slice();
    damaged[rowByte(TRUST_EVERY + 5)]! ^= 1;
    expect(() => reopen(damaged)).toThrow(new RegExp(`slot ${TRUST_EVERY + 5} was acknowledged`));
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

/** Slots of `queue` in (ts, slot) order, as a comparison sort gives them. */
function modelOrder(queue: OooQueue, slots: number[]): number[] {
  return [...slots].sort((a, b) => (queue.timestamp(a) as number) - (queue.timestamp(b) as number) || a - b);
}

/** A queue of `count` slots with random (often equal) timestamps, persisted in random batches. */
function filledQueue(count: number, seed: number, spread = 500): { region: SimulatedRegion; queue: OooQueue } {
  const made = newQueue();
  const random = new Random(seed);
  for (let slot = 0; slot < count; slot++) {
    insert(made.queue, random.nextInt(spread), slot);
    if (random.nextInt(40) === 0) made.queue.persistPending();
  }
  made.queue.persistPending();
  return made;
}

/** Every trusted run of `queue`: its slots, as the model orders them, and no problem. */
function expectTrueRuns(queue: OooQueue, label = ''): void {
  let covered = 0;
  for (const run of queue.sortedRuns()) {
    expect(run.firstSlot, label).toBe(covered);
    const slots = Array.from({ length: run.length }, (_, i) => queue.runSlot(run, i));
    expect(slots, label).toEqual(modelOrder(queue, Array.from({ length: run.length }, (_, j) => run.firstSlot + j)));
    expect(queue.runProblem(run), label).toBeUndefined();
    covered += run.length;
  }
  expect(covered, label).toBe(queue.sortedBlocks * queue.blockSlots);
}

/** Bits set in n: how many runs a queue of n sorted blocks has. */
function popcount(n: number): number {
  return n.toString(2).replaceAll('0', '').length;
}

describe('OooQueue sorted runs', () => {
  it('merges complete blocks binary-counter style: one run per set bit of the block count, each in (ts, slot) order, kept across a reopen', () => {
    const { region, queue } = filledQueue(0, 1);
    const blockSlots = queue.blockSlots;
    expect(blockSlots).toBeGreaterThanOrEqual(64);
    for (const blocks of [1, 3, 7, 8, 11]) {
      const full = filledQueue(blocks * blockSlots + 17, blocks);
      expect(full.queue.sortedBlocks).toBe(blocks);
      for (const q of [full.queue, reopen(full.region.crash(4))]) {
        expect(q.sortedBlocks).toBe(blocks);
        expect(q.sortedRuns().length).toBe(popcount(blocks));
        expectTrueRuns(q, `${blocks} blocks`);
      }
    }
    expect(queue.sortedBlocks).toBe(0);
    expect(region).toBeDefined();
  });

  it('a power failure at any persist of the insert that completes a block: the trusted runs are always intact, and the next insert writes a missing one', () => {
    for (const blocksBefore of [0, 3]) {
      for (let stopAt = 1; stopAt <= 8; stopAt++) {
        const { region, queue } = filledQueue(blocksBefore * 64, 3 + blocksBefore);
        const random = new Random(stopAt);
        for (let slot = 0; slot < queue.blockSlots - 1; slot++) insert(queue, random.nextInt(50), slot);
        queue.persistPending();
        insert(queue, random.nextInt(50), 999);
        let persists = 0;
        region.onPersist = () => {
          if (++persists === stopAt) throw new Error('power cut');
        };
        try {
          queue.persistPending();
        } catch (err) {
          expect((err as Error).message).toBe('power cut');
        }
        region.onPersist = undefined;
        for (let seed = 0; seed < 20; seed++) {
          const label = `${blocksBefore} blocks before, stop ${stopAt} seed ${seed}`;
          const after = reopen(region.crash(seed));
          expect(after.length).toBeGreaterThanOrEqual((blocksBefore + 1) * after.blockSlots - 1);
          expect([blocksBefore, blocksBefore + 1]).toContain(after.sortedBlocks);
          expectTrueRuns(after, label);
          // Queries through runs and the tail see every slot, whether the last run was trusted or not.
          const recovered = new RecoveredSlots(after, layout, after.length, undefined);
          expect(recovered.count()).toBe(after.length);
          expect([...recovered.between(0, 499)], label).toEqual(modelOrder(after, Array.from({ length: after.length }, (_, slot) => slot)));
          insert(after, 7, 1000);
          after.persistPending();
          expect(after.sortedBlocks).toBe(blocksBefore + 1);
          expectTrueRuns(after, label);
        }
      }
    }
  });

  it('reset() makes every run untrusted with one store: a reopen finds none until blocks fill again', () => {
    const { region, queue } = filledQueue(0, 5);
    const blockSlots = queue.blockSlots;
    for (let slot = 0; slot < 2 * blockSlots; slot++) insert(queue, slot % 13, slot);
    queue.persistPending();
    expect(queue.sortedBlocks).toBe(2);
    queue.reset();
    expect(queue.sortedBlocks).toBe(0);
    for (let slot = 0; slot < blockSlots + 3; slot++) insert(queue, 100 - (slot % 7), slot);
    queue.persistPending();
    const after = reopen(region.crash(1));
    expect(after.sortedBlocks).toBe(1);
    expectTrueRuns(after);
    const image = region.crash(2);
    new DataView(image.buffer).setUint32(292, 5, true); // runs word says more blocks than were acknowledged
    expect(() => reopen(image)).toThrow(/sorted blocks/);
  });

  it('a damaged run or fence is reported by runProblem (what verify({ full: true }) asks); an entry naming no slot is refused', () => {
    const { queue } = filledQueue(0, 6);
    for (let slot = 0; slot < 2 * queue.blockSlots; slot++) insert(queue, slot % 9, slot);
    queue.persistPending();
    const [run] = queue.sortedRuns();
    const entries = new Uint32Array(queue.view.buffer, run!.entriesOffset, run!.length);
    [entries[3], entries[40]] = [entries[40]!, entries[3]!];
    expect(queue.runProblem(run!)).toMatch(/not in \(timestamp, slot\) order/);
    [entries[3], entries[40]] = [entries[40]!, entries[3]!];
    entries[5] = entries[6]!;
    expect(queue.runProblem(run!)).toMatch(/not a permutation/);
    entries[5] = entries[4]! + 1; // not what it was: fix the permutation the slow way
    const fences = new BigInt64Array(queue.view.buffer, run!.fencesOffset, run!.length / 8);
    const intact = new Uint32Array(modelOrder(queue, Array.from({ length: run!.length }, (_, j) => j)));
    entries.set(intact);
    expect(queue.runProblem(run!)).toBeUndefined();
    fences[2] = fences[2]! + 1n;
    expect(queue.runProblem(run!)).toMatch(/fence 2 is not/);
    fences[2] = fences[2]! - 1n;
    new BigInt64Array(queue.view.buffer, run!.topFencesOffset, 1)[0] = -1n;
    expect(queue.runProblem(run!)).toMatch(/top fence 0 is not/);
    new BigInt64Array(queue.view.buffer, run!.topFencesOffset, 1)[0] = BigInt(queue.timestamp(intact[0]!) as number);
    expect(queue.runProblem(run!)).toBeUndefined();
    new BigInt64Array(queue.view.buffer, run!.timestampsOffset, run!.length)[3] = -5n;
    expect(queue.runProblem(run!)).toMatch(/timestamp kept with entry 3/);
    entries[5] = run!.length;
    expect(() => new RecoveredSlots(queue, layout, queue.length, undefined).between(0, 9)).toThrow(CorruptionError);
  });

  it('answers the slots held at open while later inserts complete blocks and rewrite the level areas in place', () => {
    const { queue } = filledQueue(5 * 64 + 10, 9, 100_000);
    expect(queue.blockSlots).toBe(64);
    const end = queue.length;
    const model = modelOrder(queue, Array.from({ length: end }, (_, slot) => slot));
    const recovered = new RecoveredSlots(queue, layout, end, undefined);
    const random = new Random(10);
    // Block counts 5 -> 8: level 0's area, which held block 4's run at open, is rewritten at 7.
    for (let blocks = 5; blocks <= 8; blocks++) {
      expect([...recovered.between(0, 100_000)], `${blocks} blocks`).toEqual(model);
      for (let from = 0; from < 100_000; from += 5_000) {
        expect([...recovered.between(from, from + 2_000)], `${blocks} blocks, from ${from}`).toEqual(model.filter((slot) => queue.timestamp(slot) >= from && queue.timestamp(slot) <= from + 2_000));
      }
      for (const ts of [0, 17_000, 50_000, 99_999]) expect(recovered.lastAtOrBefore(ts)).toBe(model.filter((slot) => queue.timestamp(slot) <= ts).at(-1) ?? -1);
      while (queue.sortedBlocks === blocks) {
        insert(queue, random.nextInt(100_000), 0);
        queue.persistPending();
      }
    }
    expect(recovered.count()).toBe(end);
  });

  it('answers through runs and the tail like a sorted array, the merge cursor leaving out a prefix', () => {
    const answersLikeTheModel = (count: number, seed: number, spread: number, a: number, b: number) => {
      const { queue } = filledQueue(count, seed, spread);
      const all = modelOrder(queue, Array.from({ length: count }, (_, slot) => slot));
      const cut = all[seed % (count + 1)];
      const cursor = cut === undefined ? undefined : { generation: queue.generation, ts: BigInt(queue.timestamp(cut)), slot: cut };
      const live = cut === undefined ? all : all.slice(all.indexOf(cut));
      const recovered = new RecoveredSlots(queue, layout, count, cursor);
      const [from, to] = [Math.floor((Math.min(a, b) * spread) / 60), Math.floor((Math.max(a, b) * spread) / 60)];
      const wanted = live.filter((slot) => queue.timestamp(slot) >= from && queue.timestamp(slot) <= to);
      expect([...recovered.between(from, to)]).toEqual(wanted);
      expect([...recovered.between(from, from)]).toEqual(live.filter((slot) => queue.timestamp(slot) === from));
      expect(recovered.count()).toBe(live.length);
      expect(recovered.lastAtOrBefore(to)).toBe(live.filter((slot) => queue.timestamp(slot) <= to).at(-1) ?? -1);
    };
    const spreads = fc.constantFrom(3, 500, 1_000_000);
    fc.assert(fc.property(fc.integer({ min: 0, max: 600 }), fc.nat(1000), spreads, fc.nat(60), fc.nat(60), answersLikeTheModel), { numRuns: 60 });
    // Runs of more than 4096 entries - a top fence's span, and past what is searched in one read
    // of all its timestamps: every level of the search is used.
    fc.assert(fc.property(fc.integer({ min: 8192, max: 12_000 }), fc.nat(1000), spreads, fc.nat(60), fc.nat(60), answersLikeTheModel), { numRuns: 8 });
  });

  it('refuses a queue file of an older layout with a CorruptionError that names it', () => {
    const slotBytes = queueSlotBytes(layout.rowBytes);
    for (const [geometry, named] of [
      [[slotBytes, layout.rowBytes], /older format \(without sorted runs/],
      [[slotBytes, layout.rowBytes, 16_384, Math.ceil((2 * 16_384) / slotBytes)], /older format \(one sorted run per block/],
    ] as const) {
      const region = SimulatedRegion.create('queue', 4096);
      writeFileHeader(region, { kind: FileKind.OooQueue, storeId: STORE, streamId: 0, geometry });
      expect(() => OooQueue.open(SimulatedRegion.fromImage('queue', region.crash(0)), layout, STORE, 0, 1 << 20)).toThrow(named);
    }
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
