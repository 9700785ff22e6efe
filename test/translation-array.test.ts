import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BoundsError, CorruptionError } from '../src/errors.js';
import { SimulatedRegion } from '../src/pmem/simulated-region.js';
import { TRANSLATION_BATCH, TranslationArray } from '../src/tree/translation-array.js';

const STORE = new Uint8Array(16).fill(3);

function fresh(): { region: SimulatedRegion; array: TranslationArray } {
  const region = SimulatedRegion.create('translation', 4096);
  return { region, array: TranslationArray.create(region, STORE, 0) };
}

const location = (leaf: number) => ({ offset: 100 + leaf * 1000, length: 500 + (leaf % 7) });

describe('TranslationArray', () => {
  it('round-trips locations up to 1 TiB offsets and 16 MiB lengths', () => {
    const { array } = fresh();
    array.set(0, { offset: 2 ** 40 - 1, length: 2 ** 24 - 1 });
    array.set(5000, { offset: 12345678901, length: 9000 });
    expect(array.get(0)).toEqual({ offset: 2 ** 40 - 1, length: 2 ** 24 - 1 });
    expect(array.get(5000)).toEqual({ offset: 12345678901, length: 9000 });
    expect(array.get(4999)).toBeUndefined();
    expect(() => array.set(1, { offset: 2 ** 40, length: 1 })).toThrow(BoundsError);
  });

  it('persists whole batches of 32 only, and the partial batch on request', () => {
    const { region, array } = fresh();
    for (let leaf = 0; leaf < TRANSLATION_BATCH + 5; leaf++) array.set(leaf, location(leaf));
    array.persistThrough(TRANSLATION_BATCH + 5, false);
    expect(array.durableCount).toBe(TRANSLATION_BATCH);
    let reopened = TranslationArray.open(SimulatedRegion.fromImage('t', region.durableImage()), STORE, 0);
    expect(reopened.durableCount).toBe(TRANSLATION_BATCH);
    expect(reopened.get(TRANSLATION_BATCH - 1)).toEqual(location(TRANSLATION_BATCH - 1));
    array.persistThrough(TRANSLATION_BATCH + 5, true);
    reopened = TranslationArray.open(SimulatedRegion.fromImage('t', region.durableImage()), STORE, 0);
    expect(reopened.durableCount).toBe(TRANSLATION_BATCH + 5);
    expect(reopened.get(TRANSLATION_BATCH + 4)).toEqual(location(TRANSLATION_BATCH + 4));
  });

  it('refuses a file of another store or kind', () => {
    const { region } = fresh();
    expect(() => TranslationArray.open(SimulatedRegion.fromImage('t', region.durableImage()), new Uint8Array(16), 0)).toThrow(CorruptionError);
    const bytes = region.durableImage();
    bytes[100] = 1;
    expect(() => TranslationArray.open(SimulatedRegion.fromImage('t', bytes), STORE, 0)).toThrow(/checksum/);
  });

  it('property: after a crash every slot below durableCount holds its location', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.boolean(), fc.integer(), (leaves, partial, seed) => {
        const { region, array } = fresh();
        for (let leaf = 0; leaf < leaves; leaf++) {
          array.set(leaf, location(leaf));
          array.persistThrough(leaf + 1, false);
        }
        if (partial) array.persistThrough(leaves, true);
        const reopened = TranslationArray.open(SimulatedRegion.fromImage('t', region.crash(seed)), STORE, 0);
        expect(reopened.durableCount).toBe(partial ? leaves : leaves - (leaves % TRANSLATION_BATCH));
        for (let leaf = 0; leaf < reopened.durableCount; leaf++) expect(reopened.get(leaf)).toEqual(location(leaf));
      }),
      { numRuns: 200 },
    );
  });
});
