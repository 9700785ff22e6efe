// Consumer positions in PMem (seed 000, AIMSS): one 64-byte slot per named consumer, so a
// restart resumes every consumer exactly after the last lsn it committed.
//
// File layout (a flat array, pmem/flat-array.ts), geometry = [64]:
//   [0, 256)              file header
//   [256, 512)            state block (unused)
//   512 + i * 64          slot i, one cache line:
//     0   u32  check: CRC-32 of bytes [8, 56), seeded with i     } one aligned 8-byte word,
//     4   u32  state: 1 = registered, anything else = free       } stored at once
//     8   u8   name length n (1..MAX_NAME_BYTES)
//     9   n    name, UTF-8; zero up to byte 56
//     56  u64  committed lsn: every event with an lsn <= it was consumed
//
// Persistence rules:
//   * register: name and committed lsn written and persisted first, then the (check, state) word
//     stored and persisted - a crash in between leaves a free slot, never a half-named one;
//   * commit: the committed lsn is one aligned 8-byte store, persisted before commit() returns
//     (PMem never tears an aligned 8-byte store, so the old or the new position survives);
//   * remove: the (check, state) word is zeroed and persisted.
// open() reads every slot whose state says registered; a slot whose check fails is damaged, and
// the file is refused (a consumer position must never silently reset).

import { crc32 } from 'node:zlib';
import { CorruptionError, MisuseError, invariant } from '../errors.js';
import { FileKind } from '../pmem/file-header.js';
import { FlatArray } from '../pmem/flat-array.js';
import type { PmemRegion } from '../pmem/region.js';

const SLOT_BYTES = 64;
const WORD_OFFSET = 0;
const NAME_LENGTH_OFFSET = 8;
const NAME_OFFSET = 9;
const COMMITTED_OFFSET = 56;
const REGISTERED = 1;
export const MAX_NAME_BYTES = COMMITTED_OFFSET - NAME_OFFSET;
/** Bounds the file (and open()'s scan) whatever a damaged or hostile caller does. */
export const MAX_CONSUMERS = 4096;
const INITIAL_SLOTS = 64;

export class ConsumerSlots {
  /** Registered consumers by name, with their slot. */
  private readonly slotsByName = new Map<string, number>();

  private constructor(private readonly array: FlatArray) {}

  static create(region: PmemRegion, storeId: Uint8Array, streamId: number): void {
    FlatArray.create(region, identity(storeId, streamId), INITIAL_SLOTS).close();
  }

  static open(region: PmemRegion, storeId: Uint8Array, streamId: number): ConsumerSlots {
    const slots = new ConsumerSlots(FlatArray.open(region, identity(storeId, streamId)));
    slots.recover();
    return slots;
  }

  get names(): string[] {
    return [...this.slotsByName.keys()];
  }

  /** The committed lsn of consumer `name`, or undefined if it is not registered. */
  committed(name: string): number | undefined {
    const slot = this.slotsByName.get(name);
    return slot === undefined ? undefined : Number(this.array.view.getBigUint64(this.array.slotOffset(slot) + COMMITTED_OFFSET, true));
  }

  /** Registers `name` at position `committed`, durably. */
  register(name: string, committed: number): void {
    const encoded = encodeName(name);
    invariant(!this.slotsByName.has(name), () => `consumer '${name}' is already registered`);
    const slot = this.freeSlot();
    const at = this.array.slotOffset(slot);
    const view = this.array.view;
    this.array.bytes.fill(0, at, at + SLOT_BYTES);
    view.setUint8(at + NAME_LENGTH_OFFSET, encoded.length);
    this.array.bytes.set(encoded, at + NAME_OFFSET);
    view.setBigUint64(at + COMMITTED_OFFSET, BigInt(committed), true);
    this.array.persistSlots(slot, 1);
    view.setBigUint64(at + WORD_OFFSET, BigInt(this.check(slot)) | (BigInt(REGISTERED) << 32n), true);
    this.array.region.persist(at + WORD_OFFSET, 8);
    this.slotsByName.set(name, slot);
  }

  /** Persists consumer `name`'s position (one atomic 8-byte store). */
  commit(name: string, lsn: number): void {
    const slot = this.slotsByName.get(name);
    invariant(slot !== undefined, () => `consumer '${name}' is not registered`);
    const at = this.array.slotOffset(slot) + COMMITTED_OFFSET;
    this.array.view.setBigUint64(at, BigInt(lsn), true);
    this.array.region.persist(at, 8);
  }

  remove(name: string): void {
    const slot = this.slotsByName.get(name);
    if (slot === undefined) return;
    const at = this.array.slotOffset(slot) + WORD_OFFSET;
    this.array.view.setBigUint64(at, 0n, true);
    this.array.region.persist(at, 8);
    this.slotsByName.delete(name);
  }

  close(): void {
    this.array.close();
  }

  private recover(): void {
    const count = Math.min(this.array.capacity, MAX_CONSUMERS);
    for (let slot = 0; slot < count; slot++) {
      const at = this.array.slotOffset(slot);
      if (this.array.view.getUint32(at + WORD_OFFSET + 4, true) !== REGISTERED) continue;
      const length = this.array.view.getUint8(at + NAME_LENGTH_OFFSET);
      if (this.array.view.getUint32(at + WORD_OFFSET, true) !== this.check(slot) || length === 0 || length > MAX_NAME_BYTES) {
        throw new CorruptionError(this.array.region.path, at, `consumer slot ${slot} is damaged (its check word does not match); consumer positions cannot be trusted - restore the PMem directory`);
      }
      const name = new TextDecoder().decode(this.array.bytes.subarray(at + NAME_OFFSET, at + NAME_OFFSET + length));
      if (this.slotsByName.has(name)) throw new CorruptionError(this.array.region.path, at, `consumer '${name}' is registered twice`);
      this.slotsByName.set(name, slot);
    }
  }

  private freeSlot(): number {
    const used = new Set(this.slotsByName.values());
    let slot = 0;
    while (used.has(slot)) slot++;
    if (slot >= MAX_CONSUMERS) throw new MisuseError('INVALID_ARGUMENT', `a stream has at most ${MAX_CONSUMERS} consumers; remove one first`);
    this.array.ensureCapacity(slot);
    return slot;
  }

  private check(slot: number): number {
    const at = this.array.slotOffset(slot);
    return crc32(this.array.bytes.subarray(at + NAME_LENGTH_OFFSET, at + COMMITTED_OFFSET), slot);
  }
}

function encodeName(name: string): Uint8Array {
  const encoded = typeof name === 'string' ? new TextEncoder().encode(name) : new Uint8Array(0);
  if (encoded.length === 0 || encoded.length > MAX_NAME_BYTES) {
    throw new MisuseError('INVALID_ARGUMENT', `a consumer name must be a string of 1 to ${MAX_NAME_BYTES} UTF-8 bytes, got ${typeof name === 'string' ? JSON.stringify(name) : typeof name}`);
  }
  return encoded;
}

function identity(storeId: Uint8Array, streamId: number) {
  return { kind: FileKind.ConsumerSlots, storeId, streamId, geometry: [SLOT_BYTES] };
}
