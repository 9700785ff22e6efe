// Time travel: the events at one instant, and the latest event at or before an instant.

import type { Timestamp } from '../tree/row-layout.js';
import type { Tree } from '../tree/tree.js';
import { type LeafRows, countRowsBelow } from './leaf-search.js';
import type { ReadView } from './view.js';
import type { RowRef } from './scan.js';

/**
 * The latest event (in timestamp order, then arrival order) with a timestamp <= `ts`, or
 * undefined: the later of the tree's answer and the queue's. In the tree, walks the sources
 * newest first; in each, descends into the last child whose smallest timestamp is <= ts, which
 * therefore holds the answer.
 */
export function findAsOf(view: ReadView, ts: Timestamp): RowRef | undefined {
  const { tree } = view;
  const inTree = findAsOfInTree(view, ts);
  const late = view.late.lastAtOrBefore(ts);
  if (late === undefined) return inTree;
  if (inTree === undefined) return late;
  // On equal timestamps the queued event arrived later, so it is the latest.
  return tree.layout.readTimestamp(late.view, late.offset) >= tree.layout.readTimestamp(inTree.view, inTree.offset) ? late : inTree;
}

function findAsOfInTree({ tree, sources }: ReadView, ts: Timestamp): RowRef | undefined {
  for (let s = sources.length - 1; s >= 0; s--) {
    const source = sources[s]!;
    const found = source.kind === 'rows' ? lastRowAtOrBefore(tree, source.rows, ts) : descend(tree, source.nodeId, source.level, source.count, ts);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Descends from an open node of the flank (with `openCount` entries) or a closed one. */
function descend(tree: Tree, nodeId: number, level: number, openCount: number | undefined, ts: Timestamp): RowRef | undefined {
  const node = tree.nodeView(nodeId, level, openCount);
  const index = node.countKeysBelow(ts, true) - 1;
  if (index < 0) return undefined;
  const child = node.child(index);
  return level === 1 ? lastRowAtOrBefore(tree, tree.leafRows(child), ts) : descend(tree, child, level - 1, undefined, ts);
}

function lastRowAtOrBefore(tree: Tree, rows: LeafRows, ts: Timestamp): RowRef | undefined {
  const below = countRowsBelow(tree.layout, rows, ts, true);
  return below === 0 ? undefined : { view: rows.view, offset: rows.offset + (below - 1) * tree.layout.rowBytes };
}
