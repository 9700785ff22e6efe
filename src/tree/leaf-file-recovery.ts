// What a crash leaves between the leaf file and the ring, recovered after open returns (seed
// 002's instant recovery; docs/DURABILITY.md, "Recovery of the leaf file and translation"). Open trusts the
// persisted translation slots [0, trusted) and nothing after them. Each leaf in [trusted, closed)
// - closed before the crash - is on SSD past the last trusted record (its slot never persisted),
// or only in its PMem ring page, or both. Settling that takes the leaf file's tail scan and a CRC
// of every such ring page: a few milliseconds, mostly first touches of PMem pages, so it is done
// in slices on the event loop, or at once when something needs it:
//   * a query reads a leaf in [trusted, closed) from its ring page if the page holds it intact
//     (ringHolds, judged once); if not - reused, or damaged - the leaf may be on SSD, so the query
//     scans the tail first (scanTail) and reads it from there, and fails only if it is not;
//   * the leaf writer starts only after both are done (finish): it appends after the last intact
//     record, and it must never copy unchecked ring bytes to the SSD under a fresh checksum;
//   * a leaf close that needs the ring page of a leaf only the ring holds (a crash under
//     backpressure leaves the ring full) does not wait for all that and a thread's start: after
//     the tail scan the tree checks and writes out just the leaves it needs, inline (wroteThrough).
// No event is acknowledged by this work: everything it settles was durable before open.

import { CorruptionError, invariant } from '../errors.js';
import type { LeafSink } from '../ssd/leaf-file.js';
import type { AggregateArray } from './aggregate-array.js';
import type { Flank } from './flank.js';
import type { TranslationArray } from './translation-array.js';

export interface RecoveryParts {
  readonly flank: Flank;
  readonly translation: TranslationArray;
  readonly leaves: LeafSink;
  readonly leafAggregates: AggregateArray;
}

const INTACT = true;
const REBUILD_HINT = ' - reopen with { rebuild: true } to rebuild the stream from its leaf file';

/** Ring pages one background slice checks: about 16 us each (their first touch), so ~0.5 ms. */
const RING_LEAVES_PER_SLICE = 32;

export class LeafFileRecovery {
  /** Where a tail scan that stopped early (scanTailThrough) goes on: leaves below `next` were found. */
  private tailScan: { readonly offset: number; readonly next: number } | undefined;
  /** Once the tail is scanned: leaves [trusted, durableEnd) are durable on SSD with their slots set. */
  private durableEnd: number | undefined;
  /** Per leaf in [trusted, closed): what its ring page was found to hold, once judged. */
  private readonly ringVerdicts: (CorruptionError | typeof INTACT)[] = [];
  /** The first leaf the slices have not checked yet. */
  private nextToCheck: number;
  /** What the recovery failed with: every later request for it fails the same way. */
  private failure: unknown;

  constructor(
    private readonly parts: RecoveryParts,
    /** translation.durableCount at open. */
    readonly trusted: number,
    /** Leaves closed when the store crashed: records for later ids in the file are not theirs. */
    readonly closed: number,
  ) {
    if (trusted > closed) throw new CorruptionError(parts.flank.region.path, 0, `translation trusts ${trusted} leaves, the tree has ${closed}`);
    this.nextToCheck = trusted;
  }

  /**
   * Whether leaf `leafId`'s ring page holds it intact (its rows are the ones its aggregates count).
   * Judged once: the page cannot be reused while the recovery runs.
   */
  ringHolds(leafId: number): boolean {
    return this.ringVerdict(leafId) === INTACT;
  }

  /** REQUIRES: the tail is scanned and leaf `leafId` is not on SSD. Throws if its ring page does not hold it. */
  checkRingLeaf(leafId: number): void {
    this.rethrowFailure();
    const verdict = this.ringVerdict(leafId);
    if (verdict === INTACT) return;
    this.failure = verdict;
    throw verdict;
  }

  private ringVerdict(leafId: number): CorruptionError | typeof INTACT {
    return (this.ringVerdicts[leafId - this.trusted] ??= this.judgeRingPage(leafId));
  }

  private judgeRingPage(leafId: number): CorruptionError | typeof INTACT {
    const { flank, leafAggregates, leaves } = this.parts;
    if (flank.pageLeafId(leafId) !== leafId) return new CorruptionError(leaves.path, 0, `leaf ${leafId} is neither in the leaf file nor in the PMem ring${REBUILD_HINT}`);
    let intact: number;
    try {
      intact = flank.verifiedCount(leafId);
    } catch (err) {
      if (err instanceof CorruptionError) return err;
      throw err;
    }
    if (intact === leafAggregates.count(leafId)) return INTACT;
    return new CorruptionError(flank.region.path, 0, `leaf ${leafId}'s ring page holds ${intact} intact rows, its aggregates count ${leafAggregates.count(leafId)}${REBUILD_HINT}`);
  }

  /**
   * Restores the translation slots of the intact records past the last trusted one, cuts the file
   * after them, and returns the first leaf not on SSD. Bounded by one translation batch plus the
   * ring, whatever the size of the store.
   */
  scanTail(): number {
    return this.scanTailThrough(Number.POSITIVE_INFINITY);
  }

  /**
   * The tail scan, up to leaf `until - 1`: returns the first leaf not known to be on SSD; when
   * that is below `until`, the scan is done (the file cut after the intact records). Records a
   * killed process wrote may still be only in the page cache: they are synced before their slots
   * are persisted, for once a slot says "on SSD" the leaf's ring page may be reused.
   */
  scanTailThrough(until: number): number {
    this.rethrowFailure();
    if (this.durableEnd !== undefined) return this.durableEnd;
    return this.remember(() => {
      const { translation, leaves } = this.parts;
      let { offset, next } = this.tailScan ?? this.startTailScan();
      const found = next;
      let stopped = false;
      for (const record of leaves.scanFrom(offset)) {
        stopped = next >= until;
        if (stopped || record.leafId !== next || next >= this.closed) break;
        translation.set(next++, record.location);
        offset = record.location.offset + record.location.length;
      }
      if (!stopped) leaves.truncate(offset);
      if (next > found) leaves.sync();
      translation.persistThrough(next, true);
      if (stopped) this.tailScan = { offset, next };
      else this.durableEnd = next;
      return next;
    });
  }

  /** Forgets the slots past the trusted ones; the scan starts after the last trusted record. */
  private startTailScan(): { offset: number; next: number } {
    const { translation, leaves } = this.parts;
    translation.truncate(this.trusted, this.closed);
    const last = this.trusted === 0 ? undefined : translation.get(this.trusted - 1);
    return { offset: last === undefined ? leaves.firstRecordOffset : last.offset + last.length, next: this.trusted };
  }

  /**
   * Leaves [durableEnd, end) were written to SSD since the tail scan - by the tree, before the
   * writer runs (Tree.writeOutForRoom) - so their ring pages need no check and may be reused.
   */
  wroteThrough(end: number): void {
    invariant(this.durableEnd !== undefined && end >= this.durableEnd, () => `leaves up to ${end} written before the tail scan found where the file ends (${this.durableEnd})`);
    this.durableEnd = end;
  }

  /** One background slice; true when everything is done (then call finish(), which is cheap). */
  step(): boolean {
    if (this.durableEnd === undefined) {
      this.scanTail();
      return false;
    }
    // Leaves below durableEnd are read from SSD: their ring pages may hold later leaves by now.
    this.nextToCheck = Math.max(this.nextToCheck, this.durableEnd);
    const end = Math.min(this.closed, this.nextToCheck + RING_LEAVES_PER_SLICE);
    for (; this.nextToCheck < end; this.nextToCheck++) this.checkRingLeaf(this.nextToCheck);
    // Leaves written out during the recovery may reach past the ones it was started with.
    return this.nextToCheck >= this.closed;
  }

  /** Does what is left at once; returns the first leaf not on SSD (the writer's first leaf). */
  finish(): number {
    while (!this.step());
    return this.durableEnd!;
  }

  private rethrowFailure(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private remember<T>(body: () => T): T {
    try {
      return body();
    } catch (err) {
      this.failure = err;
      throw err;
    }
  }
}
