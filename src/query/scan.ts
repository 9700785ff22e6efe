// Range scans in timestamp order with where-clauses on secondary attributes. Subtrees whose
// aggregates show no overlap with [from, to] or with an attribute's [low, high] are skipped
// without being read (ChronicleDB's lightweight indexing); rows are tested one by one only in
// the leaves that remain.
//
// The scan sees the events that existed when it was created: it captures the flank's sources
// with their counts, and copies rows of leaves still in PMem (their ring page may be reused
// while the scan is paused).

import type { Timestamp } from '../tree/row-layout.js';
import type { FlankSource, Tree } from '../tree/tree.js';
import { type LeafRows, rowSpan } from './leaf-search.js';

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

export function* scanRows(tree: Tree, from: Timestamp, to: Timestamp, filters: readonly AttributeFilter[]): Generator<RowRef, void, undefined> {
  if (from > to) return;
  const scanner = new Scanner(tree, from, to, filters);
  for (const source of tree.sources()) yield* scanner.source(source);
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

  source(source: FlankSource): Generator<RowRef, void, undefined> {
    return source.kind === 'open-leaf' ? this.leaf(source.leafId, source.count) : this.indexNode(source.nodeId, source.level, source.count);
  }

  private *indexNode(nodeId: number, level: number, count: number): Generator<RowRef, void, undefined> {
    const { nodes } = this.tree.parts;
    const children = this.tree.childAggregates(level);
    const [first, end] = nodes.childSpan(nodeId, count, this.from, this.to);
    for (let i = first; i < end; i++) {
      const child = nodes.child(nodeId, i);
      if (children.maxTs(child) < this.from || children.minTs(child) > this.to) continue;
      if (this.filters.some((f) => disjoint(children.attributeBounds(child, f.attribute), f))) continue;
      if (level === 1) yield* this.leaf(child, Infinity);
      else yield* this.indexNode(child, level - 1, nodes.closedCount(child));
    }
  }

  private *leaf(leafId: number, atMost: number): Generator<RowRef, void, undefined> {
    const rows = this.stableRows(leafId, atMost);
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

  private matches(view: DataView, offset: number): boolean {
    for (const filter of this.filters) {
      const value = this.tree.layout.numeric[filter.attribute]!.readNumber(view, offset);
      if (!(value >= filter.low && value <= filter.high)) return false;
    }
    return true;
  }

  /** The leaf's first `atMost` rows, copied out of PMem when they live in a reusable ring page. */
  private stableRows(leafId: number, atMost: number): LeafRows {
    const rows = this.tree.leafRows(leafId);
    const count = Math.min(rows.count, atMost);
    if (!rows.inRing) return { view: rows.view, offset: rows.offset, count };
    const start = rows.view.byteOffset + rows.offset;
    const copy = new Uint8Array(rows.view.buffer.slice(start, start + count * this.tree.layout.rowBytes));
    return { view: new DataView(copy.buffer), offset: 0, count };
  }
}

function disjoint([min, max]: [number, number], filter: AttributeFilter): boolean {
  return max < filter.low || min > filter.high;
}
