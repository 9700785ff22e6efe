// A stream's schema: an implicit int64 timestamp `ts` plus named, typed attributes, fixed at
// creation and stored in the MANIFEST so a reopened store reads it back.
//
// Row layout (the raw form in PMem flank pages and in decoded leaves): row-major, fixed size,
// `ts` as int64 little-endian at offset 0, then the attributes in declaration order, packed
// with no padding (Stock: ts 8 + seq 4 + symbol 4 + price 8 + volume 4 = 28 bytes).
//
// Serialized form (inside the MANIFEST):
//   0  u8   format version (1)
//   1  u8   timestamp kind (0 = number, 1 = bigint)
//   2  u8   attribute count n
//   3  n x { u8 type code (index in ATTRIBUTE_TYPES), u8 name length k, k bytes UTF-8 name }
//   .. u32  CRC-32 of everything before it

import { crc32 } from 'node:zlib';
import { CorruptionError, MisuseError } from './errors.js';
import { utf8Decoder, utf8Encoder } from './util/utf8.js';

export const ATTRIBUTE_TYPES = ['i8', 'u8', 'i16', 'u16', 'i32', 'u32', 'f32', 'f64', 'i64', 'u64'] as const;
export type AttributeType = (typeof ATTRIBUTE_TYPES)[number];
export type TimestampKind = 'number' | 'bigint';

/** The facts about each attribute type, in one table. */
export interface TypeInfo {
  readonly size: number;
  /** 'int' and 'float' take JS numbers, 'bigint' takes bigints. */
  readonly kind: 'int' | 'float' | 'bigint';
  readonly min: number | bigint;
  readonly max: number | bigint;
}

const F32_MAX = 3.4028234663852886e38;

export const TYPE_INFO: Readonly<Record<AttributeType, TypeInfo>> = {
  i8: { size: 1, kind: 'int', min: -128, max: 127 },
  u8: { size: 1, kind: 'int', min: 0, max: 255 },
  i16: { size: 2, kind: 'int', min: -32768, max: 32767 },
  u16: { size: 2, kind: 'int', min: 0, max: 65535 },
  i32: { size: 4, kind: 'int', min: -2147483648, max: 2147483647 },
  u32: { size: 4, kind: 'int', min: 0, max: 4294967295 },
  f32: { size: 4, kind: 'float', min: -F32_MAX, max: F32_MAX },
  f64: { size: 8, kind: 'float', min: -Number.MAX_VALUE, max: Number.MAX_VALUE },
  i64: { size: 8, kind: 'bigint', min: -(2n ** 63n), max: 2n ** 63n - 1n },
  u64: { size: 8, kind: 'bigint', min: 0n, max: 2n ** 64n - 1n },
};

/** Reads an attribute's value from a row (bigints for i64/u64), one function per type. */
export const VALUE_READERS: Readonly<Record<AttributeType, (view: DataView, at: number) => number | bigint>> = {
  i8: (v, at) => v.getInt8(at),
  u8: (v, at) => v.getUint8(at),
  i16: (v, at) => v.getInt16(at, true),
  u16: (v, at) => v.getUint16(at, true),
  i32: (v, at) => v.getInt32(at, true),
  u32: (v, at) => v.getUint32(at, true),
  f32: (v, at) => v.getFloat32(at, true),
  f64: (v, at) => v.getFloat64(at, true),
  i64: (v, at) => v.getBigInt64(at, true),
  u64: (v, at) => v.getBigUint64(at, true),
};

export const TIMESTAMP_BYTES = 8;
/** Every row ends with its arrival sequence number (lsn): a hidden int64, never an attribute. */
export const LSN_BYTES = 8;
export const MAX_ATTRIBUTES = 64;
const MAX_NAME_BYTES = 64;
const SCHEMA_VERSION = 1;
const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface Attribute {
  readonly name: string;
  readonly type: AttributeType;
  /** Byte offset inside the row. */
  readonly offset: number;
  readonly size: number;
}

export interface Schema {
  readonly attributes: readonly Attribute[];
  /** Byte offset of the hidden lsn column: right after the last attribute. */
  readonly lsnOffset: number;
  /** The timestamp, the attributes and the lsn. */
  readonly rowBytes: number;
  readonly timestamp: TimestampKind;
}

/** Validates a schema definition; throws MisuseError('INVALID_SCHEMA') naming what is wrong. */
export function parseSchema(definition: Readonly<Record<string, string>>, options: { timestamp?: TimestampKind } = {}): Schema {
  const fail = (message: string): never => {
    throw new MisuseError('INVALID_SCHEMA', `invalid schema: ${message}`);
  };
  if (typeof definition !== 'object' || definition === null || Array.isArray(definition)) fail('the definition must be an object of { name: type }');
  const timestamp = options.timestamp ?? 'number';
  if (timestamp !== 'number' && timestamp !== 'bigint') fail(`timestamp must be 'number' or 'bigint', got ${String(timestamp)}`);
  const entries = Object.entries(definition);
  if (entries.length > MAX_ATTRIBUTES) fail(`${entries.length} attributes, at most ${MAX_ATTRIBUTES} are allowed`);
  let offset = TIMESTAMP_BYTES;
  const attributes = entries.map(([name, type]): Attribute => {
    if (!NAME_PATTERN.test(name) || Buffer.byteLength(name) > MAX_NAME_BYTES) fail(`attribute name '${name}' must be an identifier of at most ${MAX_NAME_BYTES} bytes`);
    if (name === 'ts') fail(`'ts' is the implicit timestamp and cannot be an attribute`);
    if (!(ATTRIBUTE_TYPES as readonly string[]).includes(type)) fail(`attribute '${name}' has unknown type '${String(type)}' (one of ${ATTRIBUTE_TYPES.join(' ')})`);
    const size = TYPE_INFO[type as AttributeType].size;
    const attribute = { name, type: type as AttributeType, offset, size };
    offset += size;
    return attribute;
  });
  return { attributes, lsnOffset: offset, rowBytes: offset + LSN_BYTES, timestamp };
}

export function serializeSchema(schema: Schema): Uint8Array {
  const names = schema.attributes.map((a) => utf8Encoder.encode(a.name));
  const bytes = new Uint8Array(3 + names.reduce((sum, name) => sum + 2 + name.length, 0) + 4);
  bytes[0] = SCHEMA_VERSION;
  bytes[1] = schema.timestamp === 'bigint' ? 1 : 0;
  bytes[2] = schema.attributes.length;
  let at = 3;
  schema.attributes.forEach((attribute, i) => {
    bytes[at++] = ATTRIBUTE_TYPES.indexOf(attribute.type);
    bytes[at++] = names[i]!.length;
    bytes.set(names[i]!, at);
    at += names[i]!.length;
  });
  new DataView(bytes.buffer).setUint32(at, crc32(bytes.subarray(0, at)), true);
  return bytes;
}

/** Reads a serialized schema; `file` and `offset` name where the bytes came from, for errors. */
export function deserializeSchema(bytes: Uint8Array, file: string, offset: number): Schema {
  const fail = (reason: string): never => {
    throw new CorruptionError(file, offset, `stored schema: ${reason}`);
  };
  if (bytes.length < 7) fail(`${bytes.length} bytes is too short`);
  const body = bytes.subarray(0, bytes.length - 4);
  if (new DataView(bytes.buffer, bytes.byteOffset).getUint32(body.length, true) !== crc32(body)) fail('checksum mismatch');
  if (body[0] !== SCHEMA_VERSION) fail(`version ${body[0]}, expected ${SCHEMA_VERSION}`);
  if (body[1]! > 1) fail(`timestamp kind ${body[1]}`);
  const definition: Record<string, string> = {};
  let at = 3;
  for (let i = 0; i < body[2]!; i++) {
    const type = ATTRIBUTE_TYPES[body[at] ?? 255];
    const length = body[at + 1] ?? 0;
    if (type === undefined || at + 2 + length > body.length) fail(`attribute ${i} is malformed`);
    definition[utf8Decoder.decode(body.subarray(at + 2, at + 2 + length))] = type!;
    at += 2 + length;
  }
  if (at !== body.length) fail('trailing bytes');
  try {
    return parseSchema(definition, { timestamp: body[1] === 1 ? 'bigint' : 'number' });
  } catch (err) {
    return fail((err as Error).message);
  }
}

export function schemasEqual(a: Schema, b: Schema): boolean {
  return a.timestamp === b.timestamp && a.attributes.length === b.attributes.length && a.attributes.every((x, i) => x.name === b.attributes[i]!.name && x.type === b.attributes[i]!.type);
}
