// `npm run bench -- ooo-queue [--queue-mib M]`: the out-of-order queue alone (paper §5.4, Fig. 8),
// filled to its size (default the paper's 100 MiB) with late Stock events at random timestamps.
//   pmem_index   the store's design: PMem queue (each insert persisted) + DRAM time index
//   pmem         the same queue without the index: point queries scan it
//   dram         the baseline: rows and index in DRAM, nothing persisted, nothing to recover
// Per variant: write_eps (insert + persist + index), recovery_ms (reopen the file, verify the
// untrusted tail, rebuild the index), point_hit_us / point_miss_us (events at one timestamp
// that exists / does not). Timestamps are even, so odd ones miss.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { DiskMedia } from '../src/media.js';
import { OooQueue, queueSlotBytes } from '../src/ooo/queue.js';
import { TimeIndex, sortByTime } from '../src/ooo/time-index.js';
import { parseSchema } from '../src/schema.js';
import { rowLayout } from '../src/tree/row-layout.js';
import { Random } from '../src/util/random.js';
import { STOCK_SCHEMA } from './datasets.js';
import { type BenchArgs, median, nowNs, printResult, printTable, round, timeRuns } from './harness.js';

const STORE_ID = new Uint8Array(16).fill(7);
const layout = rowLayout(parseSchema(STOCK_SCHEMA, { timestamp: 'number' }));

interface Variant {
  write_eps: number;
  recovery_ms: number | null;
  point_hit_us: number;
  point_miss_us: number;
}

/** Timestamps of the late events, even numbers in random order. */
function lateTimestamps(count: number): Float64Array {
  const random = new Random(11);
  return Float64Array.from({ length: count }, () => 2 * random.nextInt(count * 4));
}

function writeRow(view: DataView, offset: number, ts: number, i: number): void {
  layout.writeTimestamp(view, offset, ts);
  view.setUint32(offset + 8, i, true);
  view.setUint32(offset + 12, i % 100, true);
  view.setFloat64(offset + 16, 100 + (i % 1000) / 100, true);
  view.setUint32(offset + 24, 1 + (i % 10_000), true);
}

/** Median microseconds of `body` over `probes`. */
function pointMicros(probes: readonly number[], body: (ts: number) => number): number {
  let sink = 0;
  const times = probes.map((ts) => timeRuns(1, 0, () => (sink += body(ts)))[0]!);
  if (sink < 0) console.log(sink);
  return median(times) / 1e3;
}

function pmemVariant(timestamps: Float64Array, queueBytes: number, indexed: boolean, probes: { hits: number[]; misses: number[] }): Variant {
  const pmemDir = join('/dev/shm', `chronotier-bench-ooo-queue-${indexed ? 'index' : 'plain'}`);
  rmSync(pmemDir, { recursive: true, force: true });
  const media = new DiskMedia(join(process.cwd(), 'data', 'bench-ooo-queue'), pmemDir);
  OooQueue.create(media.openRegion('queue', 4096, true), layout, STORE_ID, 0);
  let queue = OooQueue.open(media.openRegion('queue', 0, false), layout, STORE_ID, 0, queueBytes);
  let index = new TimeIndex((slot) => queue.timestamp(slot));
  const start = nowNs();
  for (let i = 0; i < timestamps.length; i++) {
    const slot = queue.insert((view, offset) => writeRow(view, offset, timestamps[i]!, i));
    queue.persistPending();
    if (indexed) index.insert(slot);
  }
  const writeEps = timestamps.length / ((nowNs() - start) / 1e9);
  const recoveries = timeRuns(3, 0, () => {
    queue.close();
    queue = OooQueue.open(media.openRegion('queue', 0, false), layout, STORE_ID, 0, queueBytes);
    if (indexed) {
      index = new TimeIndex((slot) => queue.timestamp(slot));
      index.build(sortByTime(Int32Array.from({ length: queue.length }, (_, slot) => slot), queue.view, (slot) => queue.rowOffset(slot)));
    }
  });
  const lookup = indexed ? (ts: number) => index.between(ts, ts).length : (ts: number) => scanFor(queue, ts);
  const result = { write_eps: Math.round(writeEps), recovery_ms: round(median(recoveries) / 1e6, 2), point_hit_us: round(pointMicros(probes.hits, lookup), 2), point_miss_us: round(pointMicros(probes.misses, lookup), 2) };
  queue.close();
  rmSync(pmemDir, { recursive: true, force: true });
  return result;
}

/** Events at `ts` found by reading every slot (the queue without an index). */
function scanFor(queue: OooQueue, ts: number): number {
  let found = 0;
  for (let slot = 0; slot < queue.length; slot++) if (queue.timestamp(slot) === ts) found++;
  return found;
}

function dramVariant(timestamps: Float64Array, probes: { hits: number[]; misses: number[] }): Variant {
  const rowBytes = layout.rowBytes;
  const rows = new DataView(new ArrayBuffer(timestamps.length * rowBytes));
  const index = new TimeIndex((slot) => layout.readTimestamp(rows, slot * rowBytes));
  const start = nowNs();
  for (let i = 0; i < timestamps.length; i++) {
    writeRow(rows, i * rowBytes, timestamps[i]!, i);
    index.insert(i);
  }
  const writeEps = timestamps.length / ((nowNs() - start) / 1e9);
  const lookup = (ts: number) => index.between(ts, ts).length;
  return { write_eps: Math.round(writeEps), recovery_ms: null, point_hit_us: round(pointMicros(probes.hits, lookup), 2), point_miss_us: round(pointMicros(probes.misses, lookup), 2) };
}

export function run(args: BenchArgs): void {
  const queueBytes = Math.round(Number(args.flags.get('queue-mib') ?? (args.quick ? 10 : 100)) * 2 ** 20);
  const events = args.events ?? Math.floor(queueBytes / queueSlotBytes(layout.rowBytes));
  const timestamps = lateTimestamps(events);
  const random = new Random(5);
  const hits = Array.from({ length: 1000 }, () => timestamps[random.nextInt(events)]!);
  const misses = hits.map((ts) => ts + 1);
  const fewProbes = { hits: hits.slice(0, 20), misses: misses.slice(0, 20) };
  const variants = {
    pmem_index: pmemVariant(timestamps, queueBytes, true, { hits, misses }),
    pmem: pmemVariant(timestamps, queueBytes, false, fewProbes),
    dram: dramVariant(timestamps, { hits, misses }),
  };
  printTable(`out-of-order queue alone: ${events.toLocaleString('en-US')} late Stock events (${round(queueBytes / 2 ** 20, 1)} MiB of ${queueSlotBytes(layout.rowBytes)}-byte slots)`, ['variant', 'write events/s', 'recovery ms', 'point HIT us', 'point MISS us'], [
    ['PMem queue + DRAM index', variants.pmem_index.write_eps, variants.pmem_index.recovery_ms ?? '', variants.pmem_index.point_hit_us, variants.pmem_index.point_miss_us],
    ['PMem queue, no index', variants.pmem.write_eps, variants.pmem.recovery_ms ?? '', variants.pmem.point_hit_us, variants.pmem.point_miss_us],
    ['DRAM (nothing persisted)', variants.dram.write_eps, 'lost', variants.dram.point_hit_us, variants.dram.point_miss_us],
  ]);
  printResult({ bench: 'ooo-queue', events, queue_mib: round(queueBytes / 2 ** 20, 1), ...variants });
}
