// Leaf compression: rows are re-encoded column by column, each column in the cheapest of a few
// lossless forms, and the result is LZ4-compressed. Plain LZ4 on row-major doubles barely
// compresses; deltas of timestamps and sequence numbers, and decimals stored as scaled integers
// (DuckDB's ALP idea), turn into short, repetitive byte strings that it squeezes well.
// decodeLeaf(encodeLeaf(rows)) is byte-identical for every input (NaN payloads, -0, extremes,
// unordered timestamps): ordering only ever helps compression, never correctness.
//
// Payload:
//   0  u8   form: 0 = the encoded columns follow as is, 1 = they follow LZ4-compressed
//           (lz4-napi block format: u32 LE uncompressed size, then the block)
// Encoded columns (uncompressed):
//   0  u8   codec version (2: rows carry the lsn)
//   1  u8   column count c (the timestamp, each attribute in schema order, then the hidden lsn)
//   2  c x { u8 encoding, u8 decimal exponent }
//   .. c x { u32 byte length n, n bytes }
// Encodings:
//   SHUFFLE        the column's little-endian bytes, byte 0 of every value, then byte 1, ...
//   VARINT         each value zigzag-encoded as a base-128 varint
//   DELTA_VARINT   the first value, then each difference to the previous one, as VARINT
//   DECIMAL_DELTA  floats equal to integer / 10^e: those integers, as DELTA_VARINT
// 64-bit integer attributes and bigint timestamps use SHUFFLE: exact without bigint arithmetic.

import { compressSync, uncompressSync } from 'lz4-napi';
import { CorruptionError } from '../errors.js';
import { type AttributeType, LSN_BYTES, type Schema, TIMESTAMP_BYTES, TYPE_INFO } from '../schema.js';
import { type NumericColumnType, extractColumn, storeColumn } from './columns.js';

const CODEC_VERSION = 2;
const FORM_RAW = 0;
const FORM_LZ4 = 1;
const enum Encoding {
  Shuffle = 0,
  Varint = 1,
  DeltaVarint = 2,
  DecimalDelta = 3,
}
const MAX_EXPONENT = 6;
/** Integers handled as doubles stay exact below this; larger deltas fall back to SHUFFLE. */
const EXACT_LIMIT = 2 ** 51;
const POWERS = Array.from({ length: MAX_EXPONENT + 1 }, (_, e) => 10 ** e);

/** A column of the row layout: where it sits, and how its values are read as numbers. */
interface Column {
  readonly offset: number;
  readonly size: number;
  /** 'int' and 'float' columns are read as doubles (number timestamps as 'ts'); 'opaque' only as bytes. */
  readonly type: AttributeType | 'ts' | 'opaque';
  readonly kind: 'int' | 'float' | 'opaque';
}

export function encodeLeaf(schema: Schema, rows: Uint8Array, count: number): Uint8Array {
  const columns = columnsOf(schema);
  const view = new DataView(rows.buffer, rows.byteOffset, rows.byteLength);
  const out = new Writer(64 + count * schema.rowBytes * 2 + columns.length * 16);
  const values = scratchValues(count);
  out.byte(CODEC_VERSION);
  out.byte(columns.length);
  const header = out.position;
  out.skip(columns.length * 2);
  columns.forEach((column, c) => {
    if (column.kind !== 'opaque') extractColumn(view, column.type as NumericColumnType, column.offset, schema.rowBytes, count, values);
    const [encoding, exponent] = chooseEncoding(column, values, count);
    out.bytes[header + 2 * c] = encoding;
    out.bytes[header + 2 * c + 1] = exponent;
    const lengthAt = out.position;
    out.skip(4);
    if (encoding === Encoding.Shuffle) writeShuffled(out, view, column, schema.rowBytes, count);
    else writeVarints(out, values, count, encoding !== Encoding.Varint);
    new DataView(out.bytes.buffer).setUint32(lengthAt, out.position - lengthAt - 4, true);
  });
  const encoded = Buffer.from(out.bytes.buffer, 0, out.position);
  const compressed = compressSync(encoded);
  const form = compressed.length < encoded.length ? FORM_LZ4 : FORM_RAW;
  const body = form === FORM_LZ4 ? compressed : encoded;
  const payload = new Uint8Array(1 + body.length);
  payload[0] = form;
  payload.set(body, 1);
  return payload;
}

/**
 * Decodes `count` rows. `where` names the record for errors. Any malformed payload is a
 * CorruptionError; lengths are bounded by what `count` rows can take, so nothing huge is allocated.
 */
export function decodeLeaf(schema: Schema, payload: Uint8Array, count: number, where: { file: string; offset: number } = { file: 'leaf payload', offset: 0 }): Uint8Array {
  const fail = (reason: string): never => {
    throw new CorruptionError(where.file, where.offset, `leaf payload: ${reason}`);
  };
  const columns = columnsOf(schema);
  const limit = 64 + count * schema.rowBytes * 2 + columns.length * 16;
  const encoded = unpack(payload, limit, fail);
  const reader = new Reader(encoded, fail);
  if (reader.byte() !== CODEC_VERSION) fail('unknown codec version');
  if (reader.byte() !== columns.length) fail('column count differs from the schema');
  const forms = columns.map(() => [reader.byte(), reader.byte()] as const);
  const rows = new Uint8Array(count * schema.rowBytes);
  const view = new DataView(rows.buffer);
  const values = scratchValues(count);
  columns.forEach((column, c) => {
    const [encoding, exponent] = forms[c]!;
    const end = reader.position + 4 + reader.u32();
    if (encoding === Encoding.Shuffle) readShuffled(reader, view, column, schema.rowBytes, count);
    else {
      checkEncoding(column, encoding, exponent, fail);
      readVarints(reader, values, count, encoding !== Encoding.Varint, encoding === Encoding.DecimalDelta ? POWERS[exponent]! : 1);
      storeColumn(view, column.type as NumericColumnType, column.offset, schema.rowBytes, count, values);
    }
    if (reader.position !== end) fail(`column ${c} has trailing or missing bytes`);
  });
  if (reader.position !== encoded.length) fail('trailing bytes');
  return rows;
}

function unpack(payload: Uint8Array, limit: number, fail: (reason: string) => never): Uint8Array {
  if (payload.length < 1) fail('empty');
  const body = payload.subarray(1);
  if (payload[0] === FORM_RAW) return body;
  if (payload[0] !== FORM_LZ4) fail(`unknown form ${payload[0]}`);
  if (body.length < 4) fail('truncated LZ4 block');
  const size = new DataView(body.buffer, body.byteOffset).getUint32(0, true);
  if (size > limit) fail(`LZ4 block claims ${size} bytes, at most ${limit} are possible`);
  try {
    const raw = uncompressSync(body);
    if (raw.length !== size) fail('LZ4 block length mismatch');
    return new Uint8Array(raw.buffer, raw.byteOffset, raw.length);
  } catch (err) {
    if (err instanceof CorruptionError) throw err;
    return fail(`LZ4 block does not decompress (${(err as Error).message})`);
  }
}

const columnCache = new WeakMap<Schema, Column[]>();

function columnsOf(schema: Schema): Column[] {
  let columns = columnCache.get(schema);
  if (columns === undefined) {
    const timestamp: Column = schema.timestamp === 'bigint' ? { offset: 0, size: TIMESTAMP_BYTES, type: 'opaque', kind: 'opaque' } : { offset: 0, size: TIMESTAMP_BYTES, type: 'ts', kind: 'int' };
    columns = [
      timestamp,
      ...schema.attributes.map((a): Column => {
        const kind = TYPE_INFO[a.type].kind;
        return kind === 'bigint' ? { offset: a.offset, size: a.size, type: 'opaque', kind: 'opaque' } : { offset: a.offset, size: a.size, type: a.type, kind };
      }),
      // lsn: arrival order, so mostly +1 steps - DELTA_VARINT makes it about a byte before LZ4.
      { offset: schema.lsnOffset, size: LSN_BYTES, type: 'ts', kind: 'int' },
    ];
    columnCache.set(schema, columns);
  }
  return columns;
}

/**
 * Picks the smallest exact form for a column. For a decimal float column it rewrites `values`
 * in place to the scaled integers, which is what DECIMAL_DELTA then stores.
 */
function chooseEncoding(column: Column, values: Float64Array, count: number): [Encoding, number] {
  if (column.kind === 'opaque' || count === 0) return [Encoding.Shuffle, 0];
  const raw = count * column.size;
  if (column.kind === 'float') {
    const exponent = decimalExponent(values, count, column.size === 4);
    if (exponent < 0) return [Encoding.Shuffle, 0];
    const scale = POWERS[exponent]!;
    for (let r = 0; r < count; r++) values[r] = Math.round(values[r]! * scale);
    return varintSizes(values, count)[0] < raw ? [Encoding.DecimalDelta, exponent] : [Encoding.Shuffle, 0];
  }
  const [delta, plain] = varintSizes(values, count);
  if (raw <= delta && raw <= plain) return [Encoding.Shuffle, 0];
  return delta < plain ? [Encoding.DeltaVarint, 0] : [Encoding.Varint, 0];
}

/** The smallest e such that every value is an integer / 10^e, exactly; -1 if none is. */
function decimalExponent(values: Float64Array, count: number, single: boolean): number {
  next: for (let e = 0; e <= MAX_EXPONENT; e++) {
    const scale = POWERS[e]!;
    for (let r = 0; r < count; r++) {
      const value = values[r]!;
      const scaled = Math.round(value * scale);
      const back = single ? Math.fround(scaled / scale) : scaled / scale;
      if (back !== value || Object.is(value, -0) || Math.abs(scaled) >= EXACT_LIMIT) continue next;
    }
    return e;
  }
  return -1;
}

/** Bytes as zigzag varints of deltas and of plain values; Infinity where a value is inexact. */
function varintSizes(values: Float64Array, count: number): [number, number] {
  let delta = 0;
  let plain = 0;
  let previous = 0;
  for (let r = 0; r < count; r++) {
    const value = values[r]!;
    const difference = value - previous;
    if (Math.abs(difference) >= EXACT_LIMIT || Math.abs(value) >= EXACT_LIMIT) return [Infinity, Infinity];
    delta += varintLength(zigzag(difference));
    plain += varintLength(zigzag(value));
    previous = value;
  }
  return [delta, plain];
}

function writeShuffled(out: Writer, view: DataView, column: Column, rowBytes: number, count: number): void {
  for (let byte = 0; byte < column.size; byte++) {
    for (let r = 0, at = column.offset + byte; r < count; r++, at += rowBytes) out.byte(view.getUint8(at));
  }
}

/** One bounds check for the column, then direct reads: a fresh process runs this interpreted. */
function readShuffled(reader: Reader, view: DataView, column: Column, rowBytes: number, count: number): void {
  const bytes = reader.bytes;
  let position = reader.position;
  if (position + column.size * count > bytes.length) reader.fail('truncated');
  for (let byte = 0; byte < column.size; byte++) {
    for (let r = 0, at = column.offset + byte; r < count; r++, at += rowBytes) view.setUint8(at, bytes[position++]!);
  }
  reader.position = position;
}

function writeVarints(out: Writer, values: Float64Array, count: number, delta: boolean): void {
  let previous = 0;
  for (let r = 0; r < count; r++) {
    const value = values[r]!;
    out.varint(zigzag(delta ? value - previous : value));
    previous = value;
  }
}

/**
 * The hot loop of decoding: reads the bytes directly, one bounds check per byte, and undoes the
 * zigzag and the decimal scaling inline - right after open it runs interpreted, where every call
 * counts. Deltas add up in the scaled integers, so `divisor` loses nothing.
 */
function readVarints(reader: Reader, values: Float64Array, count: number, delta: boolean, divisor: number): void {
  const bytes = reader.bytes;
  const end = bytes.length;
  let position = reader.position;
  let previous = 0;
  for (let r = 0; r < count; r++) {
    if (position >= end) reader.fail('truncated');
    let byte = bytes[position++]!;
    let zigzagged = byte & 127;
    for (let scale = 128; byte >= 128; scale *= 128) {
      if (position >= end || scale > 2 ** 49) reader.fail('truncated or overlong varint');
      byte = bytes[position++]!;
      zigzagged += (byte & 127) * scale;
    }
    const value = (zigzagged % 2 === 0 ? zigzagged / 2 : -(zigzagged + 1) / 2) + (delta ? previous : 0);
    values[r] = value / divisor;
    previous = value;
  }
  reader.position = position;
}

function checkEncoding(column: Column, encoding: number, exponent: number, fail: (reason: string) => never): void {
  if (column.kind === 'opaque' || encoding > Encoding.DecimalDelta || exponent > MAX_EXPONENT) fail(`encoding ${encoding}/${exponent} is not valid for this column`);
  if ((encoding === Encoding.DecimalDelta) !== (column.kind === 'float')) fail(`encoding ${encoding} does not fit a ${column.kind} column`);
}

let valuesBuffer = new Float64Array(1024);

/** One reusable column buffer: encoding and decoding are synchronous. */
function scratchValues(count: number): Float64Array {
  if (valuesBuffer.length < count) valuesBuffer = new Float64Array(count);
  return valuesBuffer;
}

function zigzag(value: number): number {
  return value >= 0 ? value * 2 : -value * 2 - 1;
}

function varintLength(value: number): number {
  if (value < 128) return 1;
  if (value < 16384) return 2;
  if (value < 2097152) return 3;
  if (value < 268435456) return 4;
  let length = 4;
  for (value = Math.floor(value / 268435456); value > 0; value = Math.floor(value / 128)) length++;
  return length;
}

class Writer {
  bytes: Uint8Array;
  position = 0;

  constructor(capacity: number) {
    this.bytes = scratch(capacity);
  }

  byte(value: number): void {
    this.bytes[this.position++] = value;
  }

  skip(count: number): void {
    this.position += count;
  }

  varint(value: number): void {
    // Values below 2^31 take the 32-bit path; larger ones (up to 2^52) divide.
    while (value >= 2147483648) {
      this.bytes[this.position++] = (value % 128) | 128;
      value = Math.floor(value / 128);
    }
    while (value >= 128) {
      this.bytes[this.position++] = (value & 127) | 128;
      value >>>= 7;
    }
    this.bytes[this.position++] = value;
  }
}

let scratchBuffer = new Uint8Array(64 * 1024);

/** One reusable encode buffer: encoding is synchronous, and its output is copied out before return. */
function scratch(capacity: number): Uint8Array {
  if (scratchBuffer.length < capacity) scratchBuffer = new Uint8Array(capacity);
  return scratchBuffer;
}

class Reader {
  position = 0;

  constructor(
    readonly bytes: Uint8Array,
    readonly fail: (reason: string) => never,
  ) {}

  byte(): number {
    if (this.position >= this.bytes.length) this.fail('truncated');
    return this.bytes[this.position++]!;
  }

  u32(): number {
    return this.byte() + this.byte() * 256 + this.byte() * 65536 + this.byte() * 16777216;
  }
}
