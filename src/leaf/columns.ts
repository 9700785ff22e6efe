// Reading and writing one column of row-major rows as doubles. One loop per type, chosen once
// per column, so every access in the loop is a direct DataView call the JIT inlines - the hot
// path of leaf encoding, aggregate computation and batch appends.

import type { AttributeType } from '../schema.js';

/** A numeric attribute type, or 'ts' for a number-kind int64 timestamp. */
export type NumericColumnType = Exclude<AttributeType, 'i64' | 'u64'> | 'ts';

const TWO_32 = 4294967296;

/** values[r] = the column of row r, for rows [0, count) starting at `offset`. */
export function extractColumn(view: DataView, type: NumericColumnType, offset: number, rowBytes: number, count: number, values: Float64Array): void {
  const end = offset + count * rowBytes;
  let r = 0;
  switch (type) {
    case 'ts': for (let at = offset; at < end; at += rowBytes) values[r++] = view.getInt32(at + 4, true) * TWO_32 + view.getUint32(at, true); return;
    case 'i8': for (let at = offset; at < end; at += rowBytes) values[r++] = view.getInt8(at); return;
    case 'u8': for (let at = offset; at < end; at += rowBytes) values[r++] = view.getUint8(at); return;
    case 'i16': for (let at = offset; at < end; at += rowBytes) values[r++] = view.getInt16(at, true); return;
    case 'u16': for (let at = offset; at < end; at += rowBytes) values[r++] = view.getUint16(at, true); return;
    case 'i32': for (let at = offset; at < end; at += rowBytes) values[r++] = view.getInt32(at, true); return;
    case 'u32': for (let at = offset; at < end; at += rowBytes) values[r++] = view.getUint32(at, true); return;
    case 'f32': for (let at = offset; at < end; at += rowBytes) values[r++] = view.getFloat32(at, true); return;
    case 'f64': for (let at = offset; at < end; at += rowBytes) values[r++] = view.getFloat64(at, true); return;
  }
}

/** The inverse of extractColumn: writes values[first + r] into the column of row r. */
export function storeColumn(view: DataView, type: NumericColumnType, offset: number, rowBytes: number, count: number, values: ArrayLike<number>, first = 0): void {
  const end = offset + count * rowBytes;
  let r = first;
  switch (type) {
    case 'ts':
      for (let at = offset; at < end; at += rowBytes) {
        const value = values[r++]!;
        const high = Math.floor(value / TWO_32);
        view.setUint32(at, value - high * TWO_32, true);
        view.setInt32(at + 4, high, true);
      }
      return;
    case 'i8': for (let at = offset; at < end; at += rowBytes) view.setInt8(at, values[r++]!); return;
    case 'u8': for (let at = offset; at < end; at += rowBytes) view.setUint8(at, values[r++]!); return;
    case 'i16': for (let at = offset; at < end; at += rowBytes) view.setInt16(at, values[r++]!, true); return;
    case 'u16': for (let at = offset; at < end; at += rowBytes) view.setUint16(at, values[r++]!, true); return;
    case 'i32': for (let at = offset; at < end; at += rowBytes) view.setInt32(at, values[r++]!, true); return;
    case 'u32': for (let at = offset; at < end; at += rowBytes) view.setUint32(at, values[r++]!, true); return;
    case 'f32': for (let at = offset; at < end; at += rowBytes) view.setFloat32(at, values[r++]!, true); return;
    case 'f64': for (let at = offset; at < end; at += rowBytes) view.setFloat64(at, values[r++]!, true); return;
  }
}
