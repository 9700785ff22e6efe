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
//   insert_<stream>_s   appendBatch of 65,536-event column chunks, then flush(); every variant
//                       first fills and drops a small store (JIT), so the one measured first
//                       does not pay for compiling the insert path
//   point_us            events of one random timestamp (Stock), 201 timestamps
//   agg_<p>_us          aggregate() over a random window of p = 0.1 / 1 / 10 / 100 % of the span
//                       (Stock), 51 windows each (the 100 % window is the whole span)
//   filter_ms           range over the whole Sine span with where a1 in [-d, d], d chosen for
//                       0.1 % selectivity (sin is near 0 twice per 1e6-event period); the
//                       min/max aggregates skip the subtrees that cannot match; 21 runs (11 with
//                       --quick)
// Each query set runs in ROUNDS rounds that visit the variants in turn, each time on a fresh open
// after one unmeasured pass (JIT, and the warm state's cache); values are medians over every
// round's samples, so a burst of load on this shared machine falls on all variants alike. Two
// cache states (the OS page cache is warm in both: the files were just written, and it cannot be
// dropped on this machine):
//   cold   cacheBytes 0: no DRAM cache, so every query reads each index node and leaf it
//          touches from where its variant keeps it (PMem mapping, or SSD file) - what Fig. 6
//          compares;
//   warm   the default 64 MiB cache: closed index nodes of the SSD variants are DRAM copies.
// Ratios are variant time / 'pmem' time (ratio_vs_pmem) and, the paper's form, variant time /
// 'ssd' time (ratio_vs_ssd).

import { type Store, open } from '../src/store.js';
import type { Stream } from '../src/stream.js';
import { NODE_STORAGE_KINDS, type NodeStorageKind } from '../src/tree/node-storage.js';
import { Random } from '../src/util/random.js';
import { freshStore } from './bench-store.js';
import { SINE_SCHEMA, STOCK_SCHEMA, type SineColumns, type StockColumns, StockGenerator, sineColumns } from './datasets.js';
import { type BenchArgs, median, nowNs, printResult, printTable, round } from './harness.js';

const CHUNK = 65_536;
const AGGREGATE_FRACTIONS = [0.001, 0.01, 0.1, 1] as const;
/** |sin θ| <= d for a fraction 4·asin(d) / 2π of a period: 0.1 % at d = sin(0.0005 π). */
const FILTER_SELECTIVITY = 0.001;
const FILTER_HALF_WIDTH = Math.sin((FILTER_SELECTIVITY * Math.PI) / 2);
/** Store cacheBytes per cache state (undefined: the default). */
const CACHE_STATES = { cold: 0, warm: undefined } as const;
export type CacheState = keyof typeof CACHE_STATES;
const CACHE_STATE_NAMES = Object.keys(CACHE_STATES) as CacheState[];
/** Measured rounds over the variants (interleaved()). */
const ROUNDS = 3;
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

/** Nanoseconds of each timed query, by measurement. */
type Samples = Partial<Record<QueryKey, number[]>>;
/** Runs a set of queries once on `stream`, adding each one's time to `into`; returns how many ran. */
type QuerySet = (stream: Stream, into: Samples) => number;

function timed(into: Samples, key: QueryKey, body: () => void): void {
  const start = nowNs();
  body();
  (into[key] ??= []).push(nowNs() - start);
}

function stockQueries(w: Workload): QuerySet {
  return (stream, into) => {
    for (const ts of w.points) {
      timed(into, 'point_us', () => {
        if (stream.get(ts).length !== 1) throw new Error('point query missed');
      });
    }
    for (const [fraction, key] of [[0.001, 'agg_0_1pct_us'], [0.01, 'agg_1pct_us'], [0.1, 'agg_10pct_us'], [1, 'agg_100pct_us']] as const) {
      const width = windowWidth(w.events, fraction);
      for (const from of w.windows.get(fraction)!) {
        timed(into, key, () => {
          if (stream.aggregate(from, from + width - 1).count !== width) throw new Error(`aggregate over ${fraction * 100} % miscounted`);
        });
      }
    }
    return w.points.length + [...w.windows.values()].reduce((sum, starts) => sum + starts.length, 0);
  };
}

/** The filter query; `matched` counts what the last run returned. */
function sineFilter(w: Workload, matched: { events: number }): QuerySet {
  return (stream, into) => {
    for (let i = 0; i < w.filterRepeats; i++) {
      timed(into, 'filter_ms', () => {
        matched.events = 0;
        for (const _ of stream.range(0, w.events - 1, { where: { a1: [-FILTER_HALF_WIDTH, FILTER_HALF_WIDTH] } })) matched.events++;
      });
    }
    return w.filterRepeats;
  };
}

interface StateResult {
  /** Median per measurement, in the unit its key names. */
  readonly times: Partial<Record<QueryKey, number>>;
  readonly nodeReadsPerQuery: number;
}

/**
 * Times `queries` on every variant's store in every cache state, in ROUNDS rounds that visit the
 * variants in turn, each on a fresh open after one unmeasured pass: bursts of load on this shared
 * machine then fall on all variants alike instead of on whichever ran at the time. Medians over
 * every round's samples; then the stores are dropped.
 */
function interleaved(stores: Record<NodeStorageKind, BuiltStore>, name: string, queries: QuerySet): Record<NodeStorageKind, Record<CacheState, StateResult>> {
  const samples = new Map<string, { into: Samples; nodeReads: number; count: number }>();
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const state of CACHE_STATE_NAMES) {
        for (const kind of NODE_STORAGE_KINDS) {
          const entry = samples.get(`${kind} ${state}`) ?? { into: {}, nodeReads: 0, count: 0 };
          samples.set(`${kind} ${state}`, entry);
          const db = stores[kind].reopen(CACHE_STATES[state]);
          try {
            const stream = db.stream(name);
            queries(stream, {});
            const readsBefore = stream.stats().indexNodes.readsFromSsd;
            entry.count += queries(stream, entry.into);
            entry.nodeReads += stream.stats().indexNodes.readsFromSsd - readsBefore;
          } finally {
            db.close();
          }
        }
      }
    }
  } finally {
    for (const kind of NODE_STORAGE_KINDS) stores[kind].discard();
  }
  return Object.fromEntries(NODE_STORAGE_KINDS.map((kind) => [kind, Object.fromEntries(CACHE_STATE_NAMES.map((state) => {
    const { into, nodeReads, count } = samples.get(`${kind} ${state}`)!;
    const times = Object.fromEntries(Object.entries(into).map(([key, ns]) => [key, round(median(ns) / (key.endsWith('_ms') ? 1e6 : 1e3), key.endsWith('_ms') ? 3 : 2)]));
    return [state, { times, nodeReadsPerQuery: round(nodeReads / count, 2) }];
  }))])) as Record<NodeStorageKind, Record<CacheState, StateResult>>;
}

interface VariantResult {
  insert_stock_s: number;
  insert_sine_s: number;
  height_stock: number;
  cold: QueryTimes;
  warm: QueryTimes;
}

/** Builds every variant's store of one stream, then times `queries` on them (interleaved()). */
function measureStream(name: string, schema: Readonly<Record<string, 'u32' | 'f64'>>, chunks: readonly Columns[], queries: QuerySet) {
  const stores = {} as Record<NodeStorageKind, BuiltStore>;
  for (const kind of NODE_STORAGE_KINDS) {
    console.error(`node-storage: ${name}, ${kind} ...`);
    stores[kind] = build(name, kind, schema, chunks);
  }
  const built = Object.fromEntries(NODE_STORAGE_KINDS.map((kind) => [kind, { insertSeconds: stores[kind].insertSeconds, height: stores[kind].height }])) as Record<NodeStorageKind, { insertSeconds: number; height: number }>;
  return { built, results: interleaved(stores, name, queries) };
}

function measureVariants(w: Workload, matched: { events: number }): Record<NodeStorageKind, VariantResult> {
  const stock = measureStream('stock', STOCK_SCHEMA, w.stock, stockQueries(w));
  const sine = measureStream('sine', SINE_SCHEMA, w.sine, sineFilter(w, matched));
  const inState = (kind: NodeStorageKind, state: CacheState): QueryTimes => ({
    ...(stock.results[kind][state].times as Omit<Record<QueryKey, number>, 'filter_ms'>),
    filter_ms: sine.results[kind][state].times.filter_ms!,
    ssd_node_reads_per_stock_query: stock.results[kind][state].nodeReadsPerQuery,
    ssd_node_reads_per_filter: sine.results[kind][state].nodeReadsPerQuery,
  });
  return Object.fromEntries(NODE_STORAGE_KINDS.map((kind) => [kind, {
    insert_stock_s: round(stock.built[kind].insertSeconds, 3),
    insert_sine_s: round(sine.built[kind].insertSeconds, 3),
    height_stock: stock.built[kind].height,
    cold: inState(kind, 'cold'),
    warm: inState(kind, 'warm'),
  }])) as Record<NodeStorageKind, VariantResult>;
}

/** The key of a query's ratio in a cache state: `cold_point`, `warm_agg_1pct`, ... */
export function ratioKey(state: CacheState, key: QueryKey): string {
  return `${state}_${key.replace(/_(us|ms)$/, '')}`;
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
  console.log(`  cold: cacheBytes 0 (every node and leaf read from its medium); warm: default 64 MiB cache; ${ROUNDS} rounds over the variants, each on a fresh open after one unmeasured pass`);
  console.log('  paper (time ratio vs its baseline = ssd): pmem-aggregates point ~0.85, aggregation 1.10-1.25, filter ~0.85; pmem 0.60-0.65 on every query; insert barely affected');
}

export function run(args: BenchArgs): void {
  const events = args.events ?? (args.quick ? 1_000_000 : 5_000_000);
  const w = workload(events, args.quick);
  const matched = { events: 0 };
  for (const kind of NODE_STORAGE_KINDS) warmUpInserts(w, kind);
  const variants = measureVariants(w, matched);
  const ratios = ratiosAgainst('pmem', variants);
  printVariants(events, variants, ratios, matched.events);
  printResult({
    bench: 'node-storage',
    events,
    filter_selectivity: round(matched.events / events, 5),
    cache_states: { cold: 'cacheBytes 0: every index node and leaf read from its medium (OS page cache warm)', warm: 'default 64 MiB cache', both: `${ROUNDS} rounds over the variants in turn, each on a fresh open after one unmeasured pass; medians over all rounds` },
    variants,
    ratio_vs_pmem: ratios,
    ratio_vs_ssd: ratiosAgainst('ssd', variants),
    paper_vs_baseline: PAPER_VS_BASELINE,
    paper_vs_pmem: PAPER_VS_PMEM,
  });
}
