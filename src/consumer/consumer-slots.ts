// Consumer positions in PMem (seed 000, AIMSS): one 64-byte slot per named consumer, so a
// restart resumes every consumer exactly after the last lsn it committed - and damage to a slot
// is found at open, never read back as another position or as a removed consumer.
//
// File layout (a flat array, pmem/flat-array.ts), geometry = [64, 2] (slot bytes, layout 2):
//   [0, 256)              file header
//   256  u32  slots used: slots [0, used) were registered once  } one aligned 8-byte word,
//   260  u32  CRC-32 of the count, seeded with USED_SEED           } stored at once
//   512 + i * 64          slot i, one cache line:
//     0   u32  check: CRC-32 of bytes [8, 40), seeded with i     } one aligned 8-byte word,
//     4   u32  state: REGISTERED or REMOVED                       } stored at once
//     8   u8   name length n (1..MAX_NAME_BYTES)
//     9   n    name, UTF-8; zero up to byte 40
//     40  u64  position copy 0 } committed lsn: every event with an lsn <= it was consumed;
//     48  u64  position copy 1 } the valid copy is the one the position check matches
//     56  u32  position check: CRC-32 of the valid copy's 8 bytes, seeded with i
//     60  u32  zero
//
// Persistence rules:
//   * register: the slot's name and both copies are written, its position check stored and its
//     state REMOVED, and the slot persisted; then, for a slot past the used count, the count word
//     is persisted; then the (check, REGISTERED) word is stored and persisted. A crash before the
//     last step leaves a removed slot: the registration did not happen;
//   * commit: the new lsn goes into the copy the check does not match (persisted), then the check
//     is stored (one aligned 4-byte store) and persisted. A crash in between leaves the check on
//     the old copy: the old position, as the commit never returned;
//   * remove: the (check, state) word is stored as (0, REMOVED) and persisted.
// open() refuses the file (a position must never silently change) if the used count fails its
// CRC, a slot below it is neither REGISTERED with a matching check nor REMOVED, or neither copy
// of a registered slot matches its position check. Slots past the used count are not read.

import { crc32 } from 'node:zlib';
import { CorruptionError, MisuseError, invariant } from '../errors.js';
import { FileKind } from '../pmem/file-header.js';
import { FlatArray, STATE_BLOCK_OFFSET } from '../pmem/flat-array.js';
import { utf8Decoder, utf8Encoder } from '../util/utf8.js';
import type { PmemRegion } from '../pmem/region.js';

const SLOT_BYTES = 64;
const LAYOUT = 2;
const USED_OFFSET = STATE_BLOCK_OFFSET;
const USED_SEED = 0x75736564;
const WORD_OFFSET = 0;
const STATE_OFFSET = 4;
const NAME_LENGTH_OFFSET = 8;
const NAME_OFFSET = 9;
const COPY_OFFSETS = [40, 48] as const;
const POSITION_CHECK_OFFSET = 56;
/** State words far apart in bits ('REG1', 'DEL1'), so no small damage turns one into the other. */
const REGISTERED = 0x31474552;
const REMOVED = 0x314c4544;
export const MAX_NAME_BYTES = COPY_OFFSETS[0] - NAME_OFFSET;
/** Bounds the file (and open()'s scan) whatever a damaged or hostile caller does. */
export const MAX_CONSUMERS = 4096;
const INITIAL_SLOTS = 64;

export class ConsumerSlots {
  /** Registered consumers by name, with their slot. */
  private readonly slotsByName = new Map<string, number>();
  /** Slots [0, used) were registered once (the persisted count). */
  private used = 0;

  private constructor(private readonly array: FlatArray) {}

  static create(region: PmemRegion, storeId: Uint8Array, streamId: number): void {
    const slots = new ConsumerSlots(FlatArray.create(region, identity(storeId, streamId), INITIAL_SLOTS));
    slots.storeUsed(0);
    slots.close();
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
    return slot === undefined ? undefined : Number(this.array.view.getBigUint64(this.copyOffset(slot, this.validCopy(slot)), true));
  }

  /** Registers `name` at position `committed`, durably. */
  register(name: string, committed: number): void {
    const encoded = encodeName(name);
    invariant(!this.slotsByName.has(name), () => `consumer '${name}' is already registered`);
    const slot = this.freeSlot();
    const at = this.array.slotOffset(slot);
    const view = this.array.view;
    this.array.bytes.fill(0, at, at + SLOT_BYTES);
    view.setUint32(at + STATE_OFFSET, REMOVED, true);
    view.setUint8(at + NAME_LENGTH_OFFSET, encoded.length);
    this.array.bytes.set(encoded, at + NAME_OFFSET);
    for (const copy of [0, 1]) view.setBigUint64(this.copyOffset(slot, copy), BigInt(committed), true);
    view.setUint32(at + POSITION_CHECK_OFFSET, this.positionCheck(slot, 0), true);
    this.array.persistSlots(slot, 1);
    if (slot >= this.used) this.storeUsed(slot + 1);
    view.setBigUint64(at + WORD_OFFSET, BigInt(this.nameCheck(slot)) | (BigInt(REGISTERED) << 32n), true);
    this.array.region.persist(at + WORD_OFFSET, 8);
    this.slotsByName.set(name, slot);
  }

  /** Persists consumer `name`'s position: into the copy not in use, then the check moves to it. */
  commit(name: string, lsn: number): void {
    const slot = this.slotsByName.get(name);
    invariant(slot !== undefined, () => `consumer '${name}' is not registered`);
    const next = 1 - this.validCopy(slot);
    const copyAt = this.copyOffset(slot, next);
    this.array.view.setBigUint64(copyAt, BigInt(lsn), true);
    this.array.region.persist(copyAt, 8);
    const checkAt = this.array.slotOffset(slot) + POSITION_CHECK_OFFSET;
    this.array.view.setUint32(checkAt, this.positionCheck(slot, next), true);
    this.array.region.persist(checkAt, 4);
  }

  remove(name: string): void {
    const slot = this.slotsByName.get(name);
    if (slot === undefined) return;
    const at = this.array.slotOffset(slot) + WORD_OFFSET;
    this.array.view.setBigUint64(at, BigInt(REMOVED) << 32n, true);
    this.array.region.persist(at, 8);
    this.slotsByName.delete(name);
  }

  close(): void {
    this.array.close();
  }

  private recover(): void {
    const used = this.array.head.getUint32(USED_OFFSET, true);
    if (this.array.head.getUint32(USED_OFFSET + 4, true) !== usedCheck(used) || used > MAX_CONSUMERS) {
      throw new CorruptionError(this.array.region.path, USED_OFFSET, 'the count of consumer slots in use is damaged; consumer positions cannot be trusted - restore the PMem directory');
    }
    this.used = used;
    // A stream without consumers reads none of its slots (their pages are not touched at open).
    if (used === 0) return;
    const view = this.array.view;
    for (let slot = 0; slot < used; slot++) {
      const at = this.array.slotOffset(slot);
      const state = view.getUint32(at + STATE_OFFSET, true);
      if (state === REMOVED) continue;
      const length = view.getUint8(at + NAME_LENGTH_OFFSET);
      if (state !== REGISTERED || view.getUint32(at + WORD_OFFSET, true) !== this.nameCheck(slot) || length === 0 || length > MAX_NAME_BYTES) {
        throw new CorruptionError(this.array.region.path, at, `consumer slot ${slot} is damaged (neither a registered consumer with a matching check nor a removed one); consumer positions cannot be trusted - restore the PMem directory`);
      }
      this.validCopy(slot);
      const name = utf8Decoder.decode(this.array.bytes.subarray(at + NAME_OFFSET, at + NAME_OFFSET + length));
      if (this.slotsByName.has(name)) throw new CorruptionError(this.array.region.path, at, `consumer '${name}' is registered twice`);
      this.slotsByName.set(name, slot);
    }
  }

  /** The position copy the check matches; neither is damage (a commit always leaves one). */
  private validCopy(slot: number): number {
    const check = this.array.view.getUint32(this.array.slotOffset(slot) + POSITION_CHECK_OFFSET, true);
    const copy = [0, 1].find((candidate) => this.positionCheck(slot, candidate) === check);
    if (copy === undefined) {
      throw new CorruptionError(this.array.region.path, this.array.slotOffset(slot) + POSITION_CHECK_OFFSET, `consumer slot ${slot}'s committed position is damaged (no copy matches its check) - restore the PMem directory`);
    }
    return copy;
  }

  private storeUsed(used: number): void {
    this.array.view.setBigUint64(USED_OFFSET, BigInt(used) | (BigInt(usedCheck(used)) << 32n), true);
    this.array.region.persist(USED_OFFSET, 8);
    this.used = used;
  }

  private freeSlot(): number {
    const taken = new Set(this.slotsByName.values());
    let slot = 0;
    while (taken.has(slot)) slot++;
    if (slot >= MAX_CONSUMERS) throw new MisuseError('INVALID_ARGUMENT', `a stream has at most ${MAX_CONSUMERS} consumers; remove one first`);
    this.array.ensureCapacity(slot);
    return slot;
  }

  private copyOffset(slot: number, copy: number): number {
    return this.array.slotOffset(slot) + COPY_OFFSETS[copy as 0 | 1];
  }

  private nameCheck(slot: number): number {
    const at = this.array.slotOffset(slot);
    return crc32(this.array.bytes.subarray(at + NAME_LENGTH_OFFSET, at + COPY_OFFSETS[0]), slot);
  }

  private positionCheck(slot: number, copy: number): number {
    const at = this.copyOffset(slot, copy);
    return crc32(this.array.bytes.subarray(at, at + 8), slot);
  }
}

function usedCheck(used: number): number {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, used, true);
  return crc32(bytes, USED_SEED);
}

function encodeName(name: string): Uint8Array {
  const encoded = typeof name === 'string' ? utf8Encoder.encode(name) : new Uint8Array(0);
  if (encoded.length === 0 || encoded.length > MAX_NAME_BYTES) {
    throw new MisuseError('INVALID_ARGUMENT', `a consumer name must be a string of 1 to ${MAX_NAME_BYTES} UTF-8 bytes, got ${typeof name === 'string' ? JSON.stringify(name) : typeof name}`);
  }
  return encoded;
}

function identity(storeId: Uint8Array, streamId: number) {
  return { kind: FileKind.ConsumerSlots, storeId, streamId, geometry: [SLOT_BYTES, LAYOUT] };
}
