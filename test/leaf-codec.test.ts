import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CorruptionError } from '../src/errors.js';
import { decodeLeaf, encodeLeaf } from '../src/leaf/codec.js';
import { ATTRIBUTE_TYPES, parseSchema } from '../src/schema.js';
import { EventCodec } from '../src/event-codec.js';
import { STOCK_SCHEMA, StockGenerator, SINE_SCHEMA, sineColumns } from '../bench/datasets.js';

function rowsOf(schema: ReturnType<typeof parseSchema>, columns: Record<string, ArrayLike<number | bigint>>): { rows: Uint8Array; count: number } {
  const prepared = new EventCodec('s', schema).prepareColumns(columns);
  const rows = new Uint8Array(prepared.count * schema.rowBytes);
  prepared.write(new DataView(rows.buffer), 0, 0, prepared.count);
  return { rows, count: prepared.count };
}

describe('leaf codec', () => {
  it('property: any rows round-trip byte for byte (special floats, any timestamps)', () => {
    const schemaArb = fc.tuple(fc.array(fc.constantFrom(...ATTRIBUTE_TYPES), { minLength: 1, maxLength: 6 }), fc.constantFrom('number' as const, 'bigint' as const));
    fc.assert(
      fc.property(schemaArb, fc.integer({ min: 0, max: 300 }), fc.uint8Array({ minLength: 64 * 300, maxLength: 64 * 300 }), fc.boolean(), ([types, timestamp], count, noise, ordered) => {
        const schema = parseSchema(Object.fromEntries(types.map((t, i) => [`a${i}`, t])), { timestamp });
        const rows = noise.slice(0, count * schema.rowBytes);
        const view = new DataView(rows.buffer);
        if (timestamp === 'number') {
          for (let r = 0; r < count; r++) {
            const ts = ordered ? r * 3 : (view.getUint32(r * schema.rowBytes, true) % 1e9) - 5e8;
            view.setInt32(r * schema.rowBytes + 4, Math.floor(ts / 2 ** 32), true);
            view.setUint32(r * schema.rowBytes, ts >>> 0, true);
          }
        }
        expect(decodeLeaf(schema, encodeLeaf(schema, rows, count), count)).toEqual(rows);
      }),
      { numRuns: 300 },
    );
  });

  it('round-trips -0, NaN payloads, infinities, subnormals and integer extremes', () => {
    const schema = parseSchema({ f: 'f64', g: 'f32', i: 'i32', u: 'u32' });
    const values = [-0, NaN, Infinity, -Infinity, 5e-324, 1.5, -2.25, 1e300];
    const { rows, count } = rowsOf(schema, { ts: values.map((_, i) => i), f: values.map((v) => (Number.isNaN(v) ? 0 : v)), g: values.map(() => 0.5), i: values.map((_, k) => (k % 2 ? -(2 ** 31) : 2 ** 31 - 1)), u: values.map((_, k) => (k % 2 ? 0 : 2 ** 32 - 1)) });
    new DataView(rows.buffer).setUint32(16 + 4, 0x7ff80001, true); // a NaN with a payload in row 0
    expect(decodeLeaf(schema, encodeLeaf(schema, rows, count), count)).toEqual(rows);
  });

  it('compresses Stock below 5.7 and Sine well below 56 bytes per event', () => {
    const stock = parseSchema(STOCK_SCHEMA);
    const columns = new StockGenerator(1).next(263);
    const { rows, count } = rowsOf(stock, columns as never);
    expect(encodeLeaf(stock, rows, count).length / count).toBeLessThan(5.7);
    const sine = parseSchema(SINE_SCHEMA);
    const s = rowsOf(sine, sineColumns(0, 131) as never);
    expect(encodeLeaf(sine, s.rows, s.count).length / s.count).toBeLessThan(40);
  });

  it('property: fuzzed payloads decode or fail with CorruptionError, never anything else', () => {
    const schema = parseSchema(STOCK_SCHEMA);
    const { rows, count } = rowsOf(schema, new StockGenerator(2).next(100) as never);
    const payload = encodeLeaf(schema, rows, count);
    fc.assert(
      fc.property(fc.nat(payload.length - 1), fc.integer({ min: 1, max: 255 }), fc.nat(payload.length), (at, xor, cut) => {
        const damaged = payload.slice(0, Math.max(1, cut));
        if (at < damaged.length) damaged[at] = damaged[at]! ^ xor;
        try {
          decodeLeaf(schema, damaged, count);
        } catch (err) {
          expect(err).toBeInstanceOf(CorruptionError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
