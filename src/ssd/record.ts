// Self-describing records in an append-only SSD file (LevelDB's log format is the model): a
// record names its kind and node, carries checksums for its header and payload, and ends with a
// trailer, so the file can be scanned forward from any record start, backward from its end,
// and a torn or damaged record is detected rather than misread. docs/FORMAT.md has the why.
//
// Record (all integers little-endian; records start at multiples of 8):
//   0       u32  magic 'CTLR' (0x524c5443)
//   4       u16  format version (1)
//   6       u8   kind (RecordKind)
//   7       u8   flags (reserved for the codec)
//   8       u32  node id, bits 0-31
//   12      u32  node id, bits 32-63 (< 2^21: ids are safe integers)
//   16      u32  payload length as stored (compressed)
//   20      u32  raw length (before compression)
//   24      u32  CRC-32 of the payload
//   28      u32  CRC-32 of bytes [0, 28)
//   32      payload, then zero padding to a multiple of 8
//   end-8   u32  total record length (header + payload + padding + trailer)
//   end-4   u32  CRC-32 of the 8 bytes (total length, header CRC): ties the trailer to its header
//
// Persistence rule: none here - records are pure bytes; file.ts says when they are durable.
// Reading rule: no length read from the media is used before the header CRC vouches for it, and
// nothing is allocated beyond MAX_RECORD_BYTES or the file's size. Bad bytes surface only as
// CorruptionError (naming file and offset); I/O failures as IoError.

import { crc32 } from 'node:zlib';
import { BoundsError, CorruptionError, MisuseError, checkIndex } from '../errors.js';
import type { SsdFile } from './file.js';

export const RECORD_MAGIC = 0x524c5443;
export const RECORD_VERSION = 1;
/** Records start at multiples of this, and their lengths are multiples of it. */
export const RECORD_ALIGNMENT = 8;

const MAGIC_OFFSET = 0;
const VERSION_OFFSET = MAGIC_OFFSET + 4;
const KIND_OFFSET = VERSION_OFFSET + 2;
const FLAGS_OFFSET = KIND_OFFSET + 1;
const NODE_LOW_OFFSET = FLAGS_OFFSET + 1;
const NODE_HIGH_OFFSET = NODE_LOW_OFFSET + 4;
const STORED_LENGTH_OFFSET = NODE_HIGH_OFFSET + 4;
const RAW_LENGTH_OFFSET = STORED_LENGTH_OFFSET + 4;
const PAYLOAD_CRC_OFFSET = RAW_LENGTH_OFFSET + 4;
const HEADER_CRC_OFFSET = PAYLOAD_CRC_OFFSET + 4;
export const RECORD_HEADER_BYTES = HEADER_CRC_OFFSET + 4;

/** Offsets within the trailer, the last bytes of a record. */
const TRAILER_LENGTH_OFFSET = 0;
const TRAILER_CRC_OFFSET = TRAILER_LENGTH_OFFSET + 4;
export const RECORD_TRAILER_BYTES = TRAILER_CRC_OFFSET + 4;

/** An empty payload. */
export const MIN_RECORD_BYTES = RECORD_HEADER_BYTES + RECORD_TRAILER_BYTES;
/** The largest multiple of 8 a translation slot's 24-bit length can hold; a corrupt length never makes a reader allocate more. */
export const MAX_RECORD_BYTES = 2 ** 24 - RECORD_ALIGNMENT;
/** A decoded payload is never larger than a record may be: decoders allocate raw lengths. */
export const MAX_RAW_BYTES = MAX_RECORD_BYTES;
/** Node ids are safe integers: the high word stays below 2^21. */
const NODE_HIGH_LIMIT = 2 ** 21;
const WORD = 2 ** 32;

export enum RecordKind {
  FileHeader = 1,
  Leaf = 2,
  /** A leaf an out-of-order merge wrote: payload = 8-byte lineage (leaf-file.ts), then the leaf. */
  MergedLeaf = 3,
  /** A closed index node's copy in a node file (node-file.ts). */
  IndexNode = 4,
}

export interface RecordHeader {
  readonly kind: RecordKind;
  readonly flags: number;
  readonly nodeId: number;
  readonly storedLength: number;
  readonly rawLength: number;
  /** Where the record starts in its file. */
  readonly offset: number;
  readonly totalLength: number;
  readonly payloadCrc: number;
  readonly headerCrc: number;
}

export interface FileRecord {
  readonly header: RecordHeader;
  readonly payload: Uint8Array;
}

/** Where a scan stopped, and why if it did not reach the end (forward) or the start (backward). */
export interface ScanEnd {
  /** Forward: the end of the intact prefix. Backward: the start of the intact suffix. */
  end: number;
  corruption?: CorruptionError | undefined;
}

/** Bytes of a record with a payload of `payloadLength` bytes. */
export function recordLength(payloadLength: number): number {
  return RECORD_HEADER_BYTES + alignUp(payloadLength) + RECORD_TRAILER_BYTES;
}

/** REQUIRES nothing; MisuseError or BoundsError for arguments no reader would accept back. */
export function encodeRecord(kind: RecordKind, flags: number, nodeId: number, payload: Uint8Array, rawLength: number): Uint8Array {
  checkEncodable(kind, flags, nodeId, payload.length, rawLength);
  const total = recordLength(payload.length);
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);
  view.setUint32(MAGIC_OFFSET, RECORD_MAGIC, true);
  view.setUint16(VERSION_OFFSET, RECORD_VERSION, true);
  view.setUint8(KIND_OFFSET, kind);
  view.setUint8(FLAGS_OFFSET, flags);
  view.setUint32(NODE_LOW_OFFSET, nodeId % WORD, true);
  view.setUint32(NODE_HIGH_OFFSET, Math.floor(nodeId / WORD), true);
  view.setUint32(STORED_LENGTH_OFFSET, payload.length, true);
  view.setUint32(RAW_LENGTH_OFFSET, rawLength, true);
  view.setUint32(PAYLOAD_CRC_OFFSET, crc32(payload), true);
  const headerCrc = crc32(bytes.subarray(0, HEADER_CRC_OFFSET));
  view.setUint32(HEADER_CRC_OFFSET, headerCrc, true);
  bytes.set(payload, RECORD_HEADER_BYTES);
  const trailerAt = total - RECORD_TRAILER_BYTES;
  view.setUint32(trailerAt + TRAILER_LENGTH_OFFSET, total, true);
  view.setUint32(trailerAt + TRAILER_CRC_OFFSET, trailerCrc(total, headerCrc), true);
  return bytes;
}

/**
 * Reads and verifies the record at `offset`; CorruptionError naming file and offset if it is not
 * intact. With `knownLength` (from a translation slot) it is read with one read instead of two,
 * and a record of any other length is corruption. BoundsError only for a malformed `offset`.
 */
export function readRecordAt(file: SsdFile, offset: number, knownLength?: number): FileRecord {
  checkIndex(offset, 'record offset');
  if (offset % RECORD_ALIGNMENT !== 0) corrupt(file, offset, `a record must start at a multiple of ${RECORD_ALIGNMENT}`);
  if (knownLength !== undefined && !isRecordLength(knownLength)) corrupt(file, offset, `no record is ${knownLength} bytes long`);
  const first = readWithin(file, offset, knownLength ?? RECORD_HEADER_BYTES);
  const header = parseHeader(file, offset, first.subarray(0, RECORD_HEADER_BYTES));
  if (knownLength !== undefined && header.totalLength !== knownLength) corrupt(file, offset, `the record is ${header.totalLength} bytes, ${knownLength} were expected`);
  const body = knownLength === undefined ? readWithin(file, offset + RECORD_HEADER_BYTES, header.totalLength - RECORD_HEADER_BYTES) : first.subarray(RECORD_HEADER_BYTES);
  return { header, payload: verifiedPayload(file, header, body) };
}

/**
 * Yields every intact record from `from` on, in file order. Stops at the end of the file or at
 * the first record that is torn or corrupt; `state.end` is the end of the records yielded so far
 * (at the stop: of the intact prefix) and `state.corruption` what stopped it before the end of
 * the file. Never throws on bad bytes; IoError does propagate.
 */
export function* scanForward(file: SsdFile, from: number, state: ScanEnd = { end: from }): Generator<FileRecord, void, undefined> {
  state.end = from;
  state.corruption = undefined;
  while (state.end < file.size) {
    const record = verifiedOrNull(state, () => readRecordAt(file, state.end));
    if (record === null) return;
    state.end += record.header.totalLength;
    yield record;
  }
}

/**
 * Yields intact records from the end of the file backwards, by their trailers, stopping at the
 * start of the file or at the first one that is not intact; `state` as for scanForward, with
 * `state.end` the start of the records yielded so far.
 */
export function* scanBackward(file: SsdFile, state: ScanEnd = { end: 0 }): Generator<FileRecord, void, undefined> {
  state.end = file.size;
  state.corruption = undefined;
  while (state.end > 0) {
    const record = verifiedOrNull(state, () => readRecordEndingAt(file, state.end));
    if (record === null) return;
    state.end = record.header.offset;
    yield record;
  }
}

function checkEncodable(kind: RecordKind, flags: number, nodeId: number, storedLength: number, rawLength: number): void {
  if (!isRecordKind(kind)) throw new MisuseError('INVALID_ARGUMENT', `unknown record kind ${String(kind)}`);
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xff) throw new BoundsError(`record flags must be a byte, got ${String(flags)}`);
  checkIndex(nodeId, 'node id');
  if (recordLength(storedLength) > MAX_RECORD_BYTES) throw new BoundsError(`a payload of ${storedLength} bytes exceeds the record limit of ${MAX_RECORD_BYTES} bytes`);
  if (checkIndex(rawLength, 'raw length') > MAX_RAW_BYTES) throw new BoundsError(`raw length ${rawLength} exceeds the limit of ${MAX_RAW_BYTES} bytes`);
}

/** The record verified by `read`, or null with the corruption noted in `state`. */
function verifiedOrNull(state: ScanEnd, read: () => FileRecord): FileRecord | null {
  try {
    return read();
  } catch (err) {
    if (!(err instanceof CorruptionError)) throw err;
    state.corruption = err;
    return null;
  }
}

/** The record whose trailer ends at `end`, verified with the length the trailer claims. */
function readRecordEndingAt(file: SsdFile, end: number): FileRecord {
  if (end % RECORD_ALIGNMENT !== 0 || end < MIN_RECORD_BYTES) corrupt(file, end, `${end} is not the end of a record`);
  const trailerAt = end - RECORD_TRAILER_BYTES;
  const trailer = readWithin(file, trailerAt, RECORD_TRAILER_BYTES);
  const total = new DataView(trailer.buffer, trailer.byteOffset, trailer.byteLength).getUint32(TRAILER_LENGTH_OFFSET, true);
  if (total > end || !isRecordLength(total)) corrupt(file, trailerAt + TRAILER_LENGTH_OFFSET, `the trailer claims a record of ${total} bytes`);
  return readRecordAt(file, end - total, total);
}

/** Bytes a record claims to have; a file too short for them holds a torn record. */
function readWithin(file: SsdFile, offset: number, length: number): Uint8Array {
  try {
    return file.read(offset, length);
  } catch (err) {
    if (err instanceof BoundsError) corrupt(file, offset, `truncated record: ${length} bytes from ${offset} pass the end of the file (${file.size} bytes)`);
    throw err;
  }
}

function parseHeader(file: SsdFile, offset: number, bytes: Uint8Array): RecordHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u32 = (fieldOffset: number) => view.getUint32(fieldOffset, true);
  if (u32(MAGIC_OFFSET) !== RECORD_MAGIC) corrupt(file, offset, 'bad record magic');
  const headerCrc = u32(HEADER_CRC_OFFSET);
  if (headerCrc !== crc32(bytes.subarray(0, HEADER_CRC_OFFSET))) corrupt(file, offset + HEADER_CRC_OFFSET, 'record header checksum mismatch');
  const version = view.getUint16(VERSION_OFFSET, true);
  if (version !== RECORD_VERSION) corrupt(file, offset + VERSION_OFFSET, `record format version ${version}, this reader knows ${RECORD_VERSION}`);
  const kind = view.getUint8(KIND_OFFSET);
  if (!isRecordKind(kind)) corrupt(file, offset + KIND_OFFSET, `unknown record kind ${kind}`);
  if (u32(NODE_HIGH_OFFSET) >= NODE_HIGH_LIMIT) corrupt(file, offset + NODE_HIGH_OFFSET, 'node id is not a safe integer');
  const storedLength = u32(STORED_LENGTH_OFFSET);
  const totalLength = recordLength(storedLength);
  if (totalLength > MAX_RECORD_BYTES) corrupt(file, offset + STORED_LENGTH_OFFSET, `a record of ${totalLength} bytes exceeds the limit of ${MAX_RECORD_BYTES}`);
  const rawLength = u32(RAW_LENGTH_OFFSET);
  if (rawLength > MAX_RAW_BYTES) corrupt(file, offset + RAW_LENGTH_OFFSET, `raw length ${rawLength} exceeds the limit of ${MAX_RAW_BYTES}`);
  return {
    kind,
    flags: view.getUint8(FLAGS_OFFSET),
    nodeId: u32(NODE_HIGH_OFFSET) * WORD + u32(NODE_LOW_OFFSET),
    storedLength,
    rawLength,
    offset,
    totalLength,
    payloadCrc: u32(PAYLOAD_CRC_OFFSET),
    headerCrc,
  };
}

/** The payload of `body` (the record's bytes after its header) once trailer, CRC and padding verify. */
function verifiedPayload(file: SsdFile, header: RecordHeader, body: Uint8Array): Uint8Array {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const at = (bodyOffset: number) => header.offset + RECORD_HEADER_BYTES + bodyOffset;
  const trailerAt = body.length - RECORD_TRAILER_BYTES;
  if (view.getUint32(trailerAt + TRAILER_LENGTH_OFFSET, true) !== header.totalLength) corrupt(file, at(trailerAt + TRAILER_LENGTH_OFFSET), 'trailer length does not match the header');
  if (view.getUint32(trailerAt + TRAILER_CRC_OFFSET, true) !== trailerCrc(header.totalLength, header.headerCrc)) corrupt(file, at(trailerAt + TRAILER_CRC_OFFSET), 'trailer checksum mismatch');
  const payload = body.subarray(0, header.storedLength);
  if (crc32(payload) !== header.payloadCrc) corrupt(file, at(0), 'payload checksum mismatch');
  // No checksum covers the padding; it must be zero, so that no flipped bit goes unnoticed.
  const padding = body.subarray(header.storedLength, trailerAt);
  const nonZero = padding.findIndex((byte) => byte !== 0);
  if (nonZero >= 0) corrupt(file, at(header.storedLength + nonZero), 'non-zero padding');
  return payload;
}

/**
 * One little-endian word, reused: a fresh array and DataView per word cost 1-25 us per call at
 * open, and ~100 us on one of the calls in every run of the instant-recovery probe.
 */
const crcWord = new Uint8Array(4);
const crcWordView = new DataView(crcWord.buffer);

/** CRC-32 of (u32 total length, u32 header CRC), chained so that nothing is allocated. */
function trailerCrc(totalLength: number, headerCrc: number): number {
  const lengthCrc = crc32(u32le(totalLength));
  return crc32(u32le(headerCrc), lengthCrc);
}

/** The shared word holding `value`: read it before the next call. */
function u32le(value: number): Uint8Array {
  crcWordView.setUint32(0, value, true);
  return crcWord;
}

function isRecordKind(kind: number): kind is RecordKind {
  return kind === RecordKind.FileHeader || kind === RecordKind.Leaf || kind === RecordKind.MergedLeaf || kind === RecordKind.IndexNode;
}

function isRecordLength(length: number): boolean {
  return Number.isSafeInteger(length) && length >= MIN_RECORD_BYTES && length <= MAX_RECORD_BYTES && length % RECORD_ALIGNMENT === 0;
}

function alignUp(length: number): number {
  return Math.ceil(length / RECORD_ALIGNMENT) * RECORD_ALIGNMENT;
}

function corrupt(file: SsdFile, offset: number, reason: string): never {
  throw new CorruptionError(file.path, offset, reason);
}
