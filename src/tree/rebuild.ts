// Which leaves of a leaf file make up the tree, for a rebuild from SSD alone (open with
// { rebuild: true }). Every record of a merged leaf names the leaf it replaces and its part
// number (MERGED_LEAF lineage, ssd/leaf-file.ts); a leaf is superseded only when every part of
// its replacement reached the file - otherwise the replacement is ignored and the old leaf
// stands, so a torn tail never drops events the old leaf held.
//
// Order: leaves that replace nothing were closed in timestamp order, so their id order is the
// tree's order; a superseded leaf stands for its parts, in part order, recursively.

import type { RecoveredLeaf } from '../ssd/leaf-file.js';

/** The live leaf ids of `records` (all intact records, ids 0..n-1) in timestamp order. */
export function liveLeafOrder(records: readonly RecoveredLeaf[]): number[] {
  const replacements = new Map<number, RecoveredLeaf[]>();
  for (const record of records) {
    if (record.lineage === undefined) continue;
    const group = replacements.get(record.lineage.replaces) ?? [];
    group.push(record);
    replacements.set(record.lineage.replaces, group);
  }
  const live: number[] = [];
  const visit = (leafId: number): void => {
    const parts = completeParts(replacements.get(leafId));
    if (parts === undefined) live.push(leafId);
    else for (const part of parts) visit(part.leafId);
  };
  for (const record of records) if (record.lineage === undefined) visit(record.leafId);
  return live;
}

/** The parts of a replacement in order, if all of them are present exactly once. */
function completeParts(group: RecoveredLeaf[] | undefined): RecoveredLeaf[] | undefined {
  if (group === undefined) return undefined;
  const parts = group[0]!.lineage!.parts;
  const byPart = new Array<RecoveredLeaf | undefined>(parts);
  for (const record of group) {
    const { part, parts: total } = record.lineage!;
    if (total !== parts || part >= parts || byPart[part] !== undefined) return undefined;
    byPart[part] = record;
  }
  return byPart.every((record) => record !== undefined) ? (byPart as RecoveredLeaf[]) : undefined;
}
