// One step of a bulk merge of out-of-order events into the tree (paper §2.2; the protocol and its
// crash analysis are in docs/DURABILITY.md). A step takes the next queue events in index order,
// rewrites every leaf they fall into copy-on-write - new leaves in free ring pages, split when
// they outgrow their page - and every ancestor of those leaves copy-on-write too, then hands
// back the new root state for the tree to commit. Nothing the committed root reaches is written.
//
// Routing: an event goes to the last leaf whose key (smallest timestamp) is <= its timestamp,
// the first leaf if there is none; in its leaf it follows every row with the same timestamp
// (those arrived earlier). So within each node, child i takes the events below child i+1's key.

import { invariant } from '../errors.js';
import type { LeafRowsView, TreeParts } from './tree.js';
import { Aggregate, type AggregateArray, newestLsnOf } from './aggregate-array.js';
import type { FlankState, OpenIndexNode } from './flank.js';
import type { Timestamp } from './row-layout.js';
import { countRowsBelow } from '../query/leaf-search.js';
import { copyRows } from '../query/view.js';

/** What a merge step needs from its tree. */
export interface MergeHost {
  readonly parts: TreeParts;
  readonly leafFill: number;
  readonly nodeCapacity: number;
  readonly nodeFill: number;
  leafRows(leafId: number): LeafRowsView;
  /** Frees the ring page of `leafId` (waits for the leaf writer if needed). */
  makeRoomInRing(leafId: number): void;
  childAggregates(level: number): AggregateArray;
}

/** The queue events being merged, in index order, and where their rows are. */
export interface MergeEvents {
  readonly slots: Int32Array;
  readonly view: DataView;
  rowOffset(slot: number): number;
  timestamp(slot: number): Timestamp;
}

interface Entry {
  readonly key: Timestamp;
  readonly child: number;
}

export interface StepResult {
  readonly state: FlankState;
  /** Index of the first event not merged by this step. */
  readonly end: number;
  readonly rewrittenLeaves: number;
}

export class MergeStep {
  private readonly next: FlankState;
  private position: number;
  private leafBudget: number;
  private stopped = false;
  private rewritten = 0;
  private readonly rowBytes: number;

  constructor(
    private readonly host: MergeHost,
    /** The root record this step builds on: what it must not overwrite. */
    private readonly committed: FlankState,
    private readonly events: MergeEvents,
    start: number,
    maxNewLeaves: number,
  ) {
    this.next = { ...committed, seq: committed.seq + 1, levels: committed.levels.map((level) => ({ ...level })) };
    this.position = start;
    this.leafBudget = maxNewLeaves;
    this.rowBytes = host.parts.layout.rowBytes;
  }

  /** Writes the step's new leaves and nodes (unreachable until the returned state is committed). */
  run(): StepResult {
    const levels = this.next.levels;
    const rewrittenOpen: (Entry[] | undefined)[] = levels.map(() => undefined);
    for (let l = levels.length; l >= 1; l--) {
      const open = levels[l - 1]!;
      if (open.count === 0) continue;
      const upper = this.firstKeyBelow(l);
      rewrittenOpen[l - 1] = this.rewriteChildren(open.nodeId, l, open.count, upper);
    }
    this.rebuildOpenNodes(rewrittenOpen);
    this.host.makeRoomInRing(this.next.openLeafId);
    this.host.parts.flank.openPage(this.next.openLeafId);
    this.next.supersededLeaves += this.rewritten;
    return { state: this.next, end: this.position, rewrittenLeaves: this.rewritten };
  }

  /** The key of the first entry of the next non-empty open node below `level` (undefined: none). */
  private firstKeyBelow(level: number): Timestamp | undefined {
    for (let l = level - 1; l >= 1; l--) {
      const open = this.next.levels[l - 1]!;
      if (open.count > 0) return this.host.parts.nodes.key(open.nodeId, 0);
    }
    return undefined;
  }

  /** Whether the next event falls below `upper` (undefined: no bound) and the step may take it. */
  private hasEventBelow(upper: Timestamp | undefined): boolean {
    if (this.stopped || this.position >= this.events.slots.length) return false;
    return upper === undefined || this.events.timestamp(this.events.slots[this.position]!) < upper;
  }

  /**
   * The entries of node `nodeId` with its children's events merged in, or undefined if no event
   * falls into it. Child i takes the events below child i+1's key; the last takes those below `upper`.
   */
  private rewriteChildren(nodeId: number, level: number, count: number, upper: Timestamp | undefined): Entry[] | undefined {
    const { nodes } = this.host.parts;
    if (!this.hasEventBelow(upper)) return undefined;
    const entries: Entry[] = [];
    let changed = false;
    for (let i = 0; i < count; i++) {
      const child = nodes.child(nodeId, i);
      const childUpper = i + 1 < count ? nodes.key(nodeId, i + 1) : upper;
      const replacement = this.hasEventBelow(childUpper) ? (level === 1 ? this.rewriteLeaf(child, childUpper) : this.rewriteIndexNode(child, level - 1, childUpper)) : undefined;
      if (replacement === undefined) entries.push({ key: nodes.key(nodeId, i), child });
      else entries.push(...replacement);
      changed ||= replacement !== undefined;
    }
    return changed ? entries : undefined;
  }

  /** A closed index node with its events merged in: one new node, or several if it overflows. */
  private rewriteIndexNode(nodeId: number, level: number, upper: Timestamp | undefined): Entry[] | undefined {
    const entries = this.rewriteChildren(nodeId, level, this.host.parts.nodes.closedCount(nodeId), upper);
    if (entries === undefined) return undefined;
    const parts = entries.length <= this.host.nodeCapacity ? 1 : Math.ceil(entries.length / this.host.nodeFill);
    return evenParts(entries.length, parts).map(([first, end]) => this.closedNode(entries.slice(first, end), level));
  }

  /**
   * Leaf `leafId` with the events below `upper` merged in, as new leaves: one if they fit its page,
   * else as many as the fill factor asks. Takes fewer events (and ends the step) when the step's
   * budget of new leaves would not hold them all.
   */
  private rewriteLeaf(leafId: number, upper: Timestamp | undefined): Entry[] | undefined {
    const { flank } = this.host.parts;
    const capacity = flank.pageCapacity;
    const { slots } = this.events;
    let wanted = 0;
    while (this.position + wanted < slots.length && (upper === undefined || this.events.timestamp(slots[this.position + wanted]!) < upper)) wanted++;
    const rows = this.stableRows(leafId);
    const maxRows = Math.max(this.leafBudget >= 1 ? capacity : 0, this.leafBudget * this.host.leafFill);
    const taken = Math.min(wanted, maxRows - rows.count);
    if (taken < wanted) this.stopped = true;
    if (taken <= 0) return undefined;
    const total = rows.count + taken;
    const parts = total <= capacity ? 1 : Math.ceil(total / this.host.leafFill);
    invariant(parts <= this.leafBudget, () => `merge step: leaf ${leafId} needs ${parts} new leaves, budget ${this.leafBudget}`);
    const merger = new RowMerger(this.host, rows, this.events, this.position, this.position + taken);
    const entries = evenParts(total, parts).map(([first, end], part) => this.writeLeaf(merger, end - first, { replaces: leafId, part, parts }));
    this.position += taken;
    this.leafBudget -= parts;
    this.rewritten++;
    return entries;
  }

  /** The rows of a leaf, copied when they sit in a ring page this step may reuse. */
  private stableRows(leafId: number): LeafRowsView {
    const rows = this.host.leafRows(leafId);
    return rows.inRing ? { ...copyRows(rows, rows.count, this.rowBytes), inRing: false } : rows;
  }

  /** Writes the next `count` merged rows as a new leaf in the ring: page, rows, count, aggregates. */
  private writeLeaf(merger: RowMerger, count: number, lineage: { replaces: number; part: number; parts: number }): Entry {
    const { flank, leafAggregates, layout } = this.host.parts;
    const leafId = this.next.openLeafId++;
    this.host.makeRoomInRing(leafId);
    flank.openPage(leafId, lineage);
    const at = flank.rowsOffset(leafId);
    merger.copyInto(new Uint8Array(flank.buffer, at, count * this.rowBytes), count);
    flank.persistRows(leafId, 0, count);
    const aggregate = new Aggregate(layout.numeric.length);
    aggregate.addRows(layout, new DataView(flank.buffer), at, 0, count);
    leafAggregates.write(leafId, aggregate);
    this.next.closedEvents += count - merger.takeRowsConsumed();
    // A record that does not know it yet learns it at the next leaf close (Tree.commitLeaf).
    if (this.next.closedNewestLsn !== undefined) this.next.closedNewestLsn = Math.max(this.next.closedNewestLsn, newestLsnOf(layout, aggregate));
    return { key: aggregate.minTs, child: leafId };
  }

  /** A new closed index node at `level` holding `entries`: entries, count, aggregates persisted. */
  private closedNode(entries: readonly Entry[], level: number): Entry {
    const { nodes, nodeAggregates } = this.host.parts;
    const id = this.newIndexNode(level, entries);
    nodes.close(id, entries.length);
    const total = this.sumOf(entries, level);
    nodeAggregates.write(id, total);
    return { key: total.minTs, child: id };
  }

  /**
   * A new open node at `level` holding `entries`, with its running aggregate kept in the flank
   * file (open-node-aggregates.ts), so that the first close after a crash does not sum them.
   */
  private openNode(entries: readonly Entry[], level: number): OpenIndexNode {
    const nodeId = this.newIndexNode(level, entries);
    if (entries.length === 0) return { nodeId, count: 0 };
    const total = this.sumOf(entries, level);
    return { nodeId, count: entries.length, aggregateCrc: this.host.parts.openNodeAggregates.keep(level - 1, nodeId, entries.length, total, this.committed.levels[level - 1]) };
  }

  /** The aggregates of `entries`' children, nodes at `level`. */
  private sumOf(entries: readonly Entry[], level: number): Aggregate {
    return this.host.childAggregates(level).sum(entries.map((entry) => entry.child));
  }

  private newIndexNode(level: number, entries: readonly Entry[]): number {
    const { nodes } = this.host.parts;
    const id = this.next.nextIndexNodeId++;
    nodes.initialize(id, level);
    entries.forEach((entry, i) => nodes.writeEntry(id, i, entry.key, entry.child, level > 1));
    return id;
  }

  /**
   * New open nodes for the levels whose entries changed, bottom-up as in a bulk load: an open
   * node that reaches the fill factor closes into the level above (a new level if need be).
   */
  private rebuildOpenNodes(rewritten: readonly (Entry[] | undefined)[]): void {
    const { nodes } = this.host.parts;
    const levels: OpenIndexNode[] = [];
    let carry: Entry[] = [];
    for (let l = 1; l <= this.next.levels.length || carry.length > 0; l++) {
      const open = this.next.levels[l - 1];
      const own = rewritten[l - 1];
      if (open !== undefined && own === undefined && carry.length === 0) {
        levels.push(open);
        continue;
      }
      const entries = [...(own ?? (open === undefined ? [] : readEntries(nodes, open))), ...carry];
      carry = [];
      let first = 0;
      for (; entries.length - first >= this.host.nodeFill; first += this.host.nodeFill) carry.push(this.closedNode(entries.slice(first, first + this.host.nodeFill), l));
      levels.push(this.openNode(entries.slice(first), l));
    }
    this.next.levels = levels;
  }
}

function readEntries(nodes: TreeParts['nodes'], open: OpenIndexNode): Entry[] {
  return Array.from({ length: open.count }, (_, i) => ({ key: nodes.key(open.nodeId, i), child: nodes.child(open.nodeId, i) }));
}

/** [first, end) of `parts` nearly equal parts of `total` items. */
function evenParts(total: number, parts: number): [number, number][] {
  return Array.from({ length: parts }, (_, p) => [Math.floor((total * p) / parts), Math.floor((total * (p + 1)) / parts)]);
}

/**
 * Merges a leaf's rows with queue events in timestamp order, rows first on equal timestamps,
 * copying runs of rows at once.
 */
class RowMerger {
  private row = 0;
  private rowsConsumed = 0;
  private readonly source: Uint8Array;

  constructor(
    private readonly host: MergeHost,
    private readonly rows: LeafRowsView,
    private readonly events: MergeEvents,
    private event: number,
    private readonly eventsEnd: number,
  ) {
    this.source = new Uint8Array(rows.view.buffer, rows.view.byteOffset, rows.view.byteLength);
  }

  /** Rows of the leaf copied since the last call (the rest of what was copied were events). */
  takeRowsConsumed(): number {
    const consumed = this.rowsConsumed;
    this.rowsConsumed = 0;
    return consumed;
  }

  copyInto(target: Uint8Array, count: number): void {
    const { layout } = this.host.parts;
    const rowBytes = layout.rowBytes;
    const queue = new Uint8Array(this.events.view.buffer, this.events.view.byteOffset, this.events.view.byteLength);
    for (let written = 0; written < count; ) {
      const eventTs = this.event < this.eventsEnd ? this.events.timestamp(this.events.slots[this.event]!) : undefined;
      const rowsUpTo = eventTs === undefined ? this.rows.count : countRowsBelow(layout, this.rows, eventTs, true);
      const run = Math.min(rowsUpTo - this.row, count - written);
      if (run > 0) {
        const from = this.rows.offset + this.row * rowBytes;
        target.set(this.source.subarray(from, from + run * rowBytes), written * rowBytes);
        this.row += run;
        this.rowsConsumed += run;
        written += run;
        continue;
      }
      invariant(eventTs !== undefined, 'merge ran out of rows and events');
      const at = this.events.rowOffset(this.events.slots[this.event++]!);
      target.set(queue.subarray(at, at + rowBytes), written * rowBytes);
      written++;
    }
  }
}
