import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BoundsError, CorruptionError, MisuseError } from '../src/errors.js';
import { EventCodec } from '../src/event-codec.js';
import { ATTRIBUTE_TYPES, type AttributeType, deserializeSchema, parseSchema, schemasEqual, serializeSchema } from '../src/schema.js';

const STOCK = parseSchema({ seq: 'u32', symbol: 'u32', price: 'f64', volume: 'u32' });

describe('parseSchema', () => {
  it('lays Stock out in 28 bytes, ts first, then the hidden 8-byte lsn', () => {
    expect(STOCK.lsnOffset).toBe(28);
    expect(STOCK.rowBytes).toBe(36);
    expect(STOCK.attributes.map((a) => [a.name, a.offset])).toEqual([['seq', 8], ['symbol', 12], ['price', 16], ['volume', 24]]);
  });

  it.each([
    [{ ts: 'u32' }, /implicit timestamp/],
    [{ '1x': 'u32' }, /identifier/],
    [{ a: 'u128' }, /unknown type/],
    [Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`a${i}`, 'u8'])), /at most 64/],
    [null, /must be an object/],
  ])('refuses %j', (definition, message) => {
    expect(() => parseSchema(definition as never)).toThrow(MisuseError);
    expect(() => parseSchema(definition as never)).toThrow(message);
  });

  it('serializes and reads back, and detects damage', () => {
    const schema = parseSchema({ a: 'i64', b: 'f32' }, { timestamp: 'bigint' });
    const bytes = serializeSchema(schema);
    expect(schemasEqual(deserializeSchema(bytes, 'm', 0), schema)).toBe(true);
    bytes[4] = bytes[4]! ^ 1;
    expect(() => deserializeSchema(bytes, 'm', 0)).toThrow(CorruptionError);
  });

  it('property: every schema survives serialization', () => {
    const definition = fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9_]{0,10}$/).filter((n) => n !== 'ts'), fc.constantFrom(...ATTRIBUTE_TYPES), { maxKeys: 20 });
    fc.assert(fc.property(definition, fc.constantFrom('number' as const, 'bigint' as const), (def, timestamp) => {
      const schema = parseSchema(def, { timestamp });
      expect(schemasEqual(deserializeSchema(serializeSchema(schema), 'm', 0), schema)).toBe(true);
    }));
  });
});

describe('EventCodec', () => {
  const codec = new EventCodec('stock', STOCK);
  const good = { ts: 5, seq: 1, symbol: 2, price: 3.5, volume: 4 };
  const rejects = (event: unknown, error: unknown, message: RegExp) => {
    const view = new DataView(new ArrayBuffer(28));
    expect(() => {
      codec.timestampOf(event as never);
      codec.validate(event as never);
    }).toThrow(error as never);
    expect(() => {
      codec.timestampOf(event as never);
      codec.validate(event as never);
    }).toThrow(message);
    expect(new Uint8Array(view.buffer).every((b) => b === 0)).toBe(true);
  };

  it('round-trips an event', () => {
    const view = new DataView(new ArrayBuffer(28));
    codec.encode(good, view, 0);
    expect(codec.decode(view, 0)).toEqual(good);
  });

  it.each<[string, unknown, unknown, RegExp]>([
    ['a missing attribute', { ts: 1, seq: 1, symbol: 2, price: 3 }, MisuseError, /volume.*must be a number/],
    ['an extra attribute', { ...good, colour: 1 }, MisuseError, /unknown attribute 'colour'/],
    ['a string where a number belongs', { ...good, price: '3' }, MisuseError, /price.*must be a number/],
    ['NaN', { ...good, price: NaN }, MisuseError, /NaN/],
    ['a fractional integer', { ...good, seq: 1.5 }, MisuseError, /integer/],
    ['an integer out of range', { ...good, seq: -1 }, BoundsError, /out of range/],
    ['a non-integer timestamp', { ...good, ts: 1.5 }, BoundsError, /safe integer/],
    ['an unsafe timestamp', { ...good, ts: 2 ** 60 }, BoundsError, /safe integer/],
    ['a NaN timestamp', { ...good, ts: NaN }, BoundsError, /safe integer/],
    ['a bigint timestamp in a number stream', { ...good, ts: 5n }, MisuseError, /must be a number/],
    ['null', null, MisuseError, /must be an object/],
  ])('refuses %s with a typed error', (_label, event, error, message) => rejects(event, error, message));

  it('accepts ±Infinity in floats and bigint timestamps in bigint streams', () => {
    const big = new EventCodec('b', parseSchema({ x: 'f64', n: 'u64' }, { timestamp: 'bigint' }));
    const event = { ts: -(2n ** 63n), x: -Infinity, n: 2n ** 64n - 1n };
    big.validate(event);
    const view = new DataView(new ArrayBuffer(24));
    big.encode(event, view, 0);
    expect(big.decode(view, 0)).toEqual(event);
    expect(() => big.timestampOf({ ts: 2n ** 63n })).toThrow(BoundsError);
  });

  it('validates a whole columnar batch before writing any of it', () => {
    expect(() => codec.prepareColumns({ ts: [1, 2], seq: [1, 2], symbol: [1, 2], price: [1, NaN], volume: [1, 2] })).toThrow(/NaN/);
    expect(codec.prepareColumns({ ts: [2, 1], seq: [1, 2], symbol: [1, 2], price: [1, 2], volume: [1, 2] }).inOrder).toBe(false);
    expect(() => codec.prepareColumns({ ts: [2, 1.5], seq: [1, 2], symbol: [1, 2], price: [1, 2], volume: [1, 2] })).toThrow(/ts\[1\]/);
    expect(() => codec.prepareColumns({ ts: [1, 2], seq: [1], symbol: [1, 2], price: [1, 2], volume: [1, 2] })).toThrow(/has 1 values/);
    expect(() => codec.prepareColumns({ ts: [1], seq: [1], symbol: [1], price: [1], volume: [1], extra: [1] })).toThrow(/unknown column/);
  });

  it('property: random schemas and valid events round-trip', () => {
    const value = (type: AttributeType): fc.Arbitrary<number | bigint> => {
      switch (type) {
        case 'i64': return fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
        case 'u64': return fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
        case 'f64': return fc.double({ noNaN: true });
        case 'f32': return fc.float({ noNaN: true }).map(Math.fround);
        default: {
          const bits = Number(type.slice(1));
          const signed = type.startsWith('i');
          return fc.integer({ min: signed ? -(2 ** (bits - 1)) : 0, max: signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1 });
        }
      }
    };
    const schemaAndEvent = fc.array(fc.constantFrom(...ATTRIBUTE_TYPES), { minLength: 1, maxLength: 8 }).chain((types) =>
      fc.tuple(fc.constant(types), fc.tuple(fc.maxSafeInteger(), ...types.map(value))),
    );
    fc.assert(
      fc.property(schemaAndEvent, ([types, [ts, ...values]]) => {
        const schema = parseSchema(Object.fromEntries(types.map((t, i) => [`a${i}`, t])));
        const c = new EventCodec('s', schema);
        const event = { ts, ...Object.fromEntries(values.map((v, i) => [`a${i}`, v])) };
        c.validate(event);
        const view = new DataView(new ArrayBuffer(schema.rowBytes));
        c.encode(event, view, 0);
        expect(c.decode(view, 0)).toEqual(event);
      }),
    );
  });
});
