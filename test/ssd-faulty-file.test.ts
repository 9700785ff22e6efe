import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IoError } from '../src/errors.js';
import { FaultyFile } from '../src/ssd/faulty-file.js';
import { RecordKind, encodeRecord, scanForward } from '../src/ssd/record.js';
import { Random } from '../src/util/random.js';

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

describe('FaultyFile', () => {
  it('keeps synced bytes through any crash and drops unsynced ones in some', () => {
    const file = new FaultyFile('f');
    file.append(bytes(1000, 1));
    file.sync();
    file.append(bytes(1000, 2));
    const lengths = new Set<number>();
    for (let seed = 0; seed < 50; seed++) {
      const image = file.crash(seed);
      expect(image.subarray(0, 1000).every((b) => b === 1)).toBe(true);
      lengths.add(image.length);
    }
    expect(lengths.has(1000)).toBe(true);
    expect(lengths.has(2000)).toBe(true);
    expect(file.crash(7)).toEqual(file.crash(7));
  });

  it('tears a write only at a 512-byte sector boundary', () => {
    const file = new FaultyFile('f');
    file.append(bytes(5000, 3));
    for (let seed = 0; seed < 100; seed++) {
      const length = file.crash(seed).length;
      expect(length === 5000 || length % 512 === 0).toBe(true);
    }
  });

  it('injects EIO on the Nth write, sync and read, and ENOSPC past a limit, changing nothing', () => {
    const file = new FaultyFile('f');
    file.failWriteAt(2);
    file.append(bytes(10, 1));
    expect(() => file.append(bytes(10, 2))).toThrow(expect.objectContaining({ code: 'EIO', syscall: 'write' }));
    expect(file.size).toBe(10);
    file.spaceLimit(15);
    expect(() => file.append(bytes(10, 3))).toThrow(expect.objectContaining({ code: 'ENOSPC' }));
    expect(file.size).toBe(10);
    file.failReadAt(1);
    expect(() => file.read(0, 4)).toThrow(IoError);
    expect(file.read(0, 4)).toEqual(bytes(4, 1));
  });

  it('is poisoned after a failed sync: no retry can pretend the data is durable', () => {
    const file = new FaultyFile('f');
    file.append(bytes(10, 1));
    file.failSyncAt(1);
    expect(() => file.sync()).toThrow(expect.objectContaining({ code: 'EIO', syscall: 'fdatasync' }));
    expect(() => file.sync()).toThrow(IoError);
    expect(() => file.append(bytes(1, 1))).toThrow(IoError);
  });

  it('property: a fault at any step surfaces as IoError, and every record synced before it survives a crash', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.constantFrom('write' as const, 'sync' as const, 'space' as const), fc.integer(), (step, fault, seed) => {
        const file = new FaultyFile('leaves');
        if (fault === 'write') file.failWriteAt(step);
        if (fault === 'sync') file.failSyncAt(Math.ceil(step / 3));
        if (fault === 'space') file.spaceLimit(step * 60);
        const random = new Random(seed);
        let synced = 0;
        let written = 0;
        try {
          for (let i = 0; i < 40; i++) {
            file.append(encodeRecord(RecordKind.Leaf, 0, i, bytes(1 + random.nextInt(100), i), 1));
            written++;
            if (i % 3 === 2) {
              file.sync();
              synced = written;
            }
          }
        } catch (err) {
          expect(err).toBeInstanceOf(IoError);
          expect(['EIO', 'ENOSPC']).toContain((err as IoError).code);
        }
        const after = FaultyFile.fromImage('leaves', file.crash(seed));
        const survivors = [...scanForward(after, 0)];
        expect(survivors.length).toBeGreaterThanOrEqual(synced);
        survivors.forEach((record, i) => expect(record.header.nodeId).toBe(i));
      }),
      { numRuns: 300 },
    );
  });
});
