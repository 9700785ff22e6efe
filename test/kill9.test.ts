import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { open } from '../src/index.js';
import { Random } from '../src/util/random.js';
import { lateStockEventAt, stockEventAt } from './fixtures/stock-sequence.js';
import { CAMPAIGN_TIMEOUT_MS } from './model.js';

// Real process crashes: a child ingesting is killed with SIGKILL at a random moment; the store
// must reopen with every event the child reported durable, in order, and nothing else.
const CHILD = join(import.meta.dirname, '..', 'dist', 'test', 'fixtures', 'ingest-child.js');
const RUNS = Number(process.env.CHRONOTIER_KILL_RUNS ?? 100);

function killAfter(child: ChildProcess, ms: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let reported = 0;
    let buffered = '';
    let killTimer: NodeJS.Timeout | undefined;
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) if (line !== '') reported = Number(line);
      killTimer ??= setTimeout(() => child.kill('SIGKILL'), ms);
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (_code, signal) => {
      clearTimeout(killTimer);
      if (signal === 'SIGKILL') resolve(reported);
      else reject(new Error(`child exited on its own (${signal ?? _code}): ${stderr}`));
    });
  });
}

describe('kill -9 while ingesting', () => {
  for (const flushEvery of [1, 25]) {
    it(`keeps every reported-durable event (flushEvery ${flushEvery})`, async () => {
      const random = new Random(flushEvery);
      for (let run = 0; run < RUNS / 2; run++) {
        const root = mkdtempSync(join(tmpdir(), 'chronotier-kill-'));
        const pmemDir = mkdtempSync('/dev/shm/chronotier-kill-');
        try {
          const child = spawn(process.execPath, [CHILD, join(root, 'store'), pmemDir, String(flushEvery), String(run)], { stdio: ['ignore', 'pipe', 'pipe'] });
          const durable = await killAfter(child, 20 + random.nextInt(300));
          const store = open(join(root, 'store'), { pmemDir });
          const stream = store.stream('stock');
          const events = [...stream.replay()];
          expect(events.length, `run ${run}: ${events.length} recovered, ${durable} reported durable`).toBeGreaterThanOrEqual(durable);
          expect(events).toEqual(Array.from({ length: events.length }, (_, i) => stockEventAt(i)));
          expect(stream.verify({ full: true })).toEqual([]);
          store.close();
        } finally {
          rmSync(root, { recursive: true, force: true });
          rmSync(pmemDir, { recursive: true, force: true });
        }
      }
      console.log(`kill -9 runs (flushEvery ${flushEvery}): ${RUNS / 2}, lost: 0`);
    }, CAMPAIGN_TIMEOUT_MS);
  }

  it('keeps every reported-durable event when every 7th is late, through queue inserts and merges', async () => {
    const random = new Random(7);
    const runs = Math.max(1, Math.round(RUNS / 3));
    for (let run = 0; run < runs; run++) {
      const root = mkdtempSync(join(tmpdir(), 'chronotier-kill-'));
      const pmemDir = mkdtempSync('/dev/shm/chronotier-kill-');
      try {
        const child = spawn(process.execPath, [CHILD, join(root, 'store'), pmemDir, '25', String(run), 'late'], { stdio: ['ignore', 'pipe', 'pipe'] });
        const durable = await killAfter(child, 20 + random.nextInt(600));
        const store = open(join(root, 'store'), { pmemDir });
        const stream = store.stream('stock');
        const events = [...stream.replay()] as unknown as ReturnType<typeof lateStockEventAt>[];
        const label = `run ${run}: ${events.length} recovered, ${durable} reported durable`;
        expect(events.length, label).toBeGreaterThanOrEqual(durable);
        // Each recovered event is the one appended with its seq, none twice, in (ts, arrival) order.
        expect(new Set(events.map((e) => e.seq)).size, label).toBe(events.length);
        events.forEach((event, i) => {
          expect(event, label).toEqual(lateStockEventAt(event.seq));
          const previous = events[i - 1];
          if (previous !== undefined) expect(previous.ts < event.ts || (previous.ts === event.ts && previous.seq < event.seq), label).toBe(true);
        });
        expect(stream.verify({ full: true })).toEqual([]);
        store.close();
      } finally {
        rmSync(root, { recursive: true, force: true });
        rmSync(pmemDir, { recursive: true, force: true });
      }
    }
    console.log(`kill -9 runs with late events: ${runs}, lost: 0`);
  }, CAMPAIGN_TIMEOUT_MS);
});
