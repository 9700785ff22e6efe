import { crc32 } from 'node:zlib';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { BoundsError, CorruptionError, IoError, MisuseError } from '../src/errors.js';
import { FaultyFile } from '../src/ssd/faulty-file.js';
import { NodeSsdFile, type SsdFile } from '../src/ssd/file.js';
import {
  MAX_RECORD_BYTES,
  MIN_RECORD_BYTES,
  RECORD_HEADER_BYTES,
  RecordKind,
  encodeRecord,
  readRecordAt,
  recordLength,
  scanBackward,
  scanForward,
  type FileRecord,
  type ScanEnd,
} from '../src/ssd/record.js';

const HEADER_CRC_AT = 28;
const STORED_LENGTH_AT = 16;
const payloads = fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 12 });
const leaf = (id: number, payload: Uint8Array) => encodeRecord(RecordKind.Leaf, id % 256, id, payload, payload.length * 2);

function fileOf(records: Uint8Array[], path = 'leaves'): { file: FaultyFile; offsets: number[] } {
  const file = new FaultyFile(path);
  const offsets = records.map((record) => file.append(record));
  return { file, offsets };
}

/** `bytes` with the header field at `at` set to `value` and the header CRC made valid again. */
function forgedHeader(bytes: Uint8Array, at: number, value: number, width: 1 | 2 | 4 = 4): Uint8Array {
  const copy = bytes.slice();
  const view = new DataView(copy.buffer);
  if (width === 1) view.setUint8(at, value);
  if (width === 2) view.setUint16(at, value, true);
  if (width === 4) view.setUint32(at, value, true);
  view.setUint32(HEADER_CRC_AT, crc32(copy.subarray(0, HEADER_CRC_AT)), true);
  return copy;
}

/** An SsdFile over `inner` that remembers the largest buffer a read returned (allocated). */
function measured(inner: SsdFile): SsdFile & { largestRead: number } {
  const file = {
    largestRead: 0,
    get path() {
      return inner.path;
    },
    get size() {
      return inner.size;
    },
    append: (data: Uint8Array) => inner.append(data),
    write: (offset: number, data: Uint8Array) => inner.write(offset, data),
    read(offset: number, length: number) {
      const bytes = inner.read(offset, length);
      file.largestRead = Math.max(file.largestRead, bytes.length);
      return bytes;
    },
    readInto: (offset: number, target: Uint8Array) => inner.readInto(offset, target),
    sync: () => inner.sync(),
    truncate: (size: number) => inner.truncate(size),
    close: () => inner.close(),
  };
  return file;
}

function expectCorruption(read: () => unknown, file: string, offset?: number): CorruptionError {
  try {
    read();
  } catch (err) {
    expect(err).toBeInstanceOf(CorruptionError);
    expect((err as CorruptionError).file).toBe(file);
    if (offset !== undefined) expect((err as CorruptionError).offset).toBe(offset);
    return err as CorruptionError;
  }
  throw new Error('expected a CorruptionError');
}

const idsOf = (records: FileRecord[]) => records.map((r) => r.header.nodeId);

/** The first index where `damaged` differs from `original`, or its length if it is a prefix of it. */
function firstDifference(original: Uint8Array, damaged: Uint8Array): number {
  const at = damaged.findIndex((byte, i) => byte !== original[i]);
  return at === -1 ? damaged.length : at;
}

const dir = mkdtempSync(join(tmpdir(), 'chronotier-record-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('record encoding', () => {
  it('round-trips kind, flags, node id, lengths and payload, aligned to 8 bytes', () => {
    const payload = new Uint8Array([1, 2, 3, 4, 5]);
    const { file } = fileOf([encodeRecord(RecordKind.Leaf, 7, Number.MAX_SAFE_INTEGER, payload, 99)]);
    const { header, payload: read } = readRecordAt(file, 0);
    expect(header).toMatchObject({ kind: RecordKind.Leaf, flags: 7, nodeId: Number.MAX_SAFE_INTEGER, storedLength: 5, rawLength: 99, offset: 0, totalLength: 48 });
    expect(read).toEqual(payload);
    expect(file.size).toBe(recordLength(5));
  });

  it('sizes records as header + payload padded to 8 + trailer', () => {
    expect([0, 1, 7, 8, 9].map(recordLength)).toEqual([40, 48, 48, 48, 56]);
    expect(encodeRecord(RecordKind.FileHeader, 0, 0, new Uint8Array(0), 0).length).toBe(MIN_RECORD_BYTES);
  });

  it('refuses arguments that no reader would accept back', () => {
    const empty = new Uint8Array(0);
    expect(() => encodeRecord(99 as RecordKind, 0, 0, empty, 0)).toThrow(MisuseError);
    expect(() => encodeRecord(RecordKind.Leaf, 256, 0, empty, 0)).toThrow(BoundsError);
    for (const id of [-1, 1.5, 2 ** 53, Number.NaN]) expect(() => encodeRecord(RecordKind.Leaf, 0, id, empty, 0)).toThrow(BoundsError);
    expect(() => encodeRecord(RecordKind.Leaf, 0, 0, empty, MAX_RECORD_BYTES + 1)).toThrow(BoundsError);
    expect(() => encodeRecord(RecordKind.Leaf, 0, 0, new Uint8Array(MAX_RECORD_BYTES - MIN_RECORD_BYTES + 1), 0)).toThrow(BoundsError);
    expect(encodeRecord(RecordKind.Leaf, 0, 0, new Uint8Array(MAX_RECORD_BYTES - MIN_RECORD_BYTES), 0).length).toBe(MAX_RECORD_BYTES);
  });
});

describe('readRecordAt', () => {
  it('detects every single flipped bit of a record, naming the file and an offset inside it', () => {
    const records = [leaf(1, new Uint8Array([9, 8, 7])), leaf(2, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]))];
    const { file, offsets } = fileOf(records);
    const second = offsets[1]!;
    const total = records[1]!.length;
    for (let bit = 0; bit < total * 8; bit++) {
      const bytes = file.contents();
      const at = second + (bit >> 3);
      bytes[at] = bytes[at]! ^ (1 << (bit & 7));
      const err = expectCorruption(() => readRecordAt(FaultyFile.fromImage('flipped', bytes), second), 'flipped');
      expect(err.offset).toBeGreaterThanOrEqual(second);
      expect(err.offset).toBeLessThan(second + total);
      expect(readRecordAt(FaultyFile.fromImage('flipped', bytes), 0).header.nodeId).toBe(1);
    }
  });

  it('names the field that failed', () => {
    const { file, offsets } = fileOf([leaf(0, new Uint8Array(10)), leaf(1, new Uint8Array(10))]);
    const bytes = file.contents();
    bytes[offsets[1]! + RECORD_HEADER_BYTES + 3] = 0xff;
    expectCorruption(() => readRecordAt(FaultyFile.fromImage('leaves', bytes), offsets[1]!), 'leaves', offsets[1]! + RECORD_HEADER_BYTES);
    bytes[offsets[1]!] = 0;
    expect(expectCorruption(() => readRecordAt(FaultyFile.fromImage('leaves', bytes), offsets[1]!), 'leaves', offsets[1]!).reason).toMatch(/magic/);
  });

  it('refuses non-zero padding, which no checksum covers', () => {
    const record = leaf(0, new Uint8Array([1, 2, 3]));
    record[RECORD_HEADER_BYTES + 5] = 1;
    expect(expectCorruption(() => readRecordAt(FaultyFile.fromImage('p', record), 0), 'p', RECORD_HEADER_BYTES + 5).reason).toMatch(/padding/);
  });

  it('refuses a checksummed header with a wild length without reading or allocating it', () => {
    const record = leaf(0, new Uint8Array(16));
    for (const [length, reason] of [
      [2 ** 31, /exceeds the limit/],
      [2 ** 32 - 1, /exceeds the limit/],
      [MAX_RECORD_BYTES - 100, /truncated/],
    ] as const) {
      const file = measured(FaultyFile.fromImage('wild', forgedHeader(record, STORED_LENGTH_AT, length)));
      expect(expectCorruption(() => readRecordAt(file, 0), 'wild').reason).toMatch(reason);
      expect(file.largestRead).toBeLessThanOrEqual(record.length);
    }
  });

  it('refuses a checksummed header of another version, kind or an unsafe node id', () => {
    const record = leaf(0, new Uint8Array(4));
    expect(expectCorruption(() => readRecordAt(FaultyFile.fromImage('v', forgedHeader(record, 4, 2, 2)), 0), 'v', 4).reason).toMatch(/version 2/);
    expect(expectCorruption(() => readRecordAt(FaultyFile.fromImage('k', forgedHeader(record, 6, 9, 1)), 0), 'k', 6).reason).toMatch(/kind 9/);
    expect(expectCorruption(() => readRecordAt(FaultyFile.fromImage('n', forgedHeader(record, 12, 2 ** 21)), 0), 'n', 12).reason).toMatch(/safe integer/);
  });

  it('checks a known length against the record, and reads it in one read', () => {
    const record = leaf(5, new Uint8Array(20));
    const file = measured(FaultyFile.fromImage('k', record));
    expect(readRecordAt(file, 0, record.length).header.nodeId).toBe(5);
    expect(expectCorruption(() => readRecordAt(file, 0, record.length - 8), 'k', 0).reason).toMatch(/expected/);
    expectCorruption(() => readRecordAt(file, 0, record.length + 8), 'k');
    for (const length of [0, 12, record.length + 1, MAX_RECORD_BYTES + 8, 2 ** 40]) expectCorruption(() => readRecordAt(file, 0, length), 'k', 0);
    expect(file.largestRead).toBeLessThanOrEqual(record.length);
  });

  it('treats a misaligned or out-of-file offset as corruption, a malformed one as misuse', () => {
    const { file } = fileOf([leaf(0, new Uint8Array(8))]);
    expectCorruption(() => readRecordAt(file, 4), 'leaves', 4);
    expectCorruption(() => readRecordAt(file, 1024), 'leaves', 1024);
    expect(() => readRecordAt(file, -8)).toThrow(BoundsError);
    expect(() => readRecordAt(file, 0.5)).toThrow(BoundsError);
  });

  it('lets I/O errors through: an unreadable record is not a corrupt one', () => {
    const { file } = fileOf([leaf(0, new Uint8Array(8)), leaf(1, new Uint8Array(8))]);
    file.failReadAt(2);
    expect(() => [...scanForward(file, 0)]).toThrow(IoError);
    file.failReadAt(1, 'ESHORTREAD');
    expect(() => [...scanBackward(file)]).toThrow(expect.objectContaining({ code: 'ESHORTREAD' }));
  });
});

describe('scans', () => {
  it('scan forward and backward over a real file', () => {
    const file = NodeSsdFile.open(join(dir, 'leaves'), { create: true });
    const records = [encodeRecord(RecordKind.FileHeader, 0, 0, new Uint8Array(20).fill(3), 20), leaf(0, new Uint8Array(100).fill(1)), leaf(1, new Uint8Array(3))];
    records.forEach((r) => file.append(r));
    file.sync();
    expect([...scanForward(file, 0)].map((r) => r.header.kind)).toEqual([RecordKind.FileHeader, RecordKind.Leaf, RecordKind.Leaf]);
    expect([...scanBackward(file)].map((r) => r.header.offset)).toEqual([records[0]!.length + records[1]!.length, records[0]!.length, 0]);
    file.close();
  });

  it('property: a forward scan of a truncated or bit-flipped file yields exactly the intact prefix, never throwing', () => {
    fc.assert(
      fc.property(payloads, fc.nat(), fc.array(fc.nat(), { maxLength: 3 }), (contents, cutAt, flips) => {
        const records = contents.map((p, i) => leaf(i, p));
        const { file, offsets } = fileOf(records);
        const original = file.contents();
        const bytes = original.slice(0, cutAt % (file.size + 1));
        for (const f of bytes.length === 0 ? [] : flips) bytes[f % bytes.length] = bytes[f % bytes.length]! ^ (1 << (f % 8));
        const firstDamage = firstDifference(original, bytes);
        const intact = records.filter((r, i) => offsets[i]! + r.length <= firstDamage).length;
        const state: ScanEnd = { end: -1 };
        const scanned = [...scanForward(FaultyFile.fromImage('leaves', bytes), 0, state)];
        expect(idsOf(scanned)).toEqual(contents.slice(0, intact).map((_, i) => i));
        scanned.forEach((r, i) => {
          expect(r.payload).toEqual(contents[i]);
          expect(r.header).toMatchObject({ offset: offsets[i], totalLength: records[i]!.length, flags: i % 256, rawLength: contents[i]!.length * 2 });
        });
        expect(state.end).toBe(intact === 0 ? 0 : offsets[intact - 1]! + records[intact - 1]!.length);
        expect(state.corruption === undefined).toBe(state.end === bytes.length);
        if (state.corruption !== undefined) expect(state.corruption.offset).toBeGreaterThanOrEqual(state.end);
      }),
      { numRuns: 400 },
    );
  });

  it('property: a backward scan yields every record in reverse, and from damage on only the intact suffix', () => {
    fc.assert(
      fc.property(payloads, fc.option(fc.nat(), { nil: undefined }), (contents, flipAt) => {
        const records = contents.map((p, i) => leaf(i, p));
        const { file, offsets } = fileOf(records);
        const bytes = file.contents();
        const flip = flipAt === undefined ? undefined : flipAt % bytes.length;
        if (flip !== undefined) bytes[flip] = bytes[flip]! ^ 0x10;
        const damaged = flip === undefined ? -1 : offsets.filter((o) => o <= flip).length - 1;
        const state: ScanEnd = { end: -1 };
        const scanned = [...scanBackward(FaultyFile.fromImage('leaves', bytes), state)];
        expect(idsOf(scanned)).toEqual(contents.map((_, i) => i).slice(damaged + 1).reverse());
        scanned.forEach((r) => expect(r.payload).toEqual(contents[r.header.nodeId]));
        expect(state.end).toBe(damaged === -1 ? 0 : offsets[damaged]! + records[damaged]!.length);
        expect(state.corruption === undefined).toBe(damaged === -1);
      }),
      { numRuns: 300 },
    );
  });

  it('keeps state.end at the records yielded so far when the consumer stops early', () => {
    const records = [leaf(0, new Uint8Array(8)), leaf(1, new Uint8Array(16)), leaf(2, new Uint8Array(24))];
    const { file, offsets } = fileOf(records);
    const forward: ScanEnd = { end: -1 };
    for (const record of scanForward(file, offsets[1]!, forward)) if (record.header.nodeId === 1) break;
    expect(forward).toEqual({ end: offsets[2], corruption: undefined });
    const backward: ScanEnd = { end: -1 };
    for (const record of scanBackward(file, backward)) if (record.header.nodeId === 2) break;
    expect(backward).toEqual({ end: offsets[2], corruption: undefined });
  });

  it('does not follow a damaged trailer length that lands on another intact record', () => {
    const records = [leaf(0, new Uint8Array(8)), leaf(1, new Uint8Array(16)), leaf(2, new Uint8Array(24))];
    const { file } = fileOf(records);
    const bytes = file.contents();
    new DataView(bytes.buffer).setUint32(bytes.length - 8, records[1]!.length + records[2]!.length, true);
    const state: ScanEnd = { end: -1 };
    expect([...scanBackward(FaultyFile.fromImage('t', bytes), state)]).toEqual([]);
    expect(state).toMatchObject({ end: bytes.length, corruption: expect.any(CorruptionError) });
  });

  it('property: arbitrary bytes make readRecordAt throw only CorruptionError, and scans never throw', () => {
    const record = leaf(3, new Uint8Array(40).fill(7));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), (junk, embed) => {
        // Half the time a valid record sits inside the junk, so scans get past the first header.
        const bytes = embed ? new Uint8Array([...record, ...junk]) : junk;
        const file = FaultyFile.fromImage('junk', bytes);
        [...scanForward(file, 0)];
        [...scanBackward(file)];
        for (let offset = 0; offset <= bytes.length + 8; offset += 8) {
          try {
            readRecordAt(file, offset);
          } catch (err) {
            expect(err).toBeInstanceOf(CorruptionError);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
