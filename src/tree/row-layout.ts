// How the tree reads a row: its timestamp and each attribute as a number for aggregates and
// filters. Built once per stream from its schema, so the hot loops call small monomorphic
// closures instead of switching on types per value.

import type { NumericColumnType } from '../leaf/columns.js';
import { type Schema, VALUE_READERS } from '../schema.js';

/** An int64 timestamp: a safe-integer number, or a bigint for streams created with timestamp 'bigint'. */
export type Timestamp = number | bigint;

/** The later of two timestamps, either possibly absent. */
export function maxTimestamp(a: Timestamp | undefined, b: Timestamp | undefined): Timestamp | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a >= b ? a : b;
}

export interface NumericAttribute {
  readonly name: string;
  /** Byte offset in the row, and the column type for bulk reads (undefined for i64/u64). */
  readonly offset: number;
  readonly columnType: NumericColumnType | undefined;
  /** The attribute of the row at `rowOffset` as a double (i64/u64: the nearest double). */
  readNumber(view: DataView, rowOffset: number): number;
}

export interface RowLayout {
  readonly rowBytes: number;
  /** Byte offset of the hidden lsn (arrival sequence number) in the row. */
  readonly lsnOffset: number;
  /**
   * The schema's attributes, then the hidden lsn, so every aggregate keeps min/max lsn (a
   * consumer's "lsn > x" prunes subtrees like a where-clause). Results show only `attributes`.
   */
  /** 'ts' for number timestamps (bulk-readable as doubles), undefined for bigint ones. */
  readonly timestampColumn: NumericColumnType | undefined;
  readonly numeric: readonly NumericAttribute[];
  /** How many of `numeric` are schema attributes; the one after them is the lsn. */
  readonly attributes: number;
  readTimestamp(view: DataView, offset: number): Timestamp;
  writeTimestamp(view: DataView, offset: number, ts: Timestamp): void;
}

/** The lsn of the row at `rowOffset` (below 2^53: exact as a number). */
export function readLsn(layout: RowLayout, view: DataView, rowOffset: number): number {
  return readNumberTimestamp(view, rowOffset + layout.lsnOffset);
}

export function writeLsn(layout: RowLayout, view: DataView, rowOffset: number, lsn: number): void {
  writeNumberTimestamp(view, rowOffset + layout.lsnOffset, lsn);
}

export function rowLayout(schema: Schema): RowLayout {
  const numeric = schema.attributes.map((attribute): NumericAttribute => {
    const read = VALUE_READERS[attribute.type];
    const offset = attribute.offset;
    const columnType = attribute.type === 'i64' || attribute.type === 'u64' ? undefined : attribute.type;
    const readNumber = columnType === undefined ? (view: DataView, rowOffset: number) => Number(read(view, rowOffset + offset)) : (view: DataView, rowOffset: number) => read(view, rowOffset + offset) as number;
    return { name: attribute.name, offset, columnType, readNumber };
  });
  const lsnOffset = schema.lsnOffset;
  const lsn: NumericAttribute = { name: 'lsn', offset: lsnOffset, columnType: 'ts', readNumber: (view, rowOffset) => readNumberTimestamp(view, rowOffset + lsnOffset) };
  const bigint = schema.timestamp === 'bigint';
  return {
    rowBytes: schema.rowBytes,
    lsnOffset,
    timestampColumn: bigint ? undefined : 'ts',
    numeric: [...numeric, lsn],
    attributes: numeric.length,
    readTimestamp: bigint ? readBigIntTimestamp : readNumberTimestamp,
    writeTimestamp: bigint ? writeBigIntTimestamp : writeNumberTimestamp,
  };
}

/** int64 little-endian as a number; exact for the safe integers number streams are limited to. */
function readNumberTimestamp(view: DataView, offset: number): number {
  return view.getInt32(offset + 4, true) * 4294967296 + view.getUint32(offset, true);
}

/** Writes an int64 timestamp, number or bigint. */
export function writeTimestamp(view: DataView, offset: number, ts: Timestamp): void {
  if (typeof ts === 'bigint') writeBigIntTimestamp(view, offset, ts);
  else writeNumberTimestamp(view, offset, ts);
}

function writeNumberTimestamp(view: DataView, offset: number, ts: Timestamp): void {
  const value = Number(ts);
  const high = Math.floor(value / 4294967296);
  view.setUint32(offset, value - high * 4294967296, true);
  view.setInt32(offset + 4, high, true);
}

function readBigIntTimestamp(view: DataView, offset: number): bigint {
  return view.getBigInt64(offset, true);
}

function writeBigIntTimestamp(view: DataView, offset: number, ts: Timestamp): void {
  view.setBigInt64(offset, BigInt(ts), true);
}
