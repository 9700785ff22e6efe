// db.snapshot(): every stream as it was at one instant (Aspen's snapshots, seed 003). Readers
// never block writers and writers never invalidate readers: appends go past the counts the
// snapshot fixed, merges write new nodes copy-on-write, and a merge that empties the
// out-of-order queue first copies the rows a snapshot holds to DRAM.

import { MisuseError } from './errors.js';
import type { Stream, StreamReader } from './stream.js';

export class Snapshot {
  private readonly fixed = new Map<string, { readonly reader: StreamReader; release(): void }>();
  private closed = false;

  constructor(
    streams: readonly Stream[],
    private readonly checkStoreOpen: () => void,
  ) {
    const check = { checkOpen: () => this.checkOpen() };
    for (const stream of streams) this.fixed.set(stream.name, stream.fix(check));
  }

  /** The stream called `name` as the snapshot fixed it: get, asOf, range, replay, aggregate. */
  stream(name: string): StreamReader {
    this.checkOpen();
    const fixed = this.fixed.get(name);
    if (fixed === undefined) throw new MisuseError('NOT_FOUND', `the snapshot has no stream '${name}' (streams: ${[...this.fixed.keys()].join(', ') || 'none'})`);
    return fixed.reader;
  }

  streams(): string[] {
    this.checkOpen();
    return [...this.fixed.keys()];
  }

  /** Lets go of what the snapshot holds; its readers and iterators throw SNAPSHOT_CLOSED after. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fixed of this.fixed.values()) fixed.release();
  }

  private checkOpen(): void {
    this.checkStoreOpen();
    if (this.closed) throw new MisuseError('SNAPSHOT_CLOSED', 'the snapshot is closed');
  }
}
