// The running aggregates of the open index nodes, kept in the flank file after the ring pages, so
// that closing a node takes its aggregates as they stand instead of summing its children's slots:
// in a process that has just started, that sum (up to nodeFill slots on cold PMem pages, run by
// the interpreter) made the first append that closed a node take ~1.2 ms.
//
// Area at Flank.fileBytes(geometry) (the end of the ring pages), MAX_LEVELS x 2 copies x copyBytes,
// level 1 first; copyBytes = 8 + slot bytes, rounded up to 64:
//   0   u32  open index-node id
//   4   u32  entries covered (its first `count` children)
//   8   the aggregates of those children, in the aggregate array's slot layout (aggregate-array.ts)
// Persistence rule: the copy for (node, count) is written into the level's copy that the
// committed root record does not vouch for, and persisted, before the root record that commits
// `count` entries for that node; that record keeps the copy's CRC-32 per level (flank.ts, offset
// 160). A copy is read back only when the committed record vouches for it (node id, count and CRC
// match): a torn copy, or one written for a commit a crash took, is not, and the node's children
// are summed instead. Flank files created before this area existed end after the ring: their
// records vouch for CRCs of copies that are nowhere, and every first close after open sums.

import { crc32 } from 'node:zlib';
import { invariant } from '../errors.js';
import type { PmemRegion } from '../pmem/region.js';
import { Aggregate, aggregateSlotBytes, readAggregateSlot, writeAggregateSlot } from './aggregate-array.js';
import { Flank, type FlankGeometry, MAX_LEVELS, type OpenIndexNode } from './flank.js';
import type { RowLayout } from './row-layout.js';

const NODE_ID_OFFSET = 0;
const COUNT_OFFSET = 4;
const SLOT_OFFSET = 8;
const COPIES = 2;

export class OpenNodeAggregates {
  private readonly copyBytes: number;
  /** The copies' bytes: the area in the flank file, or a DRAM stand-in when the file has none. */
  private readonly view: DataView;
  private readonly inFile: boolean;

  private constructor(
    private readonly region: PmemRegion,
    private readonly areaOffset: number,
    private readonly layout: RowLayout,
  ) {
    this.copyBytes = copyBytesFor(layout);
    this.inFile = region.size >= areaOffset + MAX_LEVELS * COPIES * this.copyBytes;
    this.view = this.inFile ? new DataView(region.buffer, areaOffset) : new DataView(new ArrayBuffer(COPIES * this.copyBytes));
  }

  /** Bytes the flank file of a stream with `layout` takes with the area. */
  static fileBytes(geometry: FlankGeometry, layout: RowLayout): number {
    return Flank.fileBytes(geometry) + MAX_LEVELS * COPIES * copyBytesFor(layout);
  }

  /** The area of a flank file (views taken now: the flank region never grows after create). */
  static open(region: PmemRegion, geometry: FlankGeometry, layout: RowLayout): OpenNodeAggregates {
    return new OpenNodeAggregates(region, Flank.fileBytes(geometry), layout);
  }

  /** Whether the flank file has the area (files created before it existed do not). */
  get kept(): boolean {
    return this.inFile;
  }

  /**
   * Writes and persists the aggregates of the first `count` children of open node `nodeId` at
   * `level` (0 = level 1) into the copy that `committed` - the level's open node in the committed
   * root record - does not use; returns the CRC the committing root record must keep for the level.
   */
  keep(level: number, nodeId: number, count: number, aggregate: Aggregate, committed: OpenIndexNode | undefined): number {
    invariant(level < MAX_LEVELS && count > 0, () => `no open-node aggregate copy for level ${level + 1}, count ${count}`);
    const at = this.copyOffset(level, committed !== undefined && this.holds(this.copyOffset(level, 0), committed) ? 1 : 0);
    this.view.setUint32(at + NODE_ID_OFFSET, nodeId, true);
    this.view.setUint32(at + COUNT_OFFSET, count, true);
    writeAggregateSlot(this.layout, this.view, at + SLOT_OFFSET, aggregate);
    if (this.inFile) this.region.persist(this.areaOffset + at, this.copyBytes);
    return this.crcAt(at);
  }

  /** The aggregates kept for `open` at `level`, if the committed record vouches for its copy. */
  read(level: number, open: OpenIndexNode): Aggregate | undefined {
    if (!this.inFile || level >= MAX_LEVELS) return undefined;
    for (let copy = 0; copy < COPIES; copy++) {
      const at = this.copyOffset(level, copy);
      if (this.holds(at, open)) return readAggregateSlot(this.layout, this.view, at + SLOT_OFFSET, new Aggregate(this.layout.numeric.length));
    }
    return undefined;
  }

  /** Whether the copy at `at` is the one `open` vouches for. */
  private holds(at: number, open: OpenIndexNode): boolean {
    if (open.aggregateCrc === undefined || this.view.getUint32(at + NODE_ID_OFFSET, true) !== open.nodeId || this.view.getUint32(at + COUNT_OFFSET, true) !== open.count) return false;
    return this.crcAt(at) === open.aggregateCrc;
  }

  /** Where copy `copy` of `level` lies in the view (the DRAM stand-in holds one level). */
  private copyOffset(level: number, copy: number): number {
    return ((this.inFile ? level * COPIES : 0) + copy) * this.copyBytes;
  }

  private crcAt(at: number): number {
    return crc32(new Uint8Array(this.view.buffer, this.view.byteOffset + at, SLOT_OFFSET + aggregateSlotBytes(this.layout.numeric.length)));
  }
}

function copyBytesFor(layout: RowLayout): number {
  return Math.ceil((SLOT_OFFSET + aggregateSlotBytes(layout.numeric.length)) / 64) * 64;
}
