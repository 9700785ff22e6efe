import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BoundsError, IoError } from '../src/errors.js';
import { FaultyFile, SECTOR_BYTES } from '../src/ssd/faulty-file.js';
import { RecordKind, encodeRecord, readRecordAt, scanForward, type FileRecord, type ScanEnd } from '../src/ssd/record.js';
import { Random } from '../src/util/random.js';

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
const SEEDS = Array.from({ length: 64 }, (_, seed) => seed);

/** Byte equality without vitest's element-by-element deep equality, which dominates hot loops. */
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);

const sameRecord = (a: FileRecord, b: FileRecord) => same(a.payload, b.payload) && JSON.stringify(a.header) === JSON.stringify(b.header);

/** What crash() is allowed to do with one unsynced append, judged from the image it left. */
function survivalOf(image: Uint8Array, offset: number, data: Uint8Array): { reached: number; restZero: boolean } {
  let reached = 0;
  while (reached < data.length && offset + reached < image.length && image[offset + reached] === data[reached]) reached++;
  const rest = image.subarray(Math.min(image.length, offset + reached), Math.min(image.length, offset + data.length));
  return { reached, restZero: rest.every((b) => b === 0) };
}

describe('FaultyFile I/O', () => {
  it('appends, writes in place, reads, truncates, and exposes live and durable bytes', () => {
    const file = new FaultyFile('f');
    expect(file.append(bytes(4, 1))).toBe(0);
    expect(file.append(bytes(4, 2))).toBe(4);
    file.write(2, bytes(4, 3));
    file.write(8, bytes(2, 4));
    expect(file.contents()).toEqual(new Uint8Array([1, 1, 3, 3, 3, 3, 2, 2, 4, 4]));
    const target = new Uint8Array(3);
    file.readInto(7, target);
    expect(target).toEqual(new Uint8Array([2, 4, 4]));
    expect(file.durableContents()).toEqual(new Uint8Array(0));
    file.sync();
    file.truncate(3);
    expect(file.size).toBe(3);
    expect(file.durableContents().length).toBe(10);
    expect(file.unsyncedCount).toBe(1);
    file.append(bytes(2, 5));
    expect(file.contents()).toEqual(new Uint8Array([1, 1, 3, 5, 5]));
  });

  it('refuses holes, growing truncates, reads past the end and use after close', () => {
    const file = new FaultyFile('f', bytes(8, 1));
    expect(() => file.write(9, bytes(1, 0))).toThrow(BoundsError);
    expect(() => file.truncate(9)).toThrow(BoundsError);
    expect(() => file.read(4, 5)).toThrow(BoundsError);
    expect(() => file.read(-1, 1)).toThrow(BoundsError);
    file.close();
    for (const call of [() => file.append(bytes(1, 1)), () => file.read(0, 1), () => file.sync(), () => file.truncate(0), () => file.write(0, bytes(1, 1))]) {
      expect(call).toThrow(expect.objectContaining({ code: 'FILE_CLOSED' }));
    }
    expect(file.reopen().read(0, 8)).toEqual(bytes(8, 1));
  });
});

describe('FaultyFile faults', () => {
  it('fails exactly the Nth write from now with EIO, once, landing nothing and keeping the size', () => {
    const file = new FaultyFile('f');
    file.failWriteAt(3);
    file.append(bytes(10, 1));
    file.write(0, bytes(2, 2));
    expect(() => file.append(bytes(10, 3))).toThrow(expect.objectContaining({ name: 'IoError', code: 'EIO', syscall: 'write', path: 'f' }));
    expect(file.size).toBe(10);
    expect(file.unsyncedCount).toBe(2);
    expect(file.append(bytes(10, 4))).toBe(10);
    expect(() => file.failWriteAt(0)).toThrow(BoundsError);
  });

  it('lands the first bytes of a failing write, cuts them off, and a crash may still find them', () => {
    const file = new FaultyFile('f', bytes(100, 1));
    file.failWriteAt(1, { landed: 1500 });
    expect(() => file.append(bytes(3000, 2))).toThrow(expect.objectContaining({ code: 'EIO' }));
    expect(file.contents()).toEqual(bytes(100, 1));
    expect(file.append(bytes(1, 3))).toBe(100);
    const fragments = new Set(SEEDS.map((seed) => file.crash(seed).subarray(101).filter((b) => b === 2).length));
    expect(fragments.has(0)).toBe(true);
    expect([...fragments].some((n) => n > 0 && n < 1500)).toBe(true);
    for (const n of fragments) expect(n).toBeLessThanOrEqual(1499);
  });

  it('fails a sync with EIO and is poisoned after it: no retry can pretend the data is durable', () => {
    const file = new FaultyFile('f');
    file.append(bytes(10, 1));
    file.failSyncAt(2);
    file.sync();
    file.append(bytes(10, 2));
    expect(() => file.sync()).toThrow(expect.objectContaining({ code: 'EIO', syscall: 'fdatasync' }));
    expect(file.durableContents()).toEqual(bytes(10, 1));
    expect(() => file.sync()).toThrow(/poisoned after a failed sync/);
    expect(() => file.append(bytes(1, 1))).toThrow(expect.objectContaining({ code: 'EIO' }));
    expect(() => file.write(0, bytes(1, 1))).toThrow(IoError);
    expect(() => file.truncate(0)).toThrow(IoError);
    expect(file.read(0, 20).length).toBe(20);
    file.close();
    expect(() => file.reopen().sync()).toThrow(IoError);
  });

  it('fails the Nth read with EIO or as a short read', () => {
    const file = new FaultyFile('f', bytes(8, 1));
    file.failReadAt(2);
    expect(file.read(0, 4)).toEqual(bytes(4, 1));
    expect(() => file.readInto(0, new Uint8Array(4))).toThrow(expect.objectContaining({ code: 'EIO', syscall: 'read' }));
    expect(file.read(0, 4)).toEqual(bytes(4, 1));
    file.failReadAt(1, 'ESHORTREAD');
    expect(() => file.read(0, 4)).toThrow(expect.objectContaining({ code: 'ESHORTREAD' }));
  });

  it('fails writes that would grow the file past its space limit with ENOSPC, nothing landing', () => {
    const file = new FaultyFile('f');
    file.spaceLimit(15);
    file.append(bytes(10, 1));
    expect(() => file.append(bytes(6, 2))).toThrow(expect.objectContaining({ code: 'ENOSPC', syscall: 'write' }));
    expect(file.contents()).toEqual(bytes(10, 1));
    expect(file.unsyncedCount).toBe(1);
    file.write(5, bytes(5, 3));
    expect(file.append(bytes(5, 4))).toBe(10);
    expect(() => file.append(bytes(1, 5))).toThrow(expect.objectContaining({ code: 'ENOSPC' }));
    expect(SEEDS.every((seed) => file.crash(seed).length <= 15)).toBe(true);
  });
});

describe('FaultyFile crashes', () => {
  it('keeps synced bytes through every crash; keeps, drops or tears an unsynced write depending on the seed', () => {
    const file = new FaultyFile('f');
    file.append(bytes(1000, 1));
    file.sync();
    file.append(bytes(2000, 2));
    const outcomes = new Set<string>();
    for (const seed of SEEDS) {
      const image = file.crash(seed);
      expect(same(image.subarray(0, 1000), bytes(1000, 1))).toBe(true);
      const { reached } = survivalOf(image, 1000, bytes(2000, 2));
      outcomes.add(reached === 0 ? 'dropped' : reached === 2000 ? 'kept' : 'torn');
      expect(same(file.crash(seed), image)).toBe(true);
    }
    expect(outcomes).toEqual(new Set(['dropped', 'kept', 'torn']));
  });

  it('keeps the previous contents where an unsynced overwrite was dropped, and never tears inside a sector', () => {
    const file = new FaultyFile('f', bytes(2048, 1));
    file.write(600, bytes(300, 2));
    const seen = new Set<number>();
    for (const seed of SEEDS) {
      const image = file.crash(seed);
      expect(image.length).toBe(2048);
      const twos = image.filter((b) => b === 2).length;
      seen.add(twos);
      if (twos > 0) expect(same(image.subarray(600, 900), bytes(300, 2))).toBe(true);
    }
    expect([...seen].sort()).toEqual([0, 300]);
  });

  it('drops or keeps an unsynced truncate', () => {
    const file = new FaultyFile('f', bytes(2000, 1));
    file.truncate(100);
    expect(new Set(SEEDS.map((seed) => file.crash(seed).length))).toEqual(new Set([100, 2000]));
  });

  it('property: a crash of an append workload keeps every synced byte; each unsynced append is whole, gone, or cut at a sector boundary (the rest zeros or past the end), only the last survivor torn', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 1500 }), fc.boolean()), { minLength: 1, maxLength: 12 }), fc.integer(), (steps, seed) => {
        const file = new FaultyFile('f');
        const unsynced: { offset: number; data: Uint8Array }[] = [];
        steps.forEach(([length, sync], i) => {
          const data = bytes(length, (i % 255) + 1);
          unsynced.push({ offset: file.append(data), data });
          if (sync) {
            file.sync();
            unsynced.length = 0;
          }
        });
        const durable = file.durableContents();
        const image = file.crash(seed);
        expect(same(image.subarray(0, durable.length), durable)).toBe(true);
        let tornSeen = false;
        const ends = new Set([durable.length]);
        for (const { offset, data } of unsynced) {
          const { reached, restZero } = survivalOf(image, offset, data);
          if (reached > 0) expect(tornSeen).toBe(false); // nothing survives after the torn write
          if (reached === data.length) {
            ends.add(offset + data.length);
            continue;
          }
          expect(restZero).toBe(true);
          if (reached > 0) {
            expect((offset + reached) % SECTOR_BYTES).toBe(0);
            tornSeen = true;
          }
          ends.add(offset + reached).add(offset + data.length);
        }
        expect(ends.has(image.length)).toBe(true);
        expect(same(file.crash(seed), image)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

type Fault = 'write' | 'torn-write' | 'sync' | 'space';
const RECORDS = 30;

describe('a workload of record appends and syncs with a fault injected at any step', () => {
  it('property: the fault surfaces as a typed IoError; every record synced before it is readable, live and after any crash', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: RECORDS }), fc.constantFrom<Fault>('write', 'torn-write', 'sync', 'space'), fc.integer({ min: 1, max: 4 }), fc.nat({ max: 450 }), fc.integer(), (step, fault, syncEvery, landed, seed) => {
        const file = new FaultyFile('leaves');
        if (fault === 'write') file.failWriteAt(step);
        if (fault === 'torn-write') file.failWriteAt(step, { landed });
        if (fault === 'sync') file.failSyncAt(1 + (step % Math.floor(RECORDS / syncEvery)));
        // Records are at least 136 bytes: the space runs out before the workload ends.
        if (fault === 'space') file.spaceLimit(step * 130);
        const random = new Random(seed);
        const payloads: Uint8Array[] = [];
        const written: FileRecord[] = [];
        let synced = 0;
        let failure: unknown;
        try {
          for (let id = 0; id < RECORDS; id++) {
            const payload = bytes(100 + random.nextInt(300), id + 1);
            payloads.push(payload);
            const record = encodeRecord(RecordKind.Leaf, 0, id, payload, payload.length);
            const offset = file.append(record);
            written.push(readRecordAt(file, offset));
            if ((id + 1) % syncEvery === 0) {
              file.sync();
              synced = written.length;
            }
          }
        } catch (err) {
          failure = err;
        }
        expect(failure).toBeInstanceOf(IoError);
        expect((failure as IoError).code).toBe(fault === 'space' ? 'ENOSPC' : 'EIO');
        expect((failure as IoError).path).toBe('leaves');

        // Live: every record appended (synced or not) is intact and the file ends after the last.
        const state: ScanEnd = { end: 0 };
        const live = [...scanForward(file, 0, state)];
        expect(live.length).toBe(written.length);
        expect(live.every((r, i) => sameRecord(r, written[i]!))).toBe(true);
        expect(state).toEqual({ end: file.size, corruption: undefined });
        for (const record of written.slice(0, synced)) expect(sameRecord(readRecordAt(file, record.header.offset, record.header.totalLength), record)).toBe(true);

        // After a power failure: the synced records, then maybe more of those attempted (a failed
        // write may still have reached the media whole), in order, byte for byte.
        for (let crash = 0; crash < 4; crash++) {
          const after = FaultyFile.fromImage('leaves', file.crash(random.nextUint32()));
          const survivors = [...scanForward(after, 0)];
          expect(survivors.length).toBeGreaterThanOrEqual(synced);
          expect(survivors.length).toBeLessThanOrEqual(payloads.length);
          expect(survivors.every((r, id) => r.header.nodeId === id && same(r.payload, payloads[id]!))).toBe(true);
        }

        // A write fault or a full disk leaves the file usable; a failed sync does not.
        if (fault === 'sync') {
          expect(() => file.append(bytes(8, 0))).toThrow(/poisoned/);
        } else {
          file.spaceLimit(Infinity);
          const last = encodeRecord(RecordKind.Leaf, 0, written.length, bytes(5, 9), 5);
          file.append(last);
          file.sync();
          const after = FaultyFile.fromImage('leaves', file.crash(seed));
          expect([...scanForward(after, 0)].map((r) => r.header.nodeId)).toEqual([...written.map((r) => r.header.nodeId), written.length]);
        }
      }),
      { numRuns: 400 },
    );
  });
});

describe('misuse', () => {
  it('rejects nonsense fault settings', () => {
    const file = new FaultyFile('f');
    expect(() => file.failSyncAt(1.5)).toThrow(BoundsError);
    expect(() => file.failReadAt(-1)).toThrow(BoundsError);
    expect(() => file.spaceLimit(Number.NaN)).toThrow(BoundsError);
    expect(() => file.failWriteAt(1, { landed: -1 })).toThrow(BoundsError);
  });
});
