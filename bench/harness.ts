// What every benchmark shares: argument parsing, timing, medians, a printed table, and the one
// JSON object that must be the last line of its output (the convention all benches follow).

import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { hrtime } from 'node:process';

export interface BenchArgs {
  readonly events: number | undefined;
  readonly quick: boolean;
  readonly flags: ReadonlyMap<string, string>;
}

export function parseArgs(argv: readonly string[]): BenchArgs {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) continue;
    const [key, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
    const next = argv[i + 1];
    if (inline !== undefined) flags.set(key, inline);
    else if (next !== undefined && !next.startsWith('--')) flags.set(key, argv[++i]!);
    else flags.set(key, 'true');
  }
  const events = flags.has('events') ? Number(flags.get('events')) : undefined;
  if (events !== undefined && (!Number.isSafeInteger(events) || events <= 0)) throw new RangeError(`--events must be a positive integer, got ${flags.get('events')}`);
  return { events, quick: flags.has('quick'), flags };
}

/** Nanoseconds since an arbitrary origin. */
export function nowNs(): number {
  return Number(hrtime.bigint());
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Runs `body` `repeats` times (after `warmup` unmeasured runs) and returns each run's ns. */
export function timeRuns(repeats: number, warmup: number, body: () => void): number[] {
  for (let i = 0; i < warmup; i++) body();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = nowNs();
    body();
    times.push(nowNs() - start);
  }
  return times;
}

export function round(value: number, digits = 2): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** Prints rows as an aligned text table. */
export function printTable(title: string, header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): void {
  const cells = [header, ...rows.map((row) => row.map((cell) => (typeof cell === 'number' ? formatNumber(cell) : cell)))];
  const widths = header.map((_, c) => Math.max(...cells.map((row) => String(row[c] ?? '').length)));
  console.log(`\n${title}`);
  for (const [i, row] of cells.entries()) {
    console.log(row.map((cell, c) => String(cell).padStart(widths[c]!)).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
}

function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US');
  return String(round(value, Math.abs(value) >= 10 ? 1 : 3));
}

/** The last line of a benchmark's output: one JSON object. */
export function printResult(result: Record<string, unknown>): void {
  console.log(JSON.stringify(result));
}

/** Median microseconds of `samples` calls of `body(i)`, each timed alone; async bodies are awaited. */
export async function medianMicros(samples: number, body: (i: number) => unknown): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const start = nowNs();
    await body(i);
    times.push(nowNs() - start);
  }
  return median(times) / 1000;
}

/**
 * Bytes a file or directory tree really occupies (allocated blocks, not apparent size: LMDB's
 * map file and DuckDB's database file are sparse or preallocated).
 */
export function diskBytes(path: string): number {
  const stat = lstatSync(path, { throwIfNoEntry: false });
  if (stat === undefined) return 0;
  if (!stat.isDirectory()) return stat.blocks * 512;
  return readdirSync(path).reduce((sum, name) => sum + diskBytes(join(path, name)), 0);
}
