// `npm run bench -- query [--events N]`: query latencies on a Stock store of N events (default
// 5 M), medians over random windows. A random 1 % window almost always cuts two leaves that
// are not cached, so it pays two leaf reads and decodes; the warm figure repeats one window. Point "cold" reads go through a store handle with no leaf
// cache, so every leaf is read from the leaf file and decoded (the OS page cache still holds
// the file: this machine cannot drop it).

import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { open } from '../src/store.js';
import { Random } from '../src/util/random.js';
import { STOCK_SCHEMA, StockGenerator } from './datasets.js';
import { type BenchArgs, median, nowNs, printResult, printTable, round } from './harness.js';

function timeEach(samples: number, body: (i: number) => void): number {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const start = nowNs();
    body(i);
    times.push(nowNs() - start);
  }
  return median(times) / 1000;
}

export function run(args: BenchArgs): void {
  const events = args.events ?? (args.quick ? 1_000_000 : 5_000_000);
  const dir = join(process.cwd(), 'data', 'bench-query');
  const pmemDir = '/dev/shm/chronotier-bench-query';
  for (const path of [dir, pmemDir]) rmSync(path, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const build = open(dir, { pmemDir });
  const stream = build.createStream('stock', STOCK_SCHEMA);
  const generator = new StockGenerator(42);
  for (let done = 0; done < events; done += 100_000) stream.appendBatch(generator.next(Math.min(100_000, events - done)));
  build.close();

  const random = new Random(7);
  const onePercent = Math.floor(events / 100);
  const db = open(dir, { pmemDir });
  const stock = db.stream('stock');
  const aggAllUs = timeEach(500, () => stock.aggregate(0, events));
  const aggOnePctUs = timeEach(500, () => {
    const from = random.nextInt(events - onePercent);
    stock.aggregate(from, from + onePercent);
  });
  // The same window again and again: its two boundary leaves stay decoded in the cache.
  const warmFrom = random.nextInt(events - onePercent);
  const aggOnePctWarmUs = timeEach(500, () => stock.aggregate(warmFrom, warmFrom + onePercent));
  const hot = Array.from({ length: 16 }, () => random.nextInt(events));
  hot.forEach((ts) => stock.get(ts));
  const pointCachedUs = timeEach(2000, (i) => stock.get(hot[i % hot.length]!));
  const scanOnePctMs = timeEach(20, () => {
    const from = random.nextInt(events - onePercent);
    let n = 0;
    for (const _ of stock.range(from, from + onePercent)) n++;
    if (n !== onePercent + 1) throw new Error(`scan found ${n} events, expected ${onePercent + 1}`);
  }) / 1000;
  db.close();
  const cold = open(dir, { pmemDir, cacheBytes: 0 });
  const coldStock = cold.stream('stock');
  const pointColdUs = timeEach(500, () => coldStock.get(random.nextInt(events)));
  cold.close();
  for (const path of [dir, pmemDir]) rmSync(path, { recursive: true, force: true });

  printTable(`queries on ${events.toLocaleString('en-US')} Stock events (medians)`, ['query', 'time', 'target'], [
    ['aggregate over everything (µs)', aggAllUs, '<= 50'],
    ['aggregate over 1 %, random windows (µs)', aggOnePctUs, '<= 20'],
    ['aggregate over 1 %, boundary leaves cached (µs)', aggOnePctWarmUs, '<= 20'],
    ['point query, leaf cached (µs)', pointCachedUs, '<= 5'],
    ['point query, leaf not cached (µs)', pointColdUs, '<= 200'],
    ['scan of 1 % (ms)', scanOnePctMs, '<= 5'],
  ]);
  printResult({ bench: 'query', events, agg_all_us: round(aggAllUs, 2), agg_1pct_us: round(aggOnePctUs, 2), agg_1pct_warm_us: round(aggOnePctWarmUs, 2), point_cached_us: round(pointCachedUs, 2), point_cold_us: round(pointColdUs, 2), scan_1pct_ms: round(scanOnePctMs, 3) });
}
