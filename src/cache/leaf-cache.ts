// An LRU cache of decoded leaves, capped in bytes: the only DRAM structure that grows with the
// data read, and it stops at its cap. A Map keeps insertion order, so re-inserting on a hit
// makes the first key the least recently used.

export interface CacheStats {
  hits: number;
  misses: number;
  bytes: number;
  entries: number;
}

export class LeafCache {
  private readonly entries = new Map<number, DataView>();
  private bytes = 0;
  private hits = 0;
  private misses = 0;

  constructor(readonly capacityBytes: number) {}

  /** The cached rows of `key`, or undefined. The rows must not be modified. */
  get(key: number): DataView | undefined {
    const rows = this.entries.get(key);
    if (rows === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.entries.delete(key);
    this.entries.set(key, rows);
    return rows;
  }

  set(key: number, rows: DataView): void {
    if (rows.byteLength > this.capacityBytes) return;
    this.delete(key);
    this.entries.set(key, rows);
    this.bytes += rows.byteLength;
    for (const [oldest, evicted] of this.entries) {
      if (this.bytes <= this.capacityBytes) break;
      this.entries.delete(oldest);
      this.bytes -= evicted.byteLength;
    }
  }

  delete(key: number): void {
    const rows = this.entries.get(key);
    if (rows === undefined) return;
    this.entries.delete(key);
    this.bytes -= rows.byteLength;
  }

  stats(): CacheStats {
    return { hits: this.hits, misses: this.misses, bytes: this.bytes, entries: this.entries.size };
  }
}
