// The node file (paper Fig. 6's variants that keep index nodes on SSD): one per stream whose
// nodeStorage is 'pmem-aggregates' or 'ssd', an append-only sequence of framed records
// (record.ts) - first a FILE_HEADER record binding it to its store and stream, then one
// INDEX_NODE record per closed index node, in the order the nodes were published:
//   payload = the node's bytes as the index-node array holds them (index-node-array.ts: 64-byte
//             header, then `count` 16-byte entries), then - for 'ssd', the baseline - the
//             aggregate slot (aggregate-array.ts) of each of its `count` children, in entry order.
// Records are not compressed: a node is read whole on every descent.
//
// Persistence rule: none of its own. The index-node and aggregate arrays in PMem stay the tree's
// durable truth in every variant; this file is a copy that queries read. A node is appended only
// after the flank commit that makes it closed (so a record never names a node id a crash could
// hand out again), and the file is synced at close only. open() keeps the intact records, cuts a
// torn or damaged tail, and the tree appends again the closed nodes it then lacks, from PMem.

import { CorruptionError } from '../errors.js';
import type { LeafCache } from '../cache/leaf-cache.js';
import type { SsdFile } from './file.js';
import { headerPayload, type LeafLocation } from './leaf-file.js';
import { RecordKind, encodeRecord, readRecordAt, scanForward } from './record.js';

/** Appended to the FILE_HEADER payload: a leaf file (without it) and a node file refuse each other. */
const NODE_FILE_TAG = 0x45444f4e;

export class NodeFile {
  private readonly locations = new Map<number, LeafLocation>();
  /** Records read from the file (cache misses) since open. */
  reads = 0;

  private constructor(
    private readonly file: SsdFile,
    private readonly cache: LeafCache,
  ) {}

  /** Starts a node file: the header record, synced. */
  static initialize(file: SsdFile, storeId: Uint8Array, streamId: number): void {
    const payload = nodeFileHeader(storeId, streamId);
    file.append(encodeRecord(RecordKind.FileHeader, 0, 0, payload, payload.length));
    file.sync();
  }

  /** Opens a node file and indexes its intact records; a torn or damaged tail is cut off. */
  static open(file: SsdFile, storeId: Uint8Array, streamId: number, cache: LeafCache): NodeFile {
    const { header, payload } = readRecordAt(file, 0);
    const expected = nodeFileHeader(storeId, streamId);
    if (header.kind !== RecordKind.FileHeader || payload.length !== expected.length || !payload.every((b, i) => b === expected[i])) {
      throw new CorruptionError(file.path, 0, 'the node file belongs to another store or stream, or is not a node file');
    }
    const nodes = new NodeFile(file, cache);
    const scan = { end: header.totalLength };
    for (const record of scanForward(file, header.totalLength, scan)) {
      if (record.header.kind !== RecordKind.IndexNode) break;
      nodes.locations.set(record.header.nodeId, { offset: record.header.offset, length: record.header.totalLength });
    }
    if (scan.end < file.size) file.truncate(scan.end);
    return nodes;
  }

  get path(): string {
    return this.file.path;
  }

  get size(): number {
    return this.file.size;
  }

  /** How many nodes the file holds. */
  get nodes(): number {
    return this.locations.size;
  }

  has(nodeId: number): boolean {
    return this.locations.has(nodeId);
  }

  append(nodeId: number, payload: Uint8Array): void {
    const record = encodeRecord(RecordKind.IndexNode, 0, nodeId, payload, payload.length);
    this.locations.set(nodeId, { offset: this.file.append(record), length: record.length });
  }

  /** Node `nodeId`'s payload, from the cache or read and verified; undefined if the file lacks it. */
  read(nodeId: number): DataView | undefined {
    const cached = this.cache.get(nodeId);
    if (cached !== undefined) return cached;
    const location = this.locations.get(nodeId);
    if (location === undefined) return undefined;
    this.reads++;
    const { header, payload } = readRecordAt(this.file, location.offset, location.length);
    if (header.kind !== RecordKind.IndexNode || header.nodeId !== nodeId) {
      throw new CorruptionError(this.file.path, location.offset, `expected index node ${nodeId}, found a record of kind ${header.kind} for node ${header.nodeId}`);
    }
    const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    this.cache.set(nodeId, view);
    return view;
  }

  sync(): void {
    this.file.sync();
  }

  close(): void {
    this.file.close();
  }
}

function nodeFileHeader(storeId: Uint8Array, streamId: number): Uint8Array {
  const leafHeader = headerPayload(storeId, streamId);
  const payload = new Uint8Array(leafHeader.length + 4);
  payload.set(leafHeader);
  new DataView(payload.buffer).setUint32(leafHeader.length, NODE_FILE_TAG, true);
  return payload;
}
