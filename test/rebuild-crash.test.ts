import { describe, expect, it } from 'vitest';
import { CorruptionError } from '../src/errors.js';
import { SimulatedMedia } from '../src/media.js';
import { Store } from '../src/store.js';
import { Random } from '../src/util/random.js';
import { CAMPAIGN_TIMEOUT_MS, STOCK, type StockEvent } from './model.js';

// A rebuild from SSD (open with { rebuild: true }) replaces a stream's PMem files with new,
// empty ones and then adopts the leaf file. Power fails at every write-back of it: whatever
// instant, an ordinary open must never take the half-built, empty tree for the truth (its
// recovery would cut the leaf file to match), and a second rebuild must bring back every event
// that was in a leaf record.

const OPTIONS = { nodeSize: 1024, spare: 0.1, ringLeaves: 4, syncEvery: 2, flushEvery: 1 } as const;
const FRESH = { storeId: new Uint8Array(16).fill(5), pmemDir: '/simulated' };

class PowerCut extends Error {}

const event = (i: number, random: Random): StockEvent => ({ ts: i * 2, seq: i, symbol: random.nextInt(10), price: random.nextInt(10_000) / 100, volume: 1 + random.nextInt(1000) });

/** A store whose PMem files are gone, its leaf file holding `events` events in leaf records. */
function storeWithoutPmem(count: number): { media: SimulatedMedia; inLeaves: StockEvent[] } {
  const random = new Random(count);
  const media = new SimulatedMedia();
  const store = Store.openOn(media, OPTIONS, FRESH);
  const stream = store.createStream('stock', STOCK);
  const all = Array.from({ length: count }, (_, i) => event(i, random));
  stream.appendBatch(all);
  store.close();
  for (const name of [...media.regions.keys()]) media.removeRegion(name);
  const rebuilt = Store.openOn(media.restart(), { ...OPTIONS, rebuild: true }, FRESH);
  const inLeaves = [...rebuilt.stream('stock').replay()] as unknown as StockEvent[];
  rebuilt.close();
  expect(inLeaves, 'a clean rebuild returns the events of the leaf records').toEqual(all.slice(0, inLeaves.length));
  expect(inLeaves.length).toBeGreaterThan(count / 2);
  return { media, inLeaves };
}

function rebuildUntilCut(media: SimulatedMedia, cutAt: number, seed: number): { media: SimulatedMedia; writeBacks: number } {
  const running = media.restart();
  const before = running.writeBackCount;
  running.onWriteBack = (count) => {
    if (count - before >= cutAt) throw new PowerCut();
  };
  try {
    Store.openOn(running, { ...OPTIONS, rebuild: true }, FRESH).close();
  } catch (err) {
    if (!(err instanceof PowerCut)) throw err;
  }
  running.onWriteBack = undefined;
  return { media: running.crash(seed), writeBacks: running.writeBackCount - before };
}

describe('power failure during a rebuild from SSD', () => {
  it('never lets an ordinary open cut the leaf file, and a second rebuild brings every leaf record back', () => {
    let points = 0;
    for (const count of [700, 3000]) {
      const { media, inLeaves } = storeWithoutPmem(count);
      const total = rebuildUntilCut(media, Infinity, 0).writeBacks;
      for (let cutAt = 1; cutAt <= total; cutAt++, points++) {
        const label = `${count} events, cut at write-back ${cutAt} of ${total}`;
        const crashed = rebuildUntilCut(media, cutAt, cutAt).media;
        let ordinary: StockEvent[] | undefined;
        try {
          const store = Store.openOn(crashed.restart(), OPTIONS, FRESH);
          ordinary = [...store.stream('stock').replay()] as unknown as StockEvent[];
          store.close();
        } catch (err) {
          expect(err, label).toBeInstanceOf(CorruptionError);
        }
        // An ordinary open either refused (the rebuild is unfinished) or found the rebuild done.
        if (ordinary !== undefined) expect(ordinary, label).toEqual(inLeaves);
        const again = Store.openOn(crashed.restart(), { ...OPTIONS, rebuild: !ordinary }, FRESH);
        expect([...again.stream('stock').replay()], label).toEqual(inLeaves);
        expect(again.verify({ full: true }), label).toEqual({ stock: [] });
        again.close();
      }
    }
    console.log(`rebuild crash points: ${points}, lost: 0`);
    expect(points).toBeGreaterThan(20);
  }, CAMPAIGN_TIMEOUT_MS);
});
