// `npm run bench -- translation [--ops N] [--quick]`: paper Fig. 7 - address translation (node id
// -> location of its record in the leaf file) measured alone, N operations each (default 10 M,
// 1 M with --quick), three ways:
//   dram    a flat array in DRAM: nothing persisted, so recovery rescans the whole leaf file
//   ssd     the flash alternative: a paged append-only B+-tree on SSD (bench/translation-btree.ts,
//           32 KiB pages, right flank in DRAM, fdatasync at each checkpoint = each full leaf page)
//   pmem    chronotier's TranslationArray on a native region in /dev/shm (PMEM_IS_PMEM_FORCE=1):
//           each slot written, persisted in 256-byte batches of 32
// Per variant: update_ns (sequential set of ids 0..N-1, mean), lookup_ns (N random gets, mean),
// recovery_ms (median of 3: reopen what survived a crash and re-derive the translations it did
// not keep by scanning the leaf file - all of it for DRAM, the tail after the durable count for
// the others; records_rescanned says how many). The leaf file here is synthetic: N records of 48-80 bytes (real compressed leaves
// are ~1.5 KiB), so DRAM's full scan is a lower bound on a real one.

import { closeSync, fstatSync, mkdirSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { NativeRegion } from '../src/pmem/native-region.js';
import { TranslationArray } from '../src/tree/translation-array.js';
import { Random } from '../src/util/random.js';
import { type BenchArgs, median, nowNs, printResult, printTable, round } from './harness.js';
import { PMEM_ROOT } from './bench-store.js';
import { type Location, TranslationBTree } from './translation-btree.js';

const RECORD_HEADER_BYTES = 8;
/** The leaf file starts with a header, so no record sits at offset 0 (which a slot reads as "unset"). */
const LEAF_FILE_HEADER_BYTES = 64;
const STORE_ID = new Uint8Array(16).fill(9);

/** Any of the three structures, as the bench drives it. */
interface Translation {
  set(id: number, location: Location): void;
  get(id: number): Location | undefined;
}

/** The DRAM variant: the same 8-byte slot encoding as the PMem array, in a growable JS array. */
class DramTranslation implements Translation {
  private slots = new Uint32Array(2 * 4096);

  set(id: number, location: Location): void {
    if (2 * id + 1 >= this.slots.length) {
      const grown = new Uint32Array(this.slots.length * 2);
      grown.set(this.slots);
      this.slots = grown;
    }
    this.slots[2 * id] = location.offset % 2 ** 32;
    this.slots[2 * id + 1] = Math.floor(location.offset / 2 ** 32) | (location.length << 8);
  }

  get(id: number): Location | undefined {
    if (2 * id + 1 >= this.slots.length) return undefined;
    const high = this.slots[2 * id + 1]!;
    return high === 0 ? undefined : { offset: (high & 0xff) * 2 ** 32 + this.slots[2 * id]!, length: high >>> 8 };
  }
}

/** Where each record of the synthetic leaf file lies; typed arrays, so millions of them do not load the garbage collector during timings. */
class Locations {
  readonly offsets: Float64Array;
  readonly lengths: Uint32Array;

  constructor(readonly length: number) {
    this.offsets = new Float64Array(length);
    this.lengths = new Uint32Array(length);
  }

  at(id: number): Location {
    return { offset: this.offsets[id]!, length: this.lengths[id]! };
  }
}

/** One read buffer for every rescan: allocating a MiB per recovery would time the garbage collector. */
const RESCAN_BLOCK = new Uint8Array(1 << 20);

/** The synthetic leaf file: record i = [u32 length][u32 id][payload], lengths 48..80 bytes. Returns each record's location. */
function writeLeafFile(path: string, records: number): Locations {
  const locations = new Locations(records);
  const fd = openSync(path, 'w');
  const block = new Uint8Array(1 << 20);
  const view = new DataView(block.buffer);
  let fileOffset = LEAF_FILE_HEADER_BYTES;
  writeSync(fd, new Uint8Array(LEAF_FILE_HEADER_BYTES));
  let used = 0;
  for (let id = 0; id < records; id++) {
    const length = 48 + ((id * 37) % 33);
    if (used + length > block.length) {
      writeSync(fd, block, 0, used);
      used = 0;
    }
    view.setUint32(used, length, true);
    view.setUint32(used + 4, id, true);
    locations.offsets[id] = fileOffset;
    locations.lengths[id] = length;
    used += length;
    fileOffset += length;
  }
  writeSync(fd, block, 0, used);
  closeSync(fd);
  return locations;
}

/** Re-derives translations by reading the leaf file from `offset` to its end: the recovery scan. */
function rescan(path: string, offset: number, set: (id: number, location: Location) => void): number {
  const fd = openSync(path, 'r');
  const end = fstatSync(fd).size;
  const block = RESCAN_BLOCK;
  const view = new DataView(block.buffer);
  let found = 0;
  try {
    for (let blockStart = offset; blockStart < end; ) {
      const bytes = readSync(fd, block, 0, Math.min(block.length, end - blockStart), blockStart);
      let at = 0;
      while (at + RECORD_HEADER_BYTES <= bytes) {
        const length = view.getUint32(at, true);
        if (length < RECORD_HEADER_BYTES) throw new Error(`${path}: no record at offset ${blockStart + at}`);
        if (at + length > bytes) break; // the record continues in the next block
        set(view.getUint32(at + 4, true), { offset: blockStart + at, length });
        found++;
        at += length;
      }
      blockStart += at;
    }
  } finally {
    closeSync(fd);
  }
  return found;
}

interface VariantResult {
  update_ns: number;
  lookup_ns: number;
  recovery_ms: number;
  /** Leaf-file records the recovery had to read to re-derive translations the structure had not kept. */
  records_rescanned: number;
}

function timeUpdatesAndLookups(translation: Translation, locations: Locations, lookups: Int32Array, afterSet: (id: number) => void): { update_ns: number; lookup_ns: number } {
  const n = locations.length;
  let start = nowNs();
  for (let id = 0; id < n; id++) {
    translation.set(id, locations.at(id));
    afterSet(id);
  }
  const updateNs = (nowNs() - start) / n;
  let sink = 0;
  start = nowNs();
  for (let i = 0; i < lookups.length; i++) sink += translation.get(lookups[i]!)!.length;
  const lookupNs = (nowNs() - start) / lookups.length;
  if (sink <= 0) throw new Error('lookups found nothing');
  return { update_ns: round(updateNs, 1), lookup_ns: round(lookupNs, 1) };
}

function checkRecovered(translation: Translation, locations: Locations, what: string): void {
  for (const id of [0, locations.length >> 1, locations.length - 1]) {
    const got = translation.get(id);
    if (got === undefined || got.offset !== locations.offsets[id] || got.length !== locations.lengths[id]) throw new Error(`${what}: id ${id} recovered as ${JSON.stringify(got)}`);
  }
}

function medianRecoveryMs(runs: number, recover: () => void): number {
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const start = nowNs();
    recover();
    times.push(nowNs() - start);
  }
  return round(median(times) / 1e6, 3);
}

function dramVariant(leafPath: string, locations: Locations, lookups: Int32Array): VariantResult {
  const timed = timeUpdatesAndLookups(new DramTranslation(), locations, lookups, () => {});
  const recovery = medianRecoveryMs(3, () => {
    const rebuilt = new DramTranslation();
    rescan(leafPath, LEAF_FILE_HEADER_BYTES, (id, location) => rebuilt.set(id, location));
    checkRecovered(rebuilt, locations, 'dram');
  });
  return { ...timed, recovery_ms: recovery, records_rescanned: locations.length };
}

function ssdVariant(dir: string, leafPath: string, locations: Locations, lookups: Int32Array): VariantResult & { pages_written: number; fdatasyncs: number } {
  const path = join(dir, 'translation.att');
  const tree = TranslationBTree.create(path);
  const asTranslation: Translation = { set: (_, location) => tree.append(location), get: (id) => tree.get(id) };
  const timed = timeUpdatesAndLookups(asTranslation, locations, lookups, () => {});
  const { pages, syncs } = tree.writes;
  tree.close(); // no final checkpoint: what a crash leaves
  let lastDurable = 0;
  const recovery = medianRecoveryMs(3, () => {
    const recovered = TranslationBTree.recover(path);
    const durable = (lastDurable = recovered.durableCount);
    rescan(leafPath, durable < locations.length ? locations.offsets[durable]! : Infinity, (id, location) => {
      if (id >= durable) recovered.append(location);
    });
    checkRecovered({ set: () => {}, get: (id) => recovered.get(id) }, locations, 'ssd');
    recovered.close();
  });
  return { ...timed, recovery_ms: recovery, pages_written: pages, fdatasyncs: syncs, records_rescanned: locations.length - lastDurable };
}

function pmemVariant(leafPath: string, locations: Locations, lookups: Int32Array): VariantResult & { durability: string } {
  const path = join(PMEM_ROOT, `chronotier-bench-translation-${process.pid}.pmem`);
  rmSync(path, { force: true });
  try {
    const region = NativeRegion.open(path, { size: 4096, create: true });
    const durability = region.durability;
    const array = TranslationArray.create(region, STORE_ID, 0);
    // As the store does: set the slot once its record is durable, persist every whole batch of 32.
    const timed = timeUpdatesAndLookups(array, locations, lookups, (id) => array.persistThrough(id + 1, false));
    array.close(); // without persisting the partial batch: what a crash leaves
    let lastDurable = 0;
    const recovery = medianRecoveryMs(3, () => {
      const recovered = TranslationArray.open(NativeRegion.open(path, { create: false }), STORE_ID, 0);
      const durable = (lastDurable = recovered.durableCount);
      rescan(leafPath, durable < locations.length ? locations.offsets[durable]! : Infinity, (id, location) => {
        if (id >= durable) recovered.set(id, location);
      });
      checkRecovered(recovered, locations, 'pmem');
      recovered.close(); // the rescanned slots stay unpersisted, so every run recovers the same tail
    });
    return { ...timed, recovery_ms: recovery, durability, records_rescanned: locations.length - lastDurable };
  } finally {
    rmSync(path, { force: true });
  }
}

export function run(args: BenchArgs): void {
  const ops = Number(args.flags.get('ops') ?? args.events ?? (args.quick ? 1_000_000 : 10_000_000));
  if (!Number.isSafeInteger(ops) || ops < 1) throw new RangeError(`--ops must be a positive integer`);
  const dir = join(process.cwd(), 'data', 'bench-translation');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  try {
    const leafPath = join(dir, 'leaves.bin');
    const locations = writeLeafFile(leafPath, ops);
    const random = new Random(3);
    const lookups = Int32Array.from({ length: ops }, () => random.nextInt(ops));
    const dram = dramVariant(leafPath, locations, lookups);
    const ssd = ssdVariant(dir, leafPath, locations, lookups);
    const pmem = pmemVariant(leafPath, locations, lookups);
    printTable(`address translation, ${ops.toLocaleString('en-US')} operations each (paper Fig. 7)`, ['variant', 'sequential update ns', 'random lookup ns', 'recovery ms'], [
      ['DRAM array (recovery: scan the whole leaf file)', dram.update_ns, dram.lookup_ns, dram.recovery_ms],
      [`SSD B+-tree, 32 KiB pages (${ssd.fdatasyncs} checkpoints)`, ssd.update_ns, ssd.lookup_ns, ssd.recovery_ms],
      [`PMem flat array (${pmem.durability})`, pmem.update_ns, pmem.lookup_ns, pmem.recovery_ms],
      ['ratio SSD / PMem', round(ssd.update_ns / pmem.update_ns, 2), round(ssd.lookup_ns / pmem.lookup_ns, 2), round(ssd.recovery_ms / pmem.recovery_ms, 2)],
    ]);
    printResult({ bench: 'translation', ops, dram, ssd, pmem });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
