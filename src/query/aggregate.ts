// Temporal aggregation in logarithmic time: whole subtrees inside [from, to] contribute their
// stored aggregates; only the (at most two) boundary paths are descended, and only the two
// boundary leaves are read row by row. Late events still in the out-of-order queue are added one
// by one, found through the DRAM time index (only those inside the range are touched).

import { Aggregate } from '../tree/aggregate-array.js';
import type { Timestamp } from '../tree/row-layout.js';
import type { Tree } from '../tree/tree.js';
import { type LeafRows, rowSpan } from './leaf-search.js';
import type { ReadView } from './view.js';

export function aggregateRange({ tree, sources, late }: ReadView, from: Timestamp, to: Timestamp): Aggregate {
  const total = new Aggregate(tree.layout.numeric.length);
  if (from > to) return total;
  const walker = new AggregateWalker(tree, from, to, total);
  for (const source of sources) {
    if (source.kind === 'rows') walker.addRows(source.rows);
    else walker.addIndexNode(source.nodeId, source.level, source.count);
  }
  late.aggregateInto(total, from, to);
  return total;
}

class AggregateWalker {
  private readonly scratch: Aggregate;

  constructor(
    private readonly tree: Tree,
    private readonly from: Timestamp,
    private readonly to: Timestamp,
    private readonly total: Aggregate,
  ) {
    this.scratch = new Aggregate(tree.layout.numeric.length);
  }

  /** An open node of the flank (with `openCount` entries), or a closed one. */
  addIndexNode(nodeId: number, level: number, openCount?: number): void {
    const node = this.tree.nodeView(nodeId, level, openCount);
    const [first, end] = node.span(this.from, this.to);
    for (let i = first; i < end; i++) {
      const min = node.minTs(i);
      const max = node.maxTs(i);
      if (max < this.from || min > this.to) continue;
      if (min >= this.from && max <= this.to) this.total.add(node.readAggregate(i, this.scratch));
      else if (level === 1) this.addRows(this.tree.leafRows(node.child(i)));
      else this.addIndexNode(node.child(i), level - 1);
    }
  }

  addRows(rows: LeafRows): void {
    const [first, end] = rowSpan(this.tree.layout, rows, this.from, this.to);
    this.total.addRows(this.tree.layout, rows.view, rows.offset, first, end);
  }
}
