// The only module that loads the native addon (native/chronotier.cc). Two builds exist: the
// default one (libpmem when it was installed at build time) and an msync-only one that is
// always built; CHRONOTIER_NATIVE=msync selects the latter as the default too.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { toIoError } from './errors.js';

export interface NativeBinding {
  /** 'libpmem' or 'msync': what this build flushes with. */
  readonly variant: 'libpmem' | 'msync';
  /** Maps `path` (created, or extended to `size`, when `create`; whole file when size is 0). */
  map(path: string, size: number, create: boolean): NativeMapping;
  /**
   * Maps an existing file whole (an empty one is not mapped) and copies its first `headBytes`
   * bytes with read(2): one call where JS's open, fstat, read and close took four.
   */
  openMapped(path: string, headBytes: number): Partial<NativeMapping> & { size: number; head: ArrayBuffer };
  /** Detaches `buffer` and unmaps it. */
  unmap(buffer: ArrayBuffer): void;
  /** Cache-line write-back + fence (libpmem); msync in the msync build. */
  persist(buffer: ArrayBuffer, offset: number, length: number): void;
  flush(buffer: ArrayBuffer, offset: number, length: number): void;
  drain(): void;
  msync(buffer: ArrayBuffer, offset: number, length: number): void;
  /** An fd holding an exclusive flock on `path`; throws code EWOULDBLOCK/EAGAIN if held elsewhere. */
  lock(path: string): number;
  unlock(fd: number): void;
}

/** A mapped file: its bytes, whether cache-line flushes persist them, and its file system's magic number (fstatfs; absent if that failed). */
export interface NativeMapping {
  readonly buffer: ArrayBuffer;
  readonly isPmem: boolean;
  readonly fsType?: number;
}

export type NativeVariant = 'default' | 'msync';

const FUNCTIONS = ['map', 'openMapped', 'unmap', 'persist', 'flush', 'drain', 'msync', 'lock', 'unlock'] as const;
const loaded = new Map<NativeVariant, NativeBinding>();

export function loadNative(variant: NativeVariant = process.env.CHRONOTIER_NATIVE === 'msync' ? 'msync' : 'default'): NativeBinding {
  let binding = loaded.get(variant);
  if (binding === undefined) {
    const file = join(packageRoot(), 'build', 'Release', variant === 'msync' ? 'chronotier_native_msync.node' : 'chronotier_native.node');
    if (!existsSync(file)) throw new Error(`chronotier's native addon is not built (${file} is missing): run npm install`);
    const raw = createRequire(import.meta.url)(file) as Record<string, unknown>;
    for (const name of FUNCTIONS) if (typeof raw[name] !== 'function') throw new Error(`${file} lacks the function ${name}: rebuild it with npm install`);
    binding = wrapErrors(raw as unknown as NativeBinding);
    loaded.set(variant, binding);
  }
  return binding;
}

/** The directory holding binding.gyp, whether this runs from src/ (tests) or dist/src/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'binding.gyp'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the chronotier package root (binding.gyp)');
    dir = parent;
  }
  return dir;
}

/** System errors from map, openMapped and lock become IoError; the hot-path calls stay unwrapped. */
function wrapErrors(raw: NativeBinding): NativeBinding {
  return {
    ...raw,
    variant: raw.variant,
    map: withIoErrors(raw.map, 'map'),
    openMapped: withIoErrors(raw.openMapped, 'open'),
    lock: withIoErrors(raw.lock, 'flock'),
  };
}

/** `call` with its system errors thrown as IoError naming the path (its first argument). */
function withIoErrors<A extends [string, ...unknown[]], R>(call: (...args: A) => R, syscall: string): (...args: A) => R {
  return (...args) => {
    try {
      return call(...args);
    } catch (err) {
      return toIoError(err, (err as { syscall?: string }).syscall ?? syscall, args[0]);
    }
  };
}
