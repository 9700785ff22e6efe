// `npm run bench -- ooo [--events N] [--queue-mib M]`: ingest with out-of-order events (paper
// §5.4, Fig. 9). The same N Stock events (ts 0..N-1) are ingested in order, then with 1, 5 and
// 10 % of them late (outOfOrderArrivals: 10 % of the late ones uniform over the span, 90 % in
// 10,000 bursts), each into a fresh store, in arrival-ordered appendBatch chunks.
//   inorder_s / oooX_s   wall time of the ingest, including every merge a full queue forced
//                        (the queue is the paper's 100 MiB unless --queue-mib says otherwise)
//   final merge          then mergeLateEvents() moves what is still queued into the tree; its
//                        time per MiB of queue merged is merge_ms_per_mib (the X = 10 run)
//   ratio_ooo10_vs_inorder  target <= 1.3
// Every run is checked afterwards: event count and a full aggregate equal the input's.

import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { queueSlotBytes } from '../src/ooo/queue.js';
import { open } from '../src/store.js';
import type { Stream } from '../src/stream.js';
import { STOCK_ROW_BYTES, STOCK_SCHEMA, StockGenerator, type StockColumns, outOfOrderArrivals, permuteStock } from './datasets.js';
import { type BenchArgs, nowNs, printResult, printTable, round } from './harness.js';

const CHUNK = 65_536;
const FRACTIONS = [0.01, 0.05, 0.1] as const;

interface Run {
  readonly ingestSeconds: number;
  readonly mergeMs: number;
  readonly queuedBeforeMerge: number;
  readonly mergesDuringIngest: number;
}

function ingest(name: string, chunks: readonly StockColumns[], events: number, queueBytes: number, expectedVolume: number): Run {
  const dir = join(process.cwd(), 'data', `bench-ooo-${name}`);
  const pmemDir = join('/dev/shm', `chronotier-bench-ooo-${name}`);
  for (const path of [dir, pmemDir]) rmSync(path, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const store = open(dir, { pmemDir, oooQueueBytes: queueBytes });
  try {
    const stream = store.createStream('stock', STOCK_SCHEMA);
    const start = nowNs();
    for (const chunk of chunks) stream.appendBatch(chunk);
    stream.flush();
    const ingestSeconds = (nowNs() - start) / 1e9;
    const before = stream.stats().outOfOrder;
    const mergeStart = nowNs();
    stream.mergeLateEvents();
    const mergeMs = (nowNs() - mergeStart) / 1e6;
    check(stream, events, expectedVolume, name);
    return { ingestSeconds, mergeMs, queuedBeforeMerge: before.queuedEvents, mergesDuringIngest: before.merges };
  } finally {
    store.close();
    for (const path of [dir, pmemDir]) rmSync(path, { recursive: true, force: true });
  }
}

function check(stream: Stream, events: number, expectedVolume: number, name: string): void {
  const total = stream.aggregate(-Infinity, Infinity);
  const volume = (total.volume as { sum: number }).sum;
  if (total.count !== events || volume !== expectedVolume) throw new Error(`${name}: ${total.count} events of volume ${volume}, expected ${events} of ${expectedVolume}`);
}

export function run(args: BenchArgs): void {
  const events = args.events ?? (args.quick ? 1_000_000 : 10_000_000);
  const queueBytes = Math.round(Number(args.flags.get('queue-mib') ?? 100) * 2 ** 20);
  const all = new StockGenerator(42).next(events);
  let expectedVolume = 0;
  for (let i = 0; i < events; i++) expectedVolume += all.volume[i]!;
  const chunked = (order: Int32Array): StockColumns[] => {
    const chunks: StockColumns[] = [];
    for (let first = 0; first < events; first += CHUNK) chunks.push(permuteStock(all, order, first, Math.min(CHUNK, events - first)));
    return chunks;
  };
  const inOrder = ingest('inorder', chunked(Int32Array.from({ length: events }, (_, i) => i)), events, queueBytes, expectedVolume);
  const late = FRACTIONS.map((fraction) => ingest(`ooo${fraction * 100}`, chunked(outOfOrderArrivals(events, fraction)), events, queueBytes, expectedVolume));
  const ten = late[2]!;
  const mergedMib = (ten.queuedBeforeMerge * queueSlotBytes(STOCK_ROW_BYTES)) / 2 ** 20;
  const ratio = ten.ingestSeconds / inOrder.ingestSeconds;
  printTable(`ingest of ${events.toLocaleString('en-US')} Stock events with late ones (queue ${round(queueBytes / 2 ** 20, 1)} MiB)`, ['workload', 'ingest s', 'ratio to in order', 'merges during ingest', 'queued at end', 'final merge ms'], [
    ['in order', inOrder.ingestSeconds, 1, inOrder.mergesDuringIngest, inOrder.queuedBeforeMerge, inOrder.mergeMs],
    ...FRACTIONS.map((fraction, i): (string | number)[] => {
      const r = late[i]!;
      return [`${fraction * 100} % late`, r.ingestSeconds, round(r.ingestSeconds / inOrder.ingestSeconds, 3), r.mergesDuringIngest, r.queuedBeforeMerge, r.mergeMs];
    }),
    ['target: 10 % late <= 1.3 x in order', '', ratio <= 1.3 ? 'met' : 'missed', '', '', ''],
  ]);
  printResult({
    bench: 'ooo',
    events,
    queue_mib: round(queueBytes / 2 ** 20, 1),
    inorder_s: round(inOrder.ingestSeconds, 3),
    ooo1_s: round(late[0]!.ingestSeconds, 3),
    ooo5_s: round(late[1]!.ingestSeconds, 3),
    ooo10_s: round(ten.ingestSeconds, 3),
    ratio_ooo10_vs_inorder: round(ratio, 3),
    ooo10_final_merge_ms: round(ten.mergeMs, 1),
    merge_ms_per_mib: mergedMib > 0 ? round(ten.mergeMs / mergedMib, 1) : null,
  });
}
