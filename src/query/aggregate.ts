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

  addIndexNode(nodeId: number, level: number, count: number): void {
    const { nodes } = this.tree.parts;
    const children = this.tree.childAggregates(level);
    const [first, end] = nodes.childSpan(nodeId, count, this.from, this.to);
    for (let i = first; i < end; i++) {
      const child = nodes.child(nodeId, i);
      const min = children.minTs(child);
      const max = children.maxTs(child);
      if (max < this.from || min > this.to) continue;
      if (min >= this.from && max <= this.to) this.total.add(children.read(child, this.scratch));
      else if (level === 1) this.addRows(this.tree.leafRows(child));
      else this.addIndexNode(child, level - 1, nodes.closedCount(child));
    }
  }

  addRows(rows: LeafRows): void {
    const [first, end] = rowSpan(this.tree.layout, rows, this.from, this.to);
    this.total.addRows(this.tree.layout, rows.view, rows.offset, first, end);
  }
}
