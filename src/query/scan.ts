// Range scans in timestamp order with where-clauses on secondary attributes. Subtrees whose
// aggregates show no overlap with [from, to] or with an attribute's [low, high] are skipped
// without being read (ChronicleDB's lightweight indexing); rows are tested one by one only in
// the leaves that remain.
//
// Late events still in the out-of-order queue are merged in on the fly, in timestamp order, after
// tree events with the same timestamp (they arrived later).
//
// The scan sees the events that existed when it was created: it captures the flank's sources
// with their counts, a copy of the open leaf (late events may be inserted into it), and a
// snapshot of the queue's slots in range; it copies rows of leaves still in PMem when it reaches
// them (their ring page may be reused while the scan is paused). Merges copy-on-write, so the
// nodes it captured stay as they were.

import type { LateCursor } from '../ooo/late-queue.js';
import type { RowLayout, Timestamp } from '../tree/row-layout.js';
import type { Tree } from '../tree/tree.js';
import { type LeafRows, rowSpan } from './leaf-search.js';
import { type ReadView, type ViewSource, copyRows } from './view.js';

/** Keep only rows whose numeric attribute `attribute` (index into layout.numeric) is in [low, high]. */
export interface AttributeFilter {
  readonly attribute: number;
  readonly low: number;
  readonly high: number;
}

/** A row found by a scan: valid until the scan advances. */
export interface RowRef {
  view: DataView;
  offset: number;
}

/** The rows with from <= ts <= to that pass `filters`, in timestamp order, as of this call. */
export function scanRows(view: ReadView, from: Timestamp, to: Timestamp, filters: readonly AttributeFilter[]): Generator<RowRef, void, undefined> {
  if (from > to) return emptyScan();
  const scanner = new Scanner(view.tree, from, to, filters);
  const lateRows = view.late.cursor(from, to);
  const treeRows = scanner.sources(stableSources(view));
  if (!lateRows.isEmpty) return mergeLate(treeRows, lateRows, view.tree.layout, (row, offset) => scanner.matches(row, offset));
  lateRows.close();
  return treeRows;
}

/** scanRows without the queued late events: the tree's rows only. */
export function scanTreeRows(view: ReadView, from: Timestamp, to: Timestamp, filters: readonly AttributeFilter[]): Generator<RowRef, void, undefined> {
  if (from > to) return emptyScan();
  return new Scanner(view.tree, from, to, filters).sources(stableSources(view));
}

/** The view's sources with the open leaf's rows copied out of PMem (late events may be inserted into it). */
function stableSources({ tree, sources }: ReadView): ViewSource[] {
  return sources.map((source): ViewSource => (source.kind === 'rows' && !source.stable ? { kind: 'rows', rows: copyRows(source.rows, source.rows.count, tree.layout.rowBytes), stable: true } : source));
}

function* emptyScan(): Generator<RowRef, void, undefined> {}

/** Tree rows and queued late rows merged by timestamp, tree rows first on equal timestamps. */
function* mergeLate(treeRows: Generator<RowRef, void, undefined>, late: LateCursor, layout: RowLayout, matches: (view: DataView, offset: number) => boolean): Generator<RowRef, void, undefined> {
  const lateRow: RowRef = { view: new DataView(new ArrayBuffer(0)), offset: 0 };
  try {
    for (let next = treeRows.next(); ; ) {
      const lateTs = late.peekTimestamp();
      if (lateTs === undefined && next.done === true) return;
      if (lateTs !== undefined && (next.done === true || lateTs < layout.readTimestamp(next.value.view, next.value.offset))) {
        const row = late.take();
        if (!matches(row.view, row.offset)) continue;
        lateRow.view = row.view;
        lateRow.offset = row.offset;
        yield lateRow;
        continue;
      }
      yield next.value!;
      next = treeRows.next();
    }
  } finally {
    late.close();
    treeRows.return();
  }
}

const NO_ROWS = new DataView(new ArrayBuffer(0));

class Scanner {
  private readonly row: RowRef = { view: NO_ROWS, offset: 0 };

  constructor(
    private readonly tree: Tree,
    private readonly from: Timestamp,
    private readonly to: Timestamp,
    private readonly filters: readonly AttributeFilter[],
  ) {}

  *sources(sources: readonly ViewSource[]): Generator<RowRef, void, undefined> {
    for (const source of sources) {
      if (source.kind === 'rows') yield* this.rowsOf(source.rows);
      else yield* this.indexNode(source.nodeId, source.level, source.count);
    }
  }

  /** An open node of the flank (with `openCount` entries), or a closed one. */
  private *indexNode(nodeId: number, level: number, openCount?: number): Generator<RowRef, void, undefined> {
    const node = this.tree.nodeView(nodeId, level, openCount);
    const [first, end] = node.span(this.from, this.to);
    for (let i = first; i < end; i++) {
      if (node.maxTs(i) < this.from || node.minTs(i) > this.to) continue;
      if (this.filters.some((f) => disjoint(node.attributeBounds(i, f.attribute), f))) continue;
      if (level === 1) yield* this.rowsOf(this.stableRows(node.child(i)));
      else yield* this.indexNode(node.child(i), level - 1);
    }
  }

  private *rowsOf(rows: LeafRows): Generator<RowRef, void, undefined> {
    const layout = this.tree.layout;
    const [first, end] = rowSpan(layout, rows, this.from, this.to);
    this.row.view = rows.view;
    for (let r = first; r < end; r++) {
      const offset = rows.offset + r * layout.rowBytes;
      if (this.filters.length > 0 && !this.matches(rows.view, offset)) continue;
      this.row.offset = offset;
      yield this.row;
    }
  }

  matches(view: DataView, offset: number): boolean {
    for (const filter of this.filters) {
      const value = this.tree.layout.numeric[filter.attribute]!.readNumber(view, offset);
      if (!(value >= filter.low && value <= filter.high)) return false;
    }
    return true;
  }

  /** A closed leaf's rows, copied out of PMem when they live in a reusable ring page. */
  private stableRows(leafId: number): LeafRows {
    const rows = this.tree.leafRows(leafId);
    return rows.inRing ? copyRows(rows, rows.count, this.tree.layout.rowBytes) : rows;
  }
}

function disjoint([min, max]: [number, number], filter: AttributeFilter): boolean {
  return max < filter.low || min > filter.high;
}
