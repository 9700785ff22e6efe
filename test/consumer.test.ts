import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConsumedEvent } from '../src/consumer/consumer.js';
import { BoundsError, MisuseError } from '../src/errors.js';
import { SimulatedMedia } from '../src/media.js';
import { Store, open } from '../src/store.js';
import { Random } from '../src/util/random.js';
import { CAMPAIGN_TIMEOUT_MS, STOCK, type StockEvent } from './model.js';
import { runUntilPowerCut } from './power-cut.js';

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

function freshStore(flushEvery = 1): { store: Store; dir: string; pmemDir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'chronotier-consumer-'));
  const pmemDir = mkdtempSync('/dev/shm/chronotier-consumer-');
  roots.push(dir, pmemDir);
  return { store: open(dir, { pmemDir, flushEvery }), dir, pmemDir };
}

const event = (ts: number, seq: number): StockEvent => ({ ts, seq, symbol: seq % 7, price: seq / 4, volume: 1 + (seq % 100) });
const seqs = (batch: readonly ConsumedEvent[]) => batch.map((e) => e.seq as number);

function drain(consumer: { next(): ConsumedEvent[] }): ConsumedEvent[] {
  const all: ConsumedEvent[] = [];
  for (let batch = consumer.next(); batch.length > 0; batch = consumer.next()) all.push(...batch);
  return all;
}

describe('consumers', () => {
  it('deliver durable events in arrival order, late ones included, and resume after the committed lsn', () => {
    const { store, dir, pmemDir } = freshStore(1000);
    const stream = store.createStream('stock', STOCK);
    const consumer = stream.consumer('billing', { batchSize: 7 });
    for (let seq = 0; seq < 30; seq++) stream.append(event(seq % 5 === 4 ? seq - 20 : seq * 10, seq));
    // The in-order events are not flushed yet (flushEvery 1000): only late ones in the queue are
    // durable, and they wait behind the first unflushed lsn.
    expect(consumer.next()).toEqual([]);
    stream.flush();
    const first = drain(consumer);
    expect(seqs(first)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(first.map((e) => e.lsn)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    consumer.commit(12);
    expect(() => consumer.commit(31)).toThrow(BoundsError);
    expect(() => consumer.commit(11)).toThrow(BoundsError);
    stream.mergeLateEvents();
    store.close();

    const reopened = open(dir, { pmemDir });
    const again = reopened.stream('stock');
    expect(again.consumers()).toEqual(['billing']);
    const resumed = again.consumer('billing', { from: 'earliest' });
    expect(resumed.committed).toBe(12);
    expect(seqs(drain(resumed))).toEqual(Array.from({ length: 18 }, (_, i) => i + 12));
    const latest = again.consumer('audit', { from: 'latest' });
    const fromLsn = again.consumer('replay', { from: { lsn: 29 } });
    again.append(event(1_000, 30));
    again.flush();
    expect(seqs(drain(latest))).toEqual([30]);
    expect(seqs(drain(fromLsn))).toEqual([28, 29, 30]);
    again.removeConsumer('audit');
    expect(again.consumers().sort()).toEqual(['billing', 'replay']);
    reopened.close();
  });

  it('push batches to a subscription and to for await, and end them when the store closes', async () => {
    const { store } = freshStore(1);
    const stream = store.createStream('stock', STOCK);
    const consumer = stream.consumer('push', { batchSize: 4 });
    const pushed: number[] = [];
    const subscription = consumer.subscribe(async (batch) => {
      pushed.push(...seqs(batch));
      await new Promise((resolve) => setTimeout(resolve, 1));
    }, { autoCommit: true });
    expect(() => consumer.next()).toThrow(MisuseError);
    expect(() => consumer.subscribe(() => {})).toThrow(/already/);
    for (let seq = 0; seq < 10; seq++) stream.append(event(seq, seq));
    await new Promise((resolve) => setTimeout(resolve, 50));
    stream.append(event(3, 10)); // late
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(pushed).toEqual(Array.from({ length: 11 }, (_, i) => i));
    expect(consumer.committed).toBe(11);
    subscription.unsubscribe();
    await subscription.done;

    const iterated: number[] = [];
    const loop = (async () => {
      for await (const batch of consumer) iterated.push(...seqs(batch));
    })();
    stream.appendBatch([event(20, 11), event(21, 12)]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    store.close();
    await loop;
    expect(iterated).toEqual([11, 12]);
  });

  it('refuse bad names and starts', () => {
    const { store } = freshStore();
    const stream = store.createStream('stock', STOCK);
    expect(() => stream.consumer('')).toThrow(MisuseError);
    expect(() => stream.consumer('x'.repeat(32))).toThrow(/1 to 31/);
    expect(() => stream.consumer('a', { from: { lsn: 0 } })).toThrow(/from/);
    expect(() => stream.consumer('a', { batchSize: 0 })).toThrow(BoundsError);
    expect(stream.consumers()).toEqual([]);
    expect(stream.consumer('x'.repeat(31)).committed).toBe(0);
    store.close();
  });

  it('hand out lsns after the largest kept when the root record predates the closed leaves\' newest lsn', () => {
    const { store, dir, pmemDir } = freshStore(1);
    const stream = store.createStream('stock', STOCK);
    // Leaves of ~290 rows: a few thousand events close leaves and an index node. The newest lsns
    // are late events, merged into closed leaves: neither the open leaf nor the queue holds them.
    for (let seq = 0; seq < 3_000; seq++) stream.append(event(seq % 10 === 9 ? seq - 500 : seq, seq));
    stream.mergeLateEvents();
    store.close();
    const flankPath = (() => {
      const [storeDir] = readdirSync(pmemDir);
      return join(pmemDir, storeDir!, 'stream-0.flank');
    })();
    expect(rootRecordsKeepClosedLsn(flankPath)).toEqual([true, true]);
    writeRootRecordsOfOlderFormat(flankPath);
    expect(rootRecordsKeepClosedLsn(flankPath)).toEqual([false, false]);

    const reopened = open(dir, { pmemDir, flushEvery: 1 });
    const again = reopened.stream('stock');
    again.append(event(10_000, 3_000));
    const lsns = drain(again.consumer('all', { from: 'earliest' })).map((e) => e.lsn);
    expect(lsns.sort((a, b) => a - b)).toEqual(Array.from({ length: 3_001 }, (_, i) => i + 1));
    // The next leaf close records the lsn again.
    for (let seq = 3_001; seq < 3_400; seq++) again.append(event(10_000 + seq, seq));
    reopened.close();
    expect(rootRecordsKeepClosedLsn(flankPath).some((kept) => kept)).toBe(true);
  });
});

/** Root records start at byte 256 of the flank file, 256 bytes each (docs/FORMAT.md); flags at +20, closed lsn at +152, CRC at +252. */
function rootRecordsKeepClosedLsn(flankPath: string): boolean[] {
  const bytes = readFileSync(flankPath);
  return [256, 512].map((at) => (bytes.readUInt32LE(at + 20) & 2) !== 0);
}

/** Rewrites both root records as chronotier wrote them before they kept the closed leaves' newest lsn. */
function writeRootRecordsOfOlderFormat(flankPath: string): void {
  const bytes = readFileSync(flankPath);
  for (const at of [256, 512]) {
    bytes.writeUInt32LE(bytes.readUInt32LE(at + 20) & ~2, at + 20);
    bytes.writeDoubleLE(0, at + 152);
    bytes.writeUInt32LE(crc32(bytes.subarray(at, at + 252)), at + 252);
  }
  writeFileSync(flankPath, bytes);
}

// Power failures at random write-backs while events (in order and late) are appended, flushed,
// merged, and consumed with commits. After each: the consumer resumes at a commit that was
// acknowledged (or the one in flight), never saw an event the crash took back, and from there
// gets every surviving event exactly once, in arrival order.

const OPTIONS = { nodeSize: 1024, spare: 0.5, ringLeaves: 4, syncEvery: 2, oooQueueBytes: 24 * 40 } as const;
const FRESH = { storeId: new Uint8Array(16).fill(3), pmemDir: '/simulated' };

interface Run {
  media: SimulatedMedia;
  /** lsns handed to the consumer before the cut (they must all survive). */
  delivered: number;
  /** The last commit that returned, and one the cut may have interrupted. */
  committed: number;
  inFlight: number;
  appended: StockEvent[];
  writeBacks: number;
}

function consumeUntilCut(seed: number, cutAt: number): Run {
  const random = new Random(seed);
  const media = new SimulatedMedia();
  const flushEvery = [1, 4, 30][seed % 3]!;
  const run: Run = { media, delivered: 0, committed: 0, inFlight: 0, appended: [], writeBacks: 0 };
  const cut = runUntilPowerCut(media, cutAt, seed, (track) => {
    const store = track(Store.openOn(media, { flushEvery, ...OPTIONS }, FRESH));
    const stream = store.createStream('stock', STOCK);
    const consumer = stream.consumer('c', { batchSize: 1 + random.nextInt(20) });
    let ts = 0;
    for (let step = 0; step < 60; step++) {
      const n = 1 + random.nextInt(12);
      const batch = Array.from({ length: n }, (_, i) => event(random.nextInt(4) === 0 ? random.nextInt(ts + 1) : (ts += random.nextInt(3)), run.appended.length + i));
      run.appended.push(...batch);
      if (n < 4) batch.forEach((e) => stream.append(e));
      else stream.appendBatch(batch);
      const action = random.nextInt(10);
      if (action === 0) stream.flush();
      if (action === 1) stream.mergeLateEvents();
      const got = consumer.next();
      for (const e of got) expect(e.lsn, `seed ${seed}: an event's lsn is its arrival number`).toBe((e.seq as number) + 1);
      if (got.length > 0) {
        expect(got[0]!.lsn, `seed ${seed}: batch starts after the last one`).toBeGreaterThan(run.delivered);
        run.delivered = consumer.position;
      }
      if (random.nextInt(3) === 0 && consumer.position > consumer.committed) {
        run.inFlight = consumer.position;
        consumer.commit();
        run.committed = run.inFlight;
      }
    }
    store.close();
  });
  return { ...run, ...cut };
}

function checkResumed(run: Run, label: string): void {
  const store = Store.openOn(run.media, { flushEvery: 1, ...OPTIONS }, FRESH);
  try {
    if (store.streams().length === 0) {
      expect(run.delivered, `${label}: stream lost after delivering`).toBe(0);
      return;
    }
    const stream = store.stream('stock');
    const surviving = new Set(([...stream.replay()] as unknown as StockEvent[]).map((e) => e.seq));
    for (let seq = 0; seq < run.delivered; seq++) expect(surviving.has(seq), `${label}: delivered event seq ${seq} was taken back by the crash`).toBe(true);
    if (!stream.consumers().includes('c')) {
      expect(run.committed, `${label}: consumer registration lost after a commit`).toBe(0);
      return;
    }
    const consumer = stream.consumer('c');
    expect([run.committed, run.inFlight], `${label}: resumed at ${consumer.committed}`).toContain(consumer.committed);
    const expected = [...surviving].filter((seq) => seq + 1 > consumer.committed).sort((a, b) => a - b);
    expect(seqs(drain(consumer)), `${label}: events after the commit`).toEqual(expected);
    // New events after recovery get fresh lsns and are delivered once.
    stream.append(event(1 << 30, 1_000_000));
    stream.append(event(0, 1_000_001));
    expect(seqs(drain(consumer)), label).toEqual([1_000_000, 1_000_001]);
  } finally {
    store.close();
  }
}

describe('consumers across power failures', () => {
  it('resume exactly once after the last commit, and never see an event a crash takes back', () => {
    const points = Number(process.env.CHRONOTIER_CONSUMER_CRASH_POINTS ?? 1500);
    let done = 0;
    for (let trial = 0; done < points; trial++) {
      const total = consumeUntilCut(trial, Infinity).writeBacks;
      const random = new Random(trial * 104_729);
      for (let k = 0; k < 30 && done < points; k++, done++) {
        const cutAt = 1 + random.nextInt(total);
        checkResumed(consumeUntilCut(trial, cutAt), `trial ${trial}, cut at write-back ${cutAt} of ${total}`);
      }
    }
    console.log(`consumer crash points: ${done}, duplicates or gaps: 0`);
  }, CAMPAIGN_TIMEOUT_MS);
});
