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
//   0  u8   codec version (1)
//   1  u8   column count c (the timestamp, then each attribute in schema order)
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
import { type AttributeType, type Schema, TIMESTAMP_BYTES, TYPE_INFO } from '../schema.js';

const CODEC_VERSION = 1;
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

/** How one column is read from and written to a row. */
interface Column {
  readonly offset: number;
  readonly size: number;
  /** 'int' columns are read as numbers; 'float' columns as f32/f64; 'opaque' only as bytes. */
  readonly kind: 'int' | 'float' | 'opaque';
  readonly get: (view: DataView, at: number) => number;
  readonly set: (view: DataView, at: number, value: number) => void;
}

export function encodeLeaf(schema: Schema, rows: Uint8Array, count: number): Uint8Array {
  const columns = columnsOf(schema);
  const view = new DataView(rows.buffer, rows.byteOffset, rows.byteLength);
  const out = new Writer(64 + count * schema.rowBytes * 2 + columns.length * 16);
  out.byte(CODEC_VERSION);
  out.byte(columns.length);
  const header = out.position;
  out.skip(columns.length * 2);
  columns.forEach((column, c) => {
    const [encoding, exponent] = chooseEncoding(column, view, schema.rowBytes, count);
    out.bytes[header + 2 * c] = encoding;
    out.bytes[header + 2 * c + 1] = exponent;
    const lengthAt = out.position;
    out.skip(4);
    writeColumn(out, column, view, schema.rowBytes, count, encoding, exponent);
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
  columns.forEach((column, c) => {
    const [encoding, exponent] = forms[c]!;
    const end = reader.position + 4 + reader.u32();
    readColumn(reader, column, view, schema.rowBytes, count, encoding, exponent, fail);
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
    const timestamp: Column = schema.timestamp === 'bigint' ? opaque(0, TIMESTAMP_BYTES) : numberColumn('i64', 0);
    columns = [timestamp, ...schema.attributes.map((a) => (TYPE_INFO[a.type].kind === 'bigint' ? opaque(a.offset, a.size) : numberColumn(a.type, a.offset)))];
    columnCache.set(schema, columns);
  }
  return columns;
}

function opaque(offset: number, size: number): Column {
  return { offset, size, kind: 'opaque', get: () => 0, set: () => undefined };
}

function numberColumn(type: AttributeType | 'i64', offset: number): Column {
  const accessors: Record<string, [(v: DataView, at: number) => number, (v: DataView, at: number, x: number) => void]> = {
    i8: [(v, at) => v.getInt8(at), (v, at, x) => v.setInt8(at, x)],
    u8: [(v, at) => v.getUint8(at), (v, at, x) => v.setUint8(at, x)],
    i16: [(v, at) => v.getInt16(at, true), (v, at, x) => v.setInt16(at, x, true)],
    u16: [(v, at) => v.getUint16(at, true), (v, at, x) => v.setUint16(at, x, true)],
    i32: [(v, at) => v.getInt32(at, true), (v, at, x) => v.setInt32(at, x, true)],
    u32: [(v, at) => v.getUint32(at, true), (v, at, x) => v.setUint32(at, x, true)],
    f32: [(v, at) => v.getFloat32(at, true), (v, at, x) => v.setFloat32(at, x, true)],
    f64: [(v, at) => v.getFloat64(at, true), (v, at, x) => v.setFloat64(at, x, true)],
    // Number-kind timestamps are safe integers: the high word is exact as a double.
    i64: [
      (v, at) => v.getInt32(at + 4, true) * 4294967296 + v.getUint32(at, true),
      (v, at, x) => {
        const high = Math.floor(x / 4294967296);
        v.setUint32(at, x - high * 4294967296, true);
        v.setInt32(at + 4, high, true);
      },
    ],
  };
  const [get, set] = accessors[type]!;
  const size = type === 'i64' ? 8 : TYPE_INFO[type].size;
  return { offset, size, kind: type === 'f32' || type === 'f64' ? 'float' : 'int', get, set };
}

function chooseEncoding(column: Column, view: DataView, rowBytes: number, count: number): [Encoding, number] {
  if (column.kind === 'opaque' || count === 0) return [Encoding.Shuffle, 0];
  if (column.kind === 'float') {
    const exponent = decimalExponent(column, view, rowBytes, count);
    if (exponent < 0) return [Encoding.Shuffle, 0];
    const bytes = varintBytes(column, view, rowBytes, count, exponent, true);
    return bytes < count * column.size ? [Encoding.DecimalDelta, exponent] : [Encoding.Shuffle, 0];
  }
  const delta = varintBytes(column, view, rowBytes, count, 0, true);
  const plain = varintBytes(column, view, rowBytes, count, 0, false);
  const raw = count * column.size;
  if (raw <= delta && raw <= plain) return [Encoding.Shuffle, 0];
  return delta < plain ? [Encoding.DeltaVarint, 0] : [Encoding.Varint, 0];
}

/** The smallest e such that every value is an integer / 10^e, exactly; -1 if none is. */
function decimalExponent(column: Column, view: DataView, rowBytes: number, count: number): number {
  const single = column.size === 4;
  next: for (let e = 0; e <= MAX_EXPONENT; e++) {
    const scale = POWERS[e]!;
    for (let r = 0, at = column.offset; r < count; r++, at += rowBytes) {
      const value = column.get(view, at);
      const scaled = Math.round(value * scale);
      const back = single ? Math.fround(scaled / scale) : scaled / scale;
      if (back !== value || Object.is(value, -0) || Math.abs(scaled) >= EXACT_LIMIT) continue next;
    }
    return e;
  }
  return -1;
}

/** Bytes the column takes as zigzag varints (of deltas when `delta`), or Infinity if inexact. */
function varintBytes(column: Column, view: DataView, rowBytes: number, count: number, exponent: number, delta: boolean): number {
  const scale = POWERS[exponent]!;
  let bytes = 0;
  let previous = 0;
  for (let r = 0, at = column.offset; r < count; r++, at += rowBytes) {
    const value = exponent === 0 ? column.get(view, at) : Math.round(column.get(view, at) * scale);
    const difference = delta ? value - previous : value;
    if (Math.abs(difference) >= EXACT_LIMIT) return Infinity;
    bytes += varintLength(zigzag(difference));
    previous = value;
  }
  return bytes;
}

function writeColumn(out: Writer, column: Column, view: DataView, rowBytes: number, count: number, encoding: Encoding, exponent: number): void {
  if (encoding === Encoding.Shuffle) {
    for (let byte = 0; byte < column.size; byte++) {
      for (let r = 0, at = column.offset + byte; r < count; r++, at += rowBytes) out.byte(view.getUint8(at));
    }
    return;
  }
  const scale = POWERS[exponent]!;
  const delta = encoding !== Encoding.Varint;
  let previous = 0;
  for (let r = 0, at = column.offset; r < count; r++, at += rowBytes) {
    const value = encoding === Encoding.DecimalDelta ? Math.round(column.get(view, at) * scale) : column.get(view, at);
    out.varint(zigzag(delta ? value - previous : value));
    previous = value;
  }
}

function readColumn(reader: Reader, column: Column, view: DataView, rowBytes: number, count: number, encoding: number, exponent: number, fail: (reason: string) => never): void {
  if (encoding === Encoding.Shuffle) {
    for (let byte = 0; byte < column.size; byte++) {
      for (let r = 0, at = column.offset + byte; r < count; r++, at += rowBytes) view.setUint8(at, reader.byte());
    }
    return;
  }
  if (column.kind === 'opaque' || encoding > Encoding.DecimalDelta || exponent > MAX_EXPONENT) fail(`encoding ${encoding}/${exponent} is not valid for this column`);
  if ((encoding === Encoding.DecimalDelta) !== (column.kind === 'float')) fail(`encoding ${encoding} does not fit a ${column.kind} column`);
  const scale = POWERS[exponent]!;
  const delta = encoding !== Encoding.Varint;
  let previous = 0;
  for (let r = 0, at = column.offset; r < count; r++, at += rowBytes) {
    const value = unzigzag(reader.varint()) + (delta ? previous : 0);
    column.set(view, at, encoding === Encoding.DecimalDelta ? value / scale : value);
    previous = value;
  }
}

function zigzag(value: number): number {
  return value >= 0 ? value * 2 : -value * 2 - 1;
}

function unzigzag(value: number): number {
  return value % 2 === 0 ? value / 2 : -(value + 1) / 2;
}

function varintLength(value: number): number {
  let length = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    length++;
  }
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
    while (value >= 128) {
      this.bytes[this.position++] = (value % 128) | 128;
      value = Math.floor(value / 128);
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
    private readonly bytes: Uint8Array,
    private readonly fail: (reason: string) => never,
  ) {}

  byte(): number {
    if (this.position >= this.bytes.length) this.fail('truncated');
    return this.bytes[this.position++]!;
  }

  u32(): number {
    return this.byte() + this.byte() * 256 + this.byte() * 65536 + this.byte() * 16777216;
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++, scale *= 128) {
      const byte = this.byte();
      value += (byte & 127) * scale;
      if (byte < 128) return value;
    }
    return this.fail('varint longer than 8 bytes');
  }
}
