import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CorruptionError } from '../src/errors.js';
import { SimulatedRegion } from '../src/pmem/simulated-region.js';
import { NO_MERGE_CURSOR, Flank, type FlankState } from '../src/tree/flank.js';

const STORE = new Uint8Array(16).fill(9);
const GEOMETRY = { nodeSize: 1024, ringPages: 4, rowBytes: 16 };

function fresh(): { region: SimulatedRegion; flank: Flank } {
  const region = SimulatedRegion.create('flank', 4096);
  return { region, flank: Flank.create(region, GEOMETRY, STORE, 0) };
}

function state(seq: number): FlankState {
  return {
    seq,
    openLeafId: seq * 3,
    nextIndexNodeId: seq * 2,
    closedEvents: seq * 1000,
    // A level with no running aggregate kept must come back without one (0 on the media).
    levels: Array.from({ length: seq % 5 }, (_, i) => ({ nodeId: seq + i, count: i * 7, aggregateCrc: i % 2 === 1 ? (0x9e3779b1 ^ (seq * 31 + i)) >>> 0 : undefined })),
    mergeCursor: { generation: seq, ts: BigInt(seq) * -12345678901n, slot: seq * 5 },
    supersededLeaves: seq * 4,
    // Records of older stores do not keep it: undefined must survive a round trip as undefined.
    closedNewestLsn: seq % 4 === 2 ? undefined : seq * 977,
    rebuilding: seq % 3 === 1,
    seededPages: seq % 2 === 0,
    marksMerges: seq % 3 === 0,
    merging: seq % 4 === 1,
  };
}

describe('Flank', () => {
  it('starts with an empty leaf 0 and commits a root record that reopens', () => {
    const { region, flank } = fresh();
    expect(flank.readState()).toEqual({ seq: 0, openLeafId: 0, nextIndexNodeId: 0, closedEvents: 0, levels: [], mergeCursor: NO_MERGE_CURSOR, supersededLeaves: 0, closedNewestLsn: 0, rebuilding: false, seededPages: true, marksMerges: true, merging: false });
    expect(flank.pageLeafId(0)).toBe(0);
    expect(flank.pageCount(0)).toBe(0);
    flank.commit(state(1));
    const reopened = Flank.open(SimulatedRegion.fromImage('f', region.durableImage()), GEOMETRY, STORE, 0);
    expect(reopened.readState()).toEqual(state(1));
  });

  it('keeps the previous commit when the new record is torn', () => {
    const { region, flank } = fresh();
    flank.commit(state(1));
    flank.commit(state(2));
    const bytes = region.durableImage();
    bytes[256 + 40] = bytes[256 + 40]! ^ 0xff; // copy 0 (at 256) holds seq 2
    expect(Flank.open(SimulatedRegion.fromImage('f', bytes), GEOMETRY, STORE, 0).readState()).toEqual(state(1));
    bytes[512 + 40] = bytes[512 + 40]! ^ 0xff;
    expect(() => Flank.open(SimulatedRegion.fromImage('f', bytes), GEOMETRY, STORE, 0).readState()).toThrow(CorruptionError);
  });

  it('refuses a flank created with another geometry', () => {
    const { region } = fresh();
    expect(() => Flank.open(SimulatedRegion.fromImage('f', region.durableImage()), { ...GEOMETRY, rowBytes: 24 }, STORE, 0)).toThrow(/geometry/);
  });

  it('publishes a page count only after the rows it covers', () => {
    const { region, flank } = fresh();
    const bytes = new Uint8Array(flank.buffer);
    bytes.fill(0xaa, flank.rowsOffset(0), flank.rowsOffset(0) + 5 * 16);
    flank.persistRows(0, 0, 5);
    const reopened = Flank.open(SimulatedRegion.fromImage('f', region.crash(1)), GEOMETRY, STORE, 0);
    expect(reopened.pageCount(0)).toBe(5);
    expect(new Uint8Array(reopened.buffer, reopened.rowsOffset(0), 80).every((b) => b === 0xaa)).toBe(true);
  });

  it('recovers the rows a torn count/CRC update left, and refuses rows damaged since', () => {
    const { region, flank } = fresh();
    const rows = new Uint8Array(flank.buffer, flank.rowsOffset(0), 20 * GEOMETRY.rowBytes);
    rows.forEach((_, i) => (rows[i] = (i * 31) % 251));
    flank.persistRows(0, 0, 10);
    const header = 1024;
    const words = () => new DataView(region.buffer);
    const oldCrc = words().getUint32(header + 4, true);
    flank.persistRows(0, 10, 20);
    const newCrc = words().getUint32(header + 4, true);
    expect(flank.verifiedCount(0)).toBe(20);
    words().setUint32(header + 4, oldCrc, true); // count new, CRC old: the 10 rows the old CRC covers
    expect(flank.verifiedCount(0)).toBe(10);
    words().setUint32(header, 10, true);
    words().setUint32(header + 4, newCrc, true); // count old, CRC new: the 20 rows, all persisted
    expect(flank.verifiedCount(0)).toBe(20);
    words().setUint32(header, 20, true);
    rows[5 * GEOMETRY.rowBytes + 3]! ^= 4; // a flipped bit in a durable row
    expect(() => flank.verifiedCount(0)).toThrow(CorruptionError);
  });

  it('refuses a page header zeroed by damage when every page is seeded: leaf 0 would read as empty', () => {
    const { region, flank } = fresh();
    new Uint8Array(flank.buffer).fill(0x5a, flank.rowsOffset(0), flank.rowsOffset(0) + 3 * GEOMETRY.rowBytes);
    flank.persistRows(0, 0, 3);
    const zeroHeader = (bytes: Uint8Array) => bytes.fill(0, 1024, 1024 + 24);
    const damaged = Flank.open(SimulatedRegion.fromImage('f', zeroHeader(region.durableImage())), GEOMETRY, STORE, 0);
    expect(damaged.readState().seededPages).toBe(true);
    expect(damaged.pageLeafId(0)).toBe(0);
    expect(() => damaged.verifiedCount(0)).toThrow(/lacks the seed mark/);
    // A flank of an older store (pages opened before the mark): such a header is an empty page of its time.
    flank.commit({ ...flank.readState(), seq: 1, seededPages: false });
    const older = Flank.open(SimulatedRegion.fromImage('f', zeroHeader(region.durableImage())), GEOMETRY, STORE, 0);
    expect(older.readState().seededPages).toBe(false);
    expect(older.verifiedCount(0)).toBe(0);
  });

  it('property: a crash during any commit sequence leaves a committed state, never a torn one', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer(), (commits, seed) => {
        const { region, flank } = fresh();
        for (let seq = 1; seq <= commits; seq++) flank.commit(state(seq));
        // Start one more commit without its persist landing: write it to the live buffer only.
        const unpersisted = new Uint8Array(region.buffer);
        unpersisted.fill(0x5c, 256 + ((commits + 1) % 2) * 256, 256 + ((commits + 1) % 2) * 256 + 200);
        const recovered = Flank.open(SimulatedRegion.fromImage('f', region.crash(seed)), GEOMETRY, STORE, 0).readState();
        expect(recovered).toEqual(state(commits));
      }),
      { numRuns: 200 },
    );
  });
});
