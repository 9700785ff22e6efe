// verify(): walks every invariant of a stream's tree and reports each violation with its place,
// instead of stopping at the first (TigerBeetle's verify(); SQLite's integrity_check).
//   cheap: the index - key order, children's time spans in order, levels, every closed node's
//          aggregates and every open node's kept running aggregate equal to its children's,
//          event totals, and (SSD node storage) every closed node's copy in the node file equal
//          to its PMem bytes;
//   full:  also every leaf - translation slot valid, record intact, rows sorted, the leaf's
//          aggregates equal to its rows, every event's lsn handed out once (no two events share
//          one, none is past the newest: consumers rely on both).
//   both:  the out-of-order queue - its DRAM index in (ts, arrival) order, no event indexed that
//          the merge cursor says is in the tree; full mode also checks every slot's check word
//          and every sorted run (a permutation of its block's slots, in (ts, slot) order).

import { Aggregate } from './aggregate-array.js';
import { type Timestamp, readLsn } from './row-layout.js';
import type { Tree } from './tree.js';

export interface Violation {
  readonly where: string;
  readonly problem: string;
}

export function verifyTree(tree: Tree, full: boolean): Violation[] {
  return new Verifier(tree, full).run();
}

class Verifier {
  private readonly violations: Violation[] = [];
  private previousMax: Timestamp | undefined;
  private events = 0;
  /** Full mode: bit l set once an event with lsn l was seen. */
  private readonly lsnSeen: Uint8Array;

  constructor(
    private readonly tree: Tree,
    private readonly full: boolean,
  ) {
    this.lsnSeen = new Uint8Array(full ? (tree.newestLsnHandedOut >>> 3) + 1 : 0);
  }

  run(): Violation[] {
    for (const source of this.tree.sources()) {
      if (source.kind === 'open-leaf') this.leaf(source.leafId, `open leaf ${source.leafId}`, true);
      else this.openIndexNode(source.nodeId, source.level, source.count);
    }
    this.check(this.events === this.tree.treeEvents, 'tree', `entries account for ${this.events} events, the tree counts ${this.tree.treeEvents}`);
    const kept = this.tree.keptClosedNewestLsn;
    const found = this.tree.closedNewestLsnOfNodes();
    this.check(kept === undefined || kept === found, 'flank root record', `keeps ${kept} as the closed leaves' newest lsn, their aggregates say ${found}`);
    this.lateQueue();
    return this.violations;
  }

  private lateQueue(): void {
    const { late } = this.tree;
    const slots = late.index.all();
    const cursor = this.tree.mergeCursor;
    const merging = cursor.generation === late.queue.generation;
    this.check(slots.length <= late.queue.length, 'out-of-order queue', `the index holds ${slots.length} events, the queue ${late.queue.length}`);
    if (this.full) for (let slot = 0; slot < late.queue.length; slot++) this.check(late.queue.verifies(slot), `out-of-order queue slot ${slot}`, 'its check word does not match its row');
    for (const run of this.full ? late.queue.sortedRuns() : []) {
      const problem = late.queue.runProblem(run);
      this.check(problem === undefined, `out-of-order queue run of slots [${run.firstSlot}, ${run.firstSlot + run.length})`, problem ?? '');
    }
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i]!;
      const ts = late.timestamp(slot);
      const where = `out-of-order queue slot ${slot} (index entry ${i})`;
      if (!this.check(slot < late.queue.length, where, `past the queue's ${late.queue.length} slots`)) return;
      if (this.full) this.lsn(readLsn(this.tree.layout, late.queue.view, late.queue.rowOffset(slot)), where);
      if (merging) this.check(BigInt(ts) > cursor.ts || (BigInt(ts) === cursor.ts && slot >= cursor.slot), where, `indexed though the merge cursor (${cursor.ts}, ${cursor.slot}) says it is in the tree`);
      if (i === 0) continue;
      const previous = slots[i - 1]!;
      const previousTs = late.timestamp(previous);
      if (!this.check(previousTs < ts || (previousTs === ts && previous < slot), where, `indexed after slot ${previous} (ts ${previousTs}) though its ts is ${ts}`)) return;
    }
  }

  /** An open node's subtree, and the running aggregate the flank file keeps for it (when the root record vouches for one). */
  private openIndexNode(nodeId: number, level: number, count: number): void {
    const where = `open index node ${nodeId}`;
    const children = this.indexNode(nodeId, level, count, where);
    const kept = this.tree.keptOpenNodeAggregate(level);
    if (kept !== undefined) this.compare(kept, children, `${where}'s running aggregate in the flank file`);
  }

  /** Checks a node's subtree and returns its aggregate, merged from its children's stored ones. */
  private indexNode(nodeId: number, level: number, count: number, where: string): Aggregate {
    const { nodes } = this.tree.parts;
    const children = this.tree.childAggregates(level);
    const total = new Aggregate(this.tree.layout.numeric.length);
    this.check(nodes.level(nodeId) === level, where, `level ${nodes.level(nodeId)}, expected ${level}`);
    this.check(count > 0, where, 'a reachable index node has no entries');
    for (let i = 0; i < count; i++) {
      const child = nodes.child(nodeId, i);
      const stored = children.read(child, new Aggregate(this.tree.layout.numeric.length));
      const childWhere = `${level === 1 ? 'leaf' : 'index node'} ${child} (entry ${i} of ${where})`;
      this.check(nodes.key(nodeId, i) === stored.minTs, childWhere, `key ${nodes.key(nodeId, i)} differs from its smallest timestamp ${stored.minTs}`);
      this.check(nodes.childIsIndex(nodeId, i) === level > 1, childWhere, `the entry's index-node bit says ${nodes.childIsIndex(nodeId, i)} at level ${level}`);
      if (level > 1) this.nodeCopy(child, childWhere);
      const actual = level === 1 ? this.leaf(child, childWhere, false) : this.indexNode(child, level - 1, nodes.closedCount(child), childWhere);
      if (level > 1 || this.full) this.compare(stored, actual, childWhere);
      if (level === 1) this.consume(stored);
      total.add(stored);
    }
    return total;
  }

  /** A closed node's copy in the node file (SSD node storage) must be its PMem bytes. */
  private nodeCopy(nodeId: number, where: string): void {
    try {
      const problem = this.tree.nodeCopyProblem(nodeId);
      this.check(problem === undefined, where, problem ?? '');
    } catch (err) {
      this.check(false, where, `its node-file copy is unreadable: ${(err as Error).message}`);
    }
  }

  /**
   * Reads the leaf (always the open one, the others in full mode) and returns the aggregate of
   * its rows; a closed leaf in cheap mode returns its stored aggregate unread.
   */
  private leaf(leafId: number, where: string, open: boolean): Aggregate {
    const layout = this.tree.layout;
    const actual = new Aggregate(layout.numeric.length);
    if (!this.full && !open) return this.tree.parts.leafAggregates.read(leafId, actual);
    try {
      const rows = this.tree.leafRows(leafId);
      actual.addRows(layout, rows.view, rows.offset, 0, rows.count);
      if (this.full) for (let r = 0; r < rows.count; r++) this.lsn(readLsn(layout, rows.view, rows.offset + r * layout.rowBytes), `${where}, row ${r}`);
      for (let r = 1; r < rows.count; r++) {
        const before = layout.readTimestamp(rows.view, rows.offset + (r - 1) * layout.rowBytes);
        const after = layout.readTimestamp(rows.view, rows.offset + r * layout.rowBytes);
        if (!this.check(before <= after, where, `row ${r} has timestamp ${after} after ${before}`)) break;
      }
    } catch (err) {
      this.check(false, where, `unreadable: ${(err as Error).message}`);
    }
    if (open) this.consume(actual);
    return actual;
  }

  private compare(stored: Aggregate, actual: Aggregate, where: string): void {
    this.check(stored.count === actual.count, where, `stored count ${stored.count}, children hold ${actual.count}`);
    this.check(stored.minTs === actual.minTs && stored.maxTs === actual.maxTs, where, `stored span [${stored.minTs}, ${stored.maxTs}], children span [${actual.minTs}, ${actual.maxTs}]`);
    for (let a = 0; a < stored.sum.length; a++) {
      const name = this.tree.layout.numeric[a]!.name;
      this.check(stored.min[a] === actual.min[a] && stored.max[a] === actual.max[a], where, `${name}: stored [${stored.min[a]}, ${stored.max[a]}], children [${actual.min[a]}, ${actual.max[a]}]`);
      const tolerance = 1e-9 * Math.max(1, Math.abs(actual.sum[a]!));
      this.check(Math.abs(stored.sum[a]! - actual.sum[a]!) <= tolerance, where, `${name}: stored sum ${stored.sum[a]}, children sum ${actual.sum[a]}`);
    }
  }

  /** Accounts a leaf's events (each leaf exactly once) and checks that time spans follow in order. */
  private consume(leaf: Aggregate): void {
    if (leaf.count === 0) return;
    this.check(this.previousMax === undefined || this.previousMax <= leaf.minTs, 'order', `a subtree starting at ${leaf.minTs} follows one ending at ${this.previousMax}`);
    this.previousMax = leaf.maxTs;
    this.events += leaf.count;
  }

  /** Checks that `lsn` was handed out, and to no other event seen so far. */
  private lsn(lsn: number, where: string): void {
    const newest = this.tree.newestLsnHandedOut;
    if (!this.check(Number.isSafeInteger(lsn) && lsn >= 1 && lsn <= newest, where, `lsn ${lsn} was never handed out (the newest is ${newest})`)) return;
    const bit = 1 << (lsn & 7);
    this.check((this.lsnSeen[lsn >>> 3]! & bit) === 0, where, `lsn ${lsn} belongs to another event too`);
    this.lsnSeen[lsn >>> 3]! |= bit;
  }

  private check(condition: boolean, where: string, problem: string): boolean {
    if (!condition) this.violations.push({ where, problem });
    return condition;
  }
}
