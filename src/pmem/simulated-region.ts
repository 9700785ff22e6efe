// A PMem region simulated in process memory, with an explicit durable image, so tests can cut
// the power at any instant and prove a structure's persistence rule.
//
// Model (x86 + ADR, what PMDK assumes):
//   * the code stores into `live`; nothing reaches the media until its cache line is written back;
//   * flush(o, n) snapshots every 64-byte line covering [o, o+n) as it is now - whole lines, so
//     bytes that share a line with the range are written back too, exactly as CLWB does;
//     drain() (SFENCE) makes every snapshot taken so far durable, oldest first. Stores after a
//     flush and before the drain are not covered by it;
//   * persist(o, n) is flush + drain, so it also completes every earlier flush;
//   * at a crash, any line may also have been evicted by the cache at any earlier moment, so every
//     8-byte word that differs between `live` and the durable image independently holds either
//     value (aligned 8-byte stores are atomic, so a word is never torn). Words written twice since
//     their last write-back are modelled with their newest value only: a subset of the real
//     outcomes, and the one that matters, since structures never rely on an intermediate value.
// crash(seed) returns that image; SimulatedRegion.fromImage() reopens it.

import { MisuseError } from '../errors.js';
import { Random } from '../util/random.js';
import { ATOMIC_WORD_BYTES, CACHE_LINE_BYTES, type PmemRegion } from './region.js';
import { checkRange } from './range.js';

interface PendingFlush {
  readonly offset: number;
  readonly lines: Uint8Array;
}

export class SimulatedRegion implements PmemRegion {
  readonly durability = 'simulated' as const;
  private live: Uint8Array;
  private durable: Uint8Array;
  private pending: PendingFlush[] = [];
  private closed = false;
  /** Called after every persist/drain; a test may throw from it to stop the program mid-operation. */
  onPersist: (() => void) | undefined;

  private constructor(
    readonly path: string,
    live: Uint8Array,
    durable: Uint8Array,
  ) {
    this.live = live;
    this.durable = durable;
  }

  /** A fresh zero-filled region: its durable image is zeros too (a newly created file). */
  static create(path: string, size: number): SimulatedRegion {
    checkWholeWords(path, size);
    return new SimulatedRegion(path, new Uint8Array(size), new Uint8Array(size));
  }

  /** A region whose live and durable contents are `image`, as after a restart. */
  static fromImage(path: string, image: Uint8Array): SimulatedRegion {
    checkWholeWords(path, image.length);
    return new SimulatedRegion(path, image.slice(), image.slice());
  }

  get size(): number {
    this.checkOpen();
    return this.live.length;
  }

  get buffer(): ArrayBuffer {
    this.checkOpen();
    return this.live.buffer as ArrayBuffer;
  }

  /** flush + drain: the fence also completes every earlier flush, oldest first. */
  persist(offset: number, length: number): void {
    this.flush(offset, length);
    this.drain();
  }

  flush(offset: number, length: number): void {
    this.checkOpen();
    checkRange(offset, length, this.live.length, this.path);
    const [start, end] = this.lineSpan(offset, length);
    this.pending.push({ offset: start, lines: this.live.slice(start, end) });
  }

  drain(): void {
    this.checkOpen();
    for (const flush of this.pending) this.durable.set(flush.lines, flush.offset);
    this.pending = [];
    this.afterWriteBack();
  }

  readInto(offset: number, into: Uint8Array): void {
    this.checkOpen();
    checkRange(offset, into.length, this.live.length, this.path);
    into.set(this.live.subarray(offset, offset + into.length));
  }

  grow(newSize: number): void {
    this.checkOpen();
    if (!Number.isSafeInteger(newSize) || newSize < this.live.length) {
      throw new MisuseError('INVALID_ARGUMENT', `${this.path}: cannot grow from ${this.live.length} to ${newSize} bytes`);
    }
    checkWholeWords(this.path, newSize);
    const old = this.live;
    this.live = resized(old, newSize);
    this.durable = resized(this.durable, newSize);
    detach(old);
  }

  /** Unmaps: views handed out fail from now on; the media keeps the contents (see reopen()). */
  close(): void {
    if (this.closed) return;
    const kept = this.live.slice();
    detach(this.live);
    this.live = kept;
    this.closed = true;
  }

  /** A new handle on the same media, as opening the file again after close() gives. */
  reopen(): SimulatedRegion {
    const region = new SimulatedRegion(this.path, this.live, this.durable);
    region.pending = this.pending;
    return region;
  }

  /**
   * The bytes a power failure at this instant could leave on the media. Deterministic per seed.
   * Works on a closed handle too (it describes the media). The region itself is unchanged.
   */
  crash(seed: number): Uint8Array {
    const image = this.durable.slice();
    const random = new Random(seed);
    // Flushed-but-undrained lines may have reached the media or not, word by word, like any store.
    for (const flush of this.pending) blendWords(image, flush.lines, flush.offset, random);
    blendWords(image, this.live, 0, random);
    return image;
  }

  /** Everything stored so far, persisted or not: what survives a process crash. */
  liveImage(): Uint8Array {
    return this.live.slice();
  }

  /** The durable image if the power failed now and no unflushed word happened to be written back. */
  durableImage(): Uint8Array {
    return this.durable.slice();
  }

  private lineSpan(offset: number, length: number): [number, number] {
    const start = offset - (offset % CACHE_LINE_BYTES);
    const end = Math.min(this.live.length, Math.ceil((offset + length) / CACHE_LINE_BYTES) * CACHE_LINE_BYTES);
    return [start, end];
  }

  private afterWriteBack(): void {
    this.onPersist?.();
  }

  private checkOpen(): void {
    if (this.closed) throw new MisuseError('REGION_CLOSED', `${this.path}: region is closed`);
  }
}

/**
 * For every 8-byte word of `source` (placed at `offset` in `image`) that differs from `image`,
 * keeps the image's word or takes the source's, by a coin flip each.
 */
function blendWords(image: Uint8Array, source: Uint8Array, offset: number, random: Random): void {
  const words = Math.floor(source.length / ATOMIC_WORD_BYTES);
  const imageWords = new Uint32Array(image.buffer, image.byteOffset + offset, words * 2);
  const sourceWords = new Uint32Array(source.buffer, source.byteOffset, words * 2);
  for (let w = 0; w < words * 2; w += 2) {
    if (imageWords[w] === sourceWords[w] && imageWords[w + 1] === sourceWords[w + 1]) continue;
    if (random.nextBoolean()) {
      imageWords[w] = sourceWords[w]!;
      imageWords[w + 1] = sourceWords[w + 1]!;
    }
  }
}

/** Word-granular crash blending needs the region to be a whole number of 8-byte words. */
function checkWholeWords(path: string, size: number): void {
  if (!Number.isSafeInteger(size) || size < 0 || size % ATOMIC_WORD_BYTES !== 0) {
    throw new MisuseError('INVALID_ARGUMENT', `${path}: a region's size must be a multiple of ${ATOMIC_WORD_BYTES} bytes, got ${size}`);
  }
}

function resized(bytes: Uint8Array, size: number): Uint8Array {
  const copy = new Uint8Array(size);
  copy.set(bytes);
  return copy;
}

/** Detaches the buffer behind `bytes` so stale views fail loudly, like an unmapped mapping. */
function detach(bytes: Uint8Array): void {
  structuredClone(bytes.buffer, { transfer: [bytes.buffer as ArrayBuffer] });
}
