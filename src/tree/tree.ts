// The TAB+-tree of one stream, laid out across the tiers (paper §4): the right flank and the
// index nodes with their aggregates in PMem, full leaves compressed on SSD. Ingest in time order
// is a continuous bulk load along the right flank; every structural change is published by one
// commit of the flank's root record, so a crash at any instant leaves the old or the new tree.
//
// Shape. The data, in timestamp order, is: for each index level from the top down, the subtrees
// of the open node of that level (each entry a closed child), then the open leaf. Closed nodes
// never change (until out-of-order merges), and their aggregates are computed once, at closing.
//
// Write order of a leaf hand-off (docs/DURABILITY.md has the crash analysis):
//   1. the full leaf's rows and count are persisted in its ring page (already, by appends);
//   2. its aggregates are written to the leaf aggregate array and persisted;
//   3. its entry is written into the level-1 open node past the committed count, persisted,
//      and the node's running aggregate copy for the new count (open-node-aggregates.ts);
//      a node that fills closes: count, aggregates (its running aggregate: no children read),
//      then its own entry one level up; a fresh open node replaces it (header persisted);
//   4. the next leaf's ring page is reset (header persisted) - its previous leaf is durable;
//   5. the flank's root record is committed: the new tree is now the tree;
//   6. the leaf is handed to the leaf writer (ssd/leaf-writer.ts), which encodes, appends and
//      fdatasyncs it - on a worker thread in a real store; once it reports the leaf durable,
//      the leaf's translation slot is set (persisted in batches of 32).

import { CorruptionError, IoError, MisuseError, invariant } from '../errors.js';
import { LateQueue, type StartIndexBuilder, completeCursor } from '../ooo/late-queue.js';
import { GENERATION_OFFSET, type OooQueue } from '../ooo/queue.js';
import type { LeafSink, RecoveredLeaf } from '../ssd/leaf-file.js';
import { type DurableLeaf, type LeafWriter, type RingPage, SyncLeafWriter } from '../ssd/leaf-writer.js';
import { Aggregate, type AggregateArray, newestLsnOf } from './aggregate-array.js';
import type { Flank, FlankState, Lineage, OpenIndexNode } from './flank.js';
import { MergeStep } from './merge.js';
import { LeafFileRecovery } from './leaf-file-recovery.js';
import { liveLeafOrder } from './rebuild.js';
import { countRowsBelow } from '../query/leaf-search.js';
import type { IndexNodeArray } from './index-node-array.js';
import { NodeStorage, type NodeStorageKind, type NodeView } from './node-storage.js';
import type { OpenNodeAggregates } from './open-node-aggregates.js';
import type { NodeFile } from '../ssd/node-file.js';
import { type RowLayout, type Timestamp, maxTimestamp, readLsn, writeLsn } from './row-layout.js';
import type { TranslationArray } from './translation-array.js';

/**
 * Leaf closes that write out ring leaves themselves while open's leaf-file recovery runs: a
 * producer that never yields to the event loop lets no recovery slice run, so after these the
 * close finishes the recovery and starts the writer (one fdatasync per leaf is slow ingest).
 */
const WRITE_OUTS_BEFORE_FINISHING = 16;

export interface TreeOptions {
  /** Persist the open leaf every this many appends (paper: 25 reaches 95 % of a DRAM flank). */
  readonly flushEvery: number;
  /** Fraction of every node kept free for out-of-order inserts (paper: 10 %). */
  readonly spare: number;
  /** The PMem structures are new and empty: rebuild them from the leaf file's records. */
  readonly rebuildFromLeafFile?: boolean;
  /**
   * Recover the leaf file's tail and the ring after open returns (leaf-file-recovery.ts), rather
   * than before: a damaged ring page then fails the request that needs it, not open.
   */
  readonly deferLeafFileRecovery?: boolean;
}

export interface TreeParts {
  readonly layout: RowLayout;
  readonly flank: Flank;
  /** The open index nodes' running aggregates, in the flank file. */
  readonly openNodeAggregates: OpenNodeAggregates;
  readonly nodes: IndexNodeArray;
  readonly leafAggregates: AggregateArray;
  readonly nodeAggregates: AggregateArray;
  readonly translation: TranslationArray;
  readonly leaves: LeafSink;
  readonly queue: OooQueue;
  /** Where queries read closed index nodes (node-storage.ts); the node file is set for the SSD variants. */
  readonly nodeStorage: NodeStorageKind;
  readonly nodeFile: NodeFile | undefined;
}

/** What out-of-order merges did since the tree was opened. */
export interface MergeStats {
  merges: number;
  steps: number;
  mergedEvents: number;
  rewrittenLeaves: number;
  milliseconds: number;
}

/** A source of events in timestamp order, as queries walk it: an index node or the open leaf. */
export type FlankSource =
  | { readonly kind: 'index'; readonly nodeId: number; readonly level: number; readonly count: number }
  | { readonly kind: 'open-leaf'; readonly leafId: number; readonly count: number };

/** What a rebuild took from the leaf file, and what it had to cut off. */
export interface AdoptedLeafFile {
  /** Intact leaf records adopted, from leaf 0 on. */
  readonly records: number;
  /** 1 if the scan stopped at a torn, damaged or unexpected record, else 0. */
  readonly damagedRecords: number;
  /** Intact records after that one, cut off with it, and the events they held. */
  readonly skippedRecords: number;
  readonly skippedEvents: number;
  readonly cutBytes: number;
}

export interface LeafRowsView {
  readonly view: DataView;
  readonly offset: number;
  readonly count: number;
  readonly inRing: boolean;
}

export class Tree {
  readonly leafFill: number;
  /** Entries an index node takes at most (node-storage.ts), and fills before it closes. */
  readonly nodeCapacity: number;
  readonly nodeFill: number;
  private state: FlankState;
  private readonly rows: DataView;
  private openCount: number;
  private durableRows: number;
  /** Leaves [0, durableLeaves) are durable on SSD with their translation slot set. */
  private durableLeaves: number;
  private newest: Timestamp | undefined;
  /**
   * The arrival sequence number the next event gets; 1 for a stream's first (0 = before all).
   * Found at the first append or lsn asked for, not at open (newestLsn() reads a few pages).
   */
  private lsnCounter: number | undefined;
  /** The lsn of the first flank row written since the last flush (while rows are unflushed). */
  private firstUnflushedLsn = 0;
  /** Started once the leaf file is recovered, at the first hand-off after that. */
  private writer: LeafWriter | undefined;
  /** Open's leaf-file recovery while it is not done (leaf-file-recovery.ts). */
  private recovery: LeafFileRecovery | undefined;
  private recoverySlice: NodeJS.Immediate | undefined;
  /** Times a leaf close wrote out ring leaves itself while the recovery ran (writeOutForRoom). */
  private writeOutsForRoom = 0;
  private readonly nodeStorage: NodeStorage;
  /** Per level, the running aggregate this process last kept for its open node (addEntry). */
  private readonly openNodeTotals: ({ readonly nodeId: number; readonly count: number; readonly crc: number; readonly aggregate: Aggregate } | undefined)[] = [];
  /** Leaves [durableLeaves, handedOff) are with the writer; [handedOff, openLeafId) still to hand over. */
  private handedOff: number;
  /** The I/O failure that made this tree read-only, if one did. */
  private failure: IoError | undefined;
  /** Late events not yet merged into the tree. */
  readonly late: LateQueue;
  /**
   * The newest timestamp in closed leaves (late events at or after it may join the open leaf),
   * once asked for: open does not read the index node and aggregate it lies in.
   */
  private closedNewestFound: { readonly ts: Timestamp | undefined } | undefined;
  /** The newest timestamp in the queue, if it may exceed the tree's (only after a crash lost flank rows). */
  private lateNewest: Timestamp | undefined;
  /** A merge a crash interrupted, finished before the next late event is queued (or on demand). */
  private mergePending = false;
  readonly mergeStats: MergeStats = { merges: 0, steps: 0, mergedEvents: 0, rewrittenLeaves: 0, milliseconds: 0 };
  /** Set when this open rebuilt the tree from the leaf file. */
  adoptedLeafFile: AdoptedLeafFile | undefined;

  /** Opens the tree, recovering what a crash left; then starts its leaf writer at the first leaf to write. */
  constructor(
    readonly parts: TreeParts,
    readonly options: TreeOptions,
    private readonly startWriter: (firstLeaf: number, ringPage: RingPage) => LeafWriter,
    startIndexBuilder: StartIndexBuilder,
  ) {
    const { flank, nodes } = parts;
    this.nodeStorage = new NodeStorage({ kind: parts.nodeStorage, layout: parts.layout, nodes, leafAggregates: parts.leafAggregates, nodeAggregates: parts.nodeAggregates, file: parts.nodeFile });
    this.leafFill = Math.max(1, Math.floor(flank.pageCapacity * (1 - options.spare)));
    this.nodeCapacity = this.nodeStorage.nodeCapacity(flank.geometry.nodeSize);
    invariant(this.nodeCapacity <= nodes.capacity, () => `node capacity ${this.nodeCapacity} exceeds the index-node array's ${nodes.capacity}`);
    this.nodeFill = Math.max(2, Math.floor(this.nodeCapacity * (1 - options.spare)));
    this.rows = new DataView(flank.buffer);
    this.state = flank.readState();
    if (this.state.rebuilding && options.rebuildFromLeafFile !== true) {
      throw new CorruptionError(flank.region.path, 0, 'a rebuild of this stream from its leaf file was interrupted; open with { rebuild: true } to run it again (the leaf file is intact)');
    }
    this.checkRootIsNewest();
    this.checkArraysCover();
    this.openCount = this.durableRows = this.checkOpenPage();
    this.durableLeaves = 0;
    if (options.rebuildFromLeafFile === true) this.adoptedLeafFile = this.adoptLeafFile();
    else this.recoverLeafFile(options.deferLeafFileRecovery === true);
    this.late = new LateQueue(parts.queue, parts.layout, this.state.mergeCursor, startIndexBuilder);
    // Closed leaves a crash kept from the SSD wait in their ring pages (queries read them there)
    // and go to the writer with the first hand-off after recovery: open() does not wait for them.
    this.handedOff = this.durableLeaves;
    this.refreshNewest();
    this.settleLateQueue();
    this.nodeStorage.publish(this.state);
  }

  /** True while open's deferred leaf-file recovery has not finished. */
  get recoveringLeafFile(): boolean {
    return this.recovery !== undefined;
  }

  get layout(): RowLayout {
    return this.parts.layout;
  }

  /** Events in the tree and in the out-of-order queue. */
  get events(): number {
    return this.treeEvents + this.late.size;
  }

  /** Events in the tree's leaves (the queue's not counted). */
  get treeEvents(): number {
    return this.state.closedEvents + this.openCount;
  }

  get mergeCursor(): FlankState['mergeCursor'] {
    return this.state.mergeCursor;
  }

  get supersededLeaves(): number {
    return this.state.supersededLeaves;
  }

  get leafCount(): number {
    return this.state.openLeafId + (this.openCount > 0 ? 1 : 0);
  }

  get height(): number {
    return this.state.levels.length + 1;
  }

  get newestTimestamp(): Timestamp | undefined {
    return this.newest;
  }

  /**
   * Whether an event at `ts` is late: older than the newest event, or (after a crash took flank
   * rows) not newer than a queued one - equal timestamps must stay in arrival order.
   */
  isLate(ts: Timestamp): boolean {
    return (this.newest !== undefined && ts < this.newest) || (this.lateNewest !== undefined && ts <= this.lateNewest);
  }

  /**
   * Inserts a late event (isLate(ts)): into the open leaf's unflushed tail if it sorts there -
   * durable with the next flush, like any append - else into the out-of-order queue, durable
   * at the next persistLate() (the stream calls it before acknowledging). A full queue is merged
   * into the tree first.
   */
  insertLate(ts: Timestamp, writeRow: (view: DataView, offset: number) => void): void {
    this.checkWritable();
    const position = this.tailPosition(ts);
    if (position !== undefined) {
      this.insertIntoTail(position, writeRow);
      return;
    }
    if (this.mergePending || this.late.queue.isFull) this.mergeLateEvents();
    this.late.insert((view, offset) => {
      writeRow(view, offset);
      writeLsn(this.layout, view, offset, this.takeLsn());
    });
    if (this.lateNewest !== undefined) this.lateNewest = maxTimestamp(this.lateNewest, ts);
  }

  /** Makes every late event inserted into the queue durable. */
  persistLate(): void {
    this.late.persist();
  }

  /**
   * Merges every queued late event into the tree (docs/DURABILITY.md, "Bulk merge"), in atomic
   * steps; afterwards the queue is empty.
   */
  mergeLateEvents(): void {
    this.checkWritable();
    this.late.persist();
    if (this.late.size > 0) this.failOnIoError(() => this.runMerge());
    // A crash between a merge's last commit and the queue's emptying leaves only merged slots.
    else if (this.late.queue.length > 0) this.late.reset();
    this.mergePending = false;
  }

  /** Events appended but not yet persisted in the flank (lost if the power fails now). */
  get unflushed(): number {
    return this.openCount - this.durableRows;
  }

  /**
   * Appends one row, written by `writeRow` at the byte offset it is given.
   * REQUIRES: the row is valid and its timestamp `ts` is >= newestTimestamp.
   */
  append(ts: Timestamp, writeRow: (view: DataView, offset: number) => void): void {
    this.checkWritable();
    if (this.openCount >= this.leafFill) this.closeLeafOrFail();
    const offset = this.parts.flank.rowsOffset(this.state.openLeafId) + this.openCount * this.layout.rowBytes;
    writeRow(this.rows, offset);
    this.stampFlankRows(offset, 1);
    this.openCount++;
    this.newest = ts;
    this.lateNewest = undefined;
    if (this.openCount - this.durableRows >= this.options.flushEvery) this.flush();
  }

  /**
   * Appends `count` rows: `writeRows(view, offset, first, n)` writes rows [first, first+n) of the
   * batch at `offset`, leaf by leaf. REQUIRES: the batch is valid and in order after
   * newestTimestamp, its last timestamp being `last`.
   */
  appendBatch(count: number, last: Timestamp, writeRows: (view: DataView, offset: number, first: number, n: number) => void): void {
    this.checkWritable();
    for (let first = 0; first < count; ) {
      if (this.openCount >= this.leafFill) this.closeLeafOrFail();
      const n = Math.min(count - first, this.leafFill - this.openCount);
      const offset = this.parts.flank.rowsOffset(this.state.openLeafId) + this.openCount * this.layout.rowBytes;
      writeRows(this.rows, offset, first, n);
      this.stampFlankRows(offset, n);
      this.openCount += n;
      first += n;
    }
    this.newest = last;
    this.lateNewest = undefined;
    if (this.openCount - this.durableRows >= this.options.flushEvery) this.flush();
  }

  /** Makes every appended event durable in PMem. */
  flush(): void {
    if (this.openCount === this.durableRows) return;
    this.parts.flank.persistRows(this.state.openLeafId, this.durableRows, this.openCount);
    this.durableRows = this.openCount;
  }

  /** Flushes, waits until every closed leaf is durable, persists every translation slot: a restart then scans nothing. */
  checkpoint(): void {
    this.flush();
    // After an I/O failure (already reported) the leaf writer is not trusted: the flank and ring
    // in PMem hold everything, and the next open writes the leaves out.
    if (this.failure !== undefined) return;
    this.failOnIoError(() => this.collectDurable(this.state.openLeafId));
    this.parts.translation.persistThrough(this.durableLeaves, true);
    this.failOnIoError(() => this.parts.nodeFile?.sync());
  }

  /**
   * After a commit, once the tree's DRAM state matches it: closed index nodes go to the node file
   * (SSD node storage only). An I/O error leaves the stream read-only, the commit stands.
   */
  private publishNodes(): void {
    this.failOnIoError(() => this.nodeStorage.publish(this.state));
  }

  /** The running aggregate of the open node at `level` (1 = level 1) as the flank file keeps it, if the committed root record vouches for it. */
  keptOpenNodeAggregate(level: number): Aggregate | undefined {
    const open = this.state.levels[level - 1];
    return open === undefined ? undefined : this.parts.openNodeAggregates.read(level - 1, open);
  }

  /** The sources a query walks, oldest data first. */
  sources(): FlankSource[] {
    const sources: FlankSource[] = [];
    for (let level = this.state.levels.length; level >= 1; level--) {
      const open = this.state.levels[level - 1]!;
      if (open.count > 0) sources.push({ kind: 'index', nodeId: open.nodeId, level, count: open.count });
    }
    if (this.openCount > 0) sources.push({ kind: 'open-leaf', leafId: this.state.openLeafId, count: this.openCount });
    return sources;
  }

  /**
   * The rows of leaf `leafId` (closed or open): a view and the byte offset of its first row.
   * `inRing`: the rows are in a PMem ring page, valid only until that page is reused (the next
   * leaf hand-offs); rows read from the SSD are a buffer of their own.
   */
  leafRows(leafId: number): LeafRowsView {
    const { flank, leafAggregates, translation, leaves } = this.parts;
    if (leafId === this.state.openLeafId) {
      return { view: this.rows, offset: flank.rowsOffset(leafId), count: this.openCount, inRing: true };
    }
    if (leafId >= this.durableLeaves) this.recoverBeforeReading(leafId);
    if (leafId < this.durableLeaves) {
      const cached = leaves.cached(leafId);
      if (cached !== undefined) return { view: cached, offset: 0, count: cached.byteLength / this.layout.rowBytes, inRing: false };
    }
    const count = leafAggregates.count(leafId);
    if (leafId >= this.durableLeaves) return { view: this.rows, offset: flank.rowsOffset(leafId), count, inRing: true };
    const location = translation.get(leafId);
    // Slots below durableCount were persisted set: an empty one was damaged since.
    if (location === undefined) throw new CorruptionError(translation.extent.path, 0, `durable leaf ${leafId} has no translation slot: the translation array is damaged - open with { rebuild: true }`);
    return { view: leaves.read(leafId, location, count), offset: 0, count, inRing: false };
  }

  /**
   * A leaf closed before the crash and not known durable yet is read from its ring page if the
   * page holds it intact; if not, the tail is scanned: the leaf may be on SSD.
   */
  private recoverBeforeReading(leafId: number): void {
    const recovery = this.recovery;
    if (recovery === undefined || leafId >= recovery.closed) return;
    if (!recovery.ringHolds(leafId)) this.durableLeaves = Math.max(this.durableLeaves, recovery.scanTailThrough(leafId + 1));
    if (leafId >= this.durableLeaves) recovery.checkRingLeaf(leafId);
  }

  /**
   * After a failed write or fdatasync of the leaf file the tree takes no more appends: the leaf
   * writer cannot be trusted (a failed fdatasync is never retried), while everything
   * acknowledged is safe in PMem, where the next open finds it. Queries keep working.
   * Also finds the next lsn before a write moves any row (see nextLsn).
   */
  private checkWritable(): void {
    if (this.failure !== undefined) {
      throw new MisuseError('READ_ONLY', `the stream is read-only after an I/O failure of its leaf file (${this.failure.message}); everything acknowledged is kept - reopen the store once the cause (e.g. a full disk) is fixed`);
    }
    this.nextLsn();
  }

  private closeLeafOrFail(): void {
    this.failOnIoError(() => this.closeLeaf());
  }

  private failOnIoError(body: () => void): void {
    try {
      body();
    } catch (err) {
      if (err instanceof IoError) this.failure ??= err;
      throw err;
    }
  }

  /** The aggregate array holding the children of an index node at `level`. */
  childAggregates(level: number): AggregateArray {
    return this.nodeStorage.childAggregates(level);
  }

  get indexNodeStats(): { storage: NodeStorageKind; readsFromSsd: number; onSsd: number } {
    const file = this.parts.nodeFile;
    return { storage: this.nodeStorage.kind, readsFromSsd: file?.reads ?? 0, onSsd: file?.nodes ?? 0 };
  }

  /** Why closed node `nodeId`'s node-file copy differs from its PMem bytes, if it does (verify()). */
  nodeCopyProblem(nodeId: number): string | undefined {
    return this.nodeStorage.copyProblem(nodeId);
  }

  /** Index node `nodeId` at `level` as queries read it: an open one with `openCount` entries, else a closed one, wherever the stream keeps those. */
  nodeView(nodeId: number, level: number, openCount?: number): NodeView {
    return this.nodeStorage.view(nodeId, level, openCount);
  }

  /** Closes the open leaf now (tests and merges; appends do it when the leaf is full). */
  closeLeaf(): void {
    if (this.openCount === 0) return;
    this.flush();
    const aggregate = new Aggregate(this.layout.numeric.length);
    aggregate.addRows(this.layout, this.rows, this.parts.flank.rowsOffset(this.state.openLeafId), 0, this.openCount);
    this.commitLeaf(aggregate);
    this.closedNewest = maxTimestamp(this.closedNewest, aggregate.maxTs);
    this.handOff();
  }

  /** Where in the open leaf's unflushed rows an event at `ts` belongs, if it may go there. */
  private tailPosition(ts: Timestamp): number | undefined {
    if (this.openCount >= this.parts.flank.pageCapacity || this.openCount === this.durableRows) return undefined;
    const rowsAt = this.parts.flank.rowsOffset(this.state.openLeafId);
    const floor = this.durableRows > 0 ? this.layout.readTimestamp(this.rows, rowsAt + (this.durableRows - 1) * this.layout.rowBytes) : this.closedNewest;
    if (floor !== undefined && ts < floor) return undefined;
    const tail = { view: this.rows, offset: rowsAt + this.durableRows * this.layout.rowBytes, count: this.openCount - this.durableRows };
    return this.durableRows + countRowsBelow(this.layout, tail, ts, true);
  }

  /** Inserts a row at `position` of the open leaf, moving the unflushed rows after it. */
  private insertIntoTail(position: number, writeRow: (view: DataView, offset: number) => void): void {
    const rowBytes = this.layout.rowBytes;
    const at = this.parts.flank.rowsOffset(this.state.openLeafId) + position * rowBytes;
    const page = new Uint8Array(this.rows.buffer);
    page.copyWithin(at + rowBytes, at, at + (this.openCount - position) * rowBytes);
    writeRow(this.rows, at);
    this.stampFlankRows(at, 1);
    this.openCount++;
    if (this.openCount - this.durableRows >= this.options.flushEvery) this.flush();
  }

  /** Gives `n` rows just written to the open leaf at `offset` the next lsns (before openCount counts them). */
  private stampFlankRows(offset: number, n: number): void {
    let lsn = this.nextLsn();
    if (this.openCount === this.durableRows) this.firstUnflushedLsn = lsn;
    const rowBytes = this.layout.rowBytes;
    for (let r = 0; r < n; r++) writeLsn(this.layout, this.rows, offset + r * rowBytes, lsn++);
    this.lsnCounter = lsn;
  }

  /**
   * Events only ever get added with an lsn taken here, and newestLsn() is the largest lsn of the
   * events kept - which merges, leaf closes and the leaf-file recovery move but never change - so
   * finding it after open gives what open would have found, as long as no write is half done:
   * checkWritable() finds it before a write touches a row (an insert into the open leaf's tail
   * moves rows that newestLsn() reads).
   */
  private nextLsn(): number {
    this.lsnCounter ??= this.newestLsn() + 1;
    return this.lsnCounter;
  }

  private takeLsn(): number {
    const lsn = this.nextLsn();
    this.lsnCounter = lsn + 1;
    return lsn;
  }

  /** The lsn of the newest event appended (0 before the first). */
  get newestLsnHandedOut(): number {
    return this.nextLsn() - 1;
  }

  /**
   * Every event with an lsn up to this one is durable: only the open leaf's unflushed rows are
   * not (queued late events are persisted before their append returns).
   */
  get durableLsn(): number {
    return this.openCount > this.durableRows ? this.firstUnflushedLsn - 1 : this.nextLsn() - 1;
  }

  /**
   * The largest lsn of any event kept, 0 if none: the closed leaves' (kept in the root record),
   * the open leaf's rows, the queue's last slot (slots are in arrival order; read with read(2), so
   * the first append after open does not fault the queue in). Lsns of events a crash took are
   * handed out again; no reader saw them, since only durable events are delivered.
   */
  private newestLsn(): number {
    let newest = this.closedNewestLsn();
    const at = this.parts.flank.rowsOffset(this.state.openLeafId);
    for (let r = 0; r < this.openCount; r++) newest = Math.max(newest, readLsn(this.layout, this.rows, at + r * this.layout.rowBytes));
    const { queue } = this.late;
    if (queue.length === 0) return newest;
    const row = new Uint8Array(this.layout.rowBytes);
    queue.readRow(queue.length - 1, row);
    return Math.max(newest, readLsn(this.layout, new DataView(row.buffer), 0));
  }

  /**
   * The largest lsn in closed leaves: from the root record, or - for a record written before it
   * kept one - from the aggregates of the open index nodes' children.
   */
  private closedNewestLsn(): number {
    return this.state.closedNewestLsn ?? this.closedNewestLsnOfNodes();
  }

  /** What the root record keeps as the largest lsn in closed leaves (undefined: a record of an older format). */
  get keptClosedNewestLsn(): number | undefined {
    return this.state.closedNewestLsn;
  }

  /** The largest lsn in closed leaves, from the aggregates of the open index nodes' children (they keep max lsn). */
  closedNewestLsnOfNodes(): number {
    const lsn = this.layout.attributes;
    let newest = 0;
    for (const source of this.sources()) {
      if (source.kind !== 'index') continue;
      const children = this.childAggregates(source.level);
      for (let i = 0; i < source.count; i++) newest = Math.max(newest, children.attributeBounds(this.parts.nodes.child(source.nodeId, i), lsn)[1]);
    }
    return newest;
  }

  /** Merge steps until the queue is empty, then the queue is emptied; timed for stats(). */
  private runMerge(): void {
    const started = performance.now();
    this.closeLeaf();
    if (this.state.marksMerges) this.commitMerging(true);
    const { queue } = this.late;
    const events = { slots: this.late.index.all(), view: queue.view, rowOffset: (slot: number) => queue.rowOffset(slot), timestamp: (slot: number) => queue.timestamp(slot) };
    const budget = Math.max(3, Math.floor(this.parts.flank.geometry.ringPages / 2));
    for (let done = 0; done < events.slots.length; ) {
      const step = new MergeStep(this, this.state, events, done, budget).run();
      invariant(step.end > done, () => `merge step made no progress at event ${done}`);
      const next = events.slots[step.end];
      step.state.mergeCursor = next === undefined ? completeCursor(queue.generation) : { generation: queue.generation, ts: BigInt(queue.timestamp(next)), slot: next };
      step.state.merging = next !== undefined && step.state.marksMerges;
      this.parts.flank.commit(step.state);
      this.state = step.state;
      this.late.dropMerged(step.end - done);
      this.mergeStats.steps++;
      this.mergeStats.rewrittenLeaves += step.rewrittenLeaves;
      this.mergeStats.mergedEvents += step.end - done;
      this.publishNodes();
      done = step.end;
      this.handOff();
    }
    this.late.reset();
    this.refreshNewest();
    this.mergeStats.merges++;
    this.mergeStats.milliseconds += performance.now() - started;
  }

  /** Commits the tree as it is, marked as under a merge or not (FlankState.merging). */
  private commitMerging(merging: boolean): void {
    this.state = { ...this.state, seq: this.state.seq + 1, merging };
    this.parts.flank.commit(this.state);
  }

  /**
   * After open, in bounded time: a merge a crash interrupted is finished before the next late
   * event is queued (its events are indexed as not merged meanwhile); a queue whose events are
   * all merged is emptied.
   */
  private settleLateQueue(): void {
    this.checkQueueEmptying();
    if (this.late.mergeInterrupted(this.state.mergeCursor)) this.mergePending = true;
    else if (this.late.queue.length > 0 && this.late.size === 0) this.late.reset();
  }

  /**
   * A queue that reads as emptied since its last insert was emptied after a merge took all its
   * events - and that merge's cursor, of the previous generation, is committed. Else its generation
   * word was damaged (one bit turns g into g + 1, and the queue would read as empty).
   */
  private checkQueueEmptying(): void {
    const { queue } = this.parts;
    const acknowledged = queue.acknowledgedBeforeEmptying;
    if (acknowledged === 0 || this.state.mergeCursor.generation === queue.generation - 1) return;
    throw new CorruptionError(queue.path, GENERATION_OFFSET, `the out-of-order queue reads as emptied (generation ${queue.generation}), but the ${acknowledged} late events acknowledged before were never merged (the tree's merge cursor names generation ${this.state.mergeCursor.generation}): its generation word is damaged`);
  }

  private get closedNewest(): Timestamp | undefined {
    this.closedNewestFound ??= { ts: this.newestClosed() };
    return this.closedNewestFound.ts;
  }

  private set closedNewest(ts: Timestamp | undefined) {
    this.closedNewestFound = { ts };
  }

  /** newest, closedNewest and lateNewest from the committed tree, the open leaf and the queue. */
  private refreshNewest(): void {
    this.closedNewestFound = undefined;
    const open = this.openCount > 0 ? this.layout.readTimestamp(this.rows, this.parts.flank.rowsOffset(this.state.openLeafId) + (this.openCount - 1) * this.layout.rowBytes) : undefined;
    const treeNewest = open ?? this.closedNewest;
    const lateNewest = this.late.queue.newestTimestamp;
    this.lateNewest = lateNewest !== undefined && (treeNewest === undefined || lateNewest >= treeNewest) ? lateNewest : undefined;
    this.newest = maxTimestamp(treeNewest, lateNewest);
  }

  /** The newest timestamp in closed leaves: the last child of the lowest non-empty open node. */
  private newestClosed(): Timestamp | undefined {
    const { nodes } = this.parts;
    for (let level = 1; level <= this.state.levels.length; level++) {
      const open = this.state.levels[level - 1]!;
      if (open.count > 0) return this.childAggregates(level).maxTs(nodes.child(open.nodeId, open.count - 1));
    }
    return undefined;
  }

  /**
   * Rebuilds the tree from the leaf file (the PMem structures are new and empty): every intact
   * record, in leaf-id order from the first, gets its aggregates and translation slot; the live
   * ones (rebuild.ts) become the tree's leaves in timestamp order, published by one commit; the
   * file is cut after the last intact record. Events that were only in PMem (the open leaf, ring
   * leaves never written, the out-of-order queue) are gone with it. Runs before the writer starts.
   */
  private adoptLeafFile(): AdoptedLeafFile {
    const { leaves, translation, leafAggregates, flank } = this.parts;
    const records: RecoveredLeaf[] = [];
    let end = leaves.firstRecordOffset;
    for (const record of leaves.scanFrom(end)) {
      if (record.leafId !== records.length || !Number.isSafeInteger(record.rows) || record.rows <= 0) break;
      records.push(record);
      end = record.location.offset + record.location.length;
    }
    const cut = this.describeCut(end);
    leaves.truncate(end);
    let closedNewestLsn = 0;
    for (const { leafId, location, rows } of records) {
      const aggregate = new Aggregate(this.layout.numeric.length);
      aggregate.addRows(this.layout, leaves.read(leafId, location, rows), 0, 0, rows);
      leafAggregates.write(leafId, aggregate);
      translation.set(leafId, location);
      closedNewestLsn = Math.max(closedNewestLsn, newestLsnOf(this.layout, aggregate));
    }
    const live = liveLeafOrder(records);
    const next: FlankState = { ...this.state, seq: this.state.seq + 1, openLeafId: records.length, supersededLeaves: records.length - live.length, closedNewestLsn, levels: [], rebuilding: false };
    for (const leafId of live) {
      const aggregate = leafAggregates.read(leafId, new Aggregate(this.layout.numeric.length));
      this.addEntry(next, 0, leafId, aggregate);
      next.closedEvents += aggregate.count;
    }
    flank.openPage(next.openLeafId);
    flank.commit(next);
    this.state = next;
    this.durableLeaves = records.length;
    translation.persistThrough(this.durableLeaves, true);
    this.publishNodes();
    return { records: records.length, ...cut };
  }

  /** What cutting the leaf file at `end` drops: the record there, and the intact ones after it (found from the file's end back). */
  private describeCut(end: number): Omit<AdoptedLeafFile, 'records'> {
    const { leaves } = this.parts;
    const cutBytes = leaves.size - end;
    if (cutBytes <= 0) return { damagedRecords: 0, skippedRecords: 0, skippedEvents: 0, cutBytes: 0 };
    let skippedRecords = 0;
    let skippedEvents = 0;
    for (const record of leaves.scanBackTo(end)) {
      if (record.location.offset === end) break; // the record the forward scan refused: intact, but unexpected
      skippedRecords++;
      skippedEvents += Number.isSafeInteger(record.rows) ? record.rows : 0;
    }
    return { damagedRecords: 1, skippedRecords, skippedEvents, cutBytes };
  }

  /** Steps 2-5 of a hand-off: the open leaf, whose events `aggregate` sums up, becomes closed. */
  private commitLeaf(aggregate: Aggregate): void {
    const { flank, leafAggregates } = this.parts;
    const leafId = this.state.openLeafId;
    // First, before any PMem write: waiting for the ring page can fail (a writer I/O error, a
    // damaged page the deferred recovery finds), and a failed close then leaves nothing behind.
    this.makeRoomInRing(leafId + 1);
    leafAggregates.write(leafId, aggregate);
    const next: FlankState = {
      ...this.state,
      seq: this.state.seq + 1,
      openLeafId: leafId + 1,
      closedEvents: this.state.closedEvents + aggregate.count,
      closedNewestLsn: Math.max(this.closedNewestLsn(), newestLsnOf(this.layout, aggregate)),
      levels: this.state.levels.map((level) => ({ ...level })),
    };
    this.addEntry(next, 0, leafId, aggregate);
    flank.openPage(leafId + 1);
    flank.commit(next);
    this.state = next;
    this.openCount = this.durableRows = 0;
    this.publishNodes();
  }

  /** Closes: everything durable, translation complete, writer stopped. */
  close(): void {
    try {
      this.checkpoint();
    } finally {
      if (this.recoverySlice !== undefined) clearImmediate(this.recoverySlice);
      this.writer?.close();
      this.late.close();
    }
  }

  /**
   * Adds child `child`, whose events `childAggregate` sums up, to the open node at `level` (0 =
   * level 1), and keeps the node's running aggregate; a node that fills closes with it.
   */
  private addEntry(next: FlankState, level: number, child: number, childAggregate: Aggregate): void {
    const { nodes, openNodeAggregates } = this.parts;
    if (next.levels.length === level) next.levels.push({ nodeId: this.newIndexNode(next, level + 1), count: 0 });
    const open = next.levels[level]!;
    nodes.writeEntry(open.nodeId, open.count, childAggregate.minTs, child, level > 0);
    const total = new Aggregate(this.layout.numeric.length);
    total.add(this.openNodeAggregate(open, level));
    total.add(childAggregate);
    open.count++;
    if (open.count < this.nodeFill) {
      open.aggregateCrc = openNodeAggregates.keep(level, open.nodeId, open.count, total, this.state.levels[level]);
      this.openNodeTotals[level] = { nodeId: open.nodeId, count: open.count, crc: open.aggregateCrc, aggregate: total };
      return;
    }
    this.closeIndexNode(open.nodeId, open.count, total);
    next.levels[level] = { nodeId: this.newIndexNode(next, level + 1), count: 0 };
    this.addEntry(next, level + 1, open.nodeId, total);
  }

  /**
   * The aggregates of open node `open`'s children: as this process last kept them, else as the
   * committed root record vouches for their copy in PMem (merge steps keep one for the open nodes
   * they build too), else summed (a crash took the copy, or the file predates the area). The
   * copy's CRC ties each to the state being extended.
   */
  private openNodeAggregate(open: OpenIndexNode, level: number): Aggregate {
    if (open.count === 0) return new Aggregate(this.layout.numeric.length);
    const kept = this.openNodeTotals[level];
    if (kept !== undefined && kept.nodeId === open.nodeId && kept.count === open.count && kept.crc === open.aggregateCrc) return kept.aggregate;
    return this.parts.openNodeAggregates.read(level, open) ?? this.sumChildren(open.nodeId, open.count, level + 1);
  }

  /** The aggregates of the first `count` children of index node `nodeId` at `level`, from their slots. */
  sumChildren(nodeId: number, count: number, level: number): Aggregate {
    const { nodes } = this.parts;
    return this.childAggregates(level).sum(Array.from({ length: count }, (_, i) => nodes.child(nodeId, i)));
  }

  private newIndexNode(next: FlankState, level: number): number {
    const id = next.nextIndexNodeId++;
    this.parts.nodes.initialize(id, level);
    return id;
  }

  /** Seals an index node: final count, then its aggregates (`total`, its children's). */
  private closeIndexNode(nodeId: number, count: number, total: Aggregate): void {
    const { nodes, nodeAggregates } = this.parts;
    nodes.close(nodeId, count);
    nodeAggregates.write(nodeId, total);
  }

  /** The ring page of `leafId` holds leaf leafId - ringPages, which must be durable before reuse. */
  makeRoomInRing(leafId: number): void {
    const reused = leafId - this.parts.flank.geometry.ringPages;
    if (reused >= this.durableLeaves && this.recovery !== undefined && this.writeOutsForRoom < WRITE_OUTS_BEFORE_FINISHING) this.writeOutForRoom(this.recovery, reused + 1);
    if (reused >= this.durableLeaves) this.collectDurable(reused + 1);
    invariant(reused < this.durableLeaves, () => `ring page of leaf ${leafId} still busy`);
    this.keepRingSlack(leafId);
  }

  /**
   * Keeps one ring page of slack in the persisted translation while the writer runs: the leaf
   * that the page after `leafId`'s holds must be durable, and its slot persisted, too. A crash
   * under backpressure (the ring full, the appender waiting for a page) then leaves the page the
   * open leaf's successor takes free by the translation alone, and the first append after open
   * closes the full open leaf without scanning the leaf file's tail, syncing it or writing leaves
   * out (~2.5 ms). Slots are persisted one by one only here, while the writer is behind by the
   * whole ring and every close waits for it anyway.
   */
  private keepRingSlack(leafId: number): void {
    const held = leafId + 1 - this.parts.flank.geometry.ringPages;
    if (this.recovery !== undefined || held < 0 || held >= this.state.openLeafId || this.parts.translation.durableCount > held) return;
    if (held >= this.durableLeaves) this.collectDurable(held + 1);
    this.parts.translation.persistThrough(this.durableLeaves, true);
  }

  /**
   * Makes leaves below `until` durable while open's leaf-file recovery runs: a crash under
   * backpressure leaves the ring full, and finishing the recovery to start the writer would make
   * the first leaf close check every ring page and wait for a thread - milliseconds. The tail
   * scan and the leaves needed suffice: checked, then written and synced here, in order after the
   * last intact record, before any PMem byte of the close changes.
   */
  private writeOutForRoom(recovery: LeafFileRecovery, until: number): void {
    this.durableLeaves = Math.max(this.durableLeaves, recovery.scanTailThrough(until));
    if (this.durableLeaves >= until) return;
    this.writeOutsForRoom++;
    const writer = new SyncLeafWriter(this.parts.leaves, this.ringPage, until - this.durableLeaves);
    for (let leafId = this.durableLeaves; leafId < until; leafId++) {
      if (leafId < recovery.closed) recovery.checkRingLeaf(leafId);
      writer.submit(leafId, this.parts.leafAggregates.count(leafId));
    }
    this.adoptDurable(writer.takeDurable(until));
    recovery.wroteThrough(this.durableLeaves);
  }

  /**
   * Hands every closed leaf not yet with the writer to it, then collects what became durable.
   * While open's leaf-file recovery runs, leaves wait in the ring: its last slice hands them off.
   */
  private handOff(): void {
    if (this.recovery !== undefined) return;
    const writer = this.startedWriter();
    for (; this.handedOff < this.state.openLeafId; this.handedOff++) writer.submit(this.handedOff, this.parts.leafAggregates.count(this.handedOff));
    this.collectDurable(undefined);
  }

  /** Sets the translation slots of leaves the writer made durable (waiting for those below `until`). */
  private collectDurable(until: number | undefined): void {
    if (until !== undefined) {
      this.finishRecovery();
      this.handOff();
    }
    if (this.writer === undefined) return;
    this.adoptDurable(this.writer.takeDurable(until));
  }

  /** Sets the translation slots of `durable`, the next leaves in order that became durable. */
  private adoptDurable(durable: readonly DurableLeaf[]): void {
    for (const { leafId, location } of durable) {
      invariant(leafId === this.durableLeaves, () => `leaf ${leafId} became durable out of order (expected ${this.durableLeaves})`);
      this.parts.translation.set(leafId, location);
      this.durableLeaves++;
    }
    if (durable.length > 0) this.parts.translation.persistThrough(this.durableLeaves, false);
  }

  /**
   * The flank keeps two root record copies and takes the newest that verifies: a torn commit
   * leaves the previous one. But if the leaf the newest commit would have opened already holds
   * rows (appends follow the commit that opens a leaf), that commit did complete: its copy was
   * damaged since, and the previous one would silently drop those rows.
   */
  private checkRootIsNewest(): void {
    const { flank } = this.parts;
    const next = this.state.openLeafId + 1;
    if (flank.pageLeafId(next) === next && flank.pageLineage(next) === undefined && flank.pageCount(next) > 0) {
      throw new CorruptionError(flank.region.path, 0, `the newest root record is damaged: leaf ${next} holds rows though the record that verifies has leaf ${next - 1} open - restore the PMem directory, or open with { rebuild: true }`);
    }
  }

  /** Every slot the committed tree names must exist in its PMem arrays (a truncated file is damage). */
  private checkArraysCover(): void {
    const { nodes, nodeAggregates, leafAggregates, translation } = this.parts;
    const openNodes = new Set(this.state.levels.map((level) => level.nodeId));
    let closedNodes = this.state.nextIndexNodeId;
    while (closedNodes > 0 && openNodes.has(closedNodes - 1)) closedNodes--;
    const needs: [string, { readonly capacity: number; readonly path: string }, number][] = [
      ['index-node array', nodes.extent, this.state.nextIndexNodeId],
      ['index-node aggregates', nodeAggregates.extent, closedNodes],
      ['leaf aggregates', leafAggregates.extent, this.state.openLeafId],
      ['translation array', translation.extent, translation.durableCount],
    ];
    for (const [what, file, needed] of needs) {
      if (file.capacity < needed) throw new CorruptionError(file.path, 0, `the ${what} holds ${file.capacity} slots, the tree names ${needed}: the file was truncated`);
    }
  }

  /** Checks the open leaf's page and returns how many of its rows survived. */
  private checkOpenPage(): number {
    const { flank } = this.parts;
    const leafId = this.state.openLeafId;
    // A page with a lineage was written by a merge step whose commit never happened: the open
    // leaf it was meant to replace is empty (a merge starts by closing it). The lineage has no
    // checksum: a flank that marks its merges takes it for a step's only while the committed
    // record says a merge was under way; an older flank refuses one that no step could have
    // written. Either way damage is refused - emptying the page would drop its rows silently.
    const lineage = flank.pageLineage(leafId);
    if (lineage !== undefined && flank.pageLeafId(leafId) === leafId) {
      const problem = lineageProblem(lineage, leafId, this.state, this.parts.queue.length);
      if (problem !== undefined) throw new CorruptionError(flank.region.path, 0, `the open leaf ${leafId}'s ring page has a damaged lineage: ${problem}`);
      flank.openPage(leafId);
    }
    if (flank.pageLeafId(leafId) !== leafId) {
      throw new CorruptionError(flank.region.path, 0, `the open leaf ${leafId}'s ring page holds leaf ${flank.pageLeafId(leafId)}`);
    }
    const count = flank.verifiedCount(leafId);
    // Appends may follow now, so the mark goes: a redo of the merge closes this leaf before it
    // marks itself again.
    if (this.state.merging) this.commitMerging(false);
    return count;
  }

  /**
   * Recovers what a crash left between the leaf file and the ring (leaf-file-recovery.ts): now,
   * or - `deferred` - when a request needs it, or in slices once recoverInBackground() is called.
   */
  private recoverLeafFile(deferred: boolean): void {
    const { flank, translation, leaves, leafAggregates } = this.parts;
    this.recovery = new LeafFileRecovery({ flank, translation, leaves, leafAggregates }, translation.durableCount, this.state.openLeafId);
    this.durableLeaves = this.recovery.trusted;
    if (!deferred) this.finishRecovery();
  }

  /**
   * Runs the deferred leaf-file recovery in slices on the event loop. The store calls it once the
   * stream is open: a slice must never run over files an open that failed later has closed.
   */
  recoverInBackground(): void {
    if (this.recovery !== undefined && this.recoverySlice === undefined) this.scheduleRecoverySlice();
  }

  private scheduleRecoverySlice(): void {
    this.recoverySlice = setImmediate(() => this.runRecoverySlice());
    this.recoverySlice.unref();
  }

  /**
   * One slice of the deferred recovery; the last one starts the writer and hands it the leaves
   * closed meanwhile. A failure is kept - the recovery rethrows it to every request that needs
   * the leaf file or the writer (an IoError also makes the stream read-only) - never thrown here.
   */
  private runRecoverySlice(): void {
    this.recoverySlice = undefined;
    if (this.recovery === undefined) return;
    try {
      if (!this.recovery.step()) return this.scheduleRecoverySlice();
      this.finishRecovery();
      this.handOff();
    } catch (err) {
      if (err instanceof IoError) this.failure ??= err;
      else if (!(err instanceof CorruptionError)) throw err;
    }
  }

  /** Completes open's leaf-file recovery now, if it is not done (rethrowing what it failed with). */
  private finishRecovery(): void {
    if (this.recovery === undefined) return;
    this.durableLeaves = this.recovery.finish();
    this.recovery = undefined;
  }

  /** The leaf writer, started at the first leaf not on SSD. REQUIRES: the leaf file is recovered. */
  private startedWriter(): LeafWriter {
    invariant(this.recovery === undefined, 'the leaf writer starts after the leaf file is recovered');
    if (this.writer !== undefined) return this.writer;
    this.handedOff = this.durableLeaves;
    this.writer = this.startWriter(this.durableLeaves, this.ringPage);
    return this.writer;
  }

  /** A closed leaf's rows and lineage as they sit in its ring page, for a writer. */
  private readonly ringPage: RingPage = (leafId, count) => ({
    rows: new Uint8Array(this.parts.flank.buffer, this.parts.flank.rowsOffset(leafId), count * this.layout.rowBytes),
    lineage: this.parts.flank.pageLineage(leafId),
  });
}

/**
 * Why a merge step could not have written `lineage` into the page of leaf `leafId`, the open leaf
 * of `committed`, if it could not: a flank that marks its merges says whether one was under way;
 * an older one leaves only the lineage's values to judge.
 */
function lineageProblem(lineage: Lineage, leafId: number, committed: FlankState, queuedEvents: number): string | undefined {
  if (committed.marksMerges) return committed.merging ? undefined : 'no merge was under way';
  if (queuedEvents === 0) return 'no late event is queued, so no merge was running';
  if (lineage.replaces >= leafId) return `it replaces leaf ${lineage.replaces}, not an older one`;
  if (lineage.parts === 0 || lineage.part >= lineage.parts) return `part ${lineage.part} of ${lineage.parts}`;
  return undefined;
}
