import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { LeafCache } from '../src/cache/leaf-cache.js';
import { CorruptionError } from '../src/errors.js';
import { open } from '../src/index.js';
import { SimulatedMedia } from '../src/media.js';
import { SimulatedRegion } from '../src/pmem/simulated-region.js';
import { parseSchema } from '../src/schema.js';
import { FaultyFile } from '../src/ssd/faulty-file.js';
import { LeafFile } from '../src/ssd/leaf-file.js';
import { Store } from '../src/store.js';
import type { Tree } from '../src/tree/tree.js';
import { Random } from '../src/util/random.js';
import { MERGING_FLAG, pageOffsetOf, rootRecordOf, withOpenLeafLineage } from './flank-images.js';
import { STOCK, type StockEvent, StockModel, expectAggregatesClose } from './model.js';
import { runUntilPowerCut } from './power-cut.js';

// Instant recovery (seed 002): open() returns before the out-of-order queue's DRAM index is
// rebuilt - on a worker thread - and before an interrupted merge is finished. Queries issued
// while that work is under way must answer exactly as the model does.

const roots: string[] = [];
afterAll(() => roots.forEach((root) => rmSync(root, { recursive: true, force: true })));

const eventAt = (ts: number, seq: number): StockEvent => ({ ts, seq, symbol: seq % 10, price: (seq % 400) / 4, volume: 1 + (seq % 50) });

function queryAndCompare(stream: ReturnType<Store['stream']>, model: StockModel, random: Random, label: string): void {
  const span = (model.newest ?? 0) + 1;
  const from = random.nextInt(span);
  const to = from + random.nextInt(200);
  expect(stream.get(from), label).toEqual(model.range(from, from));
  expect(stream.asOf(to), label).toEqual(model.asOf(to));
  expect([...stream.range(from, to)], label).toEqual(model.range(from, to));
  expectAggregatesClose(stream.aggregate(from, to), model.aggregate(from, to));
}

const FLANK = 'stream-0.flank';
const MERGE_OPTIONS = { nodeSize: 1024, spare: 0.5, ringLeaves: 8, oooQueueBytes: 4096 * 32, flushEvery: 1 } as const;
const MERGE_STORE = { storeId: new Uint8Array(16).fill(4), pmemDir: '/simulated' };

/** A store of 3,000 in-order events and 1,000 late ones, all still queued; and its model. */
function storeWithQueuedEvents(): { media: SimulatedMedia; stream: ReturnType<Store['stream']>; model: StockModel } {
  const model = new StockModel();
  const media = new SimulatedMedia();
  const stream = Store.openOn(media, MERGE_OPTIONS, MERGE_STORE).createStream('stock', STOCK);
  for (let i = 0; i < 3000; i++) {
    const e = eventAt(i, i);
    stream.append(e);
    model.append(e);
    if (i % 3 === 2) {
      const lateEvent = eventAt((i * 7) % i, 10_000 + i);
      stream.append(lateEvent);
      model.append(lateEvent);
    }
  }
  return { media, stream, model };
}

describe('instant recovery', () => {
  it('answers queries like the model while the queue index is rebuilt on a worker thread', async () => {
    const root = mkdtempSync(join(tmpdir(), 'chronotier-instant-'));
    const pmemDir = mkdtempSync('/dev/shm/chronotier-instant-');
    roots.push(root, pmemDir);
    const dir = join(root, 'store');
    const model = new StockModel();
    const random = new Random(3);
    const store = open(dir, { pmemDir, leafWriter: 'inline' });
    const stream = store.createStream('stock', STOCK);
    const inOrder = Array.from({ length: 100_000 }, (_, i) => eventAt(i, i));
    stream.appendBatch(inOrder);
    const late = Array.from({ length: 80_000 }, (_, i) => eventAt(random.nextInt(100_000), 100_000 + i));
    stream.appendBatch(late);
    // seq is the arrival order: the model is every event sorted by (ts, seq).
    for (const e of [inOrder, late].flat()) model.events.push(e);
    model.events.sort((a, b) => a.ts - b.ts || a.seq - b.seq);
    store.close();

    const reopened = open(dir, { pmemDir });
    const recovered = reopened.stream('stock');
    let whileIndexing = 0;
    // The first queries run before the worker even starts (it starts from the event loop), the
    // next ones while it sorts; the loop ends when its result has been taken.
    for (let q = 0; q < 2000 && recovered.stats().outOfOrder.indexing; q++, whileIndexing++) {
      queryAndCompare(recovered, model, random, `query ${q} while indexing`);
      if (q % 5 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(whileIndexing, 'some queries ran before the index was ready').toBeGreaterThan(0);
    expect(recovered.stats().outOfOrder.indexing, 'the worker delivered').toBe(false);
    // A late append while indexing goes to the queue and is seen at once.
    const extra = eventAt(12_345, 999_999);
    recovered.append(extra);
    model.append(extra);
    queryAndCompare(recovered, model, random, 'after a late append');
    expect(recovered.stats().events).toBe(model.events.length);
    recovered.mergeLateEvents();
    expect(recovered.stats().outOfOrder.indexing).toBe(false);
    expect([...recovered.replay()]).toEqual(model.events);
    reopened.close();
  });

  it('answers like the model at random moments of the background rebuild, through many sorted runs, with late appends in between', async () => {
    const root = mkdtempSync(join(tmpdir(), 'chronotier-instant-'));
    const pmemDir = mkdtempSync('/dev/shm/chronotier-instant-');
    roots.push(root, pmemDir);
    const dir = join(root, 'store');
    const model = new StockModel();
    const random = new Random(11);
    // 8 MiB: blocks of 1024 slots, so 120,000 late events lie in over a hundred runs and a tail.
    const options = { pmemDir, leafWriter: 'inline', oooQueueBytes: 8 * 2 ** 20 } as const;
    const store = open(dir, options);
    const stream = store.createStream('stock', STOCK);
    const inOrder = Array.from({ length: 50_000 }, (_, i) => eventAt(i, i));
    const late = Array.from({ length: 120_000 }, (_, i) => eventAt(random.nextInt(50_000), 50_000 + i));
    for (const batch of [inOrder, late.slice(0, 70_001), late.slice(70_001)]) stream.appendBatch(batch);
    for (const e of [inOrder, late].flat()) model.events.push(e);
    model.events.sort((a, b) => a.ts - b.ts || a.seq - b.seq);
    store.close();

    const reopened = open(dir, options);
    const recovered = reopened.stream('stock');
    let whileIndexing = 0;
    for (let q = 0; q < 3000 && recovered.stats().outOfOrder.indexing; q++, whileIndexing++) {
      queryAndCompare(recovered, model, random, `query ${q} while indexing`);
      if (random.nextInt(3) === 0) {
        const extra = eventAt(random.nextInt(50_000), 1_000_000 + q);
        recovered.append(extra);
        model.append(extra);
      }
      if (random.nextInt(4) === 0) await new Promise((resolve) => setTimeout(resolve, random.nextInt(3)));
    }
    expect(whileIndexing, 'some queries ran before the index was ready').toBeGreaterThan(0);
    queryAndCompare(recovered, model, random, 'after the rebuild');
    expect(recovered.verify({ full: true })).toEqual([]);
    expect([...recovered.replay()]).toEqual(model.events);
    reopened.close();
  });

  it('opens before finishing a merge a crash interrupted; queries see every event once meanwhile, the next late event finishes it', () => {
    const { media, stream, model } = storeWithQueuedEvents();
    // Cut the power in the middle of the merge, after some of its steps committed.
    const cut = runUntilPowerCut(media, 401, 1, () => stream.mergeLateEvents());
    expect(cut.cut, 'the power failed inside the merge').toBe(true);
    const reopened = Store.openOn(cut.media, MERGE_OPTIONS, MERGE_STORE);
    const recovered = reopened.stream('stock');
    const random = new Random(5);
    for (let q = 0; q < 20; q++) queryAndCompare(recovered, model, random, `query ${q} before the merge is finished`);
    expect(recovered.stats().outOfOrder.queuedEvents).toBeGreaterThan(0);
    expect(recovered.stats().outOfOrder.queuedEvents).toBeLessThan(1000);
    const lateEvent = eventAt(5, 99_999);
    recovered.append(lateEvent);
    model.append(lateEvent);
    expect(recovered.stats().outOfOrder.merges).toBe(1);
    expect([...recovered.replay()]).toEqual(model.events);
    expect(recovered.verify({ full: true })).toEqual([]);
    reopened.close();
  });

  it('open lifts the mark of a merge a crash cut, since appends follow: a lineage that damage later writes into the open leaf is refused, not taken for the merge', () => {
    let marked = 0;
    for (let cutAfter = 1; cutAfter <= 31; cutAfter += 2) {
      const { media, stream, model } = storeWithQueuedEvents();
      const cut = runUntilPowerCut(media, cutAfter + 1, cutAfter, () => stream.mergeLateEvents());
      expect(cut.cut, `the power failed inside the merge, ${cutAfter} write-backs in`).toBe(true);
      const crashed = cut.media;
      if (rootRecordOf(flankImage(crashed)).flags & MERGING_FLAG) marked++;
      const reopened = Store.openOn(crashed, MERGE_OPTIONS, MERGE_STORE);
      const recovered = reopened.stream('stock');
      for (let i = 0; i < 3; i++) {
        const e = eventAt(1_000_000 + i, 50_000 + i);
        recovered.append(e);
        model.append(e);
      }
      expect([...recovered.replay()], `cut after ${cutAfter} write-backs`).toEqual(model.events);
      const again = crashed.crash(cutAfter);
      reopened.close();
      const damaged = withFlank(again, withOpenLeafLineage(flankImage(again), MERGE_OPTIONS, 0, 1));
      expect(() => Store.openOn(damaged, MERGE_OPTIONS, MERGE_STORE), `cut after ${cutAfter} write-backs`).toThrow(/damaged lineage: no merge was under way/);
    }
    expect(marked, 'crashes that left the merge mark committed').toBeGreaterThan(3);
  });
});

// Leaves a crash kept from the SSD (closed, written but not synced) are settled after open
// returns: the leaf file's tail is scanned and their ring pages checked on the event loop, or at
// once by the query that needs one. Every crash below leaves some; the tests check it.
const RING_OPTIONS = { nodeSize: 1024, spare: 0.5, ringLeaves: 8, syncEvery: 7, flushEvery: 1 } as const;
const RING_STORE = { storeId: new Uint8Array(16).fill(6), pmemDir: '/simulated' };

interface RingCrash {
  readonly media: SimulatedMedia;
  readonly model: StockModel;
  /** Leaves closed before the crash: [0, onSsd) have intact records in the crashed leaf file. */
  readonly closed: number;
  readonly onSsd: number;
}

function crashWithRingLeaves(seed: number): RingCrash {
  const media = new SimulatedMedia();
  const model = new StockModel();
  const store = Store.openOn(media, RING_OPTIONS, RING_STORE);
  const stream = store.createStream('stock', STOCK);
  for (let i = 0; i < 3000; i++) {
    stream.append(eventAt(i, i));
    model.append(eventAt(i, i));
  }
  stream.flush();
  const crashed = media.crash(seed);
  const [leafFileName] = [...crashed.files.keys()];
  const leaves = LeafFile.open(FaultyFile.fromImage(leafFileName!, crashed.files.get(leafFileName!)!.contents()), RING_STORE.storeId, 0, parseSchema(STOCK), new LeafCache(0));
  const records = [...leaves.scanFrom(leaves.firstRecordOffset)];
  records.forEach((record, i) => expect(record.leafId).toBe(i));
  return { media: crashed, model, closed: openLeafIdOf(flankImage(crashed)), onSsd: records.length };
}

/**
 * A store killed (kill -9, no power failure) while its leaf writer had records written and not
 * synced: the restarted process reads them, but they are not durable yet.
 */
function killWithUnsyncedRecords(): { media: SimulatedMedia; model: StockModel; closed: number } {
  const media = new SimulatedMedia();
  const model = new StockModel();
  const stream = Store.openOn(media, RING_OPTIONS, RING_STORE).createStream('stock', STOCK);
  for (let i = 0; i < 3000; i++) {
    stream.append(eventAt(i, i));
    model.append(eventAt(i, i));
  }
  stream.flush();
  const killed = media.restart();
  const [leafFile] = [...killed.files.values()];
  expect(leafFile!.unsyncedCount, 'records written, not synced').toBeGreaterThan(0);
  return { media: killed, model, closed: openLeafIdOf(flankImage(killed)) };
}

/** The open leaf id of the flank's newest root record (flank.ts). */
function openLeafIdOf(flank: Uint8Array): number {
  return rootRecordOf(flank).openLeafId;
}

/** `media` with a row byte of each listed leaf's ring page flipped. */
function withDamagedRingPages(media: SimulatedMedia, leafIds: number[]): SimulatedMedia {
  const flank = flankImage(media);
  for (const leafId of leafIds) flank[pageOffsetOf(leafId, RING_OPTIONS) + 64 + 5]! ^= 0x20;
  return withFlank(media, flank);
}

function flankImage(media: SimulatedMedia): Uint8Array {
  return media.regions.get(FLANK)!.liveImage();
}

/** A restarted copy of `media` whose flank file holds `image`. */
function withFlank(media: SimulatedMedia, image: Uint8Array): SimulatedMedia {
  const copy = media.restart();
  copy.regions.set(FLANK, SimulatedRegion.fromImage(FLANK, image));
  return copy;
}

describe('deferred leaf-file recovery', () => {
  const crashes = [1, 2, 3, 4, 5, 6].map(crashWithRingLeaves);
  const withRingLeaves = crashes.filter((c) => c.onSsd < c.closed);

  it('the crashes leave closed leaves that only the ring holds', () => {
    expect(withRingLeaves.length).toBeGreaterThanOrEqual(3);
  });

  it('answers like the model before, during and after the background recovery, with appends in between', async () => {
    for (const [c, crash] of withRingLeaves.entries()) {
      const model = new StockModel();
      model.events.push(...crash.model.events);
      const random = new Random(c);
      const store = Store.openOn(crash.media.restart(), RING_OPTIONS, RING_STORE);
      const stream = store.stream('stock');
      expect(stream.stats().recoveringLeafFile, 'open returns first').toBe(true);
      const newest = model.newest!;
      expect([...stream.range(newest - 400, newest)], 'the ring leaves, read before any slice').toEqual(model.range(newest - 400, newest));
      let slices = 0;
      for (let q = 0; stream.stats().recoveringLeafFile; q++) {
        queryAndCompare(stream, model, random, `crash ${c}, query ${q} while recovering`);
        const next = eventAt(model.newest! + 1, model.events.length);
        stream.append(next);
        model.append(next);
        await new Promise((resolve) => setImmediate(resolve));
        slices++;
      }
      expect(slices, 'the recovery ran in slices').toBeGreaterThan(0);
      expect([...stream.replay()]).toEqual(model.events);
      expect(stream.verify({ full: true })).toEqual([]);
      store.close();
      const reopened = Store.openOn(crash.media.restart(), RING_OPTIONS, RING_STORE);
      expect([...reopened.stream('stock').replay()], 'nothing read from the ring was lost').toEqual(crash.model.events);
      reopened.close();
    }
  });

  it('a leaf close that needs the ring page of a leaf only the ring holds writes that leaf out itself; the recovery goes on in slices', async () => {
    for (const [c, crash] of withRingLeaves.entries()) {
      const model = new StockModel();
      model.events.push(...crash.model.events);
      const store = Store.openOn(crash.media.restart(), RING_OPTIONS, RING_STORE);
      const stream = store.stream('stock');
      // A full ring's worth of leaf closes without yielding: each reuses a page, the first ones
      // pages of leaves only the ring holds - a crash under backpressure leaves the ring so.
      while (stream.stats().leaves <= crash.closed + RING_OPTIONS.ringLeaves) {
        const next = eventAt(model.newest! + 1, model.events.length);
        stream.append(next);
        model.append(next);
      }
      expect(stream.stats().recoveringLeafFile, `crash ${c}: the closes did not finish the recovery`).toBe(true);
      expect([...stream.replay()], `crash ${c}, while recovering`).toEqual(model.events);
      while (stream.stats().recoveringLeafFile) await new Promise((resolve) => setImmediate(resolve));
      expect(stream.verify({ full: true })).toEqual([]);
      store.close();
      const reopened = Store.openOn(crash.media.restart(), RING_OPTIONS, RING_STORE);
      expect([...reopened.stream('stock').replay()], `crash ${c}, reopened`).toEqual(crash.model.events);
      reopened.close();
    }
  });

  it('leaf records a killed process wrote but never synced are synced before their ring pages are reused', () => {
    for (let seed = 0; seed < 12; seed++) {
      const killed = killWithUnsyncedRecords();
      const model = new StockModel();
      model.events.push(...killed.model.events);
      const store = Store.openOn(killed.media, RING_OPTIONS, RING_STORE);
      const stream = store.stream('stock');
      while (stream.stats().leaves <= killed.closed + RING_OPTIONS.ringLeaves) {
        const leaves = stream.stats().leaves;
        const next = eventAt(model.newest! + 1, model.events.length);
        stream.append(next);
        model.append(next);
        if (stream.stats().leaves === leaves) continue;
        // The power fails right after a leaf close reused a ring page (flushEvery is 1: every
        // append was durable): what the close relied on must have been durable too.
        const reopened = Store.openOn(killed.media.crash(seed), RING_OPTIONS, RING_STORE);
        expect([...reopened.stream('stock').replay()], `power failure ${seed} after leaf ${leaves} closed`).toEqual(model.events);
        reopened.close();
      }
      store.close();
    }
  });

  it("a kill with the open leaf full leaves its successor's ring page free: the first append closes it without the leaf file", async () => {
    const options = { ...RING_OPTIONS, oooQueueBytes: 4096 };
    const media = new SimulatedMedia();
    const store = Store.openOn(media, options, RING_STORE);
    const stream = store.createStream('stock', STOCK);
    // The slack is kept while the leaf writer runs, which starts once open's recovery is done.
    while (stream.stats().recoveringLeafFile) await new Promise((resolve) => setImmediate(resolve));
    const tree = (store as unknown as { streamsByName: Map<string, { tree: Tree }> }).streamsByName.get('stock')!.tree;
    const fileCalls = (['read', 'readInto', 'write', 'append', 'sync', 'truncate'] as const).map((method) => vi.spyOn(FaultyFile.prototype, method));
    let kills = 0;
    for (let seq = 0; kills < 24; seq++) {
      stream.append(eventAt(seq, seq));
      if ((tree as unknown as { openCount: number }).openCount < tree.leafFill) continue;
      kills++;
      const reopened = Store.openOn(media.restart(), options, RING_STORE);
      const leaves = reopened.stream('stock').stats().leaves;
      fileCalls.forEach((call) => call.mockClear());
      reopened.stream('stock').append(eventAt(seq + 1, seq + 1));
      expect(reopened.stream('stock').stats().leaves, `kill ${kills}: the append started a leaf`).toBe(leaves + 1);
      expect(fileCalls.map((call) => call.mock.calls.length), `kill ${kills}: leaf-file calls of the first append`).toEqual([0, 0, 0, 0, 0, 0]);
      expect(reopened.stream('stock').verify({ full: true })).toEqual([]);
      reopened.close();
    }
    fileCalls.forEach((call) => call.mockRestore());
    store.close();
  });

  it('a damaged ring page of a leaf only the ring holds fails the requests that need it, not open; a rebuild keeps the leaf file', () => {
    const crash = withRingLeaves[0]!;
    const damaged = withDamagedRingPages(crash.media, [crash.onSsd]);
    const store = Store.openOn(damaged.restart(), RING_OPTIONS, RING_STORE);
    const stream = store.stream('stock');
    expect(stream.get(0)).toEqual(crash.model.range(0, 0));
    expect(() => [...stream.replay()]).toThrow(CorruptionError);
    expect(() => [...stream.replay()]).toThrow(/ring page holds .* rebuild: true|no prefix of its rows/);
    expect(() => store.close(), 'the leaf cannot be written out').toThrow(CorruptionError);
    const rebuilt = Store.openOn(damaged.restart(), { ...RING_OPTIONS, rebuild: true }, RING_STORE);
    const events = [...rebuilt.stream('stock').replay()];
    expect(events.length).toBeGreaterThan(0);
    expect(events).toEqual(crash.model.events.slice(0, events.length));
    rebuilt.close();
  });

  it('an append whose leaf close meets the damaged ring page fails before writing anything to PMem', () => {
    const crash = withRingLeaves[0]!;
    const media = withDamagedRingPages(crash.media, [crash.onSsd]).restart();
    const store = Store.openOn(media, RING_OPTIONS, RING_STORE);
    const stream = store.stream('stock');
    // The translation array is left out: the recovery the failing close finishes sets the slots
    // of the leaves it found durable before it meets the damaged page - its own progress.
    const images = () => [...media.regions].filter(([name]) => !name.endsWith('.translation')).map(([name, region]) => [name, region.liveImage()] as const);
    let failure: unknown;
    for (let ts = crash.model.newest! + 1; failure === undefined && ts < crash.model.newest! + 5000; ts++) {
      const before = images();
      try {
        stream.append(eventAt(ts, ts));
      } catch (err) {
        failure = err;
        expect(images(), 'no PMem byte of the tree or the queue changed').toEqual(before);
      }
    }
    expect(failure, 'the ring wrapped onto the damaged page').toBeInstanceOf(CorruptionError);
    expect(() => store.close()).toThrow(CorruptionError);
  });

  it('a damaged ring page of a leaf the leaf file holds is never read: answers come from SSD', () => {
    for (const crash of withRingLeaves) {
      const inBoth = Array.from({ length: crash.onSsd }, (_, leafId) => leafId).filter((leafId) => leafId >= crash.closed - RING_OPTIONS.ringLeaves + 1);
      const store = Store.openOn(withDamagedRingPages(crash.media, inBoth).restart(), RING_OPTIONS, RING_STORE);
      expect([...store.stream('stock').replay()]).toEqual(crash.model.events);
      store.close();
    }
  });
});
