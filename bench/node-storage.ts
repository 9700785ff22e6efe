// `npm run bench -- node-storage [--events N] [--quick]`: paper Fig. 6 - insert and query times
// for the three node storages (StreamOptions.nodeStorage), measured in one run on the same data:
//   ssd               the baseline: closed index nodes on SSD with their children's aggregates
//                     inline (so fewer entries fit a node and the tree is taller)
//   pmem-aggregates   aggregates in PMem arrays, closed index nodes on SSD
//   pmem              index nodes and aggregates in PMem arrays (the default)
// The flank is in PMem in all three. Every query runs on a reopened store, so closed nodes start
// cold in the node cache (the OS page cache is warm: it cannot be dropped here).
// N events of Stock and of Sine (default 5 M, 1 M with --quick), each into a fresh store:
//   insert_s            appendBatch of 65,536-event column chunks, then flush()
//   point_us            events of one random timestamp (Stock), median of 201
//   agg_<p>_us          aggregate() over a random window of p = 0.1 / 1 / 10 / 100 % of the span
//                       (Stock), median of 51 (the 100 % window is the whole span)
//   filter_ms           range over the whole Sine span with where a1 in [-d, d], d chosen for
//                       0.1 % selectivity (sin is near 0 twice per 1e6-event period); the
//                       min/max aggregates skip the subtrees that cannot match. Median of 5.
// Ratios are each variant's time over the baseline's, as the paper reports them.

import { open } from '../src/store.js';
import type { NodeStorageKind } from '../src/tree/node-storage.js';
import { Random } from '../src/util/random.js';
import { freshStore } from './bench-store.js';
import { SINE_SCHEMA, STOCK_SCHEMA, type SineColumns, type StockColumns, StockGenerator, sineColumns } from './datasets.js';
import { type BenchArgs, medianMicros, nowNs, printResult, printTable, round } from './harness.js';

const CHUNK = 65_536;
const AGGREGATE_FRACTIONS = [0.001, 0.01, 0.1, 1] as const;
/** |sin θ| <= d for a fraction 4·asin(d) / 2π of a period: 0.1 % at d = sin(0.0005 π). */
const FILTER_SELECTIVITY = 0.001;
const FILTER_HALF_WIDTH = Math.sin((FILTER_SELECTIVITY * Math.PI) / 2);

interface VariantFigures {
  insert_stock_s: number;
  insert_sine_s: number;
  height: number;
  point_us: number;
  agg_0_1pct_us: number;
  agg_1pct_us: number;
  agg_10pct_us: number;
  agg_100pct_us: number;
  filter_ms: number;
  filter_selectivity: number;
}

/** Paper Fig. 6 (§5, ChronicleDB as the baseline): each variant's query time over the baseline's. */
const PAPER_RATIOS = {
  'pmem-aggregates': 'point ~0.85, temporal aggregation 1.10-1.25, filter ~0.85, insert ~1',
  pmem: 'every query 0.60-0.65, insert ~1',
} as const;

/** Fills a fresh store with `events` events from `chunkAt(start, count)`; returns the insert seconds and how to reopen it. */
function build(name: string, nodeStorage: NodeStorageKind, schema: Readonly<Record<string, 'u32' | 'f64'>>, events: number, chunkAt: (start: number, count: number) => StockColumns | SineColumns) {
  const bench = freshStore(`node-storage-${name}-${nodeStorage}`);
  const stream = bench.store.createStream(name, schema, { nodeStorage });
  const chunks: (StockColumns | SineColumns)[] = [];
  for (let start = 0; start < events; start += CHUNK) chunks.push(chunkAt(start, Math.min(CHUNK, events - start)));
  const start = nowNs();
  for (const chunk of chunks) stream.appendBatch(chunk);
  stream.flush();
  const insertSeconds = (nowNs() - start) / 1e9;
  bench.store.close();
  return { insertSeconds, reopen: () => open(bench.dir, { pmemDir: bench.pmemDir }), discard: bench.discard };
}

async function measure(nodeStorage: NodeStorageKind, events: number, quick: boolean): Promise<VariantFigures> {
  const random = new Random(17);
  const generator = new StockGenerator(42);
  const stock = build('stock', nodeStorage, STOCK_SCHEMA, events, (_, count) => generator.next(count));
  const aggregateUs: Record<string, number> = {};
  let pointUs: number;
  let height: number;
  try {
    const db = stock.reopen();
    const stream = db.stream('stock');
    height = stream.stats().height;
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

  const sine = build('sine', nodeStorage, SINE_SCHEMA, events, sineColumns);
  let filterMs: number;
  let matched = 0;
  try {
    const db = sine.reopen();
    const stream = db.stream('sine');
    filterMs = (await medianMicros(quick ? 3 : 5, () => {
      matched = 0;
      for (const _ of stream.range(0, events - 1, { where: { a1: [-FILTER_HALF_WIDTH, FILTER_HALF_WIDTH] } })) matched++;
    })) / 1000;
    db.close();
  } finally {
    sine.discard();
  }
  return {
    insert_stock_s: round(stock.insertSeconds, 3),
    insert_sine_s: round(sine.insertSeconds, 3),
    height,
    point_us: round(pointUs, 2),
    agg_0_1pct_us: round(aggregateUs[0.001]!, 2),
    agg_1pct_us: round(aggregateUs[0.01]!, 2),
    agg_10pct_us: round(aggregateUs[0.1]!, 2),
    agg_100pct_us: round(aggregateUs[1]!, 2),
    filter_ms: round(filterMs, 3),
    filter_selectivity: round(matched / events, 5),
  };
}

const MEASURES: readonly (readonly [keyof VariantFigures, string])[] = [
  ['insert_stock_s', 'insert Stock (s)'],
  ['insert_sine_s', 'insert Sine (s)'],
  ['height', 'tree height, Stock'],
  ['point_us', 'point query, Stock (µs)'],
  ['agg_0_1pct_us', 'temporal aggregation over 0.1 %, Stock (µs)'],
  ['agg_1pct_us', 'temporal aggregation over 1 %, Stock (µs)'],
  ['agg_10pct_us', 'temporal aggregation over 10 %, Stock (µs)'],
  ['agg_100pct_us', 'temporal aggregation over 100 %, Stock (µs)'],
  ['filter_ms', `filter a1 in [-${FILTER_HALF_WIDTH.toPrecision(3)}, ${FILTER_HALF_WIDTH.toPrecision(3)}] (0.1 %), Sine (ms)`],
];

export async function run(args: BenchArgs): Promise<void> {
  const events = args.events ?? (args.quick ? 1_000_000 : 5_000_000);
  const figures = {} as Record<NodeStorageKind, VariantFigures>;
  for (const kind of ['ssd', 'pmem-aggregates', 'pmem'] as const) figures[kind] = await measure(kind, events, args.quick);
  const baseline = figures.ssd;
  const ratio = (kind: NodeStorageKind, key: keyof VariantFigures) => round(figures[kind][key] / baseline[key], 3);
  printTable(`paper Fig. 6: node storage variants, ${events.toLocaleString('en-US')} events (medians; ratio = time / baseline's)`, ['measurement', 'ssd (baseline)', 'pmem-aggregates', 'ratio', 'pmem', 'ratio'], [
    ...MEASURES.map(([key, label]) => [label, baseline[key], figures['pmem-aggregates'][key], ratio('pmem-aggregates', key), figures.pmem[key], ratio('pmem', key)]),
    ['paper, time / baseline', '', PAPER_RATIOS['pmem-aggregates'], '', PAPER_RATIOS.pmem, ''],
  ]);
  const ratios = (kind: NodeStorageKind) => Object.fromEntries(MEASURES.filter(([key]) => key !== 'height').map(([key]) => [key, ratio(kind, key)]));
  printResult({
    bench: 'node-storage',
    events,
    ssd: baseline,
    pmem_aggregates: figures['pmem-aggregates'],
    pmem: figures.pmem,
    ratio_pmem_aggregates_vs_ssd: ratios('pmem-aggregates'),
    ratio_pmem_vs_ssd: ratios('pmem'),
    paper: PAPER_RATIOS,
  });
}
