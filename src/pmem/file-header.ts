// The header every chronotier PMem file starts with: one 256-byte block, written and persisted
// once when the file is created, never changed afterwards. It binds the file to its store and
// stream and records the geometry the file was laid out with, so that a foreign, truncated or
// damaged file is refused with a CorruptionError instead of being misread.
//
//   offset size  field
//   0      4     magic 'CTPM' (0x4d505443 little-endian)
//   4      2     format version (1)
//   6      2     file kind (FileKind)
//   8      16    store id (random, from the store's MANIFEST)
//   24     4     stream id (index of the stream in the store's catalog)
//   28     4     geometry word count n (<= 16)
//   32     64    geometry: 16 u32 words, the first n meaningful (slot size, ring pages, ...)
//   96     156   zero
//   252    4     CRC-32 of bytes [0, 252)
// Persistence rule: the header is persisted before anything else in the file is written, and a
// file whose header does not verify is never used.

import { crc32 } from 'node:zlib';
import { CorruptionError } from '../errors.js';
import type { PmemRegion } from './region.js';

export const FILE_HEADER_BYTES = 256;
export const PMEM_MAGIC = 0x4d505443;
export const PMEM_FORMAT_VERSION = 1;
export const STORE_ID_BYTES = 16;
export const MAX_GEOMETRY_WORDS = 16;

const MAGIC_OFFSET = 0;
const VERSION_OFFSET = MAGIC_OFFSET + 4;
const KIND_OFFSET = VERSION_OFFSET + 2;
const STORE_ID_OFFSET = KIND_OFFSET + 2;
const STREAM_ID_OFFSET = STORE_ID_OFFSET + STORE_ID_BYTES;
const GEOMETRY_COUNT_OFFSET = STREAM_ID_OFFSET + 4;
const GEOMETRY_OFFSET = GEOMETRY_COUNT_OFFSET + 4;
const CRC_OFFSET = FILE_HEADER_BYTES - 4;

export enum FileKind {
  Flank = 1,
  IndexNodes = 2,
  Aggregates = 3,
  Translation = 4,
  OooQueue = 5,
  ConsumerSlots = 6,
}

export interface FileIdentity {
  readonly kind: FileKind;
  readonly storeId: Uint8Array;
  readonly streamId: number;
  /** Geometry words the file was created with; a reopen must present the same. */
  readonly geometry: readonly number[];
}

/** Writes and persists the header. REQUIRES: the region is at least FILE_HEADER_BYTES long. */
export function writeFileHeader(region: PmemRegion, identity: FileIdentity): void {
  const bytes = new Uint8Array(region.buffer, 0, FILE_HEADER_BYTES);
  const view = new DataView(region.buffer, 0, FILE_HEADER_BYTES);
  bytes.fill(0);
  view.setUint32(MAGIC_OFFSET, PMEM_MAGIC, true);
  view.setUint16(VERSION_OFFSET, PMEM_FORMAT_VERSION, true);
  view.setUint16(KIND_OFFSET, identity.kind, true);
  bytes.set(identity.storeId, STORE_ID_OFFSET);
  view.setUint32(STREAM_ID_OFFSET, identity.streamId, true);
  view.setUint32(GEOMETRY_COUNT_OFFSET, identity.geometry.length, true);
  identity.geometry.forEach((word, i) => view.setUint32(GEOMETRY_OFFSET + 4 * i, word, true));
  view.setUint32(CRC_OFFSET, crc32(bytes.subarray(0, CRC_OFFSET)), true);
  region.persist(0, FILE_HEADER_BYTES);
}

/**
 * The first `length` bytes of the file (fewer if it is shorter), as a copy: open verifies headers
 * and reads state from it instead of faulting in mapped pages. The copy the region took at open
 * serves when it has one; otherwise one read.
 */
export function readHead(region: PmemRegion, length = FILE_HEADER_BYTES): Uint8Array {
  const wanted = Math.min(length, region.size);
  const taken = region.takeOpenHead?.();
  if (taken !== undefined && taken.length >= wanted) return taken.subarray(0, wanted);
  const head = new Uint8Array(wanted);
  region.readInto(0, head);
  return head;
}

/** Checks the header (in `head`, the file's first bytes) against what the caller expects; throws CorruptionError otherwise. */
export function verifyFileHeader(region: PmemRegion, expected: FileIdentity, head = readHead(region)): void {
  const fail = (offset: number, reason: string): never => {
    throw new CorruptionError(region.path, offset, `${reason}; this is not the ${FileKind[expected.kind]} file of this store`);
  };
  if (head.length < FILE_HEADER_BYTES) fail(0, `file is ${region.size} bytes, shorter than its header`);
  const bytes = head.subarray(0, FILE_HEADER_BYTES);
  const view = new DataView(head.buffer, head.byteOffset, FILE_HEADER_BYTES);
  if (view.getUint32(MAGIC_OFFSET, true) !== PMEM_MAGIC) fail(MAGIC_OFFSET, 'bad magic');
  if (view.getUint32(CRC_OFFSET, true) !== crc32(bytes.subarray(0, CRC_OFFSET))) fail(CRC_OFFSET, 'header checksum mismatch');
  const version = view.getUint16(VERSION_OFFSET, true);
  if (version !== PMEM_FORMAT_VERSION) fail(VERSION_OFFSET, `format version ${version}, expected ${PMEM_FORMAT_VERSION}`);
  const kind = view.getUint16(KIND_OFFSET, true);
  if (kind !== expected.kind) fail(KIND_OFFSET, `file kind ${kind}, expected ${expected.kind}`);
  if (!equalBytes(bytes.subarray(STORE_ID_OFFSET, STORE_ID_OFFSET + STORE_ID_BYTES), expected.storeId)) {
    fail(STORE_ID_OFFSET, 'store id differs (a file of another store)');
  }
  if (view.getUint32(STREAM_ID_OFFSET, true) !== expected.streamId) fail(STREAM_ID_OFFSET, 'stream id differs');
  const count = view.getUint32(GEOMETRY_COUNT_OFFSET, true);
  const geometry = Array.from({ length: Math.min(count, MAX_GEOMETRY_WORDS) }, (_, i) => view.getUint32(GEOMETRY_OFFSET + 4 * i, true));
  if (count !== expected.geometry.length || geometry.some((word, i) => word !== expected.geometry[i])) {
    fail(GEOMETRY_OFFSET, `geometry [${geometry.join(', ')}] differs from [${expected.geometry.join(', ')}]`);
  }
}

/**
 * Geometry word `index` as the header in `head` stores it, unverified (0 if the file is too
 * short): for a file whose expected geometry depends on a word chosen at creation.
 * verifyFileHeader() must still run, with a geometry built from it - a damaged word then fails
 * that check.
 */
export function storedGeometryWord(head: Uint8Array, index: number): number {
  if (head.length < FILE_HEADER_BYTES || index >= MAX_GEOMETRY_WORDS) return 0;
  return new DataView(head.buffer, head.byteOffset, FILE_HEADER_BYTES).getUint32(GEOMETRY_OFFSET + 4 * index, true);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
