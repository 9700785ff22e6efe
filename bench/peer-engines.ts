// The stores `npm run bench -- peers` compares, behind one interface: ingest the Stock stream,
// then - reopened - aggregate a time range, fetch the events of one timestamp, and scan a time
// range into one JS object per event. Each engine is configured the way its own documentation
// recommends for bulk, time-ordered ingest (the comment on each says how and why); none gets
// tuning the others do not get.
//
// Every engine stores the same five fields (ts int64, seq u32, symbol u32, price f64, volume
// u32) and answers the same aggregate: count, and sum / min / max of each attribute - what
// chronotier's aggregate() returns. The bench checks each answer against the input.

import { closeSync, fdatasyncSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { open as openChronotier } from '../src/store.js';
import type { Stream } from '../src/stream.js';
import { STOCK_SCHEMA, type StockColumns } from './datasets.js';
import { type Loaded, requirePeer } from './peer-modules.js';

/** count, and sum / min / max of volume - enough to check an answer (every engine computes all four attributes). */
export interface AggregateCheck {
  readonly count: number;
  readonly volumeSum: number;
}

export interface PeerQueries {
  /** Aggregate of the events with from <= ts <= to. */
  aggregate(from: number, to: number): AggregateCheck | Promise<AggregateCheck>;
  /** The events with exactly this ts, as objects; returns how many. Engines without a point lookup of their own scan [ts, ts]. */
  point?(ts: number): number | Promise<number>;
  /** Materializes every event with from <= ts <= to as an object; returns how many. */
  scan(from: number, to: number): number | Promise<number>;
  close(): void | Promise<void>;
}

export interface PeerEngine {
  /** Key in the bench's JSON. */
  readonly key: string;
  readonly label: string;
  /** How the engine is configured, and why: printed in the report. */
  readonly configuration: string;
  /** Opens a new store in `dir`, writes every chunk, makes it durable and closes it. */
  ingest(dir: string, chunks: readonly StockColumns[]): Promise<void>;
  openForQueries(dir: string): Promise<PeerQueries>;
  /** Extra places the engine keeps bytes (chronotier's PMem files), measured apart from `dir`. */
  readonly sideDirs?: (dir: string) => string[];
}

/** An engine that could not be loaded, and why. */
export interface MissingEngine {
  readonly key: string;
  readonly label: string;
  readonly error: string;
}

/** Running count and sum / min / max of each Stock attribute, for the engines that aggregate in JS. */
class StockAggregate {
  count = 0;
  readonly sum = new Float64Array(4);
  readonly min = new Float64Array(4).fill(Infinity);
  readonly max = new Float64Array(4).fill(-Infinity);

  add(seq: number, symbol: number, price: number, volume: number): void {
    this.count++;
    this.take(0, seq);
    this.take(1, symbol);
    this.take(2, price);
    this.take(3, volume);
  }

  private take(attribute: number, value: number): void {
    this.sum[attribute]! += value;
    if (value < this.min[attribute]!) this.min[attribute] = value;
    if (value > this.max[attribute]!) this.max[attribute] = value;
  }

  check(): AggregateCheck {
    return { count: this.count, volumeSum: this.sum[3]! };
  }
}

// ---- the binary row shared by lmdb, classic-level and the raw file ----------------------------

/** Key: ts as big-endian u64, then seq as big-endian u32, so byte order is time order and equal timestamps stay apart. */
const KEY_BYTES = 12;
/** Value: seq u32, symbol u32, price f64, volume u32, little-endian. */
const VALUE_BYTES = 20;
/** A raw record: ts as little-endian u64, then the value. */
const RAW_RECORD_BYTES = 8 + VALUE_BYTES;

function writeKey(target: Uint8Array, offset: number, ts: number, seq: number): void {
  const view = new DataView(target.buffer, target.byteOffset + offset, KEY_BYTES);
  view.setUint32(0, Math.floor(ts / 2 ** 32));
  view.setUint32(4, ts >>> 0);
  view.setUint32(8, seq);
}

function keyOf(ts: number, seq: number): Buffer {
  const key = Buffer.allocUnsafe(KEY_BYTES);
  writeKey(key, 0, ts, seq);
  return key;
}

function writeValue(view: DataView, offset: number, chunk: StockColumns, i: number): void {
  view.setUint32(offset, chunk.seq[i]!, true);
  view.setUint32(offset + 4, chunk.symbol[i]!, true);
  view.setFloat64(offset + 8, chunk.price[i]!, true);
  view.setUint32(offset + 16, chunk.volume[i]!, true);
}

function addValue(aggregate: StockAggregate, view: DataView, offset: number): void {
  aggregate.add(view.getUint32(offset, true), view.getUint32(offset + 4, true), view.getFloat64(offset + 8, true), view.getUint32(offset + 16, true));
}

function valueObject(ts: number, view: DataView, offset: number): Record<string, number> {
  return { ts, seq: view.getUint32(offset, true), symbol: view.getUint32(offset + 4, true), price: view.getFloat64(offset + 8, true), volume: view.getUint32(offset + 16, true) };
}

/** Keeps the last event object of a scan reachable, so building it cannot be optimized away (chronotier's iterator hands its objects out too). */
class ScanSink {
  count = 0;
  last: unknown;

  take(event: unknown): void {
    this.last = event;
    this.count++;
  }
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function timestampOfKey(key: Uint8Array): number {
  const view = viewOf(key);
  return view.getUint32(0) * 2 ** 32 + view.getUint32(4);
}

// ---- chronotier --------------------------------------------------------------------------------

function chronotier(pmemRoot: string): PeerEngine {
  const pmemDir = (dir: string) => join(pmemRoot, `chronotier-bench-peers-${dir.split('/').at(-1)}`);
  return {
    key: 'chronotier',
    label: 'chronotier',
    configuration: `defaults (flushEvery 25, worker leaf writer, LZ4 leaves of 8 KiB on SSD), PMem emulated in ${pmemRoot}; appendBatch of column arrays, flush(), close()`,
    sideDirs: (dir) => [pmemDir(dir)],
    async ingest(dir, chunks) {
      const store = openChronotier(dir, { pmemDir: pmemDir(dir) });
      const stream = store.createStream('stock', STOCK_SCHEMA);
      for (const chunk of chunks) stream.appendBatch(chunk);
      stream.flush();
      store.close();
    },
    async openForQueries(dir) {
      const store = openChronotier(dir, { pmemDir: pmemDir(dir) });
      const stream: Stream = store.stream('stock');
      return {
        aggregate(from, to) {
          const result = stream.aggregate(from, to);
          return { count: result.count, volumeSum: (result.volume as { sum: number }).sum };
        },
        point: (ts) => stream.get(ts).length,
        scan(from, to) {
          const sink = new ScanSink();
          for (const event of stream.range(from, to)) sink.take(event);
          return sink.count;
        },
        close: () => store.close(),
      };
    },
  };
}

// ---- DuckDB ------------------------------------------------------------------------------------

interface DuckDbApi {
  DuckDBInstance: { create(path: string): Promise<DuckDbInstance> };
}
interface DuckDbInstance {
  connect(): Promise<DuckDbConnection>;
  closeSync(): void;
}
interface DuckDbConnection {
  run(sql: string, values?: unknown[]): Promise<unknown>;
  runAndReadAll(sql: string, values?: unknown[]): Promise<{ getRowsJS(): unknown[][]; getRowObjectsJS(): Record<string, unknown>[] }>;
  createAppender(table: string): Promise<DuckDbAppender>;
  closeSync(): void;
}
interface DuckDbAppender {
  appendBigInt(value: bigint): void;
  appendUInteger(value: number): void;
  appendDouble(value: number): void;
  endRow(): void;
  closeSync(): void;
}

const AGGREGATE_COLUMNS = ['seq', 'symbol', 'price', 'volume'].flatMap((c) => [`sum(${c})`, `min(${c})`, `max(${c})`]).join(', ');

function duckdb(api: DuckDbApi): PeerEngine {
  const file = (dir: string) => join(dir, 'stock.duckdb');
  return {
    key: 'duckdb',
    label: 'DuckDB',
    // DuckDB's docs ("Data Import", "Performance Guide"): bulk-load through the Appender, not
    // INSERT; no PRIMARY KEY or index (an ART index slows loading and is not used for range
    // scans) - time-ordered input gives every row group a tight min/max zonemap on ts, which
    // prunes range and point queries. CHECKPOINT at the end writes the WAL into the database file.
    configuration: 'Appender (row by row, one appender for the whole load), no index: time-ordered rows give per-row-group min/max zonemaps on ts; CHECKPOINT before close',
    async ingest(dir, chunks) {
      const instance = await api.DuckDBInstance.create(file(dir));
      const connection = await instance.connect();
      await connection.run('CREATE TABLE stock (ts BIGINT NOT NULL, seq UINTEGER, symbol UINTEGER, price DOUBLE, volume UINTEGER)');
      const appender = await connection.createAppender('stock');
      for (const chunk of chunks) {
        for (let i = 0; i < chunk.ts.length; i++) {
          appender.appendBigInt(BigInt(chunk.ts[i]!));
          appender.appendUInteger(chunk.seq[i]!);
          appender.appendUInteger(chunk.symbol[i]!);
          appender.appendDouble(chunk.price[i]!);
          appender.appendUInteger(chunk.volume[i]!);
          appender.endRow();
        }
      }
      appender.closeSync();
      await connection.run('CHECKPOINT');
      connection.closeSync();
      instance.closeSync();
    },
    async openForQueries(dir) {
      const instance = await api.DuckDBInstance.create(file(dir));
      const connection = await instance.connect();
      return {
        async aggregate(from, to) {
          const rows = (await connection.runAndReadAll(`SELECT count(*), ${AGGREGATE_COLUMNS} FROM stock WHERE ts BETWEEN $1 AND $2`, [BigInt(from), BigInt(to)])).getRowsJS();
          const row = rows[0]!;
          return { count: Number(row[0]), volumeSum: Number(row[10]) };
        },
        async point(ts) {
          return (await connection.runAndReadAll('SELECT * FROM stock WHERE ts = $1', [BigInt(ts)])).getRowObjectsJS().length;
        },
        async scan(from, to) {
          const sink = new ScanSink();
          for (const event of (await connection.runAndReadAll('SELECT * FROM stock WHERE ts BETWEEN $1 AND $2 ORDER BY ts', [BigInt(from), BigInt(to)])).getRowObjectsJS()) sink.take(event);
          return sink.count;
        },
        close() {
          connection.closeSync();
          instance.closeSync();
        },
      };
    },
  };
}

// ---- SQLite (better-sqlite3) -------------------------------------------------------------------

interface SqliteDatabase {
  pragma(source: string): unknown;
  exec(source: string): void;
  prepare(source: string): SqliteStatement;
  transaction<A extends unknown[]>(body: (...args: A) => void): (...args: A) => void;
  close(): void;
}
interface SqliteStatement {
  run(...params: unknown[]): unknown;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  iterate(...params: unknown[]): IterableIterator<unknown>;
  raw(toggle?: boolean): SqliteStatement;
}
type SqliteApi = new (path: string) => SqliteDatabase;

function sqlite(Database: SqliteApi): PeerEngine {
  const file = (dir: string) => join(dir, 'stock.sqlite');
  const openDatabase = (dir: string) => {
    const db = new Database(file(dir));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    return db;
  };
  return {
    key: 'sqlite',
    label: 'SQLite (better-sqlite3)',
    // better-sqlite3's performance guide and SQLite's docs for bulk inserts: WAL journal with
    // synchronous=NORMAL (a commit is one WAL append, fsynced at checkpoints - durable against a
    // process crash, as chronotier's flank), one transaction per batch with a prepared
    // statement. The table is clustered on (ts, seq): a WITHOUT ROWID primary key keeps rows in
    // time order (appends go to the B-tree's right edge) and allows equal timestamps.
    configuration: 'WAL, synchronous=NORMAL, one transaction per 65,536-event batch through one prepared INSERT; WITHOUT ROWID table with PRIMARY KEY (ts, seq), so rows are clustered in time order',
    async ingest(dir, chunks) {
      const db = openDatabase(dir);
      db.exec('CREATE TABLE stock (ts INTEGER NOT NULL, seq INTEGER NOT NULL, symbol INTEGER, price REAL, volume INTEGER, PRIMARY KEY (ts, seq)) WITHOUT ROWID');
      const insert = db.prepare('INSERT INTO stock VALUES (?, ?, ?, ?, ?)');
      const insertChunk = db.transaction((chunk: StockColumns) => {
        for (let i = 0; i < chunk.ts.length; i++) insert.run(chunk.ts[i], chunk.seq[i], chunk.symbol[i], chunk.price[i], chunk.volume[i]);
      });
      for (const chunk of chunks) insertChunk(chunk);
      db.close(); // checkpoints the WAL into the database file
    },
    async openForQueries(dir) {
      const db = openDatabase(dir);
      const aggregate = db.prepare(`SELECT count(*), ${AGGREGATE_COLUMNS} FROM stock WHERE ts BETWEEN ? AND ?`).raw(true);
      const point = db.prepare('SELECT * FROM stock WHERE ts = ?');
      const scan = db.prepare('SELECT * FROM stock WHERE ts BETWEEN ? AND ? ORDER BY ts');
      return {
        aggregate(from, to) {
          const row = aggregate.get(from, to) as number[];
          return { count: row[0]!, volumeSum: row[10]! };
        },
        point: (ts) => point.all(ts).length,
        scan(from, to) {
          const sink = new ScanSink();
          for (const event of scan.iterate(from, to)) sink.take(event);
          return sink.count;
        },
        close: () => db.close(),
      };
    },
  };
}

// ---- LMDB (lmdb-js) ----------------------------------------------------------------------------

interface LmdbApi {
  open(options: Record<string, unknown>): LmdbDatabase;
}
interface LmdbDatabase {
  put(key: Uint8Array, value: Uint8Array): Promise<boolean>;
  getRange(options: { start: Uint8Array; end: Uint8Array }): Iterable<{ key: Uint8Array; value: Uint8Array }>;
  readonly flushed: Promise<boolean>;
  close(): Promise<void>;
}

function lmdb(api: LmdbApi): PeerEngine {
  // lmdb-js's README: puts are batched automatically into one asynchronous transaction per turn
  // of the event loop, committed (and synced) on a background thread - the recommended
  // high-throughput write path. Keys are binary and big-endian (ts, seq), so LMDB's B+-tree
  // orders them by time and appends go to its right edge; values are the packed 20-byte row
  // ('binary' encoding: no msgpack). Compression off (the default).
  const openDatabase = (dir: string) => api.open({ path: join(dir, 'stock.mdb'), keyEncoding: 'binary', encoding: 'binary' });
  return {
    key: 'lmdb',
    label: 'LMDB (lmdb-js)',
    configuration: "binary big-endian (ts, seq) keys, packed 20-byte binary values; puts auto-batched into async transactions (awaited per 65,536-event batch), default sync on commit",
    async ingest(dir, chunks) {
      const db = openDatabase(dir);
      for (const chunk of chunks) {
        const values = new Uint8Array(chunk.ts.length * VALUE_BYTES);
        const view = viewOf(values);
        let last: Promise<boolean> | undefined;
        for (let i = 0; i < chunk.ts.length; i++) {
          writeValue(view, i * VALUE_BYTES, chunk, i);
          last = db.put(keyOf(chunk.ts[i]!, chunk.seq[i]!), values.subarray(i * VALUE_BYTES, (i + 1) * VALUE_BYTES));
        }
        await last;
      }
      await db.flushed;
      await db.close();
    },
    async openForQueries(dir) {
      const db = openDatabase(dir);
      const range = (from: number, to: number) => db.getRange({ start: keyOf(from, 0), end: keyOf(to + 1, 0) });
      return {
        aggregate(from, to) {
          const aggregate = new StockAggregate();
          for (const { value } of range(from, to)) addValue(aggregate, viewOf(value), 0);
          return aggregate.check();
        },
        scan(from, to) {
          const sink = new ScanSink();
          for (const { key, value } of range(from, to)) sink.take(valueObject(timestampOfKey(key), viewOf(value), 0));
          return sink.count;
        },
        close: () => db.close(),
      };
    },
  };
}

// ---- LevelDB (classic-level) -------------------------------------------------------------------

interface LevelApi {
  ClassicLevel: new (location: string, options: Record<string, unknown>) => LevelDatabase;
}
interface LevelDatabase {
  open(): Promise<void>;
  batch(operations: { type: 'put'; key: Uint8Array; value: Uint8Array }[]): Promise<void>;
  iterator(options: { gte: Uint8Array; lt: Uint8Array }): LevelIterator;
  close(): Promise<void>;
}
interface LevelIterator {
  nextv(size: number): Promise<[Uint8Array, Uint8Array][]>;
  close(): Promise<void>;
}

function level(api: LevelApi): PeerEngine {
  // classic-level's README: write in batches (one atomic, sequential log write per batch),
  // binary keys that sort as their bytes (big-endian ts, seq: time order), read ranges with an
  // iterator and nextv() to fetch many entries per native call. LevelDB's default write is not
  // fsynced (sync: false): durable against a process crash, like chronotier between flushes.
  const openDatabase = async (dir: string) => {
    const db = new api.ClassicLevel(join(dir, 'stock.level'), { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    return db;
  };
  const forEach = async (db: LevelDatabase, from: number, to: number, visit: (key: Uint8Array, value: Uint8Array) => void) => {
    const iterator = db.iterator({ gte: keyOf(from, 0), lt: keyOf(to + 1, 0) });
    try {
      for (let entries = await iterator.nextv(1000); entries.length > 0; entries = await iterator.nextv(1000)) for (const [key, value] of entries) visit(key, value);
    } finally {
      await iterator.close();
    }
  };
  return {
    key: 'level',
    label: 'LevelDB (classic-level)',
    configuration: 'one batch() of 65,536 puts per chunk, binary big-endian (ts, seq) keys and packed 20-byte values, default options (sync: false, Snappy compression); range reads through iterator.nextv(1000)',
    async ingest(dir, chunks) {
      const db = await openDatabase(dir);
      for (const chunk of chunks) {
        const values = new Uint8Array(chunk.ts.length * VALUE_BYTES);
        const view = viewOf(values);
        const operations = Array.from({ length: chunk.ts.length }, (_, i) => {
          writeValue(view, i * VALUE_BYTES, chunk, i);
          return { type: 'put' as const, key: keyOf(chunk.ts[i]!, chunk.seq[i]!), value: values.subarray(i * VALUE_BYTES, (i + 1) * VALUE_BYTES) };
        });
        await db.batch(operations);
      }
      await db.close();
    },
    async openForQueries(dir) {
      const db = await openDatabase(dir);
      return {
        async aggregate(from, to) {
          const aggregate = new StockAggregate();
          await forEach(db, from, to, (_, value) => addValue(aggregate, viewOf(value), 0));
          return aggregate.check();
        },
        async scan(from, to) {
          const sink = new ScanSink();
          await forEach(db, from, to, (key, value) => sink.take(valueObject(timestampOfKey(key), viewOf(value), 0)));
          return sink.count;
        },
        close: () => db.close(),
      };
    },
  };
}

// ---- raw append-only file: the physical limit --------------------------------------------------

/** Records read per pread by the raw file's scans. */
const RAW_READ_RECORDS = 32_768;

function raw(): PeerEngine {
  const file = (dir: string) => join(dir, 'stock.raw');
  return {
    key: 'raw',
    label: 'raw append-only file',
    configuration: 'fixed 28-byte records (ts u64 + the packed row) appended with one write() per 65,536-event chunk and one fdatasync per chunk; no index: queries binary-search the time-ordered file with pread',
    async ingest(dir, chunks) {
      const fd = openSync(file(dir), 'w');
      try {
        for (const chunk of chunks) {
          const bytes = new Uint8Array(chunk.ts.length * RAW_RECORD_BYTES);
          const view = viewOf(bytes);
          for (let i = 0; i < chunk.ts.length; i++) {
            const at = i * RAW_RECORD_BYTES;
            view.setUint32(at, chunk.ts[i]! >>> 0, true);
            view.setUint32(at + 4, Math.floor(chunk.ts[i]! / 2 ** 32), true);
            writeValue(view, at + 8, chunk, i);
          }
          writeSync(fd, bytes);
          fdatasyncSync(fd);
        }
      } finally {
        closeSync(fd);
      }
    },
    async openForQueries(dir) {
      const fd = openSync(file(dir), 'r');
      const records = Math.floor(fstatSync(fd).size / RAW_RECORD_BYTES);
      const tsBytes = new Uint8Array(8);
      const tsView = viewOf(tsBytes);
      const tsAt = (record: number) => {
        readSync(fd, tsBytes, 0, 8, record * RAW_RECORD_BYTES);
        return tsView.getUint32(4, true) * 2 ** 32 + tsView.getUint32(0, true);
      };
      /** First record with ts >= target. */
      const lowerBound = (target: number) => {
        let low = 0;
        let high = records;
        while (low < high) {
          const mid = (low + high) >>> 1;
          if (tsAt(mid) < target) low = mid + 1;
          else high = mid;
        }
        return low;
      };
      const buffer = new Uint8Array(RAW_READ_RECORDS * RAW_RECORD_BYTES);
      const view = viewOf(buffer);
      const forEach = (from: number, to: number, visit: (view: DataView, offset: number) => void) => {
        const first = lowerBound(from);
        const end = lowerBound(to + 1);
        for (let record = first; record < end; record += RAW_READ_RECORDS) {
          const count = Math.min(RAW_READ_RECORDS, end - record);
          readSync(fd, buffer, 0, count * RAW_RECORD_BYTES, record * RAW_RECORD_BYTES);
          for (let i = 0; i < count; i++) visit(view, i * RAW_RECORD_BYTES);
        }
      };
      const tsOf = (view: DataView, offset: number) => view.getUint32(offset + 4, true) * 2 ** 32 + view.getUint32(offset, true);
      return {
        aggregate(from, to) {
          const aggregate = new StockAggregate();
          forEach(from, to, (view, offset) => addValue(aggregate, view, offset + 8));
          return aggregate.check();
        },
        scan(from, to) {
          const sink = new ScanSink();
          forEach(from, to, (view, offset) => sink.take(valueObject(tsOf(view, offset), view, offset + 8)));
          return sink.count;
        },
        close: () => closeSync(fd),
      };
    },
  };
}

// ---- the line-up -------------------------------------------------------------------------------

/** The engine `make` builds from a loaded module, or - the module missing or `make` failing - a MissingEngine saying why. */
export function peerOrMissing<T>(key: string, label: string, module: Loaded<T>, make: (api: T) => PeerEngine): PeerEngine | MissingEngine {
  if (module.error !== undefined) return { key, label, error: module.error };
  try {
    return make(module.module);
  } catch (err) {
    return { key, label, error: `${label} failed to initialize: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** Every engine of the comparison, in the JSON's order; a peer that cannot be loaded comes back as a MissingEngine saying why. */
export function peerEngines(pmemRoot: string): (PeerEngine | MissingEngine)[] {
  return [
    chronotier(pmemRoot),
    peerOrMissing('duckdb', 'DuckDB', requirePeer<DuckDbApi>('@duckdb/node-api'), duckdb),
    peerOrMissing('sqlite', 'SQLite (better-sqlite3)', requirePeer<SqliteApi>('better-sqlite3'), sqlite),
    peerOrMissing('lmdb', 'LMDB (lmdb-js)', requirePeer<LmdbApi>('lmdb'), lmdb),
    peerOrMissing('level', 'LevelDB (classic-level)', requirePeer<LevelApi>('classic-level'), level),
    raw(),
  ];
}

export function isMissing(engine: PeerEngine | MissingEngine): engine is MissingEngine {
  return 'error' in engine;
}
