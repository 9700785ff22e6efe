// `npm run bench -- ingest [--events N]`: ingest of the Stock stream (paper §5.2, Fig. 5).
//   append_batch_eps  appendBatch with columns, flank in PMem, flushEvery 25 (leaf writer thread)
//   append_eps        append(object) one event at a time, same configuration
//   dram_flank_eps    append(object) with the flank (all PMem structures) in DRAM - the baseline
//   ratio_flush25_vs_dram = PMem flank / DRAM flank, both with the inline leaf writer, so the
//                     only difference is where the flank lives (paper, Fig. 5: 0.95). DRAM
//                     regions cannot be shared with the writer thread, hence inline for both.
//   bytes_per_event   leaf file bytes / events (DuckDB: 5.72)
// Each configuration runs `--repeats` times (default 3) in this process; medians are reported.

import type { Stream } from '../src/stream.js';
import { PMEM_ROOT, freshStore, objectFeed } from './bench-store.js';
import { STOCK_SCHEMA, StockGenerator, type StockColumns } from './datasets.js';
import { type BenchArgs, median, nowNs, printResult, printTable, round } from './harness.js';

const CHUNK = 65_536;

interface Run {
  readonly eps: number;
  readonly bytesPerEvent: number;
}

function measure(name: string, volatile: boolean, leafWriter: 'worker' | 'inline', events: number, feed: (stream: Stream) => void): Run {
  const bench = freshStore(`ingest-${name}`, { leafWriter, dramFlank: volatile });
  const stream = bench.store.createStream('stock', STOCK_SCHEMA);
  const start = nowNs();
  feed(stream);
  stream.flush();
  const seconds = (nowNs() - start) / 1e9;
  const bytes = stream.stats().bytesOnSsd;
  bench.discard();
  return { eps: events / seconds, bytesPerEvent: bytes / events };
}

export function run(args: BenchArgs): void {
  const events = args.events ?? (args.quick ? 1_000_000 : 10_000_000);
  const repeats = Number(args.flags.get('repeats') ?? (args.quick ? 1 : 3));
  const objectEvents = Math.min(events, 3_000_000);
  const generator = new StockGenerator(42);
  const chunks: StockColumns[] = [];
  for (let done = 0; done < events; done += CHUNK) chunks.push(generator.next(Math.min(CHUNK, events - done)));
  const batchFeed = (stream: Stream) => chunks.forEach((chunk) => stream.appendBatch(chunk));
  const objects = objectFeed(chunks[0]!, objectEvents);
  // The input itself (events x 28 B of columns) is resident before any store exists.
  const inputRssMb = process.memoryUsage().rss / 2 ** 20;

  const batch: Run[] = [];
  const single: Run[] = [];
  const pmemInline: Run[] = [];
  const dram: Run[] = [];
  for (let r = 0; r < repeats; r++) {
    batch.push(measure('batch', false, 'worker', events, batchFeed));
    single.push(measure('single', false, 'worker', objectEvents, objects));
    pmemInline.push(measure('pmem-inline', false, 'inline', objectEvents, objects));
    dram.push(measure('dram', true, 'inline', objectEvents, objects));
  }
  const appendBatchEps = median(batch.map((r) => r.eps));
  const appendEps = median(single.map((r) => r.eps));
  const pmemInlineEps = median(pmemInline.map((r) => r.eps));
  const dramEps = median(dram.map((r) => r.eps));
  const ratio = pmemInlineEps / dramEps;
  const bytesPerEvent = median(batch.map((r) => r.bytesPerEvent));
  const rssMb = process.memoryUsage().rss / 2 ** 20;
  printTable(`ingest of Stock (28 B events), medians of ${repeats} runs, PMem on ${PMEM_ROOT}`, ['configuration', 'events', 'events/s', 'target'], [
    ['appendBatch (columns), PMem flank, flushEvery 25', events, appendBatchEps, '>= 10,000,000'],
    ['append(object), PMem flank, flushEvery 25', objectEvents, appendEps, '>= 3,000,000'],
    ['append(object), PMem flank, inline leaf writer', objectEvents, pmemInlineEps, ''],
    ['append(object), DRAM flank, inline leaf writer', objectEvents, dramEps, ''],
    ['ratio PMem flank / DRAM flank (inline writers)', '', round(ratio, 3), '>= 0.95'],
    ['bytes per event on SSD', '', round(bytesPerEvent, 2), '<= 5.7'],
    ['RSS with the generated input, before ingest (MiB)', '', round(inputRssMb, 0), ''],
    ['RSS after the runs (MiB)', '', round(rssMb, 0), 'bounded'],
  ]);
  printResult({
    bench: 'ingest',
    events,
    append_eps: Math.round(appendEps),
    append_batch_eps: Math.round(appendBatchEps),
    dram_flank_eps: Math.round(dramEps),
    ratio_flush25_vs_dram: round(ratio, 3),
    pmem_flank_inline_eps: Math.round(pmemInlineEps),
    bytes_per_event: round(bytesPerEvent, 3),
    rss_mb: round(rssMb, 0),
    input_rss_mb: round(inputRssMb, 0),
  });
}
