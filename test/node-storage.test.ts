import { mkdtempSync, readFileSync, rmSync, truncateSync, statSync, openSync, writeSync, closeSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CorruptionError, IoError, MisuseError } from '../src/errors.js';
import { MANIFEST_NAME, decodeManifest, encodeManifest } from '../src/manifest.js';
import { SimulatedMedia } from '../src/media.js';
import { Store, open } from '../src/store.js';
import { NODE_STORAGE_KINDS, type NodeStorageKind } from '../src/tree/node-storage.js';
import { Random } from '../src/util/random.js';

// Small nodes, so 25,000 events make a three-level tree with hundreds of closed index nodes:
// every query then descends through nodes the SSD variants read from their node file.
const SMALL = { nodeSize: 1024, spare: 0.5, ringLeaves: 4, leafWriter: 'inline' } as const;
const EVENTS = 25_000;
const roots: string[] = [];
let lastStats: { storage: string; readsFromSsd: number; onSsd: number } | undefined;

function fresh(): { dir: string; pmemDir: string } {
  const root = mkdtempSync(join(tmpdir(), 'chronotier-nodes-'));
  roots.push(root);
  return { dir: join(root, 'store'), pmemDir: join(root, 'pmem') };
}

afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

const value = (i: number) => (i * 7919) % 1000;

function filled(nodeStorage: NodeStorageKind): { dir: string; pmemDir: string } {
  const where = fresh();
  const store = open(where.dir, { pmemDir: where.pmemDir, ...SMALL });
  const stream = store.createStream('s', { v: 'f64' }, { nodeStorage });
  for (let i = 0; i < EVENTS; i++) stream.append({ ts: 2 * i, v: value(i) });
  store.close();
  return where;
}

/** Answers a reopened store gives: aggregates over random windows, point and as-of queries, a filtered range. */
function answers({ dir, pmemDir }: { dir: string; pmemDir: string }): unknown[] {
  const store = open(dir, { pmemDir, ...SMALL });
  try {
    const stream = store.stream('s');
    const random = new Random(3);
    const out: unknown[] = [];
    for (let q = 0; q < 60; q++) {
      const from = random.nextInt(2 * EVENTS);
      const to = from + random.nextInt(2 * EVENTS - from);
      const { count, v } = stream.aggregate(from, to) as unknown as { count: number; v: { sum: number; min: number; max: number } };
      out.push([count, v.sum, v.min, v.max], stream.get(to).length, stream.asOf(from + 1)?.ts, [...stream.range(from, to, { where: { v: [10, 12] } })].length);
    }
    expect(stream.verify({ full: true })).toEqual([]);
    lastStats = stream.stats().indexNodes;
    return out;
  } finally {
    store.close();
  }
}

/** What the model says for the same queries. */
function expected(): unknown[] {
  const random = new Random(3);
  const out: unknown[] = [];
  for (let q = 0; q < 60; q++) {
    const from = random.nextInt(2 * EVENTS);
    const to = from + random.nextInt(2 * EVENTS - from);
    const inside = Array.from({ length: EVENTS }, (_, i) => i).filter((i) => 2 * i >= from && 2 * i <= to);
    const values = inside.map(value);
    out.push(
      [inside.length, values.reduce((a, b) => a + b, 0), values.length > 0 ? Math.min(...values) : undefined, values.length > 0 ? Math.max(...values) : undefined],
      to % 2 === 0 ? 1 : 0,
      2 * Math.floor((from + 1) / 2),
      values.filter((v) => v >= 10 && v <= 12).length,
    );
  }
  return out;
}

describe('node storage variants (paper Fig. 6)', () => {
  const model = expected();

  it.each(NODE_STORAGE_KINDS)("'%s' answers every query like the model, closed index nodes read from where it keeps them", (kind) => {
    const where = filled(kind);
    const nodeFile = join(where.dir, 'stream-0.index-nodes');
    if (kind === 'pmem') expect(() => statSync(nodeFile)).toThrow();
    else expect(statSync(nodeFile).size).toBeGreaterThan(16 * 1024);
    const got = answers(where);
    expect(lastStats!.storage).toBe(kind);
    if (kind === 'pmem') expect(lastStats).toMatchObject({ readsFromSsd: 0, onSsd: 0 });
    else expect(lastStats!.readsFromSsd).toBeGreaterThan(10);
    for (let i = 0; i < model.length; i++) {
      const [want, have] = [model[i], got[i]];
      if (Array.isArray(want)) {
        const [count, sum, min, max] = have as number[];
        expect([count, min, max]).toEqual([want[0], want[2] ?? Infinity, want[3] ?? -Infinity]);
        expect(sum).toBeCloseTo(want[1] as number, 6);
      } else expect(have, `answer ${i}`).toEqual(want);
    }
  });

  it.each(['pmem-aggregates', 'ssd'] as const)("'%s' rebuilds its node file from PMem when it is lost, cut short or damaged", (kind) => {
    const where = filled(kind);
    const nodeFile = join(where.dir, 'stream-0.index-nodes');
    const intact = answers(where);
    rmSync(nodeFile);
    expect(answers(where)).toEqual(intact);
    const size = statSync(nodeFile).size;
    truncateSync(nodeFile, Math.floor(size / 2) + 3);
    expect(answers(where)).toEqual(intact);
    const fd = openSync(nodeFile, 'r+');
    writeSync(fd, Buffer.from([0xff, 0xff]), 0, 2, Math.floor(size / 3));
    closeSync(fd);
    expect(answers(where)).toEqual(intact);
    expect(statSync(nodeFile).size).toBe(size);
  });

  it("a failed write of the node file makes the stream read-only and loses nothing; reopening completes the file", () => {
    let failures = 0;
    for (let step = 1; step <= 6; step++) {
      const media = new SimulatedMedia();
      const store = Store.openOn(media, SMALL, { storeId: new Uint8Array(16).fill(4), pmemDir: '/simulated' });
      const stream = store.createStream('s', { v: 'f64' }, { nodeStorage: 'ssd' });
      media.files.get('stream-0.index-nodes')!.failWriteAt(step);
      let acknowledged = 0;
      try {
        for (let i = 0; i < 6_000; i++) {
          stream.append({ ts: 2 * i, v: value(i) });
          acknowledged = i + 1;
        }
      } catch (err) {
        expect(err).toBeInstanceOf(IoError);
        failures++;
        expect(() => stream.append({ ts: 1e9, v: 0 })).toThrow(expect.objectContaining({ code: 'READ_ONLY' }));
        expect(stream.aggregate(-Infinity, Infinity).count).toBeGreaterThanOrEqual(acknowledged);
        expect(stream.verify()).toEqual([]);
      }
      try {
        store.close();
      } catch (err) {
        expect(err).toBeInstanceOf(IoError);
      }
      const reopened = Store.openOn(media.restart(), SMALL, { storeId: new Uint8Array(16).fill(4), pmemDir: '/simulated' });
      const recovered = reopened.stream('s');
      expect(recovered.stats().events).toBeGreaterThanOrEqual(acknowledged);
      expect(recovered.verify({ full: true })).toEqual([]);
      expect(recovered.stats().indexNodes.onSsd).toBeGreaterThan(0);
      reopened.close();
    }
    expect(failures, 'the appends must reach the injected faults').toBeGreaterThan(3);
  });

  it('refuses an unknown node storage with a typed error and creates nothing', () => {
    const { dir, pmemDir } = fresh();
    const store = open(dir, { pmemDir, ...SMALL });
    expect(() => store.createStream('s', { v: 'f64' }, { nodeStorage: 'dram' as NodeStorageKind })).toThrow(MisuseError);
    expect(store.streams()).toEqual([]);
    store.close();
  });

  it('keeps the variant in the MANIFEST, and refuses to open one whose stored value is unknown', () => {
    const { dir, pmemDir } = fresh();
    const store = open(dir, { pmemDir, ...SMALL });
    store.createStream('s', { v: 'f64' }, { nodeStorage: 'pmem-aggregates' });
    store.close();
    const path = join(dir, MANIFEST_NAME);
    const manifest = decodeManifest(readFileSync(path), path);
    expect(manifest.streams[0]!.nodeStorage).toBe('pmem-aggregates');
    writeFileSync(path, encodeManifest({ ...manifest, streams: [{ ...manifest.streams[0]!, nodeStorage: 'dram' as NodeStorageKind }] }));
    expect(() => open(dir, { pmemDir, ...SMALL })).toThrow(CorruptionError);
    writeFileSync(path, encodeManifest(manifest));
    const reopened = open(dir, { pmemDir, ...SMALL });
    expect(reopened.stream('s').stats().indexNodes.storage).toBe('pmem-aggregates');
    reopened.close();
  });
});
