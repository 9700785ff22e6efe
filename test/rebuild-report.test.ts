import { describe, expect, it } from 'vitest';
import { SimulatedMedia } from '../src/media.js';
import { Store } from '../src/store.js';
import { FaultyFile } from '../src/ssd/faulty-file.js';
import { STOCK } from './model.js';

// What db.rebuildReport() says: events lost when the damaged PMem files still count them (and
// why not when they cannot), and the leaf records the scan of the leaf file had to cut.

const OPTIONS = { nodeSize: 1024, ringLeaves: 4, syncEvery: 2, flushEvery: 1 } as const;
const FRESH = { storeId: new Uint8Array(16).fill(9), pmemDir: '/simulated' };
const event = (i: number) => ({ ts: i, seq: i, symbol: 1, price: 2.5, volume: 1 });

function closedStore(events: number): SimulatedMedia {
  const media = new SimulatedMedia();
  const store = Store.openOn(media, OPTIONS, FRESH);
  store.createStream('stock', STOCK).appendBatch(Array.from({ length: events }, (_, i) => event(i)));
  store.close();
  return media.restart();
}

function damageNodesHeader(media: SimulatedMedia): void {
  const region = media.openRegion('stream-0.nodes', 0, false);
  new Uint8Array(region.buffer)[8]! ^= 0xff; // a foreign index-node file now; the flank still counts
  region.persist(0, 64);
  region.close();
}

describe('rebuild report', () => {
  it('counts a damaged leaf record and the intact ones cut off after it, and their events among the lost', () => {
    const media = closedStore(3000);
    damageNodesHeader(media);
    const leafFile = media.files.get('stream-0.leaves')!.contents();
    // Damage the payload of the 10th leaf record: walk the records by their total length (header bytes 16..20: stored length).
    let offset = 0;
    const view = new DataView(leafFile.buffer);
    for (let record = 0; record <= 10; record++) offset += 32 + Math.ceil(view.getUint32(offset + 16, true) / 8) * 8 + 8;
    leafFile[offset + 40]! ^= 0x01;
    media.files.set('stream-0.leaves', FaultyFile.fromImage('stream-0.leaves', leafFile));
    const store = Store.openOn(media.restart(), { ...OPTIONS, rebuild: true }, FRESH);
    const [report] = store.rebuildReport();
    expect(report).toMatchObject({ stream: 'stock', leaves: 10, damagedRecords: 1, setAside: '.damaged-1' });
    expect(report!.skippedRecords).toBeGreaterThan(50);
    expect(report!.skippedEvents).toBeGreaterThan(report!.skippedRecords * 20);
    expect(report!.cutBytes).toBeGreaterThan(0);
    expect(report!.events).toBe(store.stream('stock').stats().events);
    expect(report!.lostEvents).toBe(3000 - report!.events);
    expect(report!.lostEvents).toBeGreaterThanOrEqual(report!.skippedEvents);
    expect(report!.lostEventsUnknownReason).toBeUndefined();
    store.close();
  });

  it('says why the lost events are unknown when the PMem files are gone, and a torn tail is one damaged record', () => {
    const media = closedStore(2000);
    for (const name of [...media.regions.keys()]) media.removeRegion(name);
    const leafFile = media.files.get('stream-0.leaves')!.contents();
    media.files.set('stream-0.leaves', FaultyFile.fromImage('stream-0.leaves', leafFile.slice(0, leafFile.length - 24)));
    const store = Store.openOn(media.restart(), { ...OPTIONS, rebuild: true }, FRESH);
    const [report] = store.rebuildReport();
    expect(report).toMatchObject({ lostEvents: undefined, lostEventsUnknownReason: 'the flank file is gone', damagedRecords: 1, skippedRecords: 0, skippedEvents: 0, setAside: undefined });
    expect(report!.cutBytes).toBeGreaterThan(0);
    store.close();
  });
});
