// Stores for benchmarks: a fresh directory under data/ and a PMem directory on /dev/shm, either
// on real (emulated) PMem or with every PMem structure in DRAM - the paper's volatile baseline -
// and a feed of Stock events as objects for append(), one at a time.

import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DiskMedia } from '../src/media.js';
import type { OpenOptions } from '../src/options.js';
import { Store, open } from '../src/store.js';
import type { Stream } from '../src/stream.js';
import type { StockColumns } from './datasets.js';

export const PMEM_ROOT = '/dev/shm';

export interface BenchStore {
  readonly store: Store;
  readonly dir: string;
  readonly pmemDir: string;
  /** Closes the store (if still open) and deletes both directories. */
  discard(): void;
}

/**
 * A new, empty store named `bench-<name>`. With `dramFlank` its PMem regions are plain DRAM
 * (DiskMedia's volatile regions): nothing is persisted, nothing survives - the paper's baseline.
 * DRAM regions cannot be shared with the leaf writer thread, so callers comparing the two use
 * `leafWriter: 'inline'` for both.
 */
export function freshStore(name: string, options: OpenOptions & { dramFlank?: boolean } = {}): BenchStore {
  const dir = join(process.cwd(), 'data', `bench-${name}`);
  const pmemDir = join(PMEM_ROOT, `chronotier-bench-${name}`);
  const remove = () => [dir, pmemDir].forEach((path) => rmSync(path, { recursive: true, force: true }));
  remove();
  mkdirSync(dir, { recursive: true });
  const { dramFlank, ...openOptions } = options;
  const store = dramFlank === true
    ? Store.openOn(new DiskMedia(dir, pmemDir, { volatileRegions: true }), openOptions, { storeId: new Uint8Array(16), pmemDir })
    : open(dir, { ...openOptions, pmemDir });
  return {
    store,
    dir,
    pmemDir,
    discard() {
      store.close();
      remove();
    },
  };
}

/**
 * Appends `events` Stock events one append(object) at a time, from one chunk of objects reused
 * with shifted timestamps, so generating events is not part of the time.
 */
export function objectFeed(chunk: StockColumns, events: number): (stream: Stream) => void {
  const objects = Array.from({ length: chunk.ts.length }, (_, i) => ({ ts: 0, seq: chunk.seq[i]!, symbol: chunk.symbol[i]!, price: chunk.price[i]!, volume: chunk.volume[i]! }));
  return (stream) => {
    for (let done = 0; done < events; done += objects.length) {
      const n = Math.min(objects.length, events - done);
      for (let i = 0; i < n; i++) {
        const event = objects[i]!;
        event.ts = done + i;
        stream.append(event);
      }
    }
  };
}
