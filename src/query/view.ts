// What a query reads: the tree's sources (its open index nodes with their committed counts, and
// the open leaf's rows) and the late events still queued. The live view reads them as they are;
// a fixed view (snapshots) copies the open leaf and fixes the queued events when it is taken,
// and keeps seeing exactly that: closed nodes and leaves are never changed in place (merges
// copy-on-write, and superseded leaf records are not reclaimed), and an emptied queue hands its
// rows to the views still holding them (ooo/late-queue.ts).

import type { LateEvents } from '../ooo/late-queue.js';
import type { Tree } from '../tree/tree.js';
import type { LeafRows } from './leaf-search.js';

export type ViewSource =
  | { readonly kind: 'index'; readonly nodeId: number; readonly level: number; readonly count: number }
  /** Rows of the open leaf; `stable` once copied out of its ring page. */
  | { readonly kind: 'rows'; readonly rows: LeafRows; readonly stable: boolean };

export interface ReadView {
  readonly tree: Tree;
  /** Oldest data first. */
  readonly sources: readonly ViewSource[];
  readonly late: LateEvents;
}

/** The stream as it is now (for queries that finish before anything else runs). */
export function liveView(tree: Tree): ReadView {
  return { tree, sources: viewSources(tree, false), late: tree.late };
}

/** The stream as it is now, kept so until released. */
export function fixedView(tree: Tree): { readonly view: ReadView; release(): void } {
  const late = tree.late.fixAll();
  return { view: { tree, sources: viewSources(tree, true), late }, release: () => late.release() };
}

function viewSources(tree: Tree, copy: boolean): ViewSource[] {
  return tree.sources().map((source): ViewSource => {
    if (source.kind === 'index') return source;
    const rows = tree.leafRows(source.leafId);
    return { kind: 'rows', rows: copy ? copyRows(rows, source.count, tree.layout.rowBytes) : { ...rows, count: source.count }, stable: copy };
  });
}

/** The first `count` rows, copied into a buffer of their own. */
export function copyRows(rows: LeafRows, count: number, rowBytes: number): LeafRows {
  const start = rows.view.byteOffset + rows.offset;
  return { view: new DataView(rows.view.buffer.slice(start, start + count * rowBytes)), offset: 0, count };
}
