import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BoundsError, MisuseError } from '../src/errors.js';
import { SimulatedRegion } from '../src/pmem/simulated-region.js';

const SIZE = 512;
const WORDS = SIZE / 8;

function word(region: SimulatedRegion | Uint8Array, index: number): bigint {
  const bytes = region instanceof Uint8Array ? region : new Uint8Array(region.buffer);
  return new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(index * 8, true);
}

describe('SimulatedRegion', () => {
  it('loses an unpersisted store and keeps a persisted one', () => {
    const region = SimulatedRegion.create('r', SIZE);
    const view = new DataView(region.buffer);
    view.setBigUint64(0, 7n, true);
    region.persist(0, 8);
    view.setBigUint64(128, 9n, true);
    expect(word(region.durableImage(), 0)).toBe(7n);
    expect(word(region.durableImage(), 16)).toBe(0n);
  });

  it('writes back whole 64-byte lines, not more', () => {
    const region = SimulatedRegion.create('r', SIZE);
    const bytes = new Uint8Array(region.buffer);
    bytes[63] = 1;
    bytes[64] = 2;
    region.persist(0, 1);
    const image = region.durableImage();
    expect(image[63]).toBe(1);
    expect(image[64]).toBe(0);
  });

  it('makes a flush durable only at the drain, with the value seen at flush time', () => {
    const region = SimulatedRegion.create('r', SIZE);
    const view = new DataView(region.buffer);
    view.setBigUint64(0, 1n, true);
    region.flush(0, 8);
    view.setBigUint64(0, 2n, true);
    expect(word(region.durableImage(), 0)).toBe(0n);
    region.drain();
    expect(word(region.durableImage(), 0)).toBe(1n);
  });

  it('lets a crash keep or drop each unpersisted word independently', () => {
    const region = SimulatedRegion.create('r', SIZE);
    const view = new DataView(region.buffer);
    for (let i = 0; i < WORDS; i++) view.setBigUint64(i * 8, BigInt(i + 1), true);
    const kept = Array.from({ length: WORDS }, (_, i) => word(region.crash(42), i) !== 0n).filter(Boolean).length;
    expect(kept).toBeGreaterThan(WORDS / 4);
    expect(kept).toBeLessThan((WORDS * 3) / 4);
    expect(region.crash(42)).toEqual(region.crash(42));
  });

  it('detaches old views on grow and close, and refuses use after close', () => {
    const region = SimulatedRegion.create('r', SIZE);
    const old = new DataView(region.buffer);
    old.setUint8(5, 9);
    region.grow(SIZE * 2);
    expect(() => old.getUint8(0)).toThrow(TypeError);
    expect(new Uint8Array(region.buffer)[5]).toBe(9);
    expect(region.size).toBe(SIZE * 2);
    region.close();
    expect(() => region.persist(0, 1)).toThrow(MisuseError);
  });

  it('refuses out-of-range persists', () => {
    const region = SimulatedRegion.create('r', SIZE);
    expect(() => region.persist(SIZE - 4, 8)).toThrow(BoundsError);
    expect(() => region.flush(-1, 1)).toThrow(BoundsError);
  });

  type Op =
    | { kind: 'write'; word: number; value: bigint }
    | { kind: 'persist' | 'flush'; offset: number; length: number }
    | { kind: 'drain' };
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('write' as const), word: fc.nat(WORDS - 1), value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }) },
    {
      weight: 2,
      arbitrary: fc
        .record({ kind: fc.constantFrom('persist' as const, 'flush' as const), offset: fc.nat(SIZE - 1), length: fc.nat(96) })
        .map((o) => ({ ...o, length: Math.min(o.length, SIZE - o.offset) })),
    },
    { weight: 1, arbitrary: fc.constant({ kind: 'drain' as const }) },
  );

  it('property: after a crash every word holds a value it had since its last durable point', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), fc.integer(), (ops, seed) => {
        const region = SimulatedRegion.create('r', SIZE);
        const view = new DataView(region.buffer);
        // Per word: every value it has held, and the index of the newest one known to be durable.
        const history = Array.from({ length: WORDS }, () => [0n]);
        const durableFrom = new Array<number>(WORDS).fill(0);
        let flushed: Array<[number, number]> = [];
        const wordsOfLines = (offset: number, length: number): number[] => {
          const first = Math.floor(offset / 64) * 8;
          const last = Math.min(WORDS, Math.ceil((offset + Math.max(length, 0)) / 64) * 8);
          return Array.from({ length: Math.max(0, last - first) }, (_, i) => first + i);
        };
        for (const o of ops) {
          if (o.kind === 'write') {
            view.setBigUint64(o.word * 8, o.value, true);
            history[o.word]!.push(o.value);
          } else if (o.kind === 'persist') {
            region.persist(o.offset, o.length);
            for (const w of wordsOfLines(o.offset, o.length)) durableFrom[w] = history[w]!.length - 1;
          } else if (o.kind === 'flush') {
            region.flush(o.offset, o.length);
            for (const w of wordsOfLines(o.offset, o.length)) flushed.push([w, history[w]!.length - 1]);
          } else {
            region.drain();
            for (const [w, at] of flushed) durableFrom[w] = Math.max(durableFrom[w]!, at);
            flushed = [];
          }
        }
        const image = region.crash(seed);
        const reopened = SimulatedRegion.fromImage('r', image);
        for (let w = 0; w < WORDS; w++) {
          const allowed = history[w]!.slice(durableFrom[w]);
          expect(allowed).toContain(word(reopened, w));
        }
      }),
      { numRuns: 300 },
    );
  });
});
