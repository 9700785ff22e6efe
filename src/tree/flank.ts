// The right flank in PMem (paper §4.1): the open leaf and the tree's commit record. Keeping them
// in PMem means an append is durable without any SSD write, and a restart finds the flank intact
// instead of rebuilding it.
//
// File layout:
//   [0, 256)        file header, geometry = [nodeSize, ringPages, rowBytes]
//   [256, 512)      root record, copy 0
//   [512, 768)      root record, copy 1
//   [1024 + p * nodeSize)   leaf page p, for p < ringPages
//   [1024 + ringPages * nodeSize)  the open nodes' running aggregates (open-node-aggregates.ts;
//            absent from files created before it existed)
// Root record (the commit point of every change to the tree's shape):
//   0   f64  sequence number (copy = seq mod 2)
//   8   u32  open leaf id (its page is openLeafId mod ringPages)
//   12  u32  height: number of index levels with an open node
//   16  u32  next index-node id
//   20  u32  flags: bit 0 = a rebuild from SSD is adopting the leaf file (ordinary opens refuse);
//            bit 1 = the closed leaves' newest lsn (offset 152) is kept (records written before
//            it was introduced lack it: the tree then finds it from the open nodes' aggregates);
//            bit 2 = every page carries the seed mark (page offset 12; set at creation since
//            the mark exists): a page without it is damaged; bit 3 = this flank marks its
//            merges in bit 4 (set at creation since merges are marked); bit 4 = a merge is under
//            way: an unfinished step may have written its first new leaf, with its lineage, into
//            the committed open leaf's page
//   24  f64  events in closed leaves
//   32  12 x { u32 open index-node id, u32 its committed entry count }, level 1 first
//   128 u32  merge cursor: out-of-order queue generation it refers to (0 = none)
//   132 u32  merge cursor: slot      } queue events of that generation whose (ts, slot) is below
//   136 i64  merge cursor: timestamp } the cursor are in the tree (docs/DURABILITY.md)
//   144 f64  leaves superseded by out-of-order merges
//   152 f64  the largest lsn in closed leaves (0: none), valid when flags bit 1 is set
//   160 12 x u32 CRC-32 of the open node's running-aggregate copy this record vouches for, level 1
//            first (open-node-aggregates.ts; 0 = none: the node's children are summed at close)
//   252 u32  CRC-32 of [0, 252)
// Leaf page (nodeSize bytes):
//   0   u32  event count   (a 4-byte aligned store: a crash leaves it old or new, never torn)
//   4   u32  CRC-32 of the first `count` rows (updated incrementally at each flush), seeded: an
//            empty page's CRC is not 0, so a (count, CRC) word zeroed by damage is refused
//            instead of read as 'no rows'
//   8   u32  leaf id the page currently holds
//   12  u32  1: the CRC chain starts at a seed of the leaf id (pages opened since the seed was
//            introduced); 0: at 0 (older pages). Shares the leaf id's 8-byte word.
//   16  u32  lineage: 1 + id of the leaf this one replaces (a merge's copy-on-write), 0 = none
//   20  u16  lineage: part number, 22 u16 parts (a replaced leaf may split)
//   64  rows, row-major, rowBytes each
// The ring: full leaves stay in their page until their record is durable on SSD, so a crash
// between "leaf closed" and "leaf synced" loses nothing: recovery writes them out again. A page is
// reused only after the leaf it holds is durable (the tree enforces it before opening a leaf).
//
// Persistence rules:
//   * append: rows are persisted first, then the count and CRC words (batched: every flushEvery
//     events). A crash may leave either word old and the other new, so recovery (verifiedCount)
//     takes the prefix of rows whose CRC is the stored one - the old count or the new - and
//     refuses the page only if no prefix matches: then its rows were damaged, not torn;
//   * opening a page: its header (count 0, leaf id) is persisted before the commit that names it;
//   * commit: the new record goes to the copy the previous one did not use, checksummed, then
//     persisted; recovery takes the valid copy with the higher sequence number. A torn record
//     fails its checksum and the older, complete copy wins.

import { crc32 } from 'node:zlib';
import { CorruptionError, invariant } from '../errors.js';
import { FileKind, type FileIdentity, readHead, verifyFileHeader, writeFileHeader } from '../pmem/file-header.js';
import type { PmemRegion } from '../pmem/region.js';

const ROOT_RECORD_OFFSET = 256;
const ROOT_RECORD_BYTES = 256;
const PAGES_OFFSET = 1024;
export const MAX_LEVELS = 12;

const SEQ_OFFSET = 0;
const OPEN_LEAF_OFFSET = SEQ_OFFSET + 8;
const HEIGHT_OFFSET = OPEN_LEAF_OFFSET + 4;
const NEXT_NODE_OFFSET = HEIGHT_OFFSET + 4;
const FLAGS_OFFSET = NEXT_NODE_OFFSET + 4;
const CLOSED_EVENTS_OFFSET = NEXT_NODE_OFFSET + 8;
const REBUILDING_FLAG = 1;
const CLOSED_LSN_FLAG = 2;
const SEEDED_PAGES_FLAG = 4;
const MARKS_MERGES_FLAG = 8;
const MERGING_FLAG = 16;
const LEVELS_OFFSET = CLOSED_EVENTS_OFFSET + 8;
const LEVEL_BYTES = 8;
const CURSOR_GENERATION_OFFSET = LEVELS_OFFSET + MAX_LEVELS * LEVEL_BYTES;
const CURSOR_SLOT_OFFSET = CURSOR_GENERATION_OFFSET + 4;
const CURSOR_TS_OFFSET = CURSOR_SLOT_OFFSET + 4;
const SUPERSEDED_OFFSET = CURSOR_TS_OFFSET + 8;
const CLOSED_LSN_OFFSET = SUPERSEDED_OFFSET + 8;
const AGGREGATE_CRCS_OFFSET = CLOSED_LSN_OFFSET + 8;
const RECORD_CRC_OFFSET = ROOT_RECORD_BYTES - 4;
invariant(AGGREGATE_CRCS_OFFSET + MAX_LEVELS * 4 <= RECORD_CRC_OFFSET, 'root record fields overlap its CRC');

export const PAGE_HEADER_BYTES = 64;
const PAGE_COUNT_OFFSET = 0;
const PAGE_CRC_OFFSET = 4;
const PAGE_LEAF_OFFSET = 8;
const PAGE_SEEDED_OFFSET = 12;
const PAGE_LINEAGE_OFFSET = 16;

export interface OpenIndexNode {
  nodeId: number;
  count: number;
  /** CRC of the copy of its children's aggregates kept in open-node-aggregates.ts (undefined: none kept). */
  aggregateCrc?: number;
}

/**
 * Which out-of-order queue events are in the tree: those of queue generation `generation` whose
 * (ts, slot) is below (ts, slot) here. Generation 0: none.
 */
export interface MergeCursor {
  readonly generation: number;
  readonly ts: bigint;
  readonly slot: number;
}

export const NO_MERGE_CURSOR: MergeCursor = { generation: 0, ts: 0n, slot: 0 };

/** A leaf written by a merge replaces part `part` (of `parts`) of leaf `replaces`. */
export interface Lineage {
  readonly replaces: number;
  readonly part: number;
  readonly parts: number;
}

/** The committed shape of the tree; a DRAM copy of the newest valid root record. */
export interface FlankState {
  seq: number;
  openLeafId: number;
  nextIndexNodeId: number;
  closedEvents: number;
  /** Open index node per level, level 1 first; length = height. */
  levels: OpenIndexNode[];
  mergeCursor: MergeCursor;
  supersededLeaves: number;
  /**
   * The largest lsn in closed leaves (0: none), so that the first append after open finds the
   * next lsn without reading the open nodes' children; undefined when the record was written
   * before this field existed (the next leaf close records it).
   */
  closedNewestLsn: number | undefined;
  /**
   * Set in the first commit of a flank created to rebuild the stream from SSD, cleared by the
   * commit that adopts the leaf file: until then the empty tree must not be taken for the truth
   * (recovery would cut the leaf file to match it).
   */
  rebuilding: boolean;
  /**
   * Every page this flank opened carries the seed mark (set by flanks created since the mark
   * exists): a page header without it is damage. False in older flanks, whose pages opened before
   * the mark keep CRC chains that start at 0 - there a wholly zeroed header of leaf 0 reads as empty.
   */
  seededPages: boolean;
  /**
   * This flank marks its merges in `merging` (flanks created since merges are marked): a lineage
   * in the committed open leaf's page is then an unfinished merge step's only while `merging` is
   * set, and damage otherwise. Older flanks can only judge a lineage by its values.
   */
  marksMerges: boolean;
  /**
   * Committed before a merge's first step writes anything, cleared by its last step's commit (and
   * by open, once it emptied the page a step left): the committed open leaf holds no appended row
   * meanwhile, and its page may hold an unfinished step's first new leaf.
   */
  merging: boolean;
}

export interface FlankGeometry {
  readonly nodeSize: number;
  readonly ringPages: number;
  readonly rowBytes: number;
}

export class Flank {
  private view: DataView;
  private words: Uint32Array;
  /** The header and both root records as open read them: readState() parses them until the first commit. */
  private headAtOpen: DataView | undefined;
  /** FlankState.seededPages of the root record read or committed last (verifiedCount holds pages to it). */
  private seededPages = false;

  private constructor(
    readonly region: PmemRegion,
    readonly geometry: FlankGeometry,
  ) {
    this.view = new DataView(region.buffer);
    this.words = new Uint32Array(region.buffer);
  }

  static fileBytes(geometry: FlankGeometry): number {
    return PAGES_OFFSET + geometry.ringPages * geometry.nodeSize;
  }

  /** Lays out a new flank: header, an empty leaf 0 in page 0, and the first commit (marked `rebuilding` for a rebuild from SSD). */
  static create(region: PmemRegion, geometry: FlankGeometry, storeId: Uint8Array, streamId: number, rebuilding = false): Flank {
    const size = Flank.fileBytes(geometry);
    if (region.size < size) region.grow(size);
    writeFileHeader(region, identity(geometry, storeId, streamId));
    const flank = new Flank(region, geometry);
    flank.openPage(0);
    flank.commit({ seq: 0, openLeafId: 0, nextIndexNodeId: 0, closedEvents: 0, levels: [], mergeCursor: NO_MERGE_CURSOR, supersededLeaves: 0, closedNewestLsn: 0, rebuilding, seededPages: true, marksMerges: true, merging: false });
    return flank;
  }

  static open(region: PmemRegion, geometry: FlankGeometry, storeId: Uint8Array, streamId: number): Flank {
    const head = readHead(region, PAGES_OFFSET);
    verifyFileHeader(region, identity(geometry, storeId, streamId), head);
    if (region.size < Flank.fileBytes(geometry)) {
      throw new CorruptionError(region.path, region.size, `flank file is shorter than its ${geometry.ringPages} pages`);
    }
    const flank = new Flank(region, geometry);
    flank.headAtOpen = new DataView(head.buffer, head.byteOffset, head.byteLength);
    return flank;
  }

  /** Rows a page holds. */
  get pageCapacity(): number {
    return Math.floor((this.geometry.nodeSize - PAGE_HEADER_BYTES) / this.geometry.rowBytes);
  }

  get buffer(): ArrayBuffer {
    return this.region.buffer;
  }

  /** Byte offset of leaf `leafId`'s first row in the file. */
  rowsOffset(leafId: number): number {
    return Flank.rowsOffsetIn(this.geometry, leafId);
  }

  static rowsOffsetIn(geometry: FlankGeometry, leafId: number): number {
    return PAGES_OFFSET + (leafId % geometry.ringPages) * geometry.nodeSize + PAGE_HEADER_BYTES;
  }

  /** Reads the newest valid root record; throws CorruptionError if neither copy verifies. */
  readState(): FlankState {
    const candidates = [0, 1].map((copy) => this.readRecord(copy)).filter((s): s is FlankState => s !== undefined);
    const newest = candidates.sort((a, b) => b.seq - a.seq)[0];
    if (newest === undefined) throw new CorruptionError(this.region.path, ROOT_RECORD_OFFSET, 'no root record copy verifies');
    this.seededPages = newest.seededPages;
    return newest;
  }

  /** Makes `state` the committed shape of the tree. REQUIRES: everything it names is persisted. */
  commit(state: FlankState): void {
    invariant(state.levels.length <= MAX_LEVELS, () => `tree height ${state.levels.length} exceeds ${MAX_LEVELS}`);
    const at = ROOT_RECORD_OFFSET + (state.seq % 2) * ROOT_RECORD_BYTES;
    this.headAtOpen = undefined;
    const bytes = new Uint8Array(this.region.buffer, at, ROOT_RECORD_BYTES);
    bytes.fill(0);
    const view = this.view;
    view.setFloat64(at + SEQ_OFFSET, state.seq, true);
    view.setUint32(at + OPEN_LEAF_OFFSET, state.openLeafId, true);
    view.setUint32(at + HEIGHT_OFFSET, state.levels.length, true);
    view.setUint32(at + NEXT_NODE_OFFSET, state.nextIndexNodeId, true);
    view.setUint32(at + FLAGS_OFFSET, (state.rebuilding ? REBUILDING_FLAG : 0) | (state.closedNewestLsn !== undefined ? CLOSED_LSN_FLAG : 0) | (state.seededPages ? SEEDED_PAGES_FLAG : 0) | (state.marksMerges ? MARKS_MERGES_FLAG : 0) | (state.merging ? MERGING_FLAG : 0), true);
    view.setFloat64(at + CLOSED_EVENTS_OFFSET, state.closedEvents, true);
    state.levels.forEach((level, i) => {
      view.setUint32(at + LEVELS_OFFSET + i * LEVEL_BYTES, level.nodeId, true);
      view.setUint32(at + LEVELS_OFFSET + i * LEVEL_BYTES + 4, level.count, true);
      view.setUint32(at + AGGREGATE_CRCS_OFFSET + i * 4, level.aggregateCrc ?? 0, true);
    });
    view.setUint32(at + CURSOR_GENERATION_OFFSET, state.mergeCursor.generation, true);
    view.setUint32(at + CURSOR_SLOT_OFFSET, state.mergeCursor.slot, true);
    view.setBigInt64(at + CURSOR_TS_OFFSET, state.mergeCursor.ts, true);
    view.setFloat64(at + SUPERSEDED_OFFSET, state.supersededLeaves, true);
    view.setFloat64(at + CLOSED_LSN_OFFSET, state.closedNewestLsn ?? 0, true);
    view.setUint32(at + RECORD_CRC_OFFSET, crc32(bytes.subarray(0, RECORD_CRC_OFFSET)), true);
    this.region.persist(at, ROOT_RECORD_BYTES);
    this.seededPages = state.seededPages;
  }

  /** Resets the page of `leafId` to hold that leaf, empty, with its lineage; persisted. */
  openPage(leafId: number, lineage?: Lineage): void {
    const at = this.pageOffset(leafId);
    this.view.setUint32(at + PAGE_LEAF_OFFSET, leafId, true);
    this.view.setUint32(at + PAGE_SEEDED_OFFSET, 1, true);
    this.view.setUint32(at + PAGE_COUNT_OFFSET, 0, true);
    this.view.setUint32(at + PAGE_CRC_OFFSET, pageCrcSeed(leafId), true);
    this.view.setUint32(at + PAGE_LINEAGE_OFFSET, lineage === undefined ? 0 : lineage.replaces + 1, true);
    this.view.setUint16(at + PAGE_LINEAGE_OFFSET + 4, lineage?.part ?? 0, true);
    this.view.setUint16(at + PAGE_LINEAGE_OFFSET + 6, lineage?.parts ?? 0, true);
    this.region.persist(at, PAGE_HEADER_BYTES);
  }

  /** The lineage of the leaf in `leafId`'s page, if a merge wrote it. */
  pageLineage(leafId: number): Lineage | undefined {
    const at = this.pageOffset(leafId) + PAGE_LINEAGE_OFFSET;
    const replaces = this.view.getUint32(at, true);
    if (replaces === 0) return undefined;
    return { replaces: replaces - 1, part: this.view.getUint16(at + 4, true), parts: this.view.getUint16(at + 6, true) };
  }

  /** Which leaf the page that `leafId` maps to holds now. */
  pageLeafId(leafId: number): number {
    return this.view.getUint32(this.pageOffset(leafId) + PAGE_LEAF_OFFSET, true);
  }

  /** The persisted (or, in this process, last stored) event count of leaf `leafId`'s page. */
  pageCount(leafId: number): number {
    return this.words[(this.pageOffset(leafId) + PAGE_COUNT_OFFSET) >>> 2]!;
  }

  /**
   * Makes rows [durableRows, count) of leaf `leafId` durable, then publishes `count` with the CRC
   * of rows [0, count). The two steps are separate persists: the count must never reach the
   * media before its rows. REQUIRES: the page's CRC covers rows [0, durableRows).
   */
  persistRows(leafId: number, durableRows: number, count: number): void {
    const rows = this.rowsOffset(leafId);
    const rowBytes = this.geometry.rowBytes;
    this.region.persist(rows + durableRows * rowBytes, (count - durableRows) * rowBytes);
    const header = this.pageOffset(leafId);
    const crc = crc32(new Uint8Array(this.region.buffer, rows + durableRows * rowBytes, (count - durableRows) * rowBytes), this.words[(header + PAGE_CRC_OFFSET) >>> 2]!);
    this.words[(header + PAGE_COUNT_OFFSET) >>> 2] = count;
    this.words[(header + PAGE_CRC_OFFSET) >>> 2] = crc;
    this.region.persist(header, 8);
  }

  /**
   * The number of rows of leaf `leafId`'s page that a crash left intact: its count if the CRC
   * matches, else the one other prefix a torn header update can leave (count old and CRC new,
   * or the reverse). Throws CorruptionError when no prefix matches: the rows were damaged.
   */
  verifiedCount(leafId: number): number {
    const header = this.pageOffset(leafId);
    const count = this.words[(header + PAGE_COUNT_OFFSET) >>> 2]!;
    const stored = this.words[(header + PAGE_CRC_OFFSET) >>> 2]!;
    const rowBytes = this.geometry.rowBytes;
    const rows = new Uint8Array(this.region.buffer, this.rowsOffset(leafId), this.pageCapacity * rowBytes);
    const seeded = this.words[(header + PAGE_SEEDED_OFFSET) >>> 2] === 1;
    if (!seeded && this.seededPages) {
      // Zeroed, the header of leaf 0 would pass every other check: count 0, and a CRC chain from 0.
      throw new CorruptionError(this.region.path, header + PAGE_SEEDED_OFFSET, `leaf ${leafId}'s page header is damaged: it lacks the seed mark every page of this flank carries`);
    }
    const seed = seeded ? pageCrcSeed(leafId) : 0;
    if (count <= this.pageCapacity && crc32(rows.subarray(0, count * rowBytes), seed) === stored) return count;
    let crc = seed;
    for (let k = 0; k <= this.pageCapacity; k++) {
      if (k > 0) crc = crc32(rows.subarray((k - 1) * rowBytes, k * rowBytes), crc);
      if (crc === stored) return k;
    }
    throw new CorruptionError(this.region.path, header, `leaf ${leafId}'s page: no prefix of its rows has the stored CRC (count ${count}): its rows are damaged`);
  }

  close(): void {
    this.region.close();
  }

  private pageOffset(leafId: number): number {
    return PAGES_OFFSET + (leafId % this.geometry.ringPages) * this.geometry.nodeSize;
  }

  private readRecord(copy: number): FlankState | undefined {
    const at = ROOT_RECORD_OFFSET + copy * ROOT_RECORD_BYTES;
    const view = this.headAtOpen ?? this.view;
    const bytes = new Uint8Array(view.buffer, view.byteOffset + at, ROOT_RECORD_BYTES);
    if (view.getUint32(at + RECORD_CRC_OFFSET, true) !== crc32(bytes.subarray(0, RECORD_CRC_OFFSET))) return undefined;
    const seq = view.getFloat64(at + SEQ_OFFSET, true);
    const height = view.getUint32(at + HEIGHT_OFFSET, true);
    if (seq % 2 !== copy || height > MAX_LEVELS) return undefined;
    const flags = view.getUint32(at + FLAGS_OFFSET, true);
    return {
      seq,
      openLeafId: view.getUint32(at + OPEN_LEAF_OFFSET, true),
      nextIndexNodeId: view.getUint32(at + NEXT_NODE_OFFSET, true),
      closedEvents: view.getFloat64(at + CLOSED_EVENTS_OFFSET, true),
      levels: Array.from({ length: height }, (_, i) => ({
        nodeId: view.getUint32(at + LEVELS_OFFSET + i * LEVEL_BYTES, true),
        count: view.getUint32(at + LEVELS_OFFSET + i * LEVEL_BYTES + 4, true),
        aggregateCrc: view.getUint32(at + AGGREGATE_CRCS_OFFSET + i * 4, true) || undefined,
      })),
      mergeCursor: {
        generation: view.getUint32(at + CURSOR_GENERATION_OFFSET, true),
        slot: view.getUint32(at + CURSOR_SLOT_OFFSET, true),
        ts: view.getBigInt64(at + CURSOR_TS_OFFSET, true),
      },
      supersededLeaves: view.getFloat64(at + SUPERSEDED_OFFSET, true),
      closedNewestLsn: (flags & CLOSED_LSN_FLAG) !== 0 ? view.getFloat64(at + CLOSED_LSN_OFFSET, true) : undefined,
      rebuilding: (flags & REBUILDING_FLAG) !== 0,
      seededPages: (flags & SEEDED_PAGES_FLAG) !== 0,
      marksMerges: (flags & MARKS_MERGES_FLAG) !== 0,
      merging: (flags & MERGING_FLAG) !== 0,
    };
  }
}

/** The CRC of an empty page of leaf `leafId`: never 0, and different for each leaf. */
function pageCrcSeed(leafId: number): number {
  return (Math.imul(leafId + 1, 0x9e3779b1) | 1) >>> 0;
}

function identity(geometry: FlankGeometry, storeId: Uint8Array, streamId: number): FileIdentity {
  return { kind: FileKind.Flank, storeId, streamId, geometry: [geometry.nodeSize, geometry.ringPages, geometry.rowBytes] };
}
