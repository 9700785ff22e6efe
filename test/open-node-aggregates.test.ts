import { describe, expect, it, vi } from 'vitest';
import { SimulatedMedia } from '../src/media.js';
import { SimulatedRegion } from '../src/pmem/simulated-region.js';
import { parseSchema } from '../src/schema.js';
import { Store } from '../src/store.js';
import { Aggregate } from '../src/tree/aggregate-array.js';
import { Flank, type FlankState, MAX_LEVELS } from '../src/tree/flank.js';
import { OpenNodeAggregates } from '../src/tree/open-node-aggregates.js';
import { rowLayout } from '../src/tree/row-layout.js';
import type { Tree } from '../src/tree/tree.js';
import { STOCK, type StockEvent, StockModel, expectAggregatesClose } from './model.js';

// Closing an index node takes the node's running aggregate, kept in the flank file next to the
// root record that vouches for it, instead of summing its children's slots. These tests check
// that the kept aggregate is the one used, that a copy the root record does not vouch for (torn,
// stale, damaged, or missing in a file of an older store) is never used, and that a power cut at
// any write-back of a node close recovers to the model.

const LAYOUT = rowLayout(parseSchema(STOCK));
const GEOMETRY = { nodeSize: 1024, ringPages: 4, rowBytes: LAYOUT.rowBytes };
// Nodes of 30 entries (60 fit in 1024 bytes, half kept spare), leaves of 13 Stock rows (26 fit).
const OPTIONS = { nodeSize: 1024, spare: 0.5, ringLeaves: 4, leafWriter: 'inline', flushEvery: 1 } as const;
const FRESH = { storeId: new Uint8Array(16).fill(3), pmemDir: '/simulated' };
const NODE_FILL = 30;
const LEAF_FILL = 13;

const eventAt = (seq: number): StockEvent => ({ ts: seq * 2, seq, symbol: seq % 7, price: (seq % 301) / 4, volume: 1 + (seq % 90) });

function aggregateOf(count: number, seed: number): Aggregate {
  const aggregate = new Aggregate(LAYOUT.numeric.length);
  aggregate.count = count;
  aggregate.minTs = seed;
  aggregate.maxTs = seed + count;
  aggregate.min.fill(seed - 1);
  aggregate.max.fill(seed + 1);
  aggregate.sum.fill(seed * count);
  return aggregate;
}

function area(size = OpenNodeAggregates.fileBytes(GEOMETRY, LAYOUT)): { region: SimulatedRegion; kept: OpenNodeAggregates } {
  const region = SimulatedRegion.create('flank', size);
  return { region, kept: OpenNodeAggregates.open(region, GEOMETRY, LAYOUT) };
}

describe('OpenNodeAggregates', () => {
  it('reads back the copy the root record vouches for, and only that one', () => {
    const { kept } = area();
    const crc = kept.keep(2, 17, 5, aggregateOf(5, 100), undefined);
    expect(kept.read(2, { nodeId: 17, count: 5, aggregateCrc: crc })).toEqual(aggregateOf(5, 100));
    expect(kept.read(2, { nodeId: 17, count: 5 }), 'no CRC vouched').toBeUndefined();
    expect(kept.read(2, { nodeId: 17, count: 5, aggregateCrc: crc ^ 1 }), 'another CRC vouched').toBeUndefined();
    expect(kept.read(2, { nodeId: 18, count: 5, aggregateCrc: crc }), 'another node').toBeUndefined();
    expect(kept.read(2, { nodeId: 17, count: 7, aggregateCrc: crc }), 'another count').toBeUndefined();
    expect(kept.read(1, { nodeId: 17, count: 5, aggregateCrc: crc }), 'another level').toBeUndefined();
  });

  it('never overwrites the copy the committed record vouches for: the next count, or a node a merge builds', () => {
    const { kept } = area();
    const committed = { nodeId: 4, count: 8, aggregateCrc: kept.keep(0, 4, 8, aggregateOf(8, 1), undefined) };
    const next = { nodeId: 4, count: 9, aggregateCrc: kept.keep(0, 4, 9, aggregateOf(9, 2), committed) };
    expect(kept.read(0, committed)).toEqual(aggregateOf(8, 1));
    expect(kept.read(0, next)).toEqual(aggregateOf(9, 2));
    // A merge step replaces node 4 by node 30 of 8 entries (the same count): committed until its commit.
    const merged = { nodeId: 30, count: 8, aggregateCrc: kept.keep(0, 30, 8, aggregateOf(8, 7), committed) };
    expect(kept.read(0, committed)).toEqual(aggregateOf(8, 1));
    expect(kept.read(0, merged)).toEqual(aggregateOf(8, 7));
    // Once it is committed, the next entry goes to the other copy.
    kept.keep(0, 30, 9, aggregateOf(9, 8), merged);
    expect(kept.read(0, merged)).toEqual(aggregateOf(8, 7));
  });

  it('refuses a torn or damaged copy, and a copy a crash left unpersisted', () => {
    const { region, kept } = area();
    const crc = kept.keep(0, 4, 3, aggregateOf(3, 50), undefined);
    const image = region.durableImage();
    const copyBytes = (OpenNodeAggregates.fileBytes(GEOMETRY, LAYOUT) - Flank.fileBytes(GEOMETRY)) / (MAX_LEVELS * 2);
    image[Flank.fileBytes(GEOMETRY) + 8 + 16]! ^= 0x40; // level 1's copy 0 (nothing committed yet): one bit of its largest timestamp
    expect(copyBytes).toBe(256);
    expect(OpenNodeAggregates.open(SimulatedRegion.fromImage('f', image), GEOMETRY, LAYOUT).read(0, { nodeId: 4, count: 3, aggregateCrc: crc })).toBeUndefined();
    const unpersisted = SimulatedRegion.create('flank', OpenNodeAggregates.fileBytes(GEOMETRY, LAYOUT));
    vi.spyOn(unpersisted, 'persist').mockImplementation(() => {});
    const lost = OpenNodeAggregates.open(unpersisted, GEOMETRY, LAYOUT).keep(0, 4, 3, aggregateOf(3, 50), undefined);
    expect(OpenNodeAggregates.open(SimulatedRegion.fromImage('f', unpersisted.crash(1)), GEOMETRY, LAYOUT).read(0, { nodeId: 4, count: 3, aggregateCrc: lost })).toBeUndefined();
  });

  it('keeps nothing in a flank file of an older store (no area after the ring), yet vouches consistently', () => {
    const { region, kept } = area(Flank.fileBytes(GEOMETRY));
    expect(kept.kept).toBe(false);
    const crc = kept.keep(0, 4, 3, aggregateOf(3, 50), undefined);
    expect(kept.keep(0, 4, 3, aggregateOf(3, 50), { nodeId: 4, count: 3, aggregateCrc: crc })).toBe(crc);
    expect(kept.read(0, { nodeId: 4, count: 3, aggregateCrc: crc })).toBeUndefined();
    expect(region.durableImage().every((byte) => byte === 0)).toBe(true);
  });
});

/** The model after the first `count` events. */
function modelOf(count: number): StockModel {
  const model = new StockModel();
  for (let seq = 0; seq < count; seq++) model.append(eventAt(seq));
  return model;
}

function treeOf(store: Store): Tree {
  return (store as unknown as { streamsByName: Map<string, { tree: Tree }> }).streamsByName.get('stock')!.tree;
}

function internals(tree: Tree): { state: FlankState; openCount: number } {
  return tree as unknown as { state: FlankState; openCount: number };
}

/**
 * A store whose level-1 open node is one entry short of closing and whose open leaf is full, so
 * that the next append closes the leaf and, with it, the node; returns it after a clean close.
 */
function storeBeforeNodeClose(): { media: SimulatedMedia; appended: number } {
  const media = new SimulatedMedia();
  const store = Store.openOn(media, OPTIONS, FRESH);
  const stream = store.createStream('stock', STOCK);
  const tree = treeOf(store);
  let seq = 0;
  while (tree.leafCount < 3 * NODE_FILL || internals(tree).openCount < LEAF_FILL) stream.append(eventAt(seq++));
  expect([tree.leafFill, internals(tree).state.levels[0]!.count]).toEqual([LEAF_FILL, NODE_FILL - 1]);
  store.close();
  return { media: media.restart(), appended: seq };
}

function flankName(media: SimulatedMedia): string {
  return [...media.regions.keys()].find((name) => name.endsWith('flank'))!;
}

/** Reopens, appends the event that closes the level-1 node, and counts the leaf-aggregate slots read meanwhile. */
function closeNodeAfterReopen(media: SimulatedMedia, seq: number): { slotsRead: number; store: Store } {
  const store = Store.openOn(media, OPTIONS, FRESH);
  const tree = treeOf(store);
  const before = internals(tree).state.levels[0]!.nodeId;
  const read = vi.spyOn(tree.parts.leafAggregates, 'read');
  store.stream('stock').append(eventAt(seq));
  const slotsRead = read.mock.calls.length;
  read.mockRestore();
  const after = internals(tree).state.levels[0]!;
  expect(after.nodeId !== before && after.count === 0, 'the append closed the level-1 node').toBe(true);
  return { slotsRead, store };
}

function expectLikeModel(store: Store, model: StockModel, label = ''): void {
  const stream = store.stream('stock');
  expect(stream.verify({ full: true }), label).toEqual([]);
  expect(stream.stats().events, label).toBe(model.events.length);
  expectAggregatesClose(stream.aggregate(-1, Infinity), model.aggregate(-1, Infinity));
  expectAggregatesClose(stream.aggregate(5, NODE_FILL * LEAF_FILL * 3), model.aggregate(5, NODE_FILL * LEAF_FILL * 3));
}

describe('closing an index node after reopen', () => {
  it('takes the running aggregate the flank file keeps: no child slot is read', () => {
    const { media, appended } = storeBeforeNodeClose();
    const { slotsRead, store } = closeNodeAfterReopen(media, appended);
    expect(slotsRead).toBe(0);
    expectLikeModel(store, modelOf(appended + 1));
    store.close();
  });

  it('sums the children when the kept copy is damaged, or the flank file predates the area', () => {
    for (const damage of ['clobbered', 'older file'] as const) {
      const { media, appended } = storeBeforeNodeClose();
      const name = flankName(media);
      const image = media.regions.get(name)!.durableImage();
      const areaAt = Flank.fileBytes(GEOMETRY);
      media.regions.set(name, SimulatedRegion.fromImage(name, damage === 'older file' ? image.slice(0, areaAt) : image.fill(0x5a, areaAt)));
      const { slotsRead, store } = closeNodeAfterReopen(media, appended);
      expect(slotsRead, damage).toBeGreaterThanOrEqual(NODE_FILL - 1);
      expectLikeModel(store, modelOf(appended + 1), damage);
      store.close();
    }
  });

  it('keeps the running aggregate of an open node a merge rebuilt: the first close after reopen reads no child slot', () => {
    const media = new SimulatedMedia();
    const store = Store.openOn(media, OPTIONS, FRESH);
    const stream = store.createStream('stock', STOCK);
    const tree = treeOf(store);
    const model = new StockModel();
    const add = (event: StockEvent) => {
      stream.append(event);
      model.append(event);
    };
    let seq = 0;
    while (tree.leafCount < NODE_FILL + 12) add(eventAt(seq++));
    for (let late = 0; late < 5; late++) add({ ...eventAt(seq - 5 * LEAF_FILL + late * 7), seq: seq++ }); // into leaves under the open level-1 node
    const before = internals(tree).state.levels[0]!;
    stream.mergeLateEvents();
    const rebuilt = internals(tree).state.levels[0]!;
    expect(rebuilt.nodeId, 'the merge rebuilt the level-1 open node').not.toBe(before.nodeId);
    // Fill the fresh open leaf without closing it: no leaf close extends the rebuilt node before the restart.
    for (let i = 0; i < LEAF_FILL; i++) add(eventAt(seq++));
    expect(internals(tree).state.levels[0]).toBe(rebuilt);
    store.close();
    const reopened = Store.openOn(media.restart(), OPTIONS, FRESH);
    const read = vi.spyOn(treeOf(reopened).parts.leafAggregates, 'read');
    const event = eventAt(seq++);
    reopened.stream('stock').append(event);
    model.append(event);
    expect(read.mock.calls.length).toBe(0);
    read.mockRestore();
    expectLikeModel(reopened, model);
    reopened.close();
  });

  it('uses what the copy holds: verify() reports a wrong one, and then the node it closes', () => {
    const { media, appended } = storeBeforeNodeClose();
    const store = Store.openOn(media, OPTIONS, FRESH);
    const tree = treeOf(store);
    const open = internals(tree).state.levels[0]!;
    const wrong = tree.sumChildren(open.nodeId, open.count, 1);
    wrong.sum[0]! += 1000;
    open.aggregateCrc = tree.parts.openNodeAggregates.keep(0, open.nodeId, open.count, wrong, undefined);
    const stream = store.stream('stock');
    expect(stream.verify().map((v) => v.where)).toEqual([`open index node ${open.nodeId}'s running aggregate in the flank file`]);
    stream.append(eventAt(appended));
    expect(stream.verify().map((v) => v.problem)).toEqual([expect.stringMatching(/^seq: stored sum \d+, children sum \d+$/)]);
    store.close();
  });

  it('recovers to the model after a power cut at any write-back of the append that closes a node', () => {
    const { media: before, appended } = storeBeforeNodeClose();
    let cuts = 0;
    for (let cutAt = 1; ; cutAt++) {
      const media = before.restart();
      const store = Store.openOn(media, OPTIONS, FRESH);
      const start = media.writeBackCount;
      media.onWriteBack = (count) => {
        if (count >= start + cutAt) throw new Error('power cut');
      };
      let finished = false;
      try {
        store.stream('stock').append(eventAt(appended));
        finished = true;
      } catch (err) {
        expect((err as Error).message).toBe('power cut');
      }
      media.onWriteBack = undefined;
      if (finished) break;
      cuts++;
      for (const seed of [1, 2, 3]) {
        const after = Store.openOn(media.crash(cutAt * 10 + seed), OPTIONS, FRESH);
        const stream = after.stream('stock');
        const recovered = stream.stats().events;
        expect([appended, appended + 1], `cut ${cutAt}`).toContain(recovered);
        // Two more leaves: the level-1 node closes now if the cut came before its commit.
        for (let seq = recovered; seq < appended + 2 * LEAF_FILL; seq++) stream.append(eventAt(seq));
        expectLikeModel(after, modelOf(appended + 2 * LEAF_FILL), `cut ${cutAt}, seed ${seed}`);
        after.close();
      }
    }
    expect(cuts, 'write-backs in a node-closing append').toBeGreaterThan(5);
  });
});
