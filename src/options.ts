// Options of open() and createStream(), their defaults and their limits. Every option is checked
// here once, so the engine can assume sane values.

import { BoundsError, MisuseError } from './errors.js';
import { NODE_STORAGE_KINDS, type NodeStorageKind } from './tree/node-storage.js';

export interface OpenOptions {
  /** Directory for the PMem files: a DAX mount, tmpfs (emulation), or any directory (msync). Default `<dir>/pmem`. */
  readonly pmemDir?: string;
  /** Persist the flank every this many appended events (1 = every event). Default 25. */
  readonly flushEvery?: number;
  /** fdatasync the leaf file once per this many leaves. Default 16. */
  readonly syncEvery?: number;
  /** Bytes of decoded leaves cached in DRAM, per stream. Default 64 MiB. */
  readonly cacheBytes?: number;
  /**
   * Bytes of PMem for each stream's out-of-order queue; when it is full its late events are
   * merged into the tree. Default 100 MiB (the paper's; 3.3 M Stock events of 32 bytes a slot).
   */
  readonly oooQueueBytes?: number;
  /**
   * 'worker' (default): leaves are compressed, written and fdatasynced on a worker thread, so
   * appends never wait on them. 'inline': on the appending thread (simulated media always are).
   */
  readonly leafWriter?: 'worker' | 'inline';
  /**
   * Rebuild the PMem structures of every stream whose PMem files are missing or damaged from
   * its leaf file on SSD. Events that were only in PMem (the open leaf, leaves not yet written)
   * are lost; Store.rebuildReport() says what came back.
   */
  readonly rebuild?: boolean;
  /** Defaults for streams created through this handle. */
  readonly nodeSize?: number;
  readonly spare?: number;
  readonly ringLeaves?: number;
}

export interface StreamOptions {
  /** 'number' (safe-integer int64, the default) or 'bigint' (full int64, e.g. nanosecond epochs). */
  readonly timestamp?: 'number' | 'bigint';
  /** Bytes of a tree node (leaf page and index node): a multiple of 256 in [1024, 65536]. Default 8192. */
  readonly nodeSize?: number;
  /** Fraction of each node left free for out-of-order events, in [0, 0.5]. Default 0.1. */
  readonly spare?: number;
  /** Leaf pages in the PMem ring (the open leaf plus full leaves not yet durable on SSD). Default 256. */
  readonly ringLeaves?: number;
  /**
   * Where queries read closed index nodes (paper Fig. 6): 'pmem' (default: index nodes and their
   * aggregates in PMem arrays), 'pmem-aggregates' (aggregates in PMem, index nodes on SSD) or
   * 'ssd' (the paper's baseline: index nodes on SSD with their children's aggregates inline).
   * The flank is in PMem in every variant, and every variant recovers the same way.
   */
  readonly nodeStorage?: NodeStorageKind;
}

export interface ResolvedOptions {
  readonly flushEvery: number;
  readonly syncEvery: number;
  readonly cacheBytes: number;
  readonly oooQueueBytes: number;
  readonly leafWriter: 'worker' | 'inline';
  readonly rebuild: boolean;
  readonly nodeSize: number;
  readonly spare: number;
  readonly ringLeaves: number;
}

export function resolveOptions(options: OpenOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new MisuseError('INVALID_ARGUMENT', 'options must be an object');
  return {
    flushEvery: integerOption('flushEvery', options.flushEvery, 25, 1, 1_000_000),
    syncEvery: integerOption('syncEvery', options.syncEvery, 16, 1, 4095),
    cacheBytes: integerOption('cacheBytes', options.cacheBytes, 64 * 1024 * 1024, 0, Number.MAX_SAFE_INTEGER),
    oooQueueBytes: integerOption('oooQueueBytes', options.oooQueueBytes, 100 * 1024 * 1024, 64, 2 ** 35),
    leafWriter: leafWriterOption(options.leafWriter),
    rebuild: options.rebuild === true,
    nodeSize: nodeSizeOption(options.nodeSize, 8192),
    spare: spareOption(options.spare, 0.1),
    ringLeaves: integerOption('ringLeaves', options.ringLeaves, 256, 4, 4096),
  };
}

export function resolveStreamOptions(options: StreamOptions, defaults: ResolvedOptions): { nodeSize: number; spare: number; ringPages: number; nodeStorage: NodeStorageKind } {
  if (options.timestamp !== undefined && options.timestamp !== 'number' && options.timestamp !== 'bigint') {
    throw new MisuseError('INVALID_ARGUMENT', `timestamp must be 'number' or 'bigint', got ${String(options.timestamp)}`);
  }
  return {
    nodeSize: nodeSizeOption(options.nodeSize, defaults.nodeSize),
    spare: spareOption(options.spare, defaults.spare),
    ringPages: integerOption('ringLeaves', options.ringLeaves, defaults.ringLeaves, 4, 4096),
    nodeStorage: nodeStorageOption(options.nodeStorage),
  };
}

export function nodeStorageOption(value: unknown): NodeStorageKind {
  if (value === undefined) return 'pmem';
  if (!NODE_STORAGE_KINDS.includes(value as NodeStorageKind)) {
    throw new MisuseError('INVALID_ARGUMENT', `nodeStorage must be one of ${NODE_STORAGE_KINDS.map((kind) => `'${kind}'`).join(', ')}, got ${String(value)}`);
  }
  return value as NodeStorageKind;
}

function integerOption(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new BoundsError(`${name} must be an integer in [${min}, ${max}], got ${String(value)}`);
  }
  return value;
}

function leafWriterOption(value: string | undefined): 'worker' | 'inline' {
  if (value === undefined) return 'worker';
  if (value !== 'worker' && value !== 'inline') throw new MisuseError('INVALID_ARGUMENT', `leafWriter must be 'worker' or 'inline', got ${String(value)}`);
  return value;
}

function nodeSizeOption(value: number | undefined, fallback: number): number {
  const size = integerOption('nodeSize', value, fallback, 1024, 65536);
  if (size % 256 !== 0) throw new BoundsError(`nodeSize must be a multiple of 256 (PMem's write block), got ${size}`);
  return size;
}

function spareOption(value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= 0 && value <= 0.5)) throw new BoundsError(`spare must be a fraction in [0, 0.5], got ${String(value)}`);
  return value;
}
