// The paper's two reference streams (004 §5.1), shared by every benchmark and the demo.
//   Stock (28 B): seq, symbol, price, volume + ts - a stock ticker. seq = i; symbol uniform in
//     [0, 100); price a random walk per symbol in cents (from 100.00, steps of -5..+5 cents,
//     floored at 0.01), stored as a double; volume uniform in [1, 10000]; ts = i.
//   Sine (56 B): six doubles a1..a6, each sin(((i mod 1e6) / 1e6) * 2 pi); ts = i. Filter
//     selectivity is controlled by the value range asked for.
// Deterministic: a generator with the same seed yields the same stream, chunk after chunk.

import { Random } from '../src/util/random.js';

export const STOCK_SCHEMA = { seq: 'u32', symbol: 'u32', price: 'f64', volume: 'u32' } as const;
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
