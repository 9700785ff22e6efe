// `npm run bench -- flush-sweep [--events N] [--repeats R] [--quick]`: paper Fig. 5 - Stock ingest
// against the flush batch size k (flushEvery) = 1, 2, 5, 10, 25, 50, 100, with the right flank on
// (emulated) PMem and in DRAM. append(object) one event at a time (default 2 M events, 500 k with
// --quick), inline leaf writer for both so the only difference is where the flank lives (DRAM
// regions cannot be shared with the writer thread). For each k the PMem and DRAM runs alternate,
// R times (default 3, 1 with --quick); medians.
//   pmem_eps[k], dram_eps[k]   events / s
//   ratio[k]                   pmem_eps[k] / dram_eps[k] (paper: ~0.5 at k = 1, 0.95 at k = 25)

import { freshStore, objectFeed } from './bench-store.js';
import { STOCK_SCHEMA, StockGenerator } from './datasets.js';
import { type BenchArgs, median, nowNs, printResult, printTable, round } from './harness.js';

export const FLUSH_BATCH_SIZES = [1, 2, 5, 10, 25, 50, 100] as const;

function eventsPerSecond(flushEvery: number, dramFlank: boolean, events: number, feed: ReturnType<typeof objectFeed>): number {
  const bench = freshStore(`flush-sweep-${dramFlank ? 'dram' : 'pmem'}`, { flushEvery, leafWriter: 'inline', dramFlank });
  try {
    const stream = bench.store.createStream('stock', STOCK_SCHEMA);
    const start = nowNs();
    feed(stream);
    stream.flush();
    return events / ((nowNs() - start) / 1e9);
  } finally {
    bench.discard();
  }
}

export function run(args: BenchArgs): void {
  const events = args.events ?? (args.quick ? 500_000 : 2_000_000);
  const repeats = Number(args.flags.get('repeats') ?? (args.quick ? 1 : 3));
  const chunk = new StockGenerator(42).next(65_536);
  const feed = objectFeed(chunk, events);
  // Unmeasured runs warm the JIT for both paths.
  const warmup = Math.min(events, 200_000);
  for (const dramFlank of [false, true]) eventsPerSecond(25, dramFlank, warmup, objectFeed(chunk, warmup));
  const pmem: Record<number, number> = {};
  const dram: Record<number, number> = {};
  const ratio: Record<number, number> = {};
  for (const k of FLUSH_BATCH_SIZES) {
    const pmemRuns: number[] = [];
    const dramRuns: number[] = [];
    for (let r = 0; r < repeats; r++) {
      pmemRuns.push(eventsPerSecond(k, false, events, feed));
      dramRuns.push(eventsPerSecond(k, true, events, feed));
    }
    pmem[k] = Math.round(median(pmemRuns));
    dram[k] = Math.round(median(dramRuns));
    ratio[k] = round(pmem[k] / dram[k], 3);
  }
  printTable(`Stock ingest, append(object), ${events.toLocaleString('en-US')} events, against flushEvery k (medians of ${repeats}; paper Fig. 5)`, ['k', 'PMem flank ev/s', 'DRAM flank ev/s', 'PMem / DRAM', 'paper'], FLUSH_BATCH_SIZES.map((k) => [k, pmem[k]!, dram[k]!, ratio[k]!, k === 1 ? '~0.5' : k === 25 ? '0.95' : '']));
  printResult({ bench: 'flush-sweep', events, repeats, flush_every: FLUSH_BATCH_SIZES, pmem_eps: pmem, dram_eps: dram, ratio });
}
