// `npm run bench -- node-storage [--events N] [--quick]`: paper Fig. 6 - the node storage
// variants (StreamOptions.nodeStorage, src/tree/node-storage.ts) on the same data and the same
// queries, in one run:
//   pmem             index nodes and their aggregates in flat PMem arrays (the paper's "index
//                    nodes on PMem"; the engine's default)
//   pmem-aggregates  aggregates in PMem arrays, closed index nodes read from SSD ("aggregates on PMem")
//   ssd              closed index nodes read from SSD with their children's aggregates inline,
//                    so fewer fit a node and the tree is taller (the paper's baseline, ChronicleDB)
// The flank (open nodes, open leaf, ring) is in PMem in every variant. N events of Stock and of
// Sine (default 5 M, 1 M with --quick), each into a fresh store per variant:
//   insert_<stream>_s   appendBatch of 65,536-event column chunks, then flush()
//   point_us            events of one random timestamp (Stock), median of 201
//   agg_<p>_us          aggregate() over a random window of p = 0.1 / 1 / 10 / 100 % of the span
//                       (Stock), median of 51 (the 100 % window is the whole span)
//   filter_ms           range over the whole Sine span with where a1 in [-d, d], d chosen for
//                       0.1 % selectivity (sin is near 0 twice per 1e6-event period); the
//                       min/max aggregates skip the subtrees that cannot match. Median of 21
//                       (11 with --quick): single runs jitter by up to 10x on this machine.
// Queries run on the reopened store in two cache states, each on a fresh open and after one
// unmeasured pass of the same queries (JIT; the OS page cache is warm anyway: the files were
// just written and it cannot be dropped on this machine):
//   cold   cacheBytes 0: no DRAM cache, so every query reads each index node and leaf it
//          touches from where its variant keeps it (PMem mapping, or SSD file) - what Fig. 6
//          compares;
//   warm   the default 64 MiB cache: closed index nodes of the SSD variants are DRAM copies.
// Before the measured inserts, every variant fills and drops a small store once (JIT), so the
// variant measured first is not the one that pays for compiling the insert path.
// Ratios are variant time / 'pmem' time (ratio_vs_pmem) and, the paper's form, variant time /
// 'ssd' time (ratio_vs_ssd).

import { type Store, open } from '../src/store.js';
import type { Stream } from '../src/stream.js';
import { NODE_STORAGE_KINDS, type NodeStorageKind } from '../src/tree/node-storage.js';
import { Random } from '../src/util/random.js';
import { freshStore } from './bench-store.js';
import { SINE_SCHEMA, STOCK_SCHEMA, type SineColumns, type StockColumns, StockGenerator, sineColumns } from './datasets.js';
import { type BenchArgs, medianMicros, nowNs, printResult, printTable, round } from './harness.js';

const CHUNK = 65_536;
const AGGREGATE_FRACTIONS = [0.001, 0.01, 0.1, 1] as const;
/** |sin θ| <= d for a fraction 4·asin(d) / 2π of a period: 0.1 % at d = sin(0.0005 π). */
const FILTER_SELECTIVITY = 0.001;
const FILTER_HALF_WIDTH = Math.sin((FILTER_SELECTIVITY * Math.PI) / 2);
/** Store cacheBytes per cache state (undefined: the default). */
const CACHE_STATES = { cold: 0, warm: undefined } as const;
export type CacheState = keyof typeof CACHE_STATES;
const CACHE_STATE_NAMES = Object.keys(CACHE_STATES) as CacheState[];
const QUERY_KEYS = ['point_us', 'agg_0_1pct_us', 'agg_1pct_us', 'agg_10pct_us', 'agg_100pct_us', 'filter_ms'] as const;
export type QueryKey = (typeof QUERY_KEYS)[number];

/** What the paper says of each variant against its baseline (004 §4.1, Fig. 6), as time ratios variant / baseline. */
const PAPER_VS_BASELINE = {
  'pmem-aggregates': { insert: '~1 (barely affected)', point_us: '~0.85', aggregation: '1.10-1.25', filter_ms: '~0.85' },
  pmem: { insert: '~1 (barely affected)', point_us: '0.60-0.65', aggregation: '0.60-0.65', filter_ms: '0.60-0.65' },
} as const;
/** The same, divided by the paper's node-array ratio: what our ratios against 'pmem' should be. */
const PAPER_VS_PMEM = {
  ssd: { point_us: '1.54-1.67', aggregation: '1.54-1.67', filter_ms: '1.54-1.67' },
  'pmem-aggregates': { point_us: '1.31-1.42', aggregation: '1.69-2.08', filter_ms: '1.31-1.42' },
} as const;

type Columns = StockColumns | SineColumns;
/** Closed index nodes read from SSD per measured query (cache misses of the SSD variants' node cache; 0 for 'pmem'). */
interface NodeReads {
  ssd_node_reads_per_stock_query: number;
  ssd_node_reads_per_filter: number;
}
type QueryTimes = Record<QueryKey, number> & NodeReads;

/** The same data and the same query parameters for every variant. */
interface Workload {
  readonly events: number;
  readonly stock: readonly StockColumns[];
  readonly sine: readonly SineColumns[];
  readonly points: readonly number[];
  /** Window starts per aggregate fraction. */
  readonly windows: ReadonlyMap<number, readonly number[]>;
  readonly filterRepeats: number;
}

function workload(events: number, quick: boolean): Workload {
  const generator = new StockGenerator(42);
  const stock: StockColumns[] = [];
  const sine: SineColumns[] = [];
  for (let start = 0; start < events; start += CHUNK) {
    const count = Math.min(CHUNK, events - start);
    stock.push(generator.next(count));
    sine.push(sineColumns(start, count));
  }
  const random = new Random(17);
  const windows = new Map(AGGREGATE_FRACTIONS.map((fraction) => {
    const width = windowWidth(events, fraction);
    return [fraction, Array.from({ length: 51 }, () => (width >= events ? 0 : random.nextInt(events - width)))];
  }));
  return { events, stock, sine, points: Array.from({ length: 201 }, () => random.nextInt(events)), windows, filterRepeats: quick ? 11 : 21 };
}

function windowWidth(events: number, fraction: number): number {
  return Math.max(1, Math.floor(events * fraction));
}

interface BuiltStore {
  readonly insertSeconds: number;
  /** Levels of the tree (the baseline's fuller nodes make it taller). */
  readonly height: number;
  reopen(cacheBytes: number | undefined): Store;
  discard(): void;
}

/** Fills a fresh store with `chunks` under `nodeStorage` and closes it. */
function build(name: string, nodeStorage: NodeStorageKind, schema: Readonly<Record<string, 'u32' | 'f64'>>, chunks: readonly Columns[]): BuiltStore {
  const bench = freshStore(`node-storage-${name}-${nodeStorage}`);
  const stream = bench.store.createStream(name, schema, { nodeStorage });
  const start = nowNs();
  for (const chunk of chunks) stream.appendBatch(chunk);
  stream.flush();
  const insertSeconds = (nowNs() - start) / 1e9;
  const { height } = stream.stats();
  bench.store.close();
  return {
    insertSeconds,
    height,
    reopen: (cacheBytes) => open(bench.dir, { pmemDir: bench.pmemDir, ...(cacheBytes === undefined ? {} : { cacheBytes }) }),
    discard: bench.discard,
  };
}

/** Fills and drops a small store of each stream (the first chunks), unmeasured. */
function warmUpInserts(w: Workload, kind: NodeStorageKind): void {
  build('stock', kind, STOCK_SCHEMA, w.stock.slice(0, 3)).discard();
  build('sine', kind, SINE_SCHEMA, w.sine.slice(0, 3)).discard();
}

interface Measured<T> {
  readonly times: T;
  /** How many queries were timed. */
  readonly count: number;
}

/**
 * Runs `queries` in every cache state, each on a freshly reopened store after one unmeasured
 * pass, then drops the store. Returns the times and the closed index nodes
 * read from SSD per timed query.
 */
async function inEveryCacheState<T>(built: BuiltStore, name: string, queries: (stream: Stream) => Promise<Measured<T>>): Promise<Record<CacheState, { times: T; nodeReadsPerQuery: number }>> {
  const results: Partial<Record<CacheState, { times: T; nodeReadsPerQuery: number }>> = {};
  try {
    for (const state of CACHE_STATE_NAMES) {
      const db = built.reopen(CACHE_STATES[state]);
      try {
        const stream = db.stream(name);
        await queries(stream);
        const readsBefore = stream.stats().indexNodes.readsFromSsd;
        const { times, count } = await queries(stream);
        results[state] = { times, nodeReadsPerQuery: round((stream.stats().indexNodes.readsFromSsd - readsBefore) / count, 2) };
      } finally {
        db.close();
      }
    }
  } finally {
    built.discard();
  }
  return results as Record<CacheState, { times: T; nodeReadsPerQuery: number }>;
}

async function stockQueries(w: Workload, stream: Stream): Promise<Measured<Omit<Record<QueryKey, number>, 'filter_ms'>>> {
  const point_us = await medianMicros(w.points.length, (i) => {
    if (stream.get(w.points[i]!).length !== 1) throw new Error('point query missed');
  });
  const aggregate = async (fraction: number) => {
    const width = windowWidth(w.events, fraction);
    const starts = w.windows.get(fraction)!;
    return medianMicros(starts.length, (i) => {
      if (stream.aggregate(starts[i]!, starts[i]! + width - 1).count !== width) throw new Error(`aggregate over ${fraction * 100} % miscounted`);
    });
  };
  const [agg_0_1pct_us, agg_1pct_us, agg_10pct_us, agg_100pct_us] = [await aggregate(0.001), await aggregate(0.01), await aggregate(0.1), await aggregate(1)];
  const count = w.points.length + [...w.windows.values()].reduce((sum, starts) => sum + starts.length, 0);
  return { times: { point_us, agg_0_1pct_us, agg_1pct_us, agg_10pct_us, agg_100pct_us }, count };
}

/** The filter query; `matched` counts what the last run returned. */
async function sineFilter(w: Workload, stream: Stream, matched: { events: number }): Promise<Measured<{ filter_ms: number }>> {
  const micros = await medianMicros(w.filterRepeats, () => {
    matched.events = 0;
    for (const _ of stream.range(0, w.events - 1, { where: { a1: [-FILTER_HALF_WIDTH, FILTER_HALF_WIDTH] } })) matched.events++;
  });
  return { times: { filter_ms: micros / 1000 }, count: w.filterRepeats };
}

interface VariantResult {
  insert_stock_s: number;
  insert_sine_s: number;
  height_stock: number;
  cold: QueryTimes;
  warm: QueryTimes;
}

async function measureVariant(w: Workload, kind: NodeStorageKind, matched: { events: number }): Promise<VariantResult> {
  const stock = build('stock', kind, STOCK_SCHEMA, w.stock);
  const stockRuns = await inEveryCacheState(stock, 'stock', (stream) => stockQueries(w, stream));
  const sine = build('sine', kind, SINE_SCHEMA, w.sine);
  const sineRuns = await inEveryCacheState(sine, 'sine', (stream) => sineFilter(w, stream, matched));
  const inState = (state: CacheState): QueryTimes => ({
    ...roundTimes({ ...stockRuns[state].times, ...sineRuns[state].times }),
    ssd_node_reads_per_stock_query: stockRuns[state].nodeReadsPerQuery,
    ssd_node_reads_per_filter: sineRuns[state].nodeReadsPerQuery,
  });
  return { insert_stock_s: round(stock.insertSeconds, 3), insert_sine_s: round(sine.insertSeconds, 3), height_stock: stock.height, cold: inState('cold'), warm: inState('warm') };
}

/** The key of a query's ratio in a cache state: `cold_point`, `warm_agg_1pct`, ... */
export function ratioKey(state: CacheState, key: QueryKey): string {
  return `${state}_${key.replace(/_(us|ms)$/, '')}`;
}

function roundTimes(times: Record<QueryKey, number>): Record<QueryKey, number> {
  return Object.fromEntries(QUERY_KEYS.map((key) => [key, round(times[key], key === 'filter_ms' ? 3 : 2)])) as Record<QueryKey, number>;
}

/** Each variant's times divided by `base`'s: against 'pmem' (> 1: slower than index nodes in PMem), and against 'ssd', the paper's form. */
function ratiosAgainst(base: NodeStorageKind, variants: Record<NodeStorageKind, VariantResult>): Record<NodeStorageKind, Record<string, number>> {
  const b = variants[base];
  return Object.fromEntries(NODE_STORAGE_KINDS.filter((kind) => kind !== base).map((kind) => {
    const v = variants[kind];
    const ratios: Record<string, number> = { insert_stock: round(v.insert_stock_s / b.insert_stock_s, 3), insert_sine: round(v.insert_sine_s / b.insert_sine_s, 3) };
    for (const state of CACHE_STATE_NAMES) for (const key of QUERY_KEYS) ratios[ratioKey(state, key)] = round(v[state][key] / b[state][key], 3);
    return [kind, ratios];
  })) as Record<NodeStorageKind, Record<string, number>>;
}

const QUERY_LABELS: Record<QueryKey, string> = {
  point_us: 'point query, Stock (µs)',
  agg_0_1pct_us: 'aggregation 0.1 %, Stock (µs)',
  agg_1pct_us: 'aggregation 1 %, Stock (µs)',
  agg_10pct_us: 'aggregation 10 %, Stock (µs)',
  agg_100pct_us: 'aggregation 100 %, Stock (µs)',
  filter_ms: 'filter 0.1 %, Sine (ms)',
};

function printVariants(events: number, variants: Record<NodeStorageKind, VariantResult>, ratios: Record<NodeStorageKind, Record<string, number>>, matched: number): void {
  const header = ['measurement', ...NODE_STORAGE_KINDS, ...NODE_STORAGE_KINDS.filter((kind) => kind !== 'pmem').map((kind) => `${kind} / pmem`)];
  const others = NODE_STORAGE_KINDS.filter((kind) => kind !== 'pmem');
  const rows: (string | number)[][] = [
    ['insert Stock (s)', ...NODE_STORAGE_KINDS.map((kind) => variants[kind].insert_stock_s), ...others.map((kind) => ratios[kind].insert_stock!)],
    ['insert Sine (s)', ...NODE_STORAGE_KINDS.map((kind) => variants[kind].insert_sine_s), ...others.map((kind) => ratios[kind].insert_sine!)],
    ['tree height, Stock', ...NODE_STORAGE_KINDS.map((kind) => variants[kind].height_stock), ...others.map(() => '')],
  ];
  for (const state of CACHE_STATE_NAMES) {
    for (const key of QUERY_KEYS) rows.push([`${state}: ${QUERY_LABELS[key]}`, ...NODE_STORAGE_KINDS.map((kind) => variants[kind][state][key]), ...others.map((kind) => ratios[kind][ratioKey(state, key)]!)]);
    rows.push([`${state}: index nodes read from SSD per Stock query`, ...NODE_STORAGE_KINDS.map((kind) => variants[kind][state].ssd_node_reads_per_stock_query), ...others.map(() => '')]);
    rows.push([`${state}: index nodes read from SSD per filter`, ...NODE_STORAGE_KINDS.map((kind) => variants[kind][state].ssd_node_reads_per_filter), ...others.map(() => '')]);
  }
  printTable(`paper Fig. 6, node storage variants, ${events.toLocaleString('en-US')} events of Stock and Sine (medians; filter matched ${matched.toLocaleString('en-US')} events = ${round((100 * matched) / events, 3)} %)`, header, rows);
  console.log('  cold: cacheBytes 0 (every node and leaf read from its medium); warm: default 64 MiB cache; both on a fresh open after one unmeasured pass');
  console.log('  paper (time ratio vs its baseline = ssd): pmem-aggregates point ~0.85, aggregation 1.10-1.25, filter ~0.85; pmem 0.60-0.65 on every query; insert barely affected');
}

export async function run(args: BenchArgs): Promise<void> {
  const events = args.events ?? (args.quick ? 1_000_000 : 5_000_000);
  const w = workload(events, args.quick);
  const matched = { events: 0 };
  for (const kind of NODE_STORAGE_KINDS) warmUpInserts(w, kind);
  const variants = {} as Record<NodeStorageKind, VariantResult>;
  for (const kind of NODE_STORAGE_KINDS) {
    console.error(`node-storage: ${kind} ...`);
    variants[kind] = await measureVariant(w, kind, matched);
  }
  const ratios = ratiosAgainst('pmem', variants);
  printVariants(events, variants, ratios, matched.events);
  printResult({
    bench: 'node-storage',
    events,
    filter_selectivity: round(matched.events / events, 5),
    cache_states: { cold: 'cacheBytes 0: every index node and leaf read from its medium (OS page cache warm)', warm: 'default 64 MiB cache', both: 'fresh open, one unmeasured pass of the same queries first' },
    variants,
    ratio_vs_pmem: ratios,
    ratio_vs_ssd: ratiosAgainst('ssd', variants),
    paper_vs_baseline: PAPER_VS_BASELINE,
    paper_vs_pmem: PAPER_VS_PMEM,
  });
}
