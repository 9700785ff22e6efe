// A PMem region: bytes that the CPU stores to directly, and that become durable only when the
// cache lines covering them are flushed and the flushes drained (x86: CLWB/CLFLUSHOPT + SFENCE).
//
// Persistence rule shared by every structure built on a region:
//   * a store is durable only after persist() (or flush() then drain()) covering it returns;
//   * the media keeps whole 64-byte cache lines, but a crash may leave any 8-byte aligned word
//     written since the last persist either old or new, independently of its neighbours;
//   * aligned 8-byte stores are atomic: a word is never half old, half new.
// Structures therefore publish with "write data, persist data, then write and persist the word
// that makes the data reachable" (a count, a pointer, a checksum-guarded header).

/** Cache line: the unit a flush writes back. */
export const CACHE_LINE_BYTES = 64;
/** The largest store a crash cannot tear. */
export const ATOMIC_WORD_BYTES = 8;
/** Optane's internal write block: structures are laid out in multiples of this. */
export const PMEM_BLOCK_BYTES = 256;

/** What durability the medium behind a region gives (reported to users in stats()). */
export type DurabilityClass =
  /** A DAX mapping of real persistent memory: survives power loss; flushes are CPU instructions. */
  | 'pmem'
  /** Memory that looks like PMem to libpmem but is volatile (tmpfs / /dev/shm): survives a process crash, not a reboot. */
  | 'volatile-pmem'
  /** An ordinary file flushed with msync: survives power loss, slowly. */
  | 'msync'
  /** An in-process simulation with an explicit durable image (tests). */
  | 'simulated'
  /** Plain DRAM, persists are no-ops: the paper's DRAM-flank baseline, for benchmarks only. */
  | 'volatile';

export interface PmemRegion {
  /** Name for error messages (a path, or a simulated name). */
  readonly path: string;
  /** Current size in bytes. */
  readonly size: number;
  readonly durability: DurabilityClass;
  /**
   * The bytes of the region. Valid until grow() or close(): after either, the old buffer is
   * detached, and DataView reads through it throw (typed arrays read as empty), so callers must
   * re-fetch views after growing and never cache them across grow().
   */
  readonly buffer: ArrayBuffer;
  /** Makes [offset, offset+length) durable before returning (flush + drain). */
  persist(offset: number, length: number): void;
  /** Starts writing back [offset, offset+length); durable only after the next drain(). */
  flush(offset: number, length: number): void;
  /** Waits until every earlier flush() has reached the media. */
  drain(): void;
  /**
   * Copies bytes [offset, offset + into.length) into `into` without touching the mapping: for a
   * mapped file through read(2). The first touch of a page of a fresh mapping costs a fault -
   * 8-28 µs on the VMs measured here, against 3-4 µs for a 4 KiB read - so scattered reads
   * right after open (queries before the queue index is rebuilt) come this way.
   */
  readInto(offset: number, into: Uint8Array): void;
  /**
   * The file's first bytes (up to a page) as a copy open took with read(2), handed out once:
   * verifying the header and reading the state from it saves open a read per file. Regions that
   * keep no such copy lack the method (readHead() then reads).
   */
  takeOpenHead?(): Uint8Array | undefined;
  /** Remaps the region at `newSize` bytes (>= size). Contents are kept; old views are detached. */
  grow(newSize: number): void;
  /** Unmaps the region. Any later call throws MisuseError('REGION_CLOSED'). */
  close(): void;
}

/** Rounds `value` up to a multiple of `alignment` (a power of two). */
export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}
