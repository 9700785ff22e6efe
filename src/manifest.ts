// The MANIFEST: the store's catalog on SSD - its id, where its PMem files live, and every stream
// with its schema and geometry. It changes only when a store or a stream is created, and is
// replaced atomically (temporary file, fsync, rename, fsync of the directory), so a crash leaves
// the old or the new catalog. Creating a stream writes the stream's files first and the MANIFEST
// last: files of a stream the MANIFEST does not name are leftovers and are recreated.
//
//   0   u32  magic 'CTMF' (0x464d5443)
//   4   u16  format version (1)
//   6   u16  reserved
//   8   u32  length n of the body
//   12  u32  CRC-32 of the body
//   16  n    body: UTF-8 JSON { storeId: hex, pmemDir, streams: [{ id, name, schema: base64, nodeSize, ringPages, spare, nodeStorage? }] }
//            (nodeStorage absent: 'pmem', the layout of stores made before it existed)

import { crc32 } from 'node:zlib';
import { CorruptionError } from './errors.js';
import { strictUtf8Decoder, utf8Encoder } from './util/utf8.js';
import type { NodeStorageKind } from './tree/node-storage.js';

export const MANIFEST_NAME = 'MANIFEST';
const MAGIC = 0x464d5443;
const VERSION = 1;
const HEADER_BYTES = 16;
const MAX_BODY_BYTES = 16 * 1024 * 1024;

export interface StreamEntry {
  readonly id: number;
  readonly name: string;
  /** serializeSchema() bytes, base64. */
  readonly schema: string;
  readonly nodeSize: number;
  readonly ringPages: number;
  readonly spare: number;
  /** Where queries read closed index nodes (tree/node-storage.ts); absent in older manifests: 'pmem'. */
  readonly nodeStorage?: NodeStorageKind;
}

export interface Manifest {
  readonly storeId: Uint8Array;
  readonly pmemDir: string;
  readonly streams: readonly StreamEntry[];
}

export function encodeManifest(manifest: Manifest): Uint8Array {
  const body = utf8Encoder.encode(
    JSON.stringify({ storeId: Buffer.from(manifest.storeId).toString('hex'), pmemDir: manifest.pmemDir, streams: manifest.streams }),
  );
  const bytes = new Uint8Array(HEADER_BYTES + body.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint16(4, VERSION, true);
  view.setUint32(8, body.length, true);
  view.setUint32(12, crc32(body), true);
  bytes.set(body, HEADER_BYTES);
  return bytes;
}

export function decodeManifest(bytes: Uint8Array, path: string): Manifest {
  const fail = (offset: number, reason: string): never => {
    throw new CorruptionError(path, offset, `${reason}; not a chronotier MANIFEST, or a damaged one`);
  };
  if (bytes.length < HEADER_BYTES) fail(0, `file is ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) fail(0, 'bad magic');
  if (view.getUint16(4, true) !== VERSION) fail(4, `format version ${view.getUint16(4, true)}, expected ${VERSION}`);
  const length = view.getUint32(8, true);
  if (length > MAX_BODY_BYTES || HEADER_BYTES + length !== bytes.length) fail(8, `body length ${length} does not match the file`);
  const body = bytes.subarray(HEADER_BYTES);
  if (crc32(body) !== view.getUint32(12, true)) fail(12, 'checksum mismatch');
  try {
    const parsed = JSON.parse(strictUtf8Decoder.decode(body)) as { storeId: string; pmemDir: string; streams: StreamEntry[] };
    const storeId = new Uint8Array(Buffer.from(parsed.storeId, 'hex'));
    if (storeId.length !== 16 || typeof parsed.pmemDir !== 'string' || !Array.isArray(parsed.streams)) fail(HEADER_BYTES, 'malformed body');
    return { storeId, pmemDir: parsed.pmemDir, streams: parsed.streams };
  } catch (err) {
    if (err instanceof CorruptionError) throw err;
    return fail(HEADER_BYTES, `unreadable body (${(err as Error).message})`);
  }
}
