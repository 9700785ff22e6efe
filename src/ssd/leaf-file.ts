// The leaf file (paper §4.2): one per stream, an append-only sequence of framed records
// (record.ts) - first a FILE_HEADER record binding the file to its store and stream, then one LEAF
// record per closed leaf: the leaf's rows, encoded column by column and LZ4-compressed
// (leaf/codec.ts). Leaf ids grow with the file offset, so the file is written sequentially and
// the translation array (tree/translation-array.ts) maps a leaf id to its record. A leaf written
// by an out-of-order merge is a MERGED_LEAF record: its payload starts with its lineage
// (u32 id of the leaf it replaces, u16 part, u16 parts), so a rebuild from this file alone knows
// which records are superseded.
//
// Persistence rule: a record is durable only after sync() (fdatasync); the tree sets a leaf's
// translation slot only after that. Recovery scans forward from the last trusted record and
// truncates the file at the first record that is torn, corrupt or unexpected.
// Every read verifies the record (magic, CRC, kind, node id, lengths) before decoding it: a
// translation slot pointing at the wrong bytes is a CorruptionError, never a wrong answer.

import { CorruptionError } from '../errors.js';
import type { LeafCache, CacheStats } from '../cache/leaf-cache.js';
import { decodeLeaf, encodeLeaf } from '../leaf/codec.js';
import type { Schema } from '../schema.js';
import type { Lineage } from '../tree/flank.js';
import { type FileRecord, RecordKind, encodeRecord, readRecordAt, recordLength, scanBackward, scanForward } from './record.js';
import type { SsdFile } from './file.js';
import { ReadWindow } from './read-window.js';

/** Where a record lies in the leaf file. */
export interface LeafLocation {
  readonly offset: number;
  readonly length: number;
}

export interface RecoveredLeaf {
  readonly leafId: number;
  readonly location: LeafLocation;
  /** Rows the record holds. */
  readonly rows: number;
  /** Set for a leaf an out-of-order merge wrote. */
  readonly lineage: Lineage | undefined;
}

/** What the tree needs from the SSD tier. */
export interface LeafSink {
  readonly path: string;
  /** Offset of the first leaf record (just after the file's header record). */
  readonly firstRecordOffset: number;
  append(leafId: number, rows: Uint8Array, count: number, lineage: Lineage | undefined): LeafLocation;
  sync(): void;
  /** The decoded rows of leaf `leafId`; shared with the cache, so they must not be modified. */
  read(leafId: number, location: LeafLocation, count: number): DataView;
  /** The decoded rows of leaf `leafId` if they are cached (no I/O). */
  cached(leafId: number): DataView | undefined;
  /** Intact leaf records from `offset` on, in file order, until the first bad one or the end. */
  scanFrom(offset: number): Iterable<RecoveredLeaf>;
  /** Intact leaf records from the end of the file back (by their trailers), until the first bad one or `stop`. */
  scanBackTo(stop: number): Iterable<RecoveredLeaf>;
  /** Bytes in the file. */
  readonly size: number;
  /** Drops everything after byte `end`. */
  truncate(end: number): void;
}

const HEADER_PAYLOAD_BYTES = 20;
const LINEAGE_BYTES = 8;
const MAX_SCAN_WINDOW_BYTES = 64 * 1024 * 1024;

export class LeafFile implements LeafSink {
  private constructor(
    private readonly file: SsdFile,
    readonly firstRecordOffset: number,
    private readonly schema: Schema,
    private readonly cache: LeafCache,
  ) {}

  /** Starts a new leaf file: the header record, synced. */
  static initialize(file: SsdFile, storeId: Uint8Array, streamId: number): void {
    file.append(encodeRecord(RecordKind.FileHeader, 0, 0, headerPayload(storeId, streamId), HEADER_PAYLOAD_BYTES));
    file.sync();
  }

  /** Opens a leaf file, refusing one that belongs to another store or stream. */
  static open(file: SsdFile, storeId: Uint8Array, streamId: number, schema: Schema, cache: LeafCache): LeafFile {
    // Its length is known: one read, not the record header's and then its payload's.
    const { header, payload } = readRecordAt(file, 0, recordLength(HEADER_PAYLOAD_BYTES));
    const expected = headerPayload(storeId, streamId);
    if (header.kind !== RecordKind.FileHeader || payload.length !== expected.length || !payload.every((b, i) => b === expected[i])) {
      throw new CorruptionError(file.path, 0, 'the leaf file belongs to another store or stream');
    }
    return new LeafFile(file, header.totalLength, schema, cache);
  }

  get path(): string {
    return this.file.path;
  }

  get size(): number {
    return this.file.size;
  }

  append(leafId: number, rows: Uint8Array, count: number, lineage: Lineage | undefined): LeafLocation {
    const record = encodeLeafRecord(this.schema, leafId, rows, count, lineage);
    const offset = this.file.append(record);
    this.cache.delete(leafId);
    return { offset, length: record.length };
  }

  sync(): void {
    this.file.sync();
  }

  cached(leafId: number): DataView | undefined {
    return this.cache.get(leafId);
  }

  read(leafId: number, location: LeafLocation, count: number): DataView {
    const cached = this.cache.get(leafId);
    if (cached !== undefined) return cached;
    const schema = this.schema;
    const { header, payload } = readRecordAt(this.file, location.offset, location.length);
    const merged = header.kind === RecordKind.MergedLeaf;
    if ((!merged && header.kind !== RecordKind.Leaf) || header.nodeId !== leafId || header.totalLength !== location.length || header.rawLength !== count * schema.rowBytes || (merged && payload.length < LINEAGE_BYTES)) {
      throw new CorruptionError(this.file.path, location.offset, `expected leaf ${leafId} of ${count} rows, found a record of kind ${header.kind} for node ${header.nodeId} (${header.rawLength} raw bytes)`);
    }
    const rows = decodeLeaf(schema, merged ? payload.subarray(LINEAGE_BYTES) : payload, count, { file: this.file.path, offset: location.offset });
    const view = new DataView(rows.buffer, rows.byteOffset, rows.byteLength);
    this.cache.set(leafId, view);
    return view;
  }

  *scanFrom(offset: number): Generator<RecoveredLeaf, void, undefined> {
    // The tail past the last trusted record is bounded (the ring plus a translation batch):
    // one read brings it in whole, unless the file is damaged into something much larger.
    const tail = this.file.size - offset;
    const source = tail > 0 && tail <= MAX_SCAN_WINDOW_BYTES ? new ReadWindow(this.file.path, offset, this.file.read(offset, tail)) : this.file;
    for (const record of scanForward(source, offset)) {
      const leaf = this.asLeaf(record);
      if (leaf === undefined) return;
      yield leaf;
    }
  }

  *scanBackTo(stop: number): Generator<RecoveredLeaf, void, undefined> {
    for (const record of scanBackward(this.file)) {
      const leaf = record.header.offset >= stop ? this.asLeaf(record) : undefined;
      if (leaf === undefined) return;
      yield leaf;
    }
  }

  /** An intact record as a leaf, or undefined if it is not a (well-formed) leaf record. */
  private asLeaf({ header, payload }: FileRecord): RecoveredLeaf | undefined {
    const merged = header.kind === RecordKind.MergedLeaf;
    if ((!merged && header.kind !== RecordKind.Leaf) || (merged && payload.length < LINEAGE_BYTES)) return undefined;
    const location = { offset: header.offset, length: header.totalLength };
    return { leafId: header.nodeId, location, rows: header.rawLength / this.schema.rowBytes, lineage: merged ? decodeLineage(payload) : undefined };
  }

  truncate(end: number): void {
    if (end < this.file.size) this.file.truncate(end);
  }

  cacheStats(): CacheStats {
    return this.cache.stats();
  }

  close(): void {
    this.file.close();
  }
}

/** A LEAF record holding `count` rows, encoded and compressed (a MERGED_LEAF one with a lineage). */
export function encodeLeafRecord(schema: Schema, leafId: number, rows: Uint8Array, count: number, lineage: Lineage | undefined): Uint8Array {
  const leaf = encodeLeaf(schema, rows, count);
  if (lineage === undefined) return encodeRecord(RecordKind.Leaf, 0, leafId, leaf, rows.length);
  const payload = new Uint8Array(LINEAGE_BYTES + leaf.length);
  const view = new DataView(payload.buffer);
  view.setUint32(0, lineage.replaces, true);
  view.setUint16(4, lineage.part, true);
  view.setUint16(6, lineage.parts, true);
  payload.set(leaf, LINEAGE_BYTES);
  return encodeRecord(RecordKind.MergedLeaf, 0, leafId, payload, rows.length);
}

function decodeLineage(payload: Uint8Array): Lineage {
  const view = new DataView(payload.buffer, payload.byteOffset, LINEAGE_BYTES);
  return { replaces: view.getUint32(0, true), part: view.getUint16(4, true), parts: view.getUint16(6, true) };
}

/** The FILE_HEADER payload binding a file to its store and stream. */
export function headerPayload(storeId: Uint8Array, streamId: number): Uint8Array {
  const payload = new Uint8Array(HEADER_PAYLOAD_BYTES);
  payload.set(storeId, 0);
  new DataView(payload.buffer).setUint32(16, streamId, true);
  return payload;
}
