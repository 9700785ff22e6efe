import { describe, expect, it } from 'vitest';
import { LeafCache } from '../src/cache/leaf-cache.js';

const rowsOf = (bytes: number) => new DataView(new ArrayBuffer(bytes));

describe('LeafCache', () => {
  it('evicts the least recently used entry when over its byte cap', () => {
    const cache = new LeafCache(300);
    cache.set(1, rowsOf(100));
    cache.set(2, rowsOf(100));
    cache.set(3, rowsOf(100));
    expect(cache.get(1)).toBeDefined();
    cache.set(4, rowsOf(100));
    expect(cache.get(2)).toBeUndefined();
    expect(cache.get(1)).toBeDefined();
    expect(cache.get(3)).toBeDefined();
    expect(cache.stats()).toMatchObject({ bytes: 300, entries: 3, hits: 3, misses: 1 });
  });

  it('never holds more than its cap, and skips entries larger than the cap', () => {
    const cache = new LeafCache(250);
    for (let i = 0; i < 100; i++) cache.set(i, rowsOf(1 + (i % 120)));
    expect(cache.stats().bytes).toBeLessThanOrEqual(250);
    cache.set(1000, rowsOf(251));
    expect(cache.get(1000)).toBeUndefined();
  });

  it('replaces an entry under the same key without double counting', () => {
    const cache = new LeafCache(1000);
    cache.set(1, rowsOf(100));
    cache.set(1, rowsOf(50));
    expect(cache.stats()).toMatchObject({ bytes: 50, entries: 1 });
  });
});
