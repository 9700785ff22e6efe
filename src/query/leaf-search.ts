// Binary searches over a leaf's rows, which are sorted by timestamp (equal timestamps in arrival
// order), so every query touches only the rows of its range.

import type { RowLayout, Timestamp } from '../tree/row-layout.js';

export interface LeafRows {
  readonly view: DataView;
  readonly offset: number;
  readonly count: number;
}

/** How many rows have a timestamp below `ts` (or at most `ts` when `inclusive`). */
export function countRowsBelow(layout: RowLayout, rows: LeafRows, ts: Timestamp, inclusive: boolean): number {
  let low = 0;
  let high = rows.count;
  while (low < high) {
    const mid = (low + high) >>> 1;
    const rowTs = layout.readTimestamp(rows.view, rows.offset + mid * layout.rowBytes);
    if (rowTs < ts || (inclusive && rowTs === ts)) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** Rows [first, end) whose timestamps lie in [from, to]. */
export function rowSpan(layout: RowLayout, rows: LeafRows, from: Timestamp, to: Timestamp): [number, number] {
  return [countRowsBelow(layout, rows, from, false), countRowsBelow(layout, rows, to, true)];
}
