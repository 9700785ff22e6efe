// `npm run bench -- node-storage [--events N] [--quick]`: paper Fig. 6's measurements for the
// engine as configured today - index nodes and their aggregates in flat PMem arrays, leaves on
// SSD (the paper's "index nodes on PMem" variant). The paper's other variants (baseline: index
// nodes with inline aggregates in the SSD file; aggregates alone in a PMem array) are not
// configurable in the engine yet, so this bench measures one column of the figure.
// N events of Stock and of Sine (default 5 M, 1 M with --quick), each into a fresh store:
//   insert_s            appendBatch of 65,536-event column chunks, then flush()
//   point_us            events of one random timestamp (Stock), reopened store, median of 201
//   agg_<p>_us          aggregate() over a random window of p = 0.1 / 1 / 10 / 100 % of the span
//                       (Stock), median of 51 (the 100 % window is the whole span)
//   filter_ms           range over the whole Sine span with where a1 in [-d, d], d chosen for
//                       0.1 % selectivity (sin is near 0 twice per 1e6-event period); the
//                       min/max aggregates skip the subtrees that cannot match. Median of 5.

import { open } from '../src/store.js';
import { Random } from '../src/util/random.js';
import { freshStore } from './bench-store.js';
import { SINE_SCHEMA, STOCK_SCHEMA, type SineColumns, type StockColumns, StockGenerator, sineColumns } from './datasets.js';
import { type BenchArgs, medianMicros, nowNs, printResult, printTable, round } from './harness.js';

const CHUNK = 65_536;
const AGGREGATE_FRACTIONS = [0.001, 0.01, 0.1, 1] as const;
/** |sin θ| <= d for a fraction 4·asin(d) / 2π of a period: 0.1 % at d = sin(0.0005 π). */
const FILTER_SELECTIVITY = 0.001;
const FILTER_HALF_WIDTH = Math.sin((FILTER_SELECTIVITY * Math.PI) / 2);

/** Fills a fresh store with `events` events from `chunkAt(start, count)`; returns the insert seconds and how to reopen it. */
function build(name: string, schema: Readonly<Record<string, 'u32' | 'f64'>>, events: number, chunkAt: (start: number, count: number) => StockColumns | SineColumns) {
  const bench = freshStore(`node-storage-${name}`);
  const stream = bench.store.createStream(name, schema);
  const chunks: (StockColumns | SineColumns)[] = [];
  for (let start = 0; start < events; start += CHUNK) chunks.push(chunkAt(start, Math.min(CHUNK, events - start)));
  const start = nowNs();
  for (const chunk of chunks) stream.appendBatch(chunk);
  stream.flush();
  const insertSeconds = (nowNs() - start) / 1e9;
  bench.store.close();
  return { insertSeconds, reopen: () => open(bench.dir, { pmemDir: bench.pmemDir }), discard: bench.discard };
}

export async function run(args: BenchArgs): Promise<void> {
  const events = args.events ?? (args.quick ? 1_000_000 : 5_000_000);
  const random = new Random(17);

  const generator = new StockGenerator(42);
  const stock = build('stock', STOCK_SCHEMA, events, (_, count) => generator.next(count));
  const aggregateUs: Record<string, number> = {};
  let pointUs: number;
  try {
    const db = stock.reopen();
    const stream = db.stream('stock');
    pointUs = await medianMicros(201, () => {
      if (stream.get(random.nextInt(events)).length !== 1) throw new Error('point query missed');
    });
    for (const fraction of AGGREGATE_FRACTIONS) {
      const width = Math.max(1, Math.floor(events * fraction));
      aggregateUs[fraction] = await medianMicros(51, () => {
        const from = width >= events ? 0 : random.nextInt(events - width);
        if (stream.aggregate(from, from + width - 1).count !== width) throw new Error(`aggregate over ${fraction * 100} % miscounted`);
      });
    }
    db.close();
  } finally {
    stock.discard();
  }

  const sine = build('sine', SINE_SCHEMA, events, sineColumns);
  let filterMs: number;
  let matched = 0;
  try {
    const db = sine.reopen();
    const stream = db.stream('sine');
    filterMs = (await medianMicros(args.quick ? 3 : 5, () => {
      matched = 0;
      for (const _ of stream.range(0, events - 1, { where: { a1: [-FILTER_HALF_WIDTH, FILTER_HALF_WIDTH] } })) matched++;
    })) / 1000;
    db.close();
  } finally {
    sine.discard();
  }

  const percent = (fraction: number) => `${round(fraction * 100, 1)} %`;
  printTable(`paper Fig. 6 queries, current node storage (index nodes + aggregates in PMem arrays), ${events.toLocaleString('en-US')} events (medians)`, ['measurement', 'value'], [
    ['insert Stock (s)', round(stock.insertSeconds, 3)],
    ['insert Sine (s)', round(sine.insertSeconds, 3)],
    ['point query, Stock (µs)', pointUs],
    ...AGGREGATE_FRACTIONS.map((fraction): [string, number] => [`temporal aggregation over ${percent(fraction)}, Stock (µs)`, aggregateUs[fraction]!]),
    [`filter a1 in [-${FILTER_HALF_WIDTH.toPrecision(3)}, ${FILTER_HALF_WIDTH.toPrecision(3)}], Sine (ms; ${matched.toLocaleString('en-US')} events = ${round((100 * matched) / events, 3)} %)`, filterMs],
    ['variants baseline / agg-array / node-array', 'not configurable yet'],
  ]);
  printResult({
    bench: 'node-storage',
    events,
    variant: 'current: index nodes and aggregates in PMem flat arrays, leaves on SSD',
    variants_not_configurable: ['baseline', 'agg-array', 'node-array'],
    insert_stock_s: round(stock.insertSeconds, 3),
    insert_sine_s: round(sine.insertSeconds, 3),
    point_us: round(pointUs, 2),
    agg_0_1pct_us: round(aggregateUs[0.001]!, 2),
    agg_1pct_us: round(aggregateUs[0.01]!, 2),
    agg_10pct_us: round(aggregateUs[0.1]!, 2),
    agg_100pct_us: round(aggregateUs[1]!, 2),
    filter_ms: round(filterMs, 3),
    filter_selectivity: round(matched / events, 5),
  });
}
