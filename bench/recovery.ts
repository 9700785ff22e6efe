// `npm run bench -- recovery [--events N]`: how long open() takes after a real crash. A child
// process ingests N events into a store, keeps appending single events, and is killed with
// SIGKILL; the parent then times open() and the first query. Run at 1 M events and at N
// (default 20 M): the figure must not grow with the store. The parent has opened a small store
// once before, so loading the native addon and compiling the modules (a process's one-time
// costs, ~15 ms) are not counted as recovery.

import { spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { open } from '../src/store.js';
import { STOCK_SCHEMA, StockGenerator } from './datasets.js';
import { type BenchArgs, median, nowNs, printResult, printTable, round } from './harness.js';

async function crashedStore(events: number): Promise<{ dir: string; pmemDir: string }> {
  const dir = join(process.cwd(), 'data', `bench-recovery-${events}`);
  const pmemDir = `/dev/shm/chronotier-bench-recovery-${events}`;
  for (const path of [dir, pmemDir]) rmSync(path, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname, '--child', dir, pmemDir, String(events)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ingested')) setTimeout(() => child.kill('SIGKILL'), 50);
    });
    child.on('exit', (_code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`ingest child exited with ${_code}`))));
  });
  return { dir, pmemDir };
}

function ingestThenAppendForever(dir: string, pmemDir: string, events: number): void {
  const db = open(dir, { pmemDir });
  const stream = db.createStream('stock', STOCK_SCHEMA);
  const generator = new StockGenerator(42);
  for (let done = 0; done < events; done += 100_000) stream.appendBatch(generator.next(Math.min(100_000, events - done)));
  process.stdout.write('ingested\n');
  for (let ts = events; ; ts++) stream.append({ ts, seq: ts, symbol: 1, price: 1, volume: 1 });
}

function timeRecovery(dir: string, pmemDir: string): { openMs: number; firstQueryMs: number; events: number } {
  const start = nowNs();
  const db = open(dir, { pmemDir });
  const openMs = (nowNs() - start) / 1e6;
  const stream = db.stream('stock');
  stream.aggregate(0, 1000);
  const firstQueryMs = (nowNs() - start) / 1e6;
  const events = stream.stats().events;
  db.close();
  return { openMs, firstQueryMs, events };
}

/** Loads the addon, libpmem and every module of the open path once, outside any timing. */
function warmUp(): void {
  const dir = join(process.cwd(), 'data', 'bench-recovery-warmup');
  const pmemDir = '/dev/shm/chronotier-bench-recovery-warmup';
  for (const path of [dir, pmemDir]) rmSync(path, { recursive: true, force: true });
  const db = open(dir, { pmemDir });
  db.createStream('stock', STOCK_SCHEMA).append({ ts: 0, seq: 0, symbol: 0, price: 1, volume: 1 });
  db.close();
  timeRecovery(dir, pmemDir);
  for (const path of [dir, pmemDir]) rmSync(path, { recursive: true, force: true });
}

export async function run(args: BenchArgs): Promise<void> {
  warmUp();
  const sizes = [1_000_000, args.events ?? (args.quick ? 5_000_000 : 20_000_000)];
  const rows: Array<{ events: number; openMs: number; firstQueryMs: number }> = [];
  for (const size of sizes) {
    const { dir, pmemDir } = await crashedStore(size);
    // The first open recovers; later opens of the same crashed image are not possible, so
    // repeat the crash for a median.
    const samples = [timeRecovery(dir, pmemDir)];
    for (let r = 1; r < 3; r++) {
      const again = await crashedStore(size);
      samples.push(timeRecovery(again.dir, again.pmemDir));
    }
    rows.push({ events: samples[0]!.events, openMs: median(samples.map((s) => s.openMs)), firstQueryMs: median(samples.map((s) => s.firstQueryMs)) });
    for (const path of [dir, pmemDir]) rmSync(path, { recursive: true, force: true });
  }
  printTable('open() after kill -9 (medians of 3 crashes per size)', ['events in store', 'open (ms)', 'open + first query (ms)', 'target'], rows.map((r) => [r.events, r.openMs, r.firstQueryMs, '~1 ms, flat']));
  const large = rows.at(-1)!;
  printResult({ bench: 'recovery', events: large.events, open_ms: round(large.openMs, 3), first_query_ms: round(large.firstQueryMs, 3), small_events: rows[0]!.events, small_open_ms: round(rows[0]!.openMs, 3), small_first_query_ms: round(rows[0]!.firstQueryMs, 3) });
}

if (process.argv[2] === '--child') ingestThenAppendForever(process.argv[3]!, process.argv[4]!, Number(process.argv[5]));
