// `npm run bench -- persist`: the cost of making bytes durable on each tier, measured in one run:
// persist of 64 B / 256 B / 8 KiB on the native region (PMem, or /dev/shm with
// PMEM_IS_PMEM_FORCE=1), the msync fallback on a disk file, the simulated region, and
// append + fdatasync of 8 KiB and 1 MiB on the SSD file. Medians.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NativeRegion } from '../src/pmem/native-region.js';
import type { PmemRegion } from '../src/pmem/region.js';
import { SimulatedRegion } from '../src/pmem/simulated-region.js';
import { NodeSsdFile } from '../src/ssd/file.js';
import { type BenchArgs, median, printResult, printTable, round, timeRuns } from './harness.js';

const REGION_BYTES = 64 * 1024 * 1024;

/** Median ns of persisting `length` bytes at successive offsets (so no line is already clean). */
function persistNs(region: PmemRegion, length: number, repeats: number): number {
  const bytes = new Uint8Array(region.buffer);
  let offset = 0;
  return median(
    timeRuns(repeats, Math.min(100, repeats), () => {
      if (offset + length > region.size) offset = 0;
      bytes.fill(offset & 0xff, offset, offset + length);
      region.persist(offset, length);
      offset += length;
    }),
  );
}

function appendSyncUs(dir: string, length: number, repeats: number): number {
  const file = NodeSsdFile.open(join(dir, `append-${length}.bin`), { create: true });
  const data = new Uint8Array(length).fill(7);
  try {
    return median(timeRuns(repeats, 3, () => {
      file.append(data);
      file.sync();
    })) / 1000;
  } finally {
    file.close();
  }
}

export function run(args: BenchArgs): void {
  const repeats = args.quick ? 2000 : 20000;
  const shmDir = mkdtempSync('/dev/shm/chronotier-bench-');
  const diskDir = mkdtempSync(join(process.env.CHRONOTIER_BENCH_DIR ?? join(process.cwd(), 'data'), 'bench-persist-'));
  mkdirSync(diskDir, { recursive: true });
  try {
    const pmem = NativeRegion.open(join(shmDir, 'region.pmem'), { size: REGION_BYTES, create: true });
    const nativeNs = [64, 256, 8192].map((length) => persistNs(pmem, length, repeats));
    const durability = pmem.durability;
    pmem.close();
    const disk = NativeRegion.open(join(diskDir, 'region.msync'), { size: REGION_BYTES, create: true, variant: 'msync' });
    const msync8kUs = persistNs(disk, 8192, Math.max(200, repeats / 50)) / 1000;
    disk.close();
    const simulated = SimulatedRegion.create('bench', REGION_BYTES);
    const simulatedNs = [64, 256, 8192].map((length) => persistNs(simulated, length, repeats));
    const fdatasync8kUs = appendSyncUs(diskDir, 8192, args.quick ? 100 : 1000);
    const fdatasync1mUs = appendSyncUs(diskDir, 1024 * 1024, args.quick ? 20 : 100);
    printTable(`persist (medians; ${repeats} runs; PMem region on /dev/shm is '${durability}')`, ['what', '64 B', '256 B', '8 KiB'], [
      ['native region persist (ns)', ...nativeNs],
      ['simulated region persist (ns)', ...simulatedNs],
      ['msync fallback on disk (µs)', '', '', msync8kUs],
      ['SSD append + fdatasync (µs)', '', '', fdatasync8kUs],
      ['SSD append + fdatasync 1 MiB (µs)', '', '', fdatasync1mUs],
    ]);
    printResult({
      bench: 'persist',
      persist_64b_ns: round(nativeNs[0]!, 1),
      persist_256b_ns: round(nativeNs[1]!, 1),
      persist_8k_ns: round(nativeNs[2]!, 1),
      msync_8k_us: round(msync8kUs, 1),
      fdatasync_8k_us: round(fdatasync8kUs, 1),
      fdatasync_1m_us: round(fdatasync1mUs, 1),
      simulated_64b_ns: round(simulatedNs[0]!, 1),
      is_pmem: durability === 'pmem' || durability === 'volatile-pmem',
      durability,
    });
  } finally {
    rmSync(shmDir, { recursive: true, force: true });
    rmSync(diskDir, { recursive: true, force: true });
  }
}
