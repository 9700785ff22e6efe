// Self-describing records in an append-only SSD file (LevelDB's log format is the model): a
// record names its kind and node, carries checksums for its header and payload, and ends with a
// trailer, so the file can be scanned forward from any record start, backward from its end,
// and a torn or damaged record is detected rather than misread.
//
// Record (all integers little-endian; records start at multiples of 8):
//   0   u32  magic 'CTLR' (0x524c5443)
//   4   u16  format version (1)
//   6   u8   kind (RecordKind)
//   7   u8   flags (reserved for the codec)
//   8   u32  node id, low 32 bits
//   12  u32  node id, high bits (ids stay below 2^53)
//   16  u32  payload length as stored (compressed)
//   20  u32  raw length (before compression)
//   24  u32  CRC-32 of the payload
//   28  u32  CRC-32 of bytes [0, 28)
//   32  payload, then zero padding to a multiple of 8
//   end-8  u32  total record length (header + payload + padding + trailer)
//   end-4  u32  CRC-32 of the 8 bytes (total length, header CRC): ties the trailer to its header
// Why 8-byte alignment: a backward scan reads trailers at computed offsets, and aligned records
// keep a torn sector from making garbage look like the start of a record.

import { crc32 } from 'node:zlib';
import { BoundsError, CorruptionError } from '../errors.js';
import type { SsdFile } from './file.js';

export const RECORD_MAGIC = 0x524c5443;
export const RECORD_VERSION = 1;
export const RECORD_HEADER_BYTES = 32;
export const RECORD_TRAILER_BYTES = 8;
/** No record is larger: a corrupt length can never make a reader allocate more. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

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

export enum RecordKind {
  FileHeader = 1,
  Leaf = 2,
}

export interface RecordHeader {
  readonly kind: number;
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

export function recordLength(payloadLength: number): number {
  return RECORD_HEADER_BYTES + Math.ceil(payloadLength / 8) * 8 + RECORD_TRAILER_BYTES;
}

export function encodeRecord(kind: RecordKind, flags: number, nodeId: number, payload: Uint8Array, rawLength: number): Uint8Array {
  const total = recordLength(payload.length);
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);
  view.setUint32(MAGIC_OFFSET, RECORD_MAGIC, true);
  view.setUint16(VERSION_OFFSET, RECORD_VERSION, true);
  view.setUint8(KIND_OFFSET, kind);
  view.setUint8(FLAGS_OFFSET, flags);
  view.setUint32(NODE_LOW_OFFSET, nodeId % 2 ** 32, true);
  view.setUint32(NODE_HIGH_OFFSET, Math.floor(nodeId / 2 ** 32), true);
  view.setUint32(STORED_LENGTH_OFFSET, payload.length, true);
  view.setUint32(RAW_LENGTH_OFFSET, rawLength, true);
  view.setUint32(PAYLOAD_CRC_OFFSET, crc32(payload), true);
  const headerCrc = crc32(bytes.subarray(0, HEADER_CRC_OFFSET));
  view.setUint32(HEADER_CRC_OFFSET, headerCrc, true);
  bytes.set(payload, RECORD_HEADER_BYTES);
  view.setUint32(total - 8, total, true);
  view.setUint32(total - 4, trailerCrc(total, headerCrc), true);
  return bytes;
}

/**
 * Reads and verifies the record at `offset`; throws CorruptionError naming file and offset.
 * With `knownLength` (from a translation slot) the record is read with one read instead of two.
 */
export function readRecordAt(file: SsdFile, offset: number, knownLength?: number): FileRecord {
  const fail = (at: number, reason: string): never => {
    throw new CorruptionError(file.path, at, reason);
  };
  const whole = knownLength === undefined || knownLength < RECORD_HEADER_BYTES || knownLength > MAX_RECORD_BYTES ? undefined : readWithin(file, offset, knownLength);
  const header = parseHeader(file.path, offset, whole?.subarray(0, RECORD_HEADER_BYTES) ?? readWithin(file, offset, RECORD_HEADER_BYTES));
  if (whole !== undefined && header.totalLength !== whole.length) fail(offset, `record is ${header.totalLength} bytes, ${whole.length} were expected`);
  const rest = whole?.subarray(RECORD_HEADER_BYTES) ?? readWithin(file, offset + RECORD_HEADER_BYTES, header.totalLength - RECORD_HEADER_BYTES);
  const payload = rest.subarray(0, header.storedLength);
  const view = new DataView(rest.buffer, rest.byteOffset, rest.byteLength);
  const trailerAt = rest.length - RECORD_TRAILER_BYTES;
  if (view.getUint32(trailerAt, true) !== header.totalLength) fail(offset + header.totalLength - 8, 'trailer length does not match the header');
  if (view.getUint32(trailerAt + 4, true) !== trailerCrc(header.totalLength, header.headerCrc)) fail(offset + header.totalLength - 4, 'trailer checksum mismatch');
  if (crc32(payload) !== header.payloadCrc) fail(offset + RECORD_HEADER_BYTES, 'payload checksum mismatch');
  // Padding is covered by no checksum; it must be zero, so that no flipped bit goes unnoticed.
  for (let at = header.storedLength; at < trailerAt; at++) if (rest[at] !== 0) fail(offset + RECORD_HEADER_BYTES + at, 'non-zero padding');
  return { header, payload };
}

/** Where a forward scan stopped, and why if not at the end of the file. */
export interface ScanEnd {
  end: number;
  corruption?: CorruptionError;
}

/**
 * Yields every intact record from `from` on, in file order. Stops at the end of the file or at
 * the first record that is torn or corrupt; `state.end` is then the end of the intact prefix and
 * `state.corruption` says what was wrong. Never throws on bad bytes (I/O errors do propagate).
 */
export function* scanForward(file: SsdFile, from: number, state: ScanEnd = { end: from }): Generator<FileRecord, void, undefined> {
  state.end = from;
  while (state.end < file.size) {
    let record: FileRecord;
    try {
      record = readRecordAt(file, state.end);
    } catch (err) {
      if (!(err instanceof CorruptionError)) throw err;
      state.corruption = err;
      return;
    }
    state.end += record.header.totalLength;
    yield record;
  }
}

/** Yields intact records from the end of the file backwards, stopping at the first bad one. */
export function* scanBackward(file: SsdFile, state: ScanEnd = { end: file.size }): Generator<FileRecord, void, undefined> {
  let end = file.size;
  while (end >= RECORD_HEADER_BYTES + RECORD_TRAILER_BYTES) {
    const trailer = new DataView(file.read(end - RECORD_TRAILER_BYTES, RECORD_TRAILER_BYTES).buffer);
    const total = trailer.getUint32(0, true);
    if (total < RECORD_HEADER_BYTES + RECORD_TRAILER_BYTES || total > end || total % 8 !== 0) {
      state.corruption = new CorruptionError(file.path, end - 8, `trailer claims a record of ${total} bytes`);
      break;
    }
    let record: FileRecord;
    try {
      record = readRecordAt(file, end - total);
    } catch (err) {
      if (!(err instanceof CorruptionError)) throw err;
      state.corruption = err;
      break;
    }
    end -= total;
    yield record;
  }
  state.end = end;
}

/** Reads bytes that a record claims to have; a file too short for them is a torn record. */
function readWithin(file: SsdFile, offset: number, length: number): Uint8Array {
  if (offset % 8 !== 0) throw new CorruptionError(file.path, offset, 'a record must start at a multiple of 8');
  try {
    return file.read(offset, length);
  } catch (err) {
    if (err instanceof BoundsError) throw new CorruptionError(file.path, offset, `truncated record: ${length} bytes from ${offset} pass the end of the file`);
    throw err;
  }
}

function parseHeader(path: string, offset: number, bytes: Uint8Array): RecordHeader {
  const fail = (at: number, reason: string): never => {
    throw new CorruptionError(path, at, reason);
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(MAGIC_OFFSET, true) !== RECORD_MAGIC) fail(offset, 'bad record magic');
  const headerCrc = view.getUint32(HEADER_CRC_OFFSET, true);
  if (headerCrc !== crc32(bytes.subarray(0, HEADER_CRC_OFFSET))) fail(offset, 'record header checksum mismatch');
  if (view.getUint16(VERSION_OFFSET, true) !== RECORD_VERSION) fail(offset + VERSION_OFFSET, `record format version ${view.getUint16(VERSION_OFFSET, true)}`);
  const storedLength = view.getUint32(STORED_LENGTH_OFFSET, true);
  const totalLength = recordLength(storedLength);
  if (totalLength > MAX_RECORD_BYTES) fail(offset, `record of ${totalLength} bytes exceeds the limit`);
  return {
    kind: view.getUint8(KIND_OFFSET),
    flags: view.getUint8(FLAGS_OFFSET),
    nodeId: view.getUint32(NODE_HIGH_OFFSET, true) * 2 ** 32 + view.getUint32(NODE_LOW_OFFSET, true),
    storedLength,
    rawLength: view.getUint32(RAW_LENGTH_OFFSET, true),
    offset,
    totalLength,
    payloadCrc: view.getUint32(PAYLOAD_CRC_OFFSET, true),
    headerCrc,
  };
}

function trailerCrc(total: number, headerCrc: number): number {
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, total, true);
  view.setUint32(4, headerCrc, true);
  return crc32(bytes);
}
