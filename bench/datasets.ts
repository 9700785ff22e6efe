// The paper's two reference streams (004 §5.1), shared by every benchmark and the demo.
//   Stock (28 B): seq, symbol, price, volume + ts - a stock ticker. seq = i; symbol uniform in
//     [0, 100); price a random walk per symbol in cents (from 100.00, steps of -5..+5 cents,
//     floored at 0.01), stored as a double; volume uniform in [1, 10000]; ts = i.
//   Sine (56 B): six doubles a1..a6, each sin(((i mod 1e6) / 1e6) * 2 pi); ts = i. Filter
//     selectivity is controlled by the value range asked for.
// Deterministic: a generator with the same seed yields the same stream, chunk after chunk.

import { Random } from '../src/util/random.js';
import { parseSchema } from '../src/schema.js';

export const STOCK_SCHEMA = { seq: 'u32', symbol: 'u32', price: 'f64', volume: 'u32' } as const;
/** Bytes of a stored Stock row: the 28-byte event and its hidden lsn. */
export const STOCK_ROW_BYTES = parseSchema(STOCK_SCHEMA).rowBytes;
export const SINE_SCHEMA = { a1: 'f64', a2: 'f64', a3: 'f64', a4: 'f64', a5: 'f64', a6: 'f64' } as const;

const SYMBOLS = 100;

export interface StockColumns {
  readonly ts: Float64Array;
  readonly seq: Uint32Array;
  readonly symbol: Uint32Array;
  readonly price: Float64Array;
  readonly volume: Uint32Array;
}

export interface SineColumns {
  readonly ts: Float64Array;
  readonly a1: Float64Array;
  readonly a2: Float64Array;
  readonly a3: Float64Array;
  readonly a4: Float64Array;
  readonly a5: Float64Array;
  readonly a6: Float64Array;
}

/** The Stock stream, generated chunk by chunk in order. */
export class StockGenerator {
  private readonly random: Random;
  private readonly cents = new Int32Array(SYMBOLS).fill(10_000);
  private next_ = 0;

  constructor(seed = 42) {
    this.random = new Random(seed);
  }

  /** The next `count` events as columns. */
  next(count: number): StockColumns {
    const columns = { ts: new Float64Array(count), seq: new Uint32Array(count), symbol: new Uint32Array(count), price: new Float64Array(count), volume: new Uint32Array(count) };
    for (let k = 0; k < count; k++, this.next_++) {
      const symbol = this.random.nextInt(SYMBOLS);
      const cents = Math.max(1, this.cents[symbol]! + this.random.nextInt(11) - 5);
      this.cents[symbol] = cents;
      columns.ts[k] = this.next_;
      columns.seq[k] = this.next_ % 2 ** 32;
      columns.symbol[k] = symbol;
      columns.price[k] = cents / 100;
      columns.volume[k] = 1 + this.random.nextInt(10_000);
    }
    return columns;
  }
}

/** Events [start, start + count) of the Sine stream. */
export function sineColumns(start: number, count: number): SineColumns {
  const ts = new Float64Array(count);
  const value = new Float64Array(count);
  for (let k = 0; k < count; k++) {
    ts[k] = start + k;
    value[k] = Math.sin((((start + k) % 1e6) / 1e6) * 2 * Math.PI);
  }
  return { ts, a1: value, a2: value.slice(), a3: value.slice(), a4: value.slice(), a5: value.slice(), a6: value.slice() };
}

/**
 * Arrival order of `n` events with timestamps 0..n-1 of which `fraction` arrive late, as the
 * paper's out-of-order workload (004 §5.4): of the late events 10 % are spread uniformly over the
 * whole time span, 90 % come in 10,000 equidistant short bursts. A late event arrives `lag`
 * events after its in-order place (uniform ones: anywhere later). Returns timestamp indices in
 * arrival order.
 */
export function outOfOrderArrivals(n: number, fraction: number, seed = 7): Int32Array {
  const random = new Random(seed);
  const late = Math.round(n * fraction);
  const bursts = Math.min(10_000, late);
  const burstEvents = late - Math.round(late * 0.1);
  const lag = Math.max(1, Math.floor(n / 1000));
  const arrivesAt = new Float64Array(n).fill(-1);
  // Bursts: a run of consecutive timestamps at each of `bursts` equidistant places, all arriving together.
  for (let b = 0, placed = 0; b < bursts; b++) {
    const size = Math.floor((burstEvents * (b + 1)) / bursts) - placed;
    const start = Math.floor(((b + 0.5) * n) / bursts);
    for (let k = 0; k < size && start + k < n; k++) arrivesAt[start + k] = Math.min(n - 1, start + size + lag);
    placed += size;
  }
  for (let u = 0, placed = 0; placed < late - burstEvents && u < 10 * n; u++) {
    const ts = random.nextInt(n);
    if (arrivesAt[ts]! >= 0) continue;
    arrivesAt[ts] = ts + random.nextInt(n - ts);
    placed++;
  }
  return arrivalOrder(arrivesAt);
}

/** In-order events (arrivesAt < 0) at their own place; each late one right after the event at its arrival place. */
function arrivalOrder(arrivesAt: Float64Array): Int32Array {
  const n = arrivesAt.length;
  const lateTs = Int32Array.from({ length: n }, (_, ts) => ts).filter((ts) => arrivesAt[ts]! >= 0);
  lateTs.sort((a, b) => arrivesAt[a]! - arrivesAt[b]! || a - b);
  const order = new Int32Array(n);
  let out = 0;
  let next = 0;
  for (let place = 0; place < n; place++) {
    if (arrivesAt[place]! < 0) order[out++] = place;
    for (; next < lateTs.length && arrivesAt[lateTs[next]!] === place; next++) order[out++] = lateTs[next]!;
  }
  return order;
}

/** The columns of `columns` (by timestamp index) permuted into `order`. */
export function permuteStock(columns: StockColumns, order: Int32Array, first: number, count: number): StockColumns {
  const pick = <T extends Float64Array | Uint32Array>(source: T, target: T): T => {
    for (let i = 0; i < count; i++) target[i] = source[order[first + i]!]!;
    return target;
  };
  return {
    ts: pick(columns.ts, new Float64Array(count)),
    seq: pick(columns.seq, new Uint32Array(count)),
    symbol: pick(columns.symbol, new Uint32Array(count)),
    price: pick(columns.price, new Float64Array(count)),
    volume: pick(columns.volume, new Uint32Array(count)),
  };
}
