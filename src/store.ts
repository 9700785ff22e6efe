// A store: a directory on SSD (MANIFEST, LOCK, one leaf file per stream) and a directory of PMem
// files (per stream: flank, index nodes, leaf and node aggregates, translation, out-of-order queue). Opening takes
// the store's exclusive lock, reads the MANIFEST and opens every stream, recovering whatever a
// crash left half-done (bounded work, see docs/DURABILITY.md).

import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { LeafCache } from './cache/leaf-cache.js';
import { ConsumerSlots } from './consumer/consumer-slots.js';
import { CorruptionError, MisuseError, invariant } from './errors.js';
import { EventCodec } from './event-codec.js';
import { MANIFEST_NAME, type Manifest, type StreamEntry, decodeManifest, encodeManifest } from './manifest.js';
import { DiskMedia, type Media, lockStoreDirectory, readFileIfExists } from './media.js';
import type { DurabilityClass, PmemRegion } from './pmem/region.js';
import { type AttributeType, type Schema, deserializeSchema, parseSchema, serializeSchema } from './schema.js';
import { type BaseSlots, type IndexBuilder, InlineIndexBuilder, WorkerIndexBuilder, sortBase } from './ooo/index-builder.js';
import { OooQueue } from './ooo/queue.js';
import { LeafFile } from './ssd/leaf-file.js';
import { NodeFile } from './ssd/node-file.js';
import { type LeafWriter, type RingPage, SyncLeafWriter } from './ssd/leaf-writer.js';
import { WorkerLeafWriter } from './ssd/worker-leaf-writer.js';
import { Snapshot } from './snapshot.js';
import { Stream, type Violation } from './stream.js';
import { AggregateArray } from './tree/aggregate-array.js';
import { Flank, type FlankGeometry } from './tree/flank.js';
import { OpenNodeAggregates } from './tree/open-node-aggregates.js';
import { IndexNodeArray } from './tree/index-node-array.js';
import { type RowLayout, rowLayout } from './tree/row-layout.js';
import { TranslationArray } from './tree/translation-array.js';
import { Tree } from './tree/tree.js';
import type { NodeStorageKind } from './tree/node-storage.js';
import { type OpenOptions, type ResolvedOptions, type StreamOptions, nodeStorageOption, resolveOptions, resolveStreamOptions } from './options.js';

export type { OpenOptions, StreamOptions };

interface OpenStream {
  readonly stream: Stream;
  readonly tree: Tree;
  readonly regions: readonly PmemRegion[];
  readonly leaves: LeafFile;
  readonly nodeFile: NodeFile | undefined;
}

/** A stream rebuilt from its leaf file. Events that were only in PMem (the open leaf, leaves not yet written) are not counted: they are gone. */
export interface RebuildReport {
  readonly stream: string;
  /** Leaf records adopted from the leaf file (superseded ones included). */
  readonly leaves: number;
  /** Events that came back from the leaf file. */
  readonly events: number;
  /**
   * Events the old PMem files held that could not come back (the open leaf, ring leaves never
   * written, the out-of-order queue, leaf records skipped below), or undefined when those files
   * cannot count them - `lostEventsUnknownReason` says why.
   */
  readonly lostEvents: number | undefined;
  readonly lostEventsUnknownReason: string | undefined;
  /** Leaf records that were torn or damaged where the scan of the leaf file stopped (0 or 1). */
  readonly damagedRecords: number;
  /**
   * Intact leaf records after the damaged one, dropped with it (the tree needs every leaf id from
   * 0 on), and the events they held: lost too, and counted in `lostEvents` when that is known.
   */
  readonly skippedRecords: number;
  readonly skippedEvents: number;
  /** Bytes cut from the end of the leaf file (the damaged record and everything after it). */
  readonly cutBytes: number;
  /** The suffix the damaged PMem files were renamed with (`.damaged-<n>`), kept for forensics; undefined if none were there. */
  readonly setAside: string | undefined;
}

/** What a rebuild finds of the PMem files it replaces. */
interface OldPmemFiles {
  readonly eventsCounted: number | undefined;
  readonly uncountedReason: string | undefined;
  /** The files are those of an interrupted rebuild (flank marked 'rebuilding'): removed, not set aside. */
  readonly ownInterruptedRebuild: boolean;
  readonly setAsideAs: string | undefined;
}

/** Below this many queued events the index is sorted inline on first use: a thread costs more. */
const WORKER_INDEX_MIN_SLOTS = 65_536;
/** On simulated media the first queries after open scan the queue, so tests cover that path. */
const SIMULATED_SCANNING_QUERIES = 8;

const DAMAGED_SUFFIX = (n: number) => `.damaged-${n}`;

/** Index nodes read from SSD get a cache of this share of cacheBytes, beside the decoded leaves' cache. */
const NODE_CACHE_SHARE = 4;
const REGION_SUFFIXES = ['flank', 'nodes', 'leaf-aggregates', 'node-aggregates', 'translation', 'ooo', 'consumers'] as const;

/** Opens (creating if needed) the store in `dir`. */
export function open(dir: string, options: OpenOptions = {}): Store {
  const absolute = resolve(dir);
  const resolved = resolveOptions(options);
  // The lock comes first, so that the MANIFEST read next is the one the store opens with.
  const lock = lockStoreDirectory(absolute);
  const manifestPath = join(absolute, MANIFEST_NAME);
  const existing = manifestUnder(lock, () => readFileIfExists(manifestPath), manifestPath);
  const storeId = existing?.storeId ?? new Uint8Array(randomBytes(16));
  const pmemRoot = resolve(options.pmemDir ?? existing?.pmemDir ?? join(absolute, 'pmem'));
  const media = new DiskMedia(absolute, join(pmemRoot, `chronotier-${Buffer.from(storeId).toString('hex')}`));
  return Store.openLocked(media, resolved, lock, existing ?? { storeId, pmemDir: pmemRoot, streams: [] }, existing === undefined);
}

/** The MANIFEST read under `lock` (undefined: a new store); the lock is released if it cannot be read. */
function manifestUnder(lock: { release(): void }, read: () => Uint8Array | undefined, name: string): Manifest | undefined {
  try {
    const bytes = read();
    return bytes === undefined ? undefined : decodeManifest(bytes, name);
  } catch (err) {
    lock.release();
    throw err;
  }
}

export class Store {
  private readonly streamsByName = new Map<string, OpenStream>();
  private readonly rebuilt: RebuildReport[] = [];
  private closed = false;
  private durabilityClass: DurabilityClass | undefined;

  private constructor(
    private readonly media: Media,
    private manifest: Manifest,
    private readonly options: ResolvedOptions,
    private readonly lock: { release(): void },
  ) {}

  /** What a persisted PMem byte survives (probed once, when first asked: open() does not pay for it). */
  get durability(): DurabilityClass {
    this.durabilityClass ??= this.media.durability();
    return this.durabilityClass;
  }

  /** Opens the store kept on `media` (disk, or simulated in tests). `fresh` describes a store to create. */
  static openOn(media: Media, options: OpenOptions, fresh: { storeId: Uint8Array; pmemDir: string }): Store {
    const resolved = resolveOptions(options);
    const lock = media.lock();
    const manifest = manifestUnder(lock, () => media.readSmall(MANIFEST_NAME), MANIFEST_NAME);
    return Store.openLocked(media, resolved, lock, manifest ?? { ...fresh, streams: [] }, manifest === undefined);
  }

  /**
   * Opens the store under `lock`, its MANIFEST read under it (or to be written, when `create`);
   * releases the lock if the open fails.
   */
  static openLocked(media: Media, options: ResolvedOptions, lock: { release(): void }, manifest: Manifest, create: boolean): Store {
    let store: Store | undefined;
    try {
      if (create) media.writeSmallAtomically(MANIFEST_NAME, encodeManifest(manifest));
      store = new Store(media, manifest, options, lock);
      for (const entry of manifest.streams) store.openStream(entry);
      return store;
    } catch (err) {
      // The streams opened before the failing one hold files, writer threads and recovery slices.
      if (store === undefined) lock.release();
      else store.closeAfterFailedOpen();
      throw err;
    }
  }

  /** Creates a stream with a fixed schema (an implicit int64 `ts` plus these attributes). */
  createStream(name: string, definition: Readonly<Record<string, AttributeType>>, options: StreamOptions = {}): Stream {
    this.checkOpen();
    if (typeof name !== 'string' || name.length === 0 || name.length > 256) {
      throw new MisuseError('INVALID_ARGUMENT', `a stream name must be a non-empty string of at most 256 characters`);
    }
    if (this.streamsByName.has(name)) throw new MisuseError('ALREADY_EXISTS', `stream '${name}' already exists`);
    const schema = parseSchema(definition, { timestamp: options.timestamp ?? 'number' });
    const geometry = resolveStreamOptions(options, this.options);
    const entry: StreamEntry = {
      id: this.manifest.streams.reduce((max, s) => Math.max(max, s.id + 1), 0),
      name,
      schema: Buffer.from(serializeSchema(schema)).toString('base64'),
      ...geometry,
    };
    this.createStreamFiles(entry);
    const manifest = { ...this.manifest, streams: [...this.manifest.streams, entry] };
    this.media.writeSmallAtomically(MANIFEST_NAME, encodeManifest(manifest));
    this.manifest = manifest;
    return this.openStream(entry);
  }

  /** The stream called `name`; throws MisuseError('NOT_FOUND') if there is none. */
  stream(name: string): Stream {
    this.checkOpen();
    const open = this.streamsByName.get(name);
    if (open === undefined) throw new MisuseError('NOT_FOUND', `no stream '${name}' (streams: ${[...this.streamsByName.keys()].join(', ') || 'none'})`);
    return open.stream;
  }

  streams(): string[] {
    this.checkOpen();
    return [...this.streamsByName.keys()];
  }

  /**
   * Every stream as it is now: queries on the snapshot (and iterators opened from it) see exactly
   * the events appended before this call, while appends and merges go on. Close it when done.
   */
  snapshot(): Snapshot {
    this.checkOpen();
    return new Snapshot([...this.streamsByName.values()].map((open) => open.stream), () => this.checkOpen());
  }

  /** The streams this open rebuilt from SSD (open with { rebuild: true }), and what came back. */
  rebuildReport(): RebuildReport[] {
    return this.rebuilt.map((report) => ({ ...report }));
  }

  /** verify() of every stream, by stream name; all lists empty when the store is sound. */
  verify(options: { full?: boolean } = {}): Record<string, Violation[]> {
    this.checkOpen();
    return Object.fromEntries([...this.streamsByName].map(([name, open]) => [name, open.stream.verify(options)]));
  }

  /** Makes everything durable, closes every file and releases the lock. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    let failure: unknown;
    for (const open of this.streamsByName.values()) {
      try {
        open.stream.endConsumers();
        open.tree.close();
      } catch (err) {
        failure ??= err;
      }
      this.closeFiles(open);
    }
    this.lock.release();
    if (failure !== undefined) throw failure;
  }

  /** Closes what a failed open had opened; the open's own error is the one worth reporting. */
  private closeAfterFailedOpen(): void {
    try {
      this.close();
    } catch {
      // Already failing with the open's error.
    }
  }

  checkOpen(): void {
    if (this.closed) throw new MisuseError('STORE_CLOSED', 'the store is closed');
  }

  private createStreamFiles(entry: StreamEntry): void {
    this.createPmemFiles(entry, false);
    const leafFile = this.media.openFile(leafFileName(entry), true);
    LeafFile.initialize(leafFile, this.manifest.storeId, entry.id);
    leafFile.close();
    this.createNodeFile(entry);
  }

  /** A new, empty node file for a stream whose node storage keeps index nodes on SSD (whatever was there is dropped: it only copies PMem). */
  private createNodeFile(entry: StreamEntry): void {
    if (nodeStorageOf(entry) === 'pmem') return;
    const file = this.media.openFile(nodeFileName(entry), true);
    file.truncate(0);
    NodeFile.initialize(file, this.manifest.storeId, entry.id);
    file.close();
  }

  /** The stream's node file, if its node storage has one; recreated when missing (PMem holds what it copies). */
  private openNodeFile(entry: StreamEntry): NodeFile | undefined {
    if (nodeStorageOf(entry) === 'pmem') return undefined;
    if (!this.media.fileExists(nodeFileName(entry))) this.createNodeFile(entry);
    return NodeFile.open(this.media.openFile(nodeFileName(entry), false), this.manifest.storeId, entry.id, new LeafCache(Math.floor(this.options.cacheBytes / NODE_CACHE_SHARE)));
  }

  /**
   * New, empty PMem structures for a stream; whatever files were there are removed first. For a
   * rebuild the flank is marked so: until the rebuild's commit an ordinary open refuses it.
   */
  private createPmemFiles(entry: StreamEntry, rebuilding: boolean): void {
    const { storeId } = this.manifest;
    const layout = rowLayout(this.schemaOf(entry));
    const geometry = flankGeometry(entry, layout.rowBytes);
    for (const suffix of REGION_SUFFIXES) this.media.removeRegion(regionName(entry, suffix));
    const [flank, nodes, leafAggregates, nodeAggregates, translation, queue, consumers] = REGION_SUFFIXES.map((suffix) => this.media.openRegion(regionName(entry, suffix), 4096, true)) as [
      PmemRegion,
      PmemRegion,
      PmemRegion,
      PmemRegion,
      PmemRegion,
      PmemRegion,
      PmemRegion,
    ];
    flank.grow(OpenNodeAggregates.fileBytes(geometry, layout)); // the ring, then the open nodes' running aggregates
    Flank.create(flank, geometry, storeId, entry.id, rebuilding).close();
    IndexNodeArray.create(nodes, layout, entry.nodeSize, storeId, entry.id).closeFile();
    AggregateArray.create(leafAggregates, layout, storeId, entry.id, 'leaf').close();
    AggregateArray.create(nodeAggregates, layout, storeId, entry.id, 'index').close();
    TranslationArray.create(translation, storeId, entry.id).close();
    OooQueue.create(queue, layout, storeId, entry.id, this.options.oooQueueBytes);
    ConsumerSlots.create(consumers, storeId, entry.id);
  }

  /** Opens a stream; with the rebuild option, one whose PMem files are missing or damaged is rebuilt from SSD. */
  private openStream(entry: StreamEntry): Stream {
    try {
      return this.openStreamFiles(entry, false);
    } catch (err) {
      // Which files are missing is asked only now: open() pays no existence checks.
      const missing = REGION_SUFFIXES.map((suffix) => regionName(entry, suffix)).filter((name) => !this.media.regionExists(name));
      if (missing.length > 0 && !this.options.rebuild) {
        throw new CorruptionError(missing[0]!, 0, `the PMem files of stream '${entry.name}' are missing (a PMem directory on tmpfs does not survive a reboot); the store cannot open as if empty - restore the PMem directory (${this.manifest.pmemDir}), or open with { rebuild: true } to rebuild it from the leaf file on SSD (events that were only in PMem are lost)`);
      }
      if (missing.length === 0 && (!(err instanceof CorruptionError) || !this.options.rebuild)) throw err;
    }
    return this.rebuildStream(entry);
  }

  /**
   * Rebuilds a stream's PMem files from its leaf file. Crash-safe at every step (DURABILITY.md,
   * "Rebuilding from SSD"): the damaged files are renamed aside (kept for forensics), new ones are
   * created with a flank marked 'rebuilding' - which an ordinary open refuses - and the commit
   * that adopts the leaf file clears the mark.
   */
  private rebuildStream(entry: StreamEntry): Stream {
    const old = this.inspectOldPmemFiles(entry);
    this.clearPmemFilesForRebuild(entry, old.ownInterruptedRebuild);
    this.createPmemFiles(entry, true);
    this.createNodeFile(entry);
    const stream = this.openStreamFiles(entry, true);
    const tree = this.streamsByName.get(entry.name)!.tree;
    const leafFile = tree.adoptedLeafFile;
    invariant(leafFile !== undefined, 'a rebuilt tree reports what it adopted');
    const events = stream.stats().events;
    const lostEvents = old.eventsCounted === undefined ? undefined : Math.max(0, old.eventsCounted - events);
    this.rebuilt.push({
      stream: entry.name,
      leaves: leafFile.records,
      events,
      lostEvents,
      lostEventsUnknownReason: lostEvents === undefined ? old.uncountedReason : undefined,
      damagedRecords: leafFile.damagedRecords,
      skippedRecords: leafFile.skippedRecords,
      skippedEvents: leafFile.skippedEvents,
      cutBytes: leafFile.cutBytes,
      setAside: old.setAsideAs,
    });
    return stream;
  }

  /**
   * What the PMem files a rebuild is about to replace still say: how many events they count (the
   * flank's committed count, its open leaf's and the queue's), or why that is unknown; and whether
   * they are an interrupted rebuild's own files (which hold nothing of the old stream).
   */
  private inspectOldPmemFiles(entry: StreamEntry): OldPmemFiles {
    const { storeId } = this.manifest;
    const layout = rowLayout(this.schemaOf(entry));
    const aside = this.setAsideSuffix(entry);
    const uncounted = (reason: string, ownInterruptedRebuild = false): OldPmemFiles => ({ eventsCounted: undefined, uncountedReason: reason, ownInterruptedRebuild, setAsideAs: ownInterruptedRebuild ? undefined : aside });
    if (!this.media.regionExists(regionName(entry, 'flank'))) {
      return { ...uncounted('the flank file is gone'), setAsideAs: this.anyRegionExists(entry) ? aside : undefined };
    }
    const regions: PmemRegion[] = [];
    const openRegion = (suffix: (typeof REGION_SUFFIXES)[number]) => {
      const region = this.media.openRegion(regionName(entry, suffix), 0, false);
      regions.push(region);
      return region;
    };
    try {
      const flank = Flank.open(openRegion('flank'), flankGeometry(entry, layout.rowBytes), storeId, entry.id);
      const state = flank.readState();
      if (state.rebuilding) return uncounted('an earlier rebuild was interrupted, and its damaged files were set aside then', true);
      if (!this.media.regionExists(regionName(entry, 'ooo'))) return uncounted('the out-of-order queue file is gone');
      const queue = OooQueue.open(openRegion('ooo'), layout, storeId, entry.id, this.options.oooQueueBytes);
      if (state.mergeCursor.generation === queue.generation) return uncounted('a merge of late events was interrupted: the flank and the queue count some events twice');
      const openLeaf = flank.pageLeafId(state.openLeafId) === state.openLeafId ? flank.pageCount(state.openLeafId) : 0;
      return { eventsCounted: state.closedEvents + openLeaf + queue.length, uncountedReason: undefined, ownInterruptedRebuild: false, setAsideAs: aside };
    } catch (err) {
      if (err instanceof CorruptionError) return uncounted(`the damaged files cannot say (${err.reason})`);
      throw err;
    } finally {
      for (const region of regions) region.close();
    }
  }

  /**
   * Makes room for a rebuild's new PMem files: an interrupted rebuild's own files are removed;
   * damaged ones are renamed aside with the first `.damaged-<n>` suffix no flank has, the flank
   * last - so a crash in between leaves the flank in place, and the next attempt picks the same n.
   */
  private clearPmemFilesForRebuild(entry: StreamEntry, ownInterruptedRebuild: boolean): void {
    const suffix = this.setAsideSuffix(entry);
    for (const kind of [...REGION_SUFFIXES].reverse()) {
      const name = regionName(entry, kind);
      if (!this.media.regionExists(name)) continue;
      if (ownInterruptedRebuild) this.media.removeRegion(name);
      else this.media.renameRegion(name, `${name}${suffix}`);
    }
  }

  /** The set-aside suffix for the stream's damaged files: the first `.damaged-<n>` no flank carries yet. */
  private setAsideSuffix(entry: StreamEntry): string {
    let n = 1;
    while (this.media.regionExists(`${regionName(entry, 'flank')}${DAMAGED_SUFFIX(n)}`)) n++;
    return DAMAGED_SUFFIX(n);
  }

  private anyRegionExists(entry: StreamEntry): boolean {
    return REGION_SUFFIXES.some((suffix) => this.media.regionExists(regionName(entry, suffix)));
  }

  private openStreamFiles(entry: StreamEntry, rebuild: boolean): Stream {
    const { storeId } = this.manifest;
    const schema = this.schemaOf(entry);
    const layout = rowLayout(schema);
    const regions: PmemRegion[] = [];
    let leaves: LeafFile | undefined;
    let nodeFile: NodeFile | undefined;
    try {
      for (const suffix of REGION_SUFFIXES) regions.push(this.media.openRegion(regionName(entry, suffix), 0, false));
      leaves = LeafFile.open(this.media.openFile(leafFileName(entry), false), storeId, entry.id, schema, new LeafCache(this.options.cacheBytes));
      nodeFile = this.openNodeFile(entry);
      return this.assembleStream(entry, schema, layout, regions, leaves, nodeFile, rebuild);
    } catch (err) {
      for (const region of regions) region.close();
      leaves?.close();
      nodeFile?.close();
      throw err;
    }
  }

  private assembleStream(entry: StreamEntry, schema: Schema, layout: RowLayout, regions: PmemRegion[], leaves: LeafFile, nodeFile: NodeFile | undefined, rebuild: boolean): Stream {
    const { storeId } = this.manifest;
    const [flankRegion, nodesRegion, leafAggRegion, nodeAggRegion, translationRegion, queueRegion, consumersRegion] = regions as [PmemRegion, PmemRegion, PmemRegion, PmemRegion, PmemRegion, PmemRegion, PmemRegion];
    const tree = new Tree(
      {
        layout,
        flank: Flank.open(flankRegion, flankGeometry(entry, layout.rowBytes), storeId, entry.id),
        openNodeAggregates: OpenNodeAggregates.open(flankRegion, flankGeometry(entry, layout.rowBytes), layout),
        nodes: IndexNodeArray.open(nodesRegion, layout, entry.nodeSize, storeId, entry.id),
        leafAggregates: AggregateArray.open(leafAggRegion, layout, storeId, entry.id, 'leaf'),
        nodeAggregates: AggregateArray.open(nodeAggRegion, layout, storeId, entry.id, 'index'),
        translation: TranslationArray.open(translationRegion, storeId, entry.id),
        leaves,
        queue: OooQueue.open(queueRegion, layout, storeId, entry.id, this.options.oooQueueBytes),
        nodeStorage: nodeStorageOf(entry),
        nodeFile,
      },
      // With the rebuild option, open itself finds a damaged ring page, so that it can rebuild.
      { flushEvery: this.options.flushEvery, spare: entry.spare, rebuildFromLeafFile: rebuild, deferLeafFileRecovery: !this.options.rebuild },
      (firstLeaf, ringPage) => this.startLeafWriter(entry, schema, leaves, firstLeaf, ringPage),
      (base) => this.startIndexBuilder(entry, base),
    );
    const store = this;
    const consumers = ConsumerSlots.open(consumersRegion, storeId, entry.id);
    const stream = new Stream(entry.name, entry.id, schema, tree, new EventCodec(entry.name, schema), consumers, {
      get durability() {
        return store.durability;
      },
      checkOpen: () => this.checkOpen(),
      bytesOnSsd: () => leaves.size + (nodeFile?.size ?? 0),
      bytesOnPmem: () => regions.reduce((sum, region) => sum + region.size, 0),
      cacheStats: () => leaves.cacheStats(),
    });
    this.streamsByName.set(entry.name, { stream, tree, regions, leaves, nodeFile });
    tree.recoverInBackground();
    return stream;
  }

  /** A worker thread when the media has real files (and it is not turned off), else inline. */
  private startLeafWriter(entry: StreamEntry, schema: Schema, leaves: LeafFile, firstLeaf: number, ringPage: RingPage): LeafWriter {
    const geometry = flankGeometry(entry, schema.rowBytes);
    const paths = this.options.leafWriter === 'worker' ? this.media.pathsForWorker(regionName(entry, 'flank'), leafFileName(entry)) : undefined;
    if (paths === undefined) {
      return new SyncLeafWriter(leaves, ringPage, Math.min(this.options.syncEvery, entry.ringPages - 1));
    }
    return new WorkerLeafWriter({
      flankPath: paths.regionPath,
      leafPath: paths.filePath,
      storeId: this.manifest.storeId,
      streamId: entry.id,
      geometry,
      schema: serializeSchema(schema),
      firstLeaf,
    });
  }

  /** Sorts the out-of-order queue's recovered slots on a worker thread when the media has real files. */
  private startIndexBuilder(entry: StreamEntry, base: BaseSlots): IndexBuilder {
    const paths = this.media.pathsForWorker(regionName(entry, 'ooo'), leafFileName(entry));
    if (paths === undefined) return new InlineIndexBuilder(base, SIMULATED_SCANNING_QUERIES);
    if (base.end < WORKER_INDEX_MIN_SLOTS) return new InlineIndexBuilder(base, 0);
    return new WorkerIndexBuilder({ queuePath: paths.regionPath, end: base.end, cursor: base.cursor, geometry: base.geometry }, () => sortBase(base));
  }

  private closeFiles(open: OpenStream): void {
    for (const region of open.regions) region.close();
    open.leaves.close();
    open.nodeFile?.close();
  }

  private schemaOf(entry: StreamEntry): Schema {
    return deserializeSchema(new Uint8Array(Buffer.from(entry.schema, 'base64')), MANIFEST_NAME, 0);
  }
}

function flankGeometry(entry: StreamEntry, rowBytes: number): FlankGeometry {
  return { nodeSize: entry.nodeSize, ringPages: entry.ringPages, rowBytes };
}

function regionName(entry: StreamEntry, suffix: (typeof REGION_SUFFIXES)[number]): string {
  return `stream-${entry.id}.${suffix}`;
}

function leafFileName(entry: StreamEntry): string {
  return `stream-${entry.id}.leaves`;
}

function nodeFileName(entry: StreamEntry): string {
  return `stream-${entry.id}.index-nodes`;
}

/** A stream's node storage as its MANIFEST entry says; an unknown value is a damaged (or newer) MANIFEST. */
function nodeStorageOf(entry: StreamEntry): NodeStorageKind {
  try {
    return nodeStorageOption(entry.nodeStorage);
  } catch (err) {
    if (err instanceof MisuseError) throw new CorruptionError(MANIFEST_NAME, 0, `stream '${entry.name}': ${err.message}`);
    throw err;
  }
}
