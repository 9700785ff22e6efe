// Turns a stream's events into rows and back, validating every value before anything is written:
// a bad event - missing or extra attribute, wrong type, NaN, an integer out of its type's range,
// a timestamp that is not an int64 of the stream's kind - is refused with a typed error and
// changes nothing. Built once per stream: per-attribute closures keep the hot loops monomorphic.
//
// Errors: wrong JS type, NaN, missing/extra attribute -> MisuseError('INVALID_EVENT') (a TypeError);
// a number outside its type's range, a non-safe-integer number timestamp -> BoundsError (a RangeError).

import { BoundsError, MisuseError } from './errors.js';
import { storeColumn } from './leaf/columns.js';
import { type Attribute, type Schema, TYPE_INFO, VALUE_READERS } from './schema.js';
import { type Timestamp, writeTimestamp } from './tree/row-layout.js';

/** An event as queries return it: `ts` and every attribute. */
export type Event = { readonly ts: Timestamp } & { readonly [attribute: string]: number | bigint };
/** An event as appends take it (any object with `ts` and the attributes; checked at run time). */
export type EventInput = { readonly ts: Timestamp };
type Fields = Readonly<Record<string, unknown>>;
type Value = number | bigint;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** A validated batch, ready to be written row by row into leaf pages. */
export interface PreparedRows {
  readonly count: number;
  readonly firstTimestamp: Timestamp;
  readonly lastTimestamp: Timestamp;
  /** Whether the timestamps never decrease (the fast path: one append of the whole batch). */
  readonly inOrder: boolean;
  timestamp(i: number): Timestamp;
  /** Writes rows [first, first + n) of the batch at `offset` of `view`. */
  write(view: DataView, offset: number, first: number, n: number): void;
}

interface AttributeCodec {
  readonly attribute: Attribute;
  check(value: unknown): void;
  write(view: DataView, at: number, value: Value): void;
  read(view: DataView, at: number): Value;
}

const WRITERS: Record<string, (view: DataView, at: number, value: Value) => void> = {
  i8: (v, at, x) => v.setInt8(at, x as number),
  u8: (v, at, x) => v.setUint8(at, x as number),
  i16: (v, at, x) => v.setInt16(at, x as number, true),
  u16: (v, at, x) => v.setUint16(at, x as number, true),
  i32: (v, at, x) => v.setInt32(at, x as number, true),
  u32: (v, at, x) => v.setUint32(at, x as number, true),
  f32: (v, at, x) => v.setFloat32(at, x as number, true),
  f64: (v, at, x) => v.setFloat64(at, x as number, true),
  i64: (v, at, x) => v.setBigInt64(at, x as bigint, true),
  u64: (v, at, x) => v.setBigUint64(at, x as bigint, true),
};


export class EventCodec {
  private readonly codecs: readonly AttributeCodec[];
  private readonly keyCount: number;
  readonly minTimestamp: Timestamp;
  readonly maxTimestamp: Timestamp;

  constructor(
    private readonly stream: string,
    private readonly schema: Schema,
  ) {
    this.codecs = schema.attributes.map((attribute) => this.attributeCodec(attribute));
    this.keyCount = schema.attributes.length + 1;
    const bigint = schema.timestamp === 'bigint';
    this.minTimestamp = bigint ? INT64_MIN : Number.MIN_SAFE_INTEGER;
    this.maxTimestamp = bigint ? INT64_MAX : Number.MAX_SAFE_INTEGER;
  }

  /** The event's timestamp, validated. */
  timestampOf(event: EventInput): Timestamp {
    if (typeof event !== 'object' || event === null) this.fail(`an event must be an object, got ${event === null ? 'null' : typeof event}`);
    return this.checkTimestamp(event.ts, 'ts');
  }

  /** Checks every attribute of `event` and that it has no others. */
  validate(input: EventInput): void {
    const event = input as Fields;
    for (const codec of this.codecs) codec.check(event[codec.attribute.name]);
    let keys = 0;
    for (const key in event) if (Object.hasOwn(event, key)) keys++;
    if (keys !== this.keyCount) {
      const extra = Object.keys(event).filter((key) => key !== 'ts' && !this.schema.attributes.some((a) => a.name === key));
      this.fail(`unknown attribute${extra.length > 1 ? 's' : ''} ${extra.map((k) => `'${k}'`).join(', ')} (the schema has ts, ${this.schema.attributes.map((a) => a.name).join(', ')})`);
    }
  }

  /** REQUIRES: timestampOf(event) and validate(event) passed. */
  encode(input: EventInput, view: DataView, offset: number): void {
    const event = input as Fields;
    writeTimestamp(view, offset, input.ts);
    for (const codec of this.codecs) codec.write(view, offset + codec.attribute.offset, event[codec.attribute.name] as Value);
  }

  decode(view: DataView, offset: number): Event {
    const event: Record<string, Value> = { ts: this.schema.timestamp === 'bigint' ? view.getBigInt64(offset, true) : view.getInt32(offset + 4, true) * 4294967296 + view.getUint32(offset, true) };
    for (const codec of this.codecs) event[codec.attribute.name] = codec.read(view, offset + codec.attribute.offset);
    return event as Event;
  }

  /** Validates a batch of event objects (all of it, before anything is written). */
  prepareEvents(events: readonly EventInput[]): PreparedRows {
    const timestamps = events.map((event) => {
      const ts = this.timestampOf(event);
      this.validate(event);
      return ts;
    });
    const rowBytes = this.schema.rowBytes;
    return {
      count: events.length,
      firstTimestamp: timestamps[0] ?? 0,
      lastTimestamp: timestamps[timestamps.length - 1] ?? 0,
      inOrder: timestamps.every((ts, i) => i === 0 || ts >= timestamps[i - 1]!),
      timestamp: (i) => timestamps[i]!,
      write: (view, offset, first, n) => {
        for (let r = 0; r < n; r++) this.encode(events[first + r]!, view, offset + r * rowBytes);
      },
    };
  }

  /** Validates a columnar batch: one array per attribute plus `ts`, all of one length, in order. */
  prepareColumns(columns: Readonly<Record<string, ArrayLike<Value>>>): PreparedRows {
    if (typeof columns !== 'object' || columns === null) this.fail('a columnar batch must be an object of arrays');
    const ts = columns.ts;
    if (ts === undefined || typeof ts.length !== 'number') this.fail(`a columnar batch needs a 'ts' array`);
    const count = ts!.length;
    const extra = Object.keys(columns).filter((key) => key !== 'ts' && !this.schema.attributes.some((a) => a.name === key));
    if (extra.length > 0) this.fail(`unknown column${extra.length > 1 ? 's' : ''} ${extra.join(', ')}`);
    const inOrder = this.checkColumnTimestamps(ts!, count);
    const arrays = this.codecs.map((codec) => {
      const column = columns[codec.attribute.name];
      if (column === undefined || typeof column.length !== 'number') this.fail(`column '${codec.attribute.name}' is missing`);
      if (column!.length !== count) this.fail(`column '${codec.attribute.name}' has ${column!.length} values, 'ts' has ${count}`);
      if (!isExactColumn(codec.attribute, column!)) for (let i = 0; i < count; i++) codec.check(column![i]);
      return column!;
    });
    const rowBytes = this.schema.rowBytes;
    return {
      count,
      firstTimestamp: count > 0 ? this.asTimestamp(ts![0]!) : 0,
      lastTimestamp: count > 0 ? this.asTimestamp(ts![count - 1]!) : 0,
      inOrder,
      timestamp: (i) => this.asTimestamp(ts![i]!),
      write: (view, offset, first, n) => {
        if (this.schema.timestamp === 'number') storeColumn(view, 'ts', offset, rowBytes, n, ts as ArrayLike<number>, first);
        else for (let r = 0; r < n; r++) writeTimestamp(view, offset + r * rowBytes, ts![first + r]!);
        this.codecs.forEach((codec, a) => writeColumn(codec, arrays[a]!, view, offset, rowBytes, first, n));
      },
    };
  }

  /** Checks every timestamp of a column; returns whether they never decrease. */
  private checkColumnTimestamps(ts: ArrayLike<Value>, count: number): boolean {
    if (this.schema.timestamp === 'number' && ts instanceof Float64Array) {
      // The common case, in one tight loop; anything odd is re-checked below for its message.
      let ordered = true;
      let last = -Infinity;
      for (let i = 0; i < count; i++) {
        const t = ts[i]!;
        if (!Number.isSafeInteger(t)) break;
        if (t < last) ordered = false;
        last = t;
        if (i === count - 1) return ordered;
      }
    }
    let ordered = true;
    let previous: Timestamp | undefined;
    for (let i = 0; i < count; i++) {
      const t = this.checkTimestamp(ts[i], `ts[${i}]`);
      if (previous !== undefined && t < previous) ordered = false;
      previous = t;
    }
    return ordered;
  }

  /** A column's (already checked) timestamp as the stream's timestamp type. */
  private asTimestamp(value: Value): Timestamp {
    return this.schema.timestamp === 'bigint' ? BigInt(value) : Number(value);
  }

  /** Validates a timestamp given to a query (same rules as an event's). */
  checkQueryTimestamp(ts: unknown, what: string): Timestamp {
    if (this.schema.timestamp === 'number' && (ts === Infinity || ts === -Infinity)) return ts === Infinity ? this.maxTimestamp : this.minTimestamp;
    return this.checkTimestamp(ts, what);
  }

  private checkTimestamp(ts: unknown, what: string): Timestamp {
    if (this.schema.timestamp === 'bigint') {
      if (typeof ts !== 'bigint') this.fail(`${what} must be a bigint (the stream was created with timestamp 'bigint'), got ${describe(ts)}`);
      if ((ts as bigint) < INT64_MIN || (ts as bigint) > INT64_MAX) throw new BoundsError(`stream '${this.stream}': ${what} ${String(ts)} does not fit int64`);
      return ts as bigint;
    }
    if (typeof ts !== 'number') this.fail(`${what} must be a number, got ${describe(ts)}`);
    if (!Number.isSafeInteger(ts)) throw new BoundsError(`stream '${this.stream}': ${what} must be a safe integer, got ${String(ts)}`);
    return ts as number;
  }

  private attributeCodec(attribute: Attribute): AttributeCodec {
    const info = TYPE_INFO[attribute.type];
    const where = `stream '${this.stream}': attribute '${attribute.name}' (${attribute.type})`;
    const fail = (message: string): never => {
      throw new MisuseError('INVALID_EVENT', `${where} ${message}`);
    };
    const check =
      info.kind === 'bigint'
        ? (value: unknown) => {
            if (typeof value !== 'bigint') fail(`must be a bigint, got ${describe(value)}`);
            if ((value as bigint) < (info.min as bigint) || (value as bigint) > (info.max as bigint)) throw new BoundsError(`${where} is out of range: ${String(value)}`);
          }
        : (value: unknown) => {
            if (typeof value !== 'number') fail(`must be a number, got ${describe(value)}`);
            if (Number.isNaN(value)) fail('must not be NaN');
            if (info.kind === 'int' && !Number.isInteger(value)) fail(`must be an integer, got ${String(value)}`);
            if (Number.isFinite(value) && ((value as number) < (info.min as number) || (value as number) > (info.max as number))) {
              throw new BoundsError(`${where} is out of range: ${String(value)}`);
            }
          };
    return { attribute, check, write: WRITERS[attribute.type]!, read: VALUE_READERS[attribute.type] };
  }

  private fail(message: string): never {
    throw new MisuseError('INVALID_EVENT', `stream '${this.stream}': ${message}`);
  }
}

/** Typed arrays whose every element is already a valid value of the attribute's type. */
function isExactColumn(attribute: Attribute, column: ArrayLike<Value>): boolean {
  switch (attribute.type) {
    case 'i8': return column instanceof Int8Array;
    case 'u8': return column instanceof Uint8Array || column instanceof Uint8ClampedArray;
    case 'i16': return column instanceof Int16Array;
    case 'u16': return column instanceof Uint16Array;
    case 'i32': return column instanceof Int32Array;
    case 'u32': return column instanceof Uint32Array;
    case 'i64': return column instanceof BigInt64Array;
    case 'u64': return column instanceof BigUint64Array;
    default: return false; // floats may hold NaN: checked value by value
  }
}

function writeColumn(codec: AttributeCodec, column: ArrayLike<Value>, view: DataView, offset: number, rowBytes: number, first: number, n: number): void {
  const type = codec.attribute.type;
  if (type !== 'i64' && type !== 'u64') {
    storeColumn(view, type, offset + codec.attribute.offset, rowBytes, n, column as ArrayLike<number>, first);
    return;
  }
  const write = codec.write;
  let at = offset + codec.attribute.offset;
  for (let r = 0; r < n; r++, at += rowBytes) write(view, at, column[first + r]!);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 40))}`;
  return value === null ? 'null' : `${typeof value} ${String(value)}`;
}
