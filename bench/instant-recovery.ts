// `npm run bench -- instant-recovery [--queue-mib M] [--trials N] [--quick]`: how soon a store
// serves after a crash when its out-of-order queue is full (seed 002's instant recovery). For two
// store sizes (1 M and 10 M in-order Stock events; --quick: 0.2 M and 2 M) a child process fills
// the queue to its last slot with late events, keeps appending, and is killed with SIGKILL. The
// crashed store is set aside; N times (7, --quick 3) a copy of it is opened by a fresh process
// (twice: see below), and every figure below is the median over those N (single runs on these
// shared VMs vary by up to 2x: page faults cost 4-30 us and more). Each process - after opening
// and querying a small store (leaves on SSD, late events in sorted runs), so that the process's
// one-time costs (loading the addon, compiling the code paths, the first calls of read(2) and of
// the decompressor) are not counted, as in the `recovery` bench - measures:
//   open_ms            open() until it returns
//   first_append_ms    the first append after it (an in-order event)
//   first_query_ms     the first query after that: get() of a random timestamp, while the queue
//                      index is still being rebuilt (it searches the queue's sorted runs through
//                      their fences and scans the partial last block)
//   full_recovery_ms   open() until all recovery work is done: the queue index rebuilt
//                      (stats().outOfOrder.indexing false) and the leaf file's tail and ring
//                      pages checked (stats().recoveringLeafFile false)
//   first_append_starts_leaf  whether the first append after this crash starts a new leaf (found
//                      once, on a copy opened by this process, not by the probes): the crash left
//                      the open leaf empty, or full (likely under backpressure, when the appender
//                      waits for a ring page) - then the append closes it and may have to make room
//                      in the ring (DURABILITY.md, "Recovery of the leaf file and translation")
//   *_faults           minor page faults during open and the first query: the first touch of a
//                      page of a fresh mapping is one. file_fault_us is what one costs here, on a
//                      fresh mapping of a file on the PMem directory's file system, so the reader
//                      can tell the search's CPU time from the machine's fault cost
// The copies are synced before each probe: what the crashed process had synced is clean, as after
// a real crash (a copy would otherwise leave the whole leaf file dirty in the page cache, and
// recovery's fdatasync would write it all back).
// Each trial runs two probes, one after the other: in a Node started plainly, and in one started
// with EAGER_FEEDBACK_FLAGS. The second row tells V8's tiering from the store's work: open() and the
// first query run code that a process runs once, and V8 interprets such code without feedback
// vectors (they are allocated lazily, after several calls) and compiles baseline code for it in
// batches on the main thread, some of them inside the measured window. The flag allocates feedback
// vectors at once; the store does the same work either way.
// Target: open, first append and first query each <= 1 ms, independent of queue and store size
// (judged on the plain Node figures).

import { spawn } from 'node:child_process';
import { closeSync, cpSync, fdatasyncSync, mkdirSync, openSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { queueSlotBytes } from '../src/ooo/queue.js';
import { NativeRegion } from '../src/pmem/native-region.js';
import { open } from '../src/store.js';
import { Random } from '../src/util/random.js';
import { STOCK_ROW_BYTES, STOCK_SCHEMA, StockGenerator } from './datasets.js';
import { type BenchArgs, median, nowNs, printResult, printTable, round } from './harness.js';

const CHUNK = 65_536;
const FAULT_PROBE_PAGES = 512;
const WARM_UP_EVENTS = 20_000;
/** More than a store indexes inline at open (65,536): queried at once, they go through the sorted runs. */
const WARM_UP_LATE_EVENTS = 70_000;
const WARM_UP_QUEUE_BYTES = 4 * 2 ** 20;
/** The first append: in order after every event of the crashed store. */
const NEWEST_EVENT = { ts: Number.MAX_SAFE_INTEGER, seq: 0, symbol: 1, price: 1, volume: 1 };
/** A V8 flag an application can start Node with (a deployment choice, not the store's). */
const EAGER_FEEDBACK_FLAGS = ['--no-lazy-feedback-allocation'];

interface Figures {
  events: number;
  queue_events: number;
  open_ms: number;
  first_append_ms: number;
  first_query_ms: number;
  full_recovery_ms: number;
  open_faults: number;
  first_query_faults: number;
  file_fault_us: number;
}

/** The request latencies of the same crash, probed in a Node started with EAGER_FEEDBACK_FLAGS. */
interface EagerFeedback {
  readonly node_flags: string;
  readonly open_ms: number;
  readonly first_append_ms: number;
  readonly first_query_ms: number;
}

interface Measured extends Figures {
  readonly eager_feedback: EagerFeedback;
  readonly first_append_starts_leaf: boolean;
  readonly trials: number;
  readonly open_ms_trials: number[];
  readonly first_append_ms_trials: number[];
  readonly first_query_ms_trials: number[];
}

interface Target {
  readonly dir: string;
  readonly pmemDir: string;
  readonly events: number;
  readonly queueBytes: number;
}

const minorFaults = () => process.resourceUsage().minorPageFault;

function queueEvents(queueBytes: number): number {
  return Math.floor(queueBytes / queueSlotBytes(STOCK_ROW_BYTES)) - 1;
}

function runChild(role: '--fill' | '--probe', target: Target, onLine: (line: string, child: ReturnType<typeof spawn>) => void, nodeFlags: readonly string[] = []): Promise<void> {
  const child = spawn(process.execPath, [...nodeFlags, new URL(import.meta.url).pathname, role, JSON.stringify(target)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let pending = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n')) {
      onLine(pending.slice(0, newline), child);
      pending = pending.slice(newline + 1);
    }
  });
  return new Promise((resolve, reject) => child.on('exit', (code, signal) => (code === 0 || signal === 'SIGKILL' ? resolve() : reject(new Error(`${role} child exited with ${code ?? signal}`)))));
}

/** Child: fills the store and its queue, then appends until it is killed - a crash mid-ingest. */
function fillThenAppendForever({ dir, pmemDir, events, queueBytes }: Target): void {
  const random = new Random(17);
  const stream = open(dir, { pmemDir, oooQueueBytes: queueBytes }).createStream('stock', STOCK_SCHEMA);
  const generator = new StockGenerator(42);
  for (let done = 0; done < events; done += CHUNK) stream.appendBatch(generator.next(Math.min(CHUNK, events - done)));
  const late = queueEvents(queueBytes);
  for (let done = 0; done < late; done += CHUNK) {
    const batch = generator.next(Math.min(CHUNK, late - done));
    for (let i = 0; i < batch.ts.length; i++) batch.ts[i] = random.nextInt(events);
    stream.appendBatch(batch);
  }
  if (stream.stats().outOfOrder.merges !== 0) throw new Error('the queue was merged while being filled');
  process.stdout.write('filled\n');
  for (let ts = events; ; ts++) stream.append({ ts, seq: 0, symbol: 1, price: 1, volume: 1 });
}

/** Microseconds the first touch of a page costs on a fresh mapping of an existing file in `dir`. */
function fileFaultMicros(dir: string): number {
  const path = join(dir, 'fault-probe');
  writeFileSync(path, Buffer.alloc(FAULT_PROBE_PAGES * 4096, 1));
  const region = NativeRegion.open(path, { create: false });
  const bytes = new Uint8Array(region.buffer);
  const random = new Random(5);
  let sum = 0;
  const start = nowNs();
  for (let i = 0; i < FAULT_PROBE_PAGES; i++) sum += bytes[random.nextInt(FAULT_PROBE_PAGES) * 4096]!;
  const micros = (nowNs() - start) / 1e3 / FAULT_PROBE_PAGES;
  region.close();
  rmSync(path);
  if (sum !== FAULT_PROBE_PAGES) throw new Error('fault probe read the wrong bytes');
  return round(micros, 2);
}

/**
 * Opens a small store with leaves on SSD and late events in sorted runs, and queries it: the
 * process's one-time costs (compiling the code paths, the first read of a file, the compressor's
 * first call), which a long-running process pays once - not the recovery's.
 */
function warmUp(pmemRoot: string): void {
  const dir = join(process.cwd(), 'data', 'bench-instant-warmup');
  const pmemDir = join(pmemRoot, 'warmup');
  for (const path of [dir, pmemDir]) rmSync(path, { recursive: true, force: true });
  const db = open(dir, { pmemDir, oooQueueBytes: WARM_UP_QUEUE_BYTES });
  const stream = db.createStream('stock', STOCK_SCHEMA);
  const generator = new StockGenerator(7);
  stream.appendBatch(generator.next(WARM_UP_EVENTS));
  const late = generator.next(WARM_UP_LATE_EVENTS);
  for (let i = 0; i < late.ts.length; i++) late.ts[i] = (i * 7919) % WARM_UP_EVENTS;
  stream.appendBatch(late);
  db.close();
  const reopened = open(dir, { pmemDir, oooQueueBytes: WARM_UP_QUEUE_BYTES });
  reopened.stream('stock').append({ ts: WARM_UP_EVENTS, seq: 0, symbol: 1, price: 1, volume: 1 });
  reopened.stream('stock').get(WARM_UP_EVENTS / 2);
  reopened.close();
  for (const path of [dir, pmemDir]) rmSync(path, { recursive: true, force: true });
}

/** Child: measures recovery of the crashed store; prints the figures as one JSON line. */
async function probe({ dir, pmemDir, events, queueBytes }: Target): Promise<void> {
  warmUp(join(pmemDir, '..'));
  const random = new Random(23);
  const faultsBefore = minorFaults();
  const start = nowNs();
  const db = open(dir, { pmemDir, oooQueueBytes: queueBytes });
  const stream = db.stream('stock');
  const opened = nowNs();
  const faultsOpened = minorFaults();
  stream.append(NEWEST_EVENT);
  const appended = nowNs();
  const faultsAppended = minorFaults();
  stream.get(random.nextInt(events));
  const queried = nowNs();
  const faultsQueried = minorFaults();
  // The index worker starts from the event loop, the leaf-file recovery runs in slices on it: the wait must yield to both.
  while (stream.stats().outOfOrder.indexing || stream.stats().recoveringLeafFile) await new Promise((resolve) => setTimeout(resolve, 1));
  const recovered = nowNs();
  const late = queueEvents(queueBytes);
  // A kill loses nothing acknowledged; the child kept appending after 'filled', so there may be more.
  if (stream.stats().events < events + late + 1) throw new Error(`recovered ${stream.stats().events} events, expected at least ${events + late + 1}`);
  db.close();
  const figures: Figures = {
    events,
    queue_events: late,
    open_ms: round((opened - start) / 1e6, 3),
    first_append_ms: round((appended - opened) / 1e6, 3),
    first_query_ms: round((queried - appended) / 1e6, 3),
    full_recovery_ms: round((recovered - start) / 1e6, 1),
    open_faults: faultsOpened - faultsBefore,
    first_query_faults: faultsQueried - faultsAppended,
    file_fault_us: fileFaultMicros(join(pmemDir, '..')),
  };
  process.stdout.write(`${JSON.stringify(figures)}\n`);
}

/** Whether the first append after the crash starts a new leaf: found here, on the live store (each probe copies the crashed one anew). */
function firstAppendStartsLeaf({ dir, pmemDir, queueBytes }: Target): boolean {
  const db = open(dir, { pmemDir, oooQueueBytes: queueBytes });
  try {
    const stream = db.stream('stock');
    const leaves = stream.stats().leaves;
    stream.append(NEWEST_EVENT);
    return stream.stats().leaves > leaves;
  } finally {
    db.close();
  }
}

/** fdatasyncs every file under `dir`. */
function syncFiles(dir: string): void {
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const fd = openSync(join(entry.parentPath, entry.name), 'r+');
    try {
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

/** One probe: a fresh process opens a fresh copy of the crashed store (its recovery changes the store). */
async function probeCopy(target: Target, crashed: readonly (readonly [string, string])[], nodeFlags: readonly string[]): Promise<Figures> {
  for (const [live, copy] of crashed) {
    rmSync(live, { recursive: true, force: true });
    cpSync(copy, live, { recursive: true });
    syncFiles(live);
  }
  let figures: Figures | undefined;
  await runChild(
    '--probe',
    target,
    (line) => {
      figures = JSON.parse(line) as Figures;
    },
    nodeFlags,
  );
  if (figures === undefined) throw new Error('the probe printed no figures');
  return figures;
}

/** The figures of `trials` probes of one crash: each the median over the trials (the machine is noisy). */
async function measure(events: number, queueBytes: number, trials: number): Promise<Measured> {
  const target: Target = { dir: join(process.cwd(), 'data', `bench-instant-${events}`), pmemDir: join('/dev/shm', `chronotier-bench-instant-${events}`, 'pmem'), events, queueBytes };
  const pmemRoot = join(target.pmemDir, '..');
  const crashed = [target.dir, pmemRoot].map((live) => [live, `${live}.crashed`] as const);
  const clean = () => crashed.flat().forEach((path) => rmSync(path, { recursive: true, force: true }));
  clean();
  mkdirSync(target.dir, { recursive: true });
  mkdirSync(pmemRoot, { recursive: true });
  try {
    await runChild('--fill', target, (line, child) => {
      if (line === 'filled') setTimeout(() => child.kill('SIGKILL'), 50);
    });
    for (const [live, copy] of crashed) cpSync(live, copy, { recursive: true });
    const startsLeaf = firstAppendStartsLeaf(target);
    const probes: Figures[] = [];
    const eager: Figures[] = [];
    // Alternately, so that a minute of a noisy machine weighs on both alike.
    for (let t = 0; t < trials; t++) {
      probes.push(await probeCopy(target, crashed, []));
      eager.push(await probeCopy(target, crashed, EAGER_FEEDBACK_FLAGS));
    }
    const middle = (of: Figures[], key: keyof Figures) => median(of.map((p) => p[key]));
    const figures = Object.fromEntries(Object.keys(probes[0]!).map((key) => [key, middle(probes, key as keyof Figures)])) as unknown as Figures;
    const eagerFeedback: EagerFeedback = { node_flags: EAGER_FEEDBACK_FLAGS.join(' '), open_ms: middle(eager, 'open_ms'), first_append_ms: middle(eager, 'first_append_ms'), first_query_ms: middle(eager, 'first_query_ms') };
    return { ...figures, eager_feedback: eagerFeedback, first_append_starts_leaf: startsLeaf, trials, open_ms_trials: probes.map((p) => p.open_ms), first_append_ms_trials: probes.map((p) => p.first_append_ms), first_query_ms_trials: probes.map((p) => p.first_query_ms) };
  } finally {
    clean();
  }
}

export async function run(args: BenchArgs): Promise<void> {
  const queueBytes = Math.round(Number(args.flags.get('queue-mib') ?? (args.quick ? 10 : 100)) * 2 ** 20);
  const sizes = args.quick ? [200_000, 2_000_000] : [1_000_000, 10_000_000];
  const trials = Number(args.flags.get('trials') ?? (args.quick ? 3 : 7));
  const runs: Measured[] = [];
  for (const events of sizes) runs.push(await measure(events, queueBytes, trials));
  const met = (key: 'open_ms' | 'first_append_ms' | 'first_query_ms') => (Math.max(...runs.map((r) => r[key])) <= 1 ? 'met' : 'missed');
  const targets = { open: met('open_ms'), first_append: met('first_append_ms'), first_query: met('first_query_ms') };
  printTable(`open() after kill -9 with a full out-of-order queue (${round(queueBytes / 2 ** 20, 1)} MiB), index rebuilt on a worker thread; medians of ${trials} fresh processes, each on a copy of the crashed store`, ['store events', 'queued', 'open ms', 'open faults', 'first append ms', 'it starts a leaf', 'first query ms', 'query faults', 'us per fault', 'full recovery ms'], [
    ...runs.map((r) => [r.events, r.queue_events, r.open_ms, r.open_faults, r.first_append_ms, r.first_append_starts_leaf ? 'yes' : 'no', r.first_query_ms, r.first_query_faults, r.file_fault_us, r.full_recovery_ms]),
    ['target <= 1 ms', '', targets.open, '', targets.first_append, '', targets.first_query, '', '', ''],
  ]);
  printTable(`the same crashes, probed alternately in a Node started with ${EAGER_FEEDBACK_FLAGS.join(' ')} (V8 allocates feedback vectors at once; the store's work is the same)`, ['store events', 'open ms', 'first append ms', 'first query ms'], runs.map((r) => [r.events, r.eager_feedback.open_ms, r.eager_feedback.first_append_ms, r.eager_feedback.first_query_ms]));
  printResult({ bench: 'instant-recovery', ...runs[runs.length - 1]!, targets, sizes: runs });
}

const [role, config] = process.argv.slice(2);
if (role === '--fill') fillThenAppendForever(JSON.parse(config!) as Target);
if (role === '--probe') await probe(JSON.parse(config!) as Target);
