// `npm run bench -- peers [--events N] [--quick]`: chronotier next to other embedded stores on the
// same Stock events (bench/datasets.ts, default 5 M, 1 M with --quick), same machine, same run.
// Install the peers first: `npm run bench:peers:install` (they live in bench/peers/node_modules).
//   ingest_eps       events / s from open to durable and closed (each engine's own notion of durable, see bench/peer-engines.ts)
//   agg_all_ms       count + sum/min/max of every attribute over all events
//   agg_1pct_ms      the same over a random 1 % window of the time span
//   point_ms         the events of one random timestamp, as objects
//   scan_1pct_ms     every event of a random 1 % window, one JS object each
//   bytes_per_event  bytes allocated on disk after close / events (chronotier: the SSD directory;
//                    its PMem files are pmem_bytes_per_event)
// Queries run on a reopened store (warm OS page cache, cold engine caches); medians, the same
// windows and timestamps for every engine, each answer checked against the input. A peer that
// cannot be loaded or fails is reported as missing with the reason, never left out silently.

import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Random } from '../src/util/random.js';
import { StockGenerator, type StockColumns } from './datasets.js';
import { type BenchArgs, diskBytes, medianMicros, nowNs, printResult, printTable, round } from './harness.js';
import { type AggregateCheck, type MissingEngine, type PeerEngine, isMissing, peerEngines } from './peer-engines.js';

const CHUNK = 65_536;
const PMEM_ROOT = '/dev/shm';

interface EngineResult {
  ingest_eps: number;
  agg_all_ms: number;
  agg_1pct_ms: number;
  point_ms: number;
  scan_1pct_ms: number;
  bytes_per_event: number;
  pmem_bytes_per_event?: number;
}

/** The same random windows and timestamps for every engine, and the answers they must give. */
interface Workload {
  readonly events: number;
  readonly chunks: readonly StockColumns[];
  /** volumePrefix[i] = sum of volume of events [0, i). */
  readonly volumePrefix: Float64Array;
  readonly onePercentStarts: readonly number[];
  readonly points: readonly number[];
  readonly samples: { readonly aggAll: number; readonly aggOnePct: number; readonly point: number; readonly scan: number };
}

function workload(events: number, quick: boolean): Workload {
  const generator = new StockGenerator(42);
  const chunks: StockColumns[] = [];
  for (let done = 0; done < events; done += CHUNK) chunks.push(generator.next(Math.min(CHUNK, events - done)));
  const volumePrefix = new Float64Array(events + 1);
  let i = 0;
  for (const chunk of chunks) for (const volume of chunk.volume) volumePrefix[i + 1] = volumePrefix[i++]! + volume;
  const random = new Random(7);
  const onePercent = Math.floor(events / 100);
  return {
    events,
    chunks,
    volumePrefix,
    onePercentStarts: Array.from({ length: 64 }, () => random.nextInt(events - onePercent)),
    points: Array.from({ length: 256 }, () => random.nextInt(events)),
    samples: quick ? { aggAll: 3, aggOnePct: 11, point: 51, scan: 5 } : { aggAll: 5, aggOnePct: 21, point: 101, scan: 11 },
  };
}

function checkAggregate(w: Workload, from: number, to: number, got: AggregateCheck, engine: string): void {
  const count = to - from + 1;
  const volume = w.volumePrefix[to + 1]! - w.volumePrefix[from]!;
  if (got.count !== count || got.volumeSum !== volume) throw new Error(`${engine}: aggregate [${from}, ${to}] gave ${got.count} events of volume ${got.volumeSum}, expected ${count} of ${volume}`);
}

function checkCount(got: number, expected: number, what: string, engine: string): void {
  if (got !== expected) throw new Error(`${engine}: ${what} gave ${got} events, expected ${expected}`);
}

async function measure(engine: PeerEngine, w: Workload, dataRoot: string): Promise<EngineResult> {
  const dir = join(dataRoot, engine.key);
  const sideDirs = engine.sideDirs?.(dir) ?? [];
  const cleanUp = () => [dir, ...sideDirs].forEach((path) => rmSync(path, { recursive: true, force: true }));
  cleanUp();
  mkdirSync(dir, { recursive: true });
  try {
    const start = nowNs();
    await engine.ingest(dir, w.chunks);
    const ingestSeconds = (nowNs() - start) / 1e9;
    const bytes = diskBytes(dir);
    const sideBytes = sideDirs.reduce((sum, path) => sum + diskBytes(path), 0);

    const last = w.events - 1;
    const onePercent = Math.floor(w.events / 100);
    const q = await engine.openForQueries(dir);
    const point = q.point?.bind(q) ?? ((ts: number) => q.scan(ts, ts));
    try {
      const aggregateChecked = async (from: number, to: number) => checkAggregate(w, from, to, await q.aggregate(from, to), engine.key);
      const scanChecked = async (from: number) => checkCount(await q.scan(from, from + onePercent - 1), onePercent, 'scan of 1 %', engine.key);
      const pointChecked = async (ts: number) => checkCount(await point(ts), 1, `point ${ts}`, engine.key);
      // One unmeasured round of each query: lazy opens, statement preparation, JIT.
      await aggregateChecked(0, last);
      await aggregateChecked(w.onePercentStarts[0]!, w.onePercentStarts[0]! + onePercent - 1);
      await pointChecked(w.points[0]!);
      await scanChecked(w.onePercentStarts[0]!);
      const aggAllUs = await medianMicros(w.samples.aggAll, () => aggregateChecked(0, last));
      const aggOnePctUs = await medianMicros(w.samples.aggOnePct, (i) => aggregateChecked(w.onePercentStarts[1 + (i % 63)]!, w.onePercentStarts[1 + (i % 63)]! + onePercent - 1));
      const pointUs = await medianMicros(w.samples.point, (i) => pointChecked(w.points[1 + (i % 255)]!));
      const scanUs = await medianMicros(w.samples.scan, (i) => scanChecked(w.onePercentStarts[1 + ((i * 7) % 63)]!));
      return {
        ingest_eps: Math.round(w.events / ingestSeconds),
        agg_all_ms: round(aggAllUs / 1000, 4),
        agg_1pct_ms: round(aggOnePctUs / 1000, 4),
        point_ms: round(pointUs / 1000, 4),
        scan_1pct_ms: round(scanUs / 1000, 3),
        bytes_per_event: round(bytes / w.events, 2),
        ...(sideDirs.length > 0 ? { pmem_bytes_per_event: round(sideBytes / w.events, 2) } : {}),
      };
    } finally {
      await q.close();
    }
  } finally {
    cleanUp();
  }
}

/** Runs the comparison over `engines` (default: the whole line-up; tests pass a few). */
export async function run(args: BenchArgs, engines: readonly (PeerEngine | MissingEngine)[] = peerEngines(PMEM_ROOT)): Promise<void> {
  const events = args.events ?? (args.quick ? 1_000_000 : 5_000_000);
  const w = workload(events, args.quick);
  const dataRoot = join(process.cwd(), 'data', 'bench-peers');
  const results: Record<string, EngineResult | { missing: string }> = {};
  const configurations: Record<string, string> = {};
  const labels: Record<string, string> = {};
  for (const engine of engines) {
    labels[engine.key] = engine.label;
    if (isMissing(engine)) {
      console.error(`peers: ${engine.label} is missing: ${engine.error}`);
      results[engine.key] = { missing: engine.error };
      continue;
    }
    configurations[engine.key] = engine.configuration;
    console.error(`peers: ${engine.label} ...`);
    try {
      results[engine.key] = await measure(engine, w, dataRoot);
    } catch (err) {
      const reason = `${engine.label} failed: ${err instanceof Error ? err.message : String(err)}`;
      console.error(`peers: ${reason}`);
      results[engine.key] = { missing: reason };
    }
  }
  rmSync(dataRoot, { recursive: true, force: true });

  const ours = results.chronotier;
  const base = ours !== undefined && !('missing' in ours) ? ours : undefined;
  printTable(`the same ${events.toLocaleString('en-US')} Stock events in each store (medians; ratios: peer / chronotier)`, ['engine', 'ingest ev/s', 'agg all ms', 'agg 1 % ms', 'point ms', 'scan 1 % ms', 'bytes/event', 'ingest ratio', 'agg 1 % ratio', 'scan ratio'], Object.entries(results).map(([key, r]) =>
    'missing' in r
      ? [labels[key]!, `missing: ${r.missing}`, '', '', '', '', '', '', '', '']
      : [labels[key]!, r.ingest_eps, r.agg_all_ms, r.agg_1pct_ms, r.point_ms, r.scan_1pct_ms, r.bytes_per_event, base ? round(r.ingest_eps / base.ingest_eps, 3) : '', base ? round(r.agg_1pct_ms / base.agg_1pct_ms, 2) : '', base ? round(r.scan_1pct_ms / base.scan_1pct_ms, 2) : ''],
  ));
  for (const [key, configuration] of Object.entries(configurations)) console.log(`  ${labels[key]}: ${configuration}`);
  printResult({ bench: 'peers', events, ...results, configurations });
}
