// `npm run demo`: chronotier end to end on the paper's Stock stream. Ingests a few million events
// with progress, prints the rates, runs time travel, an aggregation, a filtered range and a
// replay, sends late events to a consumer that resumes after a reopen, then kills a child
// process mid-ingest and reopens its store to show what survived and how long recovery took.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { open } from '../src/index.js';
import { STOCK_SCHEMA, StockGenerator } from './datasets.js';
import { nowNs, round } from './harness.js';

const ROOT = join(process.cwd(), 'data');
const PMEM_ROOT = existsSync('/dev/shm') ? '/dev/shm' : join(ROOT, 'pmem');
const EVENTS = Number(process.env.CHRONOTIER_DEMO_EVENTS ?? 3_000_000);
const CHUNK = 100_000;

function fresh(name: string): { dir: string; pmemDir: string } {
  const dir = join(ROOT, name);
  const pmemDir = join(PMEM_ROOT, `chronotier-${name}`);
  rmSync(dir, { recursive: true, force: true });
  rmSync(pmemDir, { recursive: true, force: true });
  mkdirSync(ROOT, { recursive: true });
  return { dir, pmemDir };
}

function ingest(dir: string, pmemDir: string, events: number, report: boolean): void {
  const db = open(dir, { pmemDir });
  const stock = db.createStream('stock', STOCK_SCHEMA);
  const generator = new StockGenerator(42);
  const start = nowNs();
  for (let done = 0; done < events; done += CHUNK) {
    stock.appendBatch(generator.next(Math.min(CHUNK, events - done)));
    if (report && (done / CHUNK) % 5 === 0) process.stdout.write(`\r  ingested ${(done + CHUNK).toLocaleString('en-US')} / ${events.toLocaleString('en-US')}`);
    if (!report) process.stdout.write(`${stock.stats().events - stock.stats().unflushedEvents}\n`);
  }
  stock.flush();
  const seconds = (nowNs() - start) / 1e9;
  if (report) {
    const stats = stock.stats();
    console.log(`\r  ingested ${events.toLocaleString('en-US')} events in ${round(seconds, 2)} s = ${Math.round(events / seconds).toLocaleString('en-US')} events/s`);
    console.log(`  tree height ${stats.height}, ${stats.leaves} leaves, ${round(stats.bytesOnSsd / events, 2)} bytes/event on SSD, PMem is '${stats.durability}'`);
  }
  db.close();
}

function queries(dir: string, pmemDir: string): void {
  const db = open(dir, { pmemDir });
  const stock = db.stream('stock');
  const time = <T>(label: string, body: () => T, show: (value: T) => string): void => {
    const start = nowNs();
    const value = body();
    console.log(`  ${label.padEnd(44)} ${String(round((nowNs() - start) / 1000, 1)).padStart(9)} µs  ${show(value)}`);
  };
  const mid = Math.floor(EVENTS / 2);
  time(`asOf(${mid}) - time travel`, () => stock.asOf(mid), (e) => JSON.stringify(e));
  time('aggregate over everything', () => stock.aggregate(0, EVENTS), (a) => `count ${a.count}, avg price ${round((a.price as { avg: number }).avg, 4)}`);
  time('aggregate over 1 %', () => stock.aggregate(mid, mid + EVENTS / 100), (a) => `count ${a.count}, max volume ${(a.volume as { max: number }).max}`);
  time('range 1 % where price in [100, 100.5]', () => [...stock.range(mid, mid + EVENTS / 100, { where: { price: [100, 100.5] } })].length, (n) => `${n} events`);
  time('replay 100,000 events', () => {
    let n = 0;
    for (const _ of stock.replay({ from: 0, to: 99_999 })) n++;
    return n;
  }, (n) => `${n} events`);
  db.close();
}

/** Late events and a consumer: it gets them in arrival order, commits, and resumes after a reopen. */
function lateEventsAndConsumer(dir: string, pmemDir: string): void {
  let db = open(dir, { pmemDir });
  const stock = db.stream('stock');
  const audit = stock.consumer('audit', { from: 'latest' });
  const generator = new StockGenerator(7);
  const late = generator.next(1_000);
  for (let i = 0; i < late.ts.length; i++) late.ts[i] = (i * 7_919) % EVENTS; // all older than the newest
  stock.appendBatch(late);
  const onTime = generator.next(1_000);
  for (let i = 0; i < onTime.ts.length; i++) onTime.ts[i] = EVENTS + i;
  stock.appendBatch(onTime);
  stock.flush();
  const first = audit.next();
  audit.commit();
  console.log(`  1,000 late + 1,000 new events: queued late ${stock.stats().outOfOrder.queuedEvents}, aggregate over all counts ${stock.aggregate(0, Infinity).count.toLocaleString('en-US')}`);
  console.log(`  consumer 'audit' got ${first.length} events in arrival order (lsn ${first[0]?.lsn}..${first.at(-1)?.lsn}, the first late at ts ${first[0]?.ts}) and committed`);
  db.close();
  db = open(dir, { pmemDir });
  const again = db.stream('stock');
  again.append({ ts: EVENTS + 5_000, seq: 0, symbol: 1, price: 100, volume: 1 });
  again.flush();
  const resumed = again.consumer('audit');
  console.log(`  after a reopen 'audit' resumes after lsn ${resumed.committed}: next batch ${JSON.stringify(resumed.next())}`);
  db.close();
}

async function crashAndRecover(): Promise<void> {
  const { dir, pmemDir } = fresh('demo-crash');
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname, '--child', dir, pmemDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  let durable = 0;
  child.stdout.on('data', (chunk: Buffer) => {
    const lines = chunk.toString().trim().split('\n');
    durable = Number(lines.at(-1));
    if (durable >= 1_000_000) child.kill('SIGKILL');
  });
  await new Promise((resolve) => child.on('exit', resolve));
  console.log(`  child killed with SIGKILL after reporting ${durable.toLocaleString('en-US')} durable events`);
  const start = nowNs();
  const db = open(dir, { pmemDir });
  const openMs = (nowNs() - start) / 1e6;
  const stock = db.stream('stock');
  const newest = stock.asOf(Number.MAX_SAFE_INTEGER);
  const firstQueryMs = (nowNs() - start) / 1e6;
  const stats = stock.stats();
  const sound = Object.values(db.verify()).every((violations) => violations.length === 0);
  console.log(`  reopened in ${round(openMs, 2)} ms: ${stats.events.toLocaleString('en-US')} events survived (>= ${durable.toLocaleString('en-US')} reported), first query (newest event, ts ${newest?.ts}) answered ${round(firstQueryMs, 2)} ms after open() began, verify: ${sound ? 'sound' : 'VIOLATIONS'}`);
  if (stats.events < durable || !sound) throw new Error('recovery lost acknowledged events');
  db.close();
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    ingest(process.argv[3]!, process.argv[4]!, 50_000_000, false);
    return;
  }
  console.log(`chronotier demo: the Stock stream (28-byte events), PMem files under ${PMEM_ROOT}`);
  const { dir, pmemDir } = fresh('demo');
  console.log(`\n1. ingest ${EVENTS.toLocaleString('en-US')} events with appendBatch (flushEvery 25)`);
  ingest(dir, pmemDir, EVENTS, true);
  console.log('\n2. queries on the reopened store');
  queries(dir, pmemDir);
  console.log('\n3. late events and a consumer with a durable position');
  lateEventsAndConsumer(dir, pmemDir);
  console.log('\n4. kill -9 in the middle of ingest, then reopen');
  await crashAndRecover();
}

await main();
