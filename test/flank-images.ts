// Reading and damaging flank file images (src/tree/flank.ts) in tests, by the byte offsets of its
// format (docs/FORMAT.md): the tests must see the bytes the way a later open will.

/** FlankState.merging in the flags word of a root record. */
export const MERGING_FLAG = 16;

/** Where the newest root record of a flank file image lies, and its open leaf and flags word. */
export function rootRecordOf(flank: Uint8Array): { offset: number; openLeafId: number; flags: number } {
  const view = new DataView(flank.buffer, flank.byteOffset, flank.byteLength);
  const offset = view.getFloat64(256, true) > view.getFloat64(512, true) ? 256 : 512;
  return { offset, openLeafId: view.getUint32(offset + 8, true), flags: view.getUint32(offset + 20, true) };
}

/** The byte offset of leaf `leafId`'s ring page in a flank file. */
export function pageOffsetOf(leafId: number, geometry: { ringLeaves: number; nodeSize: number }): number {
  return 1024 + (leafId % geometry.ringLeaves) * geometry.nodeSize;
}

/**
 * Writes a lineage into the page of the open leaf the newest root record names (the lineage has
 * no checksum): u32 1 + the replaced leaf's id (default: the leaf before it, as a merge step
 * writes), u16 part, u16 parts.
 */
export function withOpenLeafLineage(flank: Uint8Array, geometry: { ringLeaves: number; nodeSize: number }, part: number, parts: number, replacesField?: number): Uint8Array {
  const { openLeafId } = rootRecordOf(flank);
  const view = new DataView(flank.buffer, flank.byteOffset, flank.byteLength);
  const page = pageOffsetOf(openLeafId, geometry);
  view.setUint32(page + 16, replacesField ?? openLeafId, true);
  view.setUint16(page + 20, part, true);
  view.setUint16(page + 22, parts, true);
  return flank;
}
