import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConsumerSlots } from '../src/consumer/consumer-slots.js';
import { CorruptionError } from '../src/errors.js';
import { SimulatedRegion } from '../src/pmem/simulated-region.js';
import { PowerCut } from './power-cut.js';

const STORE = new Uint8Array(16).fill(7);
const STREAM = 3;
const SLOT_AREA = 512;
const SLOT_BYTES = 64;
const NAMES = ['billing', 'audit', 'search'];

type Op = { kind: 'register'; name: string; lsn: number } | { kind: 'commit'; name: string; lsn: number } | { kind: 'remove'; name: string };
type Positions = ReadonlyMap<string, number>;

function created(): SimulatedRegion {
  const region = SimulatedRegion.create('consumers', 8192);
  ConsumerSlots.create(region, STORE, STREAM);
  return SimulatedRegion.fromImage('consumers', region.durableImage());
}

function reopen(image: Uint8Array): Positions {
  const slots = ConsumerSlots.open(SimulatedRegion.fromImage('consumers', image), STORE, STREAM);
  return new Map(slots.names.map((name) => [name, slots.committed(name)!]));
}

/** What `op` does to `positions`, as the model says; undefined if the API refuses it (skipped). */
function applied(positions: Positions, op: Op): Positions | undefined {
  const next = new Map(positions);
  if (op.kind === 'register') {
    if (positions.has(op.name)) return undefined;
    next.set(op.name, op.lsn);
  } else if (op.kind === 'commit') {
    if (!positions.has(op.name)) return undefined;
    next.set(op.name, op.lsn);
  } else {
    next.delete(op.name);
  }
  return next;
}

function run(slots: ConsumerSlots, op: Op): void {
  if (op.kind === 'register') slots.register(op.name, op.lsn);
  else if (op.kind === 'commit') slots.commit(op.name, op.lsn);
  else slots.remove(op.name);
}

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('register' as const), name: fc.constantFrom(...NAMES), lsn: fc.nat(1000) }),
  fc.record({ kind: fc.constant('commit' as const), name: fc.constantFrom(...NAMES), lsn: fc.nat(1_000_000) }),
  fc.record({ kind: fc.constant('remove' as const), name: fc.constantFrom(...NAMES) }),
);

describe('consumer slots', () => {
  it('property: a power cut at any write-back leaves every acknowledged position, and the one in flight old or new', () => {
    fc.assert(
      fc.property(fc.array(opArbitrary, { minLength: 1, maxLength: 12 }), fc.nat(200), fc.nat(), (ops, cutAt, seed) => {
        const region = created();
        const slots = ConsumerSlots.open(region, STORE, STREAM);
        let writeBacks = 0;
        region.onPersist = () => {
          if (++writeBacks === cutAt) throw new PowerCut();
        };
        let acknowledged: Positions = new Map();
        let inFlight: Positions | undefined;
        try {
          for (const op of ops) {
            inFlight = applied(acknowledged, op);
            if (inFlight === undefined) continue;
            run(slots, op);
            acknowledged = inFlight;
            inFlight = undefined;
          }
        } catch (err) {
          if (!(err instanceof PowerCut)) throw err;
        }
        const recovered = reopen(region.crash(seed));
        const allowed = [acknowledged, ...(inFlight === undefined ? [] : [inFlight])];
        expect(allowed).toContainEqual(recovered);
      }),
      { numRuns: 1500 },
    );
  });

  it('refuses a file whose registered slot, position or used count is damaged, instead of reading another position', () => {
    const region = created();
    const slots = ConsumerSlots.open(region, STORE, STREAM);
    slots.register('billing', 5);
    slots.commit('billing', 42);
    slots.register('audit', 1);
    slots.remove('audit');
    const image = region.durableImage();
    expect(reopen(image)).toEqual(new Map([['billing', 42]]));
    const damaged = (offset: number, bytes: number[]) => {
      const copy = image.slice();
      copy.set(bytes, offset);
      return copy;
    };
    const billing = SLOT_AREA;
    expect(() => reopen(damaged(billing, [0, 0, 0, 0, 0, 0, 0, 0]))).toThrow(CorruptionError); // zeroed state word: not "removed"
    // register wrote 5 into both copies; the commit put 42 into copy 1 and moved the check to it.
    expect(() => reopen(damaged(billing + 48, [43]))).toThrow(CorruptionError); // the valid copy: no copy matches the check
    expect(reopen(damaged(billing + 40, [43]))).toEqual(new Map([['billing', 42]])); // the stale copy is not read
    expect(() => reopen(damaged(billing + 56, [0]))).toThrow(CorruptionError); // the position check
    expect(() => reopen(damaged(256, [9]))).toThrow(CorruptionError); // the used count
    expect(() => reopen(damaged(billing + 9, [0x42]))).toThrow(CorruptionError); // the name
    // A removed slot's contents and slots past the used count are not read.
    expect(reopen(damaged(SLOT_AREA + SLOT_BYTES + 9, [0x42]))).toEqual(new Map([['billing', 42]]));
    expect(reopen(damaged(SLOT_AREA + 2 * SLOT_BYTES, [1, 2, 3, 4, 0x52, 0x45, 0x47, 0x31]))).toEqual(new Map([['billing', 42]]));
  });
});
