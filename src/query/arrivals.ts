// Events in arrival order: those whose lsn lies in a window [first, last], for consumers. The
// tree part is a scan whose where-clause is the hidden lsn column, so every subtree whose
// min/max lsn misses the window is skipped unread (for in-order data that is all but the newest
// leaves; a leaf a merge gave late events spans their lsns too, and is read). The queue part is
// a binary search: its slots are in arrival order, so their lsns increase.

import { belowCursor } from '../ooo/index-builder.js';
import { type Timestamp, readLsn } from '../tree/row-layout.js';
import type { Tree } from '../tree/tree.js';
import { scanTreeRows } from './scan.js';
import { liveView } from './view.js';

/**
 * Calls `visit` for every event with first <= lsn <= last, in lsn order. `from`/`to` are the
 * stream's smallest and largest timestamps. Rows are valid only during the call.
 */
export function visitArrivals(tree: Tree, first: number, last: number, from: Timestamp, to: Timestamp, visit: (view: DataView, offset: number, lsn: number) => void): void {
  const layout = tree.layout;
  const found: { view: DataView; offset: number; lsn: number }[] = [];
  for (const row of scanTreeRows(liveView(tree), from, to, [{ attribute: layout.attributes, low: first, high: last }])) {
    found.push({ view: row.view, offset: row.offset, lsn: readLsn(layout, row.view, row.offset) });
  }
  found.sort((a, b) => a.lsn - b.lsn);
  const queued = queuedArrivals(tree, first, last);
  let t = 0;
  for (const slot of queued) {
    const view = tree.late.queue.view;
    const offset = tree.late.queue.rowOffset(slot);
    const lsn = readLsn(layout, view, offset);
    for (; t < found.length && found[t]!.lsn < lsn; t++) visit(found[t]!.view, found[t]!.offset, found[t]!.lsn);
    visit(view, offset, lsn);
  }
  for (; t < found.length; t++) visit(found[t]!.view, found[t]!.offset, found[t]!.lsn);
}

/** Queue slots holding events with first <= lsn <= last that are not yet merged into the tree. */
function queuedArrivals(tree: Tree, first: number, last: number): number[] {
  const { queue } = tree.late;
  const lsnOf = (slot: number) => readLsn(tree.layout, queue.view, queue.rowOffset(slot));
  let low = 0;
  let high = queue.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (lsnOf(middle) < first) low = middle + 1;
    else high = middle;
  }
  // After a crash interrupted a merge, the slots below its cursor are in the tree already.
  const cursor = tree.mergeCursor;
  const interrupted = cursor.generation === queue.generation;
  const slots: number[] = [];
  for (let slot = low; slot < queue.length && lsnOf(slot) <= last; slot++) {
    if (interrupted && belowCursor(queue.view.getBigInt64(queue.rowOffset(slot), true), slot, cursor)) continue;
    slots.push(slot);
  }
  return slots;
}
