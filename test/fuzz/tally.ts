// What the corruption fuzzer counts, and the rule every mutant must obey: a typed error, or an
// answer checked against the original - never an untyped exception, an internal-invariant
// failure (damage must be detected as damage, not trip an assertion), or a large allocation.

import { BoundsError, CorruptionError, IoError, MisuseError } from '../../src/errors.js';

/**
 * 'unchecked': a per-file opener read back a value that differs from the original, from PMem
 * words no checksum covers (index entries, aggregates, translation slots, trusted queue rows):
 * that layer cannot tell (DURABILITY.md); the whole-store mutants hold verify() to finding it.
 */
export type Outcome = 'typed error' | 'correct' | 'flagged by verify' | 'unchecked' | 'queue gap';
// Known, documented defects (DURABILITY.md, "Known gaps"), counted apart so they stay visible;
// every other wrong answer fails the run:
// 'queue gap': damage to the queue's acknowledged word (no checksum) together with a slot past
//   the trusted count (one swap of two blocks does both): open ends the queue at that slot.

/**
 * A mutant may leave at most this much more ArrayBuffer memory than before it (a record is at
 * most 16 MiB, a damaged store's files a few MiB): a length field trusted beyond the file's size
 * shows up as a jump of hundreds of MiB, or as an untyped RangeError when it cannot be allocated.
 */
const ALLOCATION_LIMIT_BYTES = 128 * 1024 * 1024;
/** One mutant taking longer than this is a hang, whatever the vitest timeout says. */
const HANG_MS = 5_000;

export class Tally {
  readonly outcomes: Record<Outcome, number> = { 'typed error': 0, correct: 0, 'flagged by verify': 0, unchecked: 0, 'queue gap': 0 };
  readonly errors = new Map<string, number>();
  mutants = 0;
  peakGrowth = 0;

  /** Runs `body` on a mutant; anything but a typed error or an outcome fails the test with `label`. */
  run(label: string, body: () => Outcome): void {
    const start = performance.now();
    const before = process.memoryUsage().arrayBuffers;
    let outcome: Outcome;
    try {
      outcome = body();
    } catch (err) {
      if (!isTyped(err)) throw new Error(`${label}: untyped ${(err as Error)?.constructor?.name}: ${(err as Error)?.stack ?? String(err)}`);
      const name = `${(err as Error).name}${'code' in (err as object) ? `(${String((err as { code: unknown }).code)})` : ''}`;
      this.errors.set(name, (this.errors.get(name) ?? 0) + 1);
      outcome = 'typed error';
    }
    const elapsed = performance.now() - start;
    if (elapsed > HANG_MS) throw new Error(`${label}: took ${Math.round(elapsed)} ms - a hang`);
    const grown = process.memoryUsage().arrayBuffers - before;
    this.peakGrowth = Math.max(this.peakGrowth, grown);
    if (grown > ALLOCATION_LIMIT_BYTES) throw new Error(`${label}: ArrayBuffers grew by ${grown} bytes - an unbounded allocation`);
    this.mutants++;
    this.outcomes[outcome]++;
  }

  summary(): string {
    const errors = [...this.errors].sort((a, b) => b[1] - a[1]).map(([name, n]) => `${name} ${n}`).join(', ');
    return (
      `mutants: ${this.mutants}, typed errors: ${this.outcomes['typed error']} (${errors}), correct answers: ${this.outcomes.correct}, ` +
      `wrong answers flagged by verify: ${this.outcomes['flagged by verify']}, unchecksummed damage read back by an opener: ${this.outcomes.unchecked}, ` +
      `known gap: queue cut short ${this.outcomes['queue gap']}, ` +
      `crashes: 0, wrong: 0, largest ArrayBuffer growth of a mutant: ${(this.peakGrowth / 2 ** 20).toFixed(1)} MiB`
    );
  }
}

/**
 * The store's typed errors: CorruptionError and IoError, and its coded TypeError/RangeError
 * (MisuseError, BoundsError). InvariantError is not among them: it means a check came too late.
 */
function isTyped(err: unknown): boolean {
  return err instanceof CorruptionError || err instanceof IoError || err instanceof MisuseError || err instanceof BoundsError;
}

/** Fails the mutant: a damaged input read back as a different answer, with no error. */
export function wrong(what: string): never {
  throw new Error(`wrong answer from a damaged ${what} without an error`);
}
