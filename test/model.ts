// The reference every store test compares with: all events in a sorted array, queries answered
// by brute force. Deliberately naive - it is the specification.

export interface StockEvent {
  ts: number;
  seq: number;
  symbol: number;
  price: number;
  volume: number;
}

export const STOCK = { seq: 'u32', symbol: 'u32', price: 'f64', volume: 'u32' } as const;
export const STOCK_ATTRIBUTES = ['seq', 'symbol', 'price', 'volume'] as const;

export class StockModel {
  readonly events: StockEvent[] = [];

  /** Any timestamp: the event goes after every event with a timestamp <= its own (arrival order among equals). */
  append(event: StockEvent): void {
    let low = 0;
    let high = this.events.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.events[mid]!.ts <= event.ts) low = mid + 1;
      else high = mid;
    }
    this.events.splice(low, 0, event);
  }

  get newest(): number | undefined {
    return this.events.at(-1)?.ts;
  }

  /** Keeps only the first `count` events (what survives a crash that lost the rest). */
  truncate(count: number): void {
    this.events.length = count;
  }

  range(from: number, to: number, where: Partial<Record<keyof StockEvent, [number, number]>> = {}, limit = Infinity): StockEvent[] {
    const matches = this.events.filter(
      (e) => e.ts >= from && e.ts <= to && Object.entries(where).every(([name, [low, high]]) => e[name as keyof StockEvent] >= low && e[name as keyof StockEvent] <= high),
    );
    return matches.slice(0, limit);
  }

  asOf(ts: number): StockEvent | undefined {
    return this.events.filter((e) => e.ts <= ts).at(-1);
  }

  aggregate(from: number, to: number): Record<string, unknown> {
    const inRange = this.range(from, to);
    const result: Record<string, unknown> = { count: inRange.length };
    for (const name of STOCK_ATTRIBUTES) {
      const values = inRange.map((e) => e[name]);
      const sum = values.reduce((a, b) => a + b, 0);
      result[name] = {
        sum,
        min: values.length === 0 ? undefined : Math.min(...values),
        max: values.length === 0 ? undefined : Math.max(...values),
        avg: values.length === 0 ? undefined : sum / values.length,
      };
    }
    return result;
  }
}

/** Compares aggregates allowing for the order in which floating-point sums were added. */
export function expectAggregatesClose(actual: Record<string, unknown>, expected: Record<string, unknown>): void {
  const problems: string[] = [];
  if (actual.count !== expected.count) problems.push(`count ${String(actual.count)} != ${String(expected.count)}`);
  for (const name of STOCK_ATTRIBUTES) {
    const a = actual[name] as Record<string, number | undefined>;
    const e = expected[name] as Record<string, number | undefined>;
    for (const key of ['sum', 'min', 'max', 'avg']) {
      const x = a[key];
      const y = e[key];
      if (x === y) continue;
      if (x === undefined || y === undefined || Math.abs(x - y) > 1e-9 * Math.max(1, Math.abs(y))) problems.push(`${name}.${key} ${String(x)} != ${String(y)}`);
    }
  }
  if (problems.length > 0) throw new Error(`aggregate mismatch: ${problems.join('; ')}`);
}

/** Time limit of a test of the reliability campaign: ten minutes, none in `npm run test:long` (it scales the counts up). */
export const CAMPAIGN_TIMEOUT_MS = process.env.CHRONOTIER_LONG === '1' ? 24 * 3_600_000 : 600_000;
