// Where queries read closed index nodes from - the node storage variants of paper Fig. 6, chosen
// per stream (StreamOptions.nodeStorage):
//   'pmem'             index nodes and their aggregates in PMem flat arrays (§4.1; the default)
//   'pmem-aggregates'  aggregates in PMem arrays; closed index nodes read from SSD (node-file.ts)
//   'ssd'              the baseline: closed index nodes read from SSD, each with its children's
//                      aggregates inline
// The flank - the open node of every level, the open leaf, the ring - is in PMem in every
// variant, as in the paper, and so is the PMem copy of every closed node: the arrays stay the
// tree's durable truth, so every variant recovers as the default one does. The SSD variants add
// the node file, written after the commit that closes a node, and read every closed node a query
// descends into from it (through a byte-capped cache, cold after open).

import { invariant } from '../errors.js';
import type { NodeFile } from '../ssd/node-file.js';
import { type Aggregate, type AggregateArray, aggregateSlotBytes, readAggregateSlot, slotAttributeBounds, slotMaxTs, slotMinTs } from './aggregate-array.js';
import type { FlankState } from './flank.js';
import { type IndexNodeArray, childSpanAt, indexNodeCapacity, keysBelow, nodeBytesFor, nodeChild, nodeCount } from './index-node-array.js';
import type { RowLayout, Timestamp } from './row-layout.js';

export const NODE_STORAGE_KINDS = ['pmem', 'pmem-aggregates', 'ssd'] as const;
export type NodeStorageKind = (typeof NODE_STORAGE_KINDS)[number];

/** An index node as a query walks it: its entries, and the aggregates of each entry's child. */
export interface NodeView {
  readonly count: number;
  /** Entries [first, end) whose children may hold timestamps in [from, to]. */
  span(from: Timestamp, to: Timestamp): [number, number];
  /** How many entries have a key below `ts` (at most `ts` when `inclusive`). */
  countKeysBelow(ts: Timestamp, inclusive: boolean): number;
  child(i: number): number;
  minTs(i: number): Timestamp;
  maxTs(i: number): Timestamp;
  readAggregate(i: number, into: Aggregate): Aggregate;
  attributeBounds(i: number, attribute: number): [number, number];
}

/** A node in the PMem array. Reads go through the arrays on every call: they may be remapped (grown) while a scan is suspended. */
class PmemNodeView implements NodeView {
  constructor(
    private readonly nodes: IndexNodeArray,
    private readonly children: AggregateArray,
    private readonly nodeId: number,
    readonly count: number,
  ) {}

  span(from: Timestamp, to: Timestamp): [number, number] {
    return this.nodes.childSpan(this.nodeId, this.count, from, to);
  }

  countKeysBelow(ts: Timestamp, inclusive: boolean): number {
    return this.nodes.countKeysBelow(this.nodeId, this.count, ts, inclusive);
  }

  child(i: number): number {
    return this.nodes.child(this.nodeId, i);
  }

  minTs(i: number): Timestamp {
    return this.children.minTs(this.child(i));
  }

  maxTs(i: number): Timestamp {
    return this.children.maxTs(this.child(i));
  }

  readAggregate(i: number, into: Aggregate): Aggregate {
    return this.children.read(this.child(i), into);
  }

  attributeBounds(i: number, attribute: number): [number, number] {
    return this.children.attributeBounds(this.child(i), attribute);
  }
}

/**
 * A node read from the node file: its bytes, then (baseline) its children's aggregate slots.
 * Without inline aggregates (`children` set), they come from the PMem array.
 */
class RecordNodeView implements NodeView {
  readonly count: number;
  private readonly inlineAt: number;
  private readonly slotBytes: number;

  constructor(
    private readonly layout: RowLayout,
    private readonly bytes: DataView,
    private readonly children: AggregateArray | undefined,
  ) {
    this.count = nodeCount(bytes, 0);
    this.inlineAt = nodeBytesFor(this.count);
    this.slotBytes = aggregateSlotBytes(layout.numeric.length);
  }

  span(from: Timestamp, to: Timestamp): [number, number] {
    return childSpanAt(this.layout, this.bytes, 0, this.count, from, to);
  }

  countKeysBelow(ts: Timestamp, inclusive: boolean): number {
    return keysBelow(this.layout, this.bytes, 0, this.count, ts, inclusive);
  }

  child(i: number): number {
    return nodeChild(this.bytes, 0, i);
  }

  minTs(i: number): Timestamp {
    return this.children === undefined ? slotMinTs(this.layout, this.bytes, this.slotAt(i)) : this.children.minTs(this.child(i));
  }

  maxTs(i: number): Timestamp {
    return this.children === undefined ? slotMaxTs(this.layout, this.bytes, this.slotAt(i)) : this.children.maxTs(this.child(i));
  }

  readAggregate(i: number, into: Aggregate): Aggregate {
    return this.children === undefined ? readAggregateSlot(this.layout, this.bytes, this.slotAt(i), into) : this.children.read(this.child(i), into);
  }

  attributeBounds(i: number, attribute: number): [number, number] {
    return this.children === undefined ? slotAttributeBounds(this.bytes, this.slotAt(i), attribute) : this.children.attributeBounds(this.child(i), attribute);
  }

  private slotAt(i: number): number {
    return this.inlineAt + i * this.slotBytes;
  }
}

export interface NodeStorageParts {
  readonly kind: NodeStorageKind;
  readonly layout: RowLayout;
  readonly nodes: IndexNodeArray;
  readonly leafAggregates: AggregateArray;
  readonly nodeAggregates: AggregateArray;
  /** Set exactly for the SSD variants. */
  readonly file: NodeFile | undefined;
}

export class NodeStorage {
  /** Node ids below this were looked at by publish(). */
  private scannedBelow = 0;
  /** Ids publish() found open: written once a later commit has closed them. */
  private readonly openWhenScanned = new Set<number>();

  constructor(private readonly parts: NodeStorageParts) {
    invariant((parts.kind === 'pmem') === (parts.file === undefined), () => `node storage '${parts.kind}' ${parts.file === undefined ? 'needs' : 'has no use for'} a node file`);
  }

  get kind(): NodeStorageKind {
    return this.parts.kind;
  }

  /**
   * Entries an index node of `nodeSize` bytes takes: the baseline's nodes hold their children's
   * aggregates too, so fewer fit (the paper's 8 KiB node: 459 entries, 43 with six attributes'
   * aggregates) and its tree is taller - the cost the PMem aggregate array removes.
   */
  nodeCapacity(nodeSize: number): number {
    if (this.parts.kind !== 'ssd') return indexNodeCapacity(nodeSize);
    return Math.max(2, indexNodeCapacity(nodeSize, aggregateSlotBytes(this.parts.layout.numeric.length)));
  }

  /** The aggregate array holding the children of an index node at `level`. */
  childAggregates(level: number): AggregateArray {
    return level === 1 ? this.parts.leafAggregates : this.parts.nodeAggregates;
  }

  /** Index node `nodeId` at `level`: an open one (of the flank) with `openCount` entries, else a closed one. */
  view(nodeId: number, level: number, openCount?: number): NodeView {
    const children = this.childAggregates(level);
    const file = this.parts.file;
    if (openCount === undefined && file !== undefined) {
      const bytes = file.read(nodeId);
      if (bytes !== undefined) return new RecordNodeView(this.parts.layout, bytes, this.parts.kind === 'ssd' ? undefined : children);
    }
    return new PmemNodeView(this.parts.nodes, children, nodeId, openCount ?? this.parts.nodes.closedCount(nodeId));
  }

  /**
   * After a flank commit: appends to the node file every node `state` has closed that it lacks.
   * Ids below state.nextIndexNodeId were handed out by committed work, so each is one of the
   * open nodes or closed for good; the first call (at open) also restores what a crash lost.
   */
  publish(state: FlankState): void {
    const file = this.parts.file;
    if (file === undefined) return;
    const open = new Set(state.levels.map((level) => level.nodeId));
    for (const id of this.openWhenScanned) {
      if (open.has(id)) continue;
      this.openWhenScanned.delete(id);
      if (!file.has(id)) file.append(id, this.recordPayload(id));
    }
    for (; this.scannedBelow < state.nextIndexNodeId; this.scannedBelow++) {
      const id = this.scannedBelow;
      if (open.has(id)) this.openWhenScanned.add(id);
      else if (!file.has(id)) file.append(id, this.recordPayload(id));
    }
  }

  /**
   * Why the node file's copy of closed node `id` is not what PMem holds, if it is not (verify()).
   * A missing copy is no fault: reads fall back to PMem, and open appends it again.
   */
  copyProblem(id: number): string | undefined {
    const copy = this.parts.file?.read(id);
    if (copy === undefined) return undefined;
    const expected = this.recordPayload(id);
    const bytes = new Uint8Array(copy.buffer, copy.byteOffset, copy.byteLength);
    return bytes.length === expected.length && bytes.every((byte, i) => byte === expected[i]) ? undefined : `its copy in the node file (${this.parts.file!.path}) differs from its PMem bytes`;
  }

  /** What the node file keeps of closed node `id`: its bytes, then (baseline) its children's aggregate slots. */
  recordPayload(id: number): Uint8Array {
    const { nodes } = this.parts;
    const count = nodes.closedCount(id);
    const node = nodes.nodeBytes(id, count);
    if (this.parts.kind !== 'ssd') return node.slice();
    const children = this.childAggregates(nodes.level(id));
    const slotBytes = aggregateSlotBytes(this.parts.layout.numeric.length);
    const payload = new Uint8Array(node.length + count * slotBytes);
    payload.set(node);
    for (let i = 0; i < count; i++) payload.set(children.slotBytes(nodes.child(id, i)), node.length + i * slotBytes);
    return payload;
  }
}
