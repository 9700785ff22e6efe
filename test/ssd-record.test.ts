import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BoundsError, CorruptionError } from '../src/errors.js';
import { FaultyFile } from '../src/ssd/faulty-file.js';
import { RecordKind, encodeRecord, readRecordAt, recordLength, scanBackward, scanForward, type ScanEnd } from '../src/ssd/record.js';

const payloads = fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 12 });

function fileOf(records: Uint8Array[]): { file: FaultyFile; offsets: number[] } {
  const file = new FaultyFile('leaves');
  const offsets = records.map((record) => file.append(record));
  return { file, offsets };
}

const leaf = (id: number, payload: Uint8Array) => encodeRecord(RecordKind.Leaf, 0, id, payload, payload.length * 2);

describe('record framing', () => {
  it('round-trips kind, node id, lengths and payload', () => {
    const payload = new Uint8Array([1, 2, 3, 4, 5]);
    const { file } = fileOf([encodeRecord(RecordKind.Leaf, 7, 2 ** 40 + 3, payload, 99)]);
    const { header, payload: read } = readRecordAt(file, 0);
    expect(header).toMatchObject({ kind: RecordKind.Leaf, flags: 7, nodeId: 2 ** 40 + 3, storedLength: 5, rawLength: 99, offset: 0, totalLength: recordLength(5) });
    expect(read).toEqual(payload);
    expect(recordLength(5) % 8).toBe(0);
  });

  it('names the file and offset of a damaged record', () => {
    const { file, offsets } = fileOf([leaf(0, new Uint8Array(10)), leaf(1, new Uint8Array(10))]);
    const bytes = file.contents();
    bytes[offsets[1]! + 40] = bytes[offsets[1]! + 40]! ^ 1;
    const damaged = FaultyFile.fromImage('leaves', bytes);
    expect(() => readRecordAt(damaged, offsets[1]!)).toThrow(CorruptionError);
    try {
      readRecordAt(damaged, offsets[1]!);
    } catch (err) {
      expect(err).toMatchObject({ code: 'CORRUPTION', file: 'leaves', offset: offsets[1]! + 32 });
    }
  });

  it('refuses a header claiming more than the file holds, without allocating it', () => {
    const { file } = fileOf([leaf(0, new Uint8Array(16))]);
    const bytes = file.contents();
    new DataView(bytes.buffer).setUint32(16, 2 ** 31, true);
    expect(() => readRecordAt(FaultyFile.fromImage('x', bytes), 0)).toThrow(CorruptionError);
  });

  it('property: a forward scan of a truncated or bit-flipped file returns exactly the intact prefix', () => {
    fc.assert(
      fc.property(payloads, fc.nat(), fc.option(fc.nat(), { nil: undefined }), (contents, cutAt, flipAt) => {
        const records = contents.map((p, i) => leaf(i, p));
        const { file, offsets } = fileOf(records);
        let bytes = file.contents();
        const cut = cutAt % (bytes.length + 1);
        bytes = bytes.slice(0, cut);
        const flip = flipAt === undefined || bytes.length === 0 ? undefined : flipAt % bytes.length;
        if (flip !== undefined) bytes[flip] = bytes[flip]! ^ (1 << (flipAt! % 8));
        const damaged = FaultyFile.fromImage('leaves', bytes);
        const intact = records.filter((r, i) => offsets[i]! + r.length <= cut && (flip === undefined || flip >= offsets[i]! + r.length)).length;
        const state: ScanEnd = { end: 0 };
        const scanned = [...scanForward(damaged, 0, state)];
        expect(scanned.map((r) => r.header.nodeId)).toEqual(Array.from({ length: intact }, (_, i) => i));
        scanned.forEach((r, i) => expect(r.payload).toEqual(contents[i]));
        expect(state.end).toBe(intact === 0 ? 0 : offsets[intact - 1]! + records[intact - 1]!.length);
        if (state.end < bytes.length) expect(state.corruption).toBeInstanceOf(CorruptionError);
      }),
      { numRuns: 500 },
    );
  });

  it('property: a backward scan from an intact end returns every record in reverse', () => {
    fc.assert(
      fc.property(payloads, (contents) => {
        const { file } = fileOf(contents.map((p, i) => leaf(i, p)));
        expect([...scanBackward(file)].map((r) => r.header.nodeId)).toEqual(contents.map((_, i) => i).reverse());
      }),
    );
  });

  it('property: random bytes never make a scan throw anything but typed errors', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const file = FaultyFile.fromImage('junk', bytes);
        try {
          [...scanForward(file, 0)];
          [...scanBackward(file)];
        } catch (err) {
          expect(err instanceof CorruptionError || err instanceof BoundsError).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });
});
