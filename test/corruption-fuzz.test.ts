import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { LeafCache } from '../src/cache/leaf-cache.js';
import { BoundsError, CorruptionError, InvariantError, IoError, MisuseError } from '../src/errors.js';
import { decodeLeaf, encodeLeaf } from '../src/leaf/codec.js';
import { MANIFEST_NAME, decodeManifest } from '../src/manifest.js';
import { SimulatedMedia } from '../src/media.js';
import { SimulatedRegion } from '../src/pmem/simulated-region.js';
import { deserializeSchema, parseSchema, schemasEqual, serializeSchema } from '../src/schema.js';
import { FaultyFile } from '../src/ssd/faulty-file.js';
import { LeafFile, type RecoveredLeaf } from '../src/ssd/leaf-file.js';
import { Store } from '../src/store.js';
import { Random } from '../src/util/random.js';
import { MUTATION_KINDS, type MutationKind, mutate } from './fuzz/mutate.js';
import { CAMPAIGN_TIMEOUT_MS, STOCK, type StockEvent } from './model.js';

// Corruption fuzzing (LevelDB's corruption_test, SQLite's dbfuzz): damaged copies of every file
// a store has - manifest, leaf file, each PMem file - must give a typed error or a correct
// answer; never an untyped crash, a hang or a wrong answer. Most mutants go straight to the
// decoders (microseconds each); a few thousand damage a whole store, which is then opened,
// queried against the model and verified. A wrong answer is allowed only where no checksum can
// see the damage (PMem aggregates and index entries, trusted queue slots: DURABILITY.md) and
// then verify({ full: true }) must report it. CHRONOTIER_FUZZ_SCALE multiplies the counts.

const SCALE = Number(process.env.CHRONOTIER_FUZZ_SCALE ?? 1);
const DECODER_MUTANTS = 100_000 * SCALE;
const STORE_MUTANTS = 2_500 * SCALE;
const OPTIONS = { nodeSize: 1024, spare: 0.1, ringLeaves: 4, syncEvery: 2, flushEvery: 5, oooQueueBytes: 64 * 40 } as const;
const storeId = (fill: number) => new Uint8Array(16).fill(fill);

type Outcome = 'typed error' | 'correct' | 'flagged by verify';
const counts: Record<Outcome | 'invariant', number> = { 'typed error': 0, correct: 0, 'flagged by verify': 0, invariant: 0 };

/** Runs `body` on a mutant: an error must be typed (anything else fails the test). */
function expectTypedOrCorrect(label: string, body: () => Outcome): void {
  let outcome: Outcome;
  try {
    outcome = body();
  } catch (err) {
    if (err instanceof InvariantError) counts.invariant++;
    const typed = err instanceof CorruptionError || err instanceof IoError || err instanceof MisuseError || err instanceof BoundsError || err instanceof InvariantError;
    if (!typed) throw new Error(`${label}: untyped ${(err as Error)?.constructor?.name}: ${(err as Error)?.stack ?? String(err)}`);
    outcome = 'typed error';
  }
  counts[outcome]++;
}

interface BuiltStore {
  readonly media: SimulatedMedia;
  readonly id: Uint8Array;
  /** Each stream's events in (ts, arrival) order. */
  readonly expected: Map<string, StockEvent[]>;
}

/** A store with two streams - one with late events, merged and queued - closed cleanly or left as a crash left it. */
function buildStore(fill: number, crash: boolean): BuiltStore {
  const random = new Random(fill);
  const media = new SimulatedMedia();
  const id = storeId(fill);
  const store = Store.openOn(media, OPTIONS, { storeId: id, pmemDir: '/simulated' });
  const expected = new Map<string, StockEvent[]>();
  for (const [name, late] of [['ticks', true], ['quotes', false]] as const) {
    const stream = store.createStream(name, STOCK);
    const events: StockEvent[] = [];
    let ts = 0;
    for (let seq = 0; seq < 1500; seq++) {
      const event = { ts: late && random.nextInt(10) === 0 ? random.nextInt(ts + 1) : (ts += random.nextInt(3)), seq, symbol: random.nextInt(10), price: random.nextInt(10_000) / 100, volume: 1 + random.nextInt(1000) };
      stream.append(event);
      events.push(event);
      if (late && seq === 900) stream.mergeLateEvents();
    }
    stream.flush();
    expected.set(name, events.sort((a, b) => a.ts - b.ts || a.seq - b.seq));
  }
  if (!crash) store.close();
  return { media: crash ? media.crash(fill) : media, id, expected };
}

/** Opens a damaged store and compares every stream with the model. */
function openAndCompare(media: SimulatedMedia, built: BuiltStore): Outcome {
  const store = Store.openOn(media, OPTIONS, { storeId: built.id, pmemDir: '/simulated' });
  try {
    let correct = true;
    for (const [name, events] of built.expected) {
      const stream = store.stream(name);
      const replayed = [...stream.replay()];
      const total = stream.aggregate(-Infinity, Infinity);
      const probe = events[Math.floor(events.length / 2)]!;
      correct &&= isDeepStrictEqual(replayed, events) && total.count === events.length && isDeepStrictEqual(stream.get(probe.ts), events.filter((e) => e.ts === probe.ts));
    }
    if (correct) return 'correct';
    const violations = Object.values(store.verify({ full: true })).flat();
    if (violations.length === 0) throw new Error('a wrong answer that verify({ full: true }) does not see');
    return 'flagged by verify';
  } finally {
    store.close();
  }
}

/** A copy of `media` with the named file replaced by `bytes`. */
function withFile(media: SimulatedMedia, name: string, bytes: Uint8Array): SimulatedMedia {
  const copy = media.restart();
  if (name === MANIFEST_NAME) copy.writeSmallAtomically(name, bytes);
  else if (copy.regions.has(name)) copy.regions.set(name, SimulatedRegion.fromImage(name, bytes));
  else copy.files.set(name, FaultyFile.fromImage(name, bytes));
  return copy;
}

function fileBytes(media: SimulatedMedia, name: string): Uint8Array {
  if (name === MANIFEST_NAME) return media.readSmall(name)!;
  return media.regions.get(name)?.liveImage() ?? media.files.get(name)!.contents();
}

function fileNames(media: SimulatedMedia): string[] {
  return [MANIFEST_NAME, ...media.files.keys(), ...media.regions.keys()];
}

/** The same file in another store, or the other stream's file of the same kind, or noise. */
function foreignFor(name: string, own: SimulatedMedia, other: SimulatedMedia, random: Random): Uint8Array {
  const choice = random.nextInt(3);
  const otherStream = name.replace(/stream-(\d+)/, (_, n: string) => `stream-${1 - Number(n)}`);
  if (choice === 0 && fileNames(other).includes(name)) return fileBytes(other, name);
  if (choice === 1 && fileNames(own).includes(otherStream)) return fileBytes(own, otherStream);
  return noise(random);
}

/** Random bytes: a decoder's foreign input (a valid other manifest or schema would decode, rightly). */
function noise(random: Random): Uint8Array {
  return new Uint8Array(random.nextInt(8192)).map(() => random.nextInt(256));
}

describe('corruption fuzzing', () => {
  it('whole stores with one damaged file: a typed error or the right answer, never a silent wrong one', () => {
    const stores = [buildStore(1, false), buildStore(2, true)];
    const other = buildStore(3, false).media;
    for (const built of stores) expect(openAndCompare(built.media.restart(), built), 'the undamaged store').toBe('correct');
    const random = new Random(99);
    const byKind = new Map<MutationKind, number>();
    const start = performance.now();
    for (let i = 0; i < STORE_MUTANTS; i++) {
      const built = stores[i % stores.length]!;
      const names = fileNames(built.media);
      const name = names[random.nextInt(names.length)]!;
      const kind = MUTATION_KINDS[random.nextInt(MUTATION_KINDS.length)]!;
      byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
      const damaged = mutate(fileBytes(built.media, name), kind, random, () => foreignFor(name, built.media, other, random));
      expectTypedOrCorrect(`store mutant ${i}: ${kind} of ${name}`, () => openAndCompare(withFile(built.media, name, damaged), built));
    }
    console.log(`store mutants: ${STORE_MUTANTS} (${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')}) in ${Math.round(performance.now() - start)} ms`);
  }, CAMPAIGN_TIMEOUT_MS);

  it('regressions it found: each is refused with a CorruptionError, not misread', () => {
    const built = buildStore(2, true);
    const refuse = (name: string, damage: (bytes: Uint8Array) => Uint8Array, message: RegExp) => {
      const media = withFile(built.media, name, damage(fileBytes(built.media, name)));
      expect(() => openAndCompare(media, built), name).toThrow(CorruptionError);
      expect(() => openAndCompare(media, built), name).toThrow(message);
    };
    // The newest root record copy damaged after leaves were filled past it: the older copy would drop their rows.
    refuse('stream-1.flank', (bytes) => {
      const view = new DataView(bytes.buffer);
      const newest = view.getFloat64(256, true) > view.getFloat64(512, true) ? 256 : 512;
      bytes.fill(0, newest + 192, newest + 256);
      return bytes;
    }, /newest root record is damaged/);
    // A truncated PMem array: slots the tree names are gone.
    refuse('stream-0.leaf-aggregates', (bytes) => bytes.slice(0, 1024), /truncated/);
    // An acknowledged late event damaged in the queue: never silently cut off.
    refuse('stream-0.ooo', (bytes) => {
      bytes[512 + 4 + 3]! ^= 0x10;
      return bytes;
    }, /was acknowledged but fails its check word/);
  });

  it('decoders of every record kind: a typed error or the original, for every mutant', () => {
    const random = new Random(7);
    const built = buildStore(4, false);
    const manifest = fileBytes(built.media, MANIFEST_NAME);
    const decodedManifest = decodeManifest(manifest, MANIFEST_NAME);
    const schema = parseSchema(STOCK);
    const serializedSchema = serializeSchema(schema);
    const leafName = [...built.media.files.keys()][0]!;
    const leafBytes = fileBytes(built.media, leafName);
    const original = LeafFile.open(FaultyFile.fromImage(leafName, leafBytes), built.id, 0, schema, new LeafCache(0));
    const records: RecoveredLeaf[] = [...original.scanFrom(original.firstRecordOffset)];
    const rowsOf = records.map((r) => new Uint8Array(original.read(r.leafId, r.location, r.rows).buffer.slice(0)));
    expect(records.length).toBeGreaterThan(10);
    const payloadRows = rowsOf[0]!;
    const payload = encodeLeaf(schema, payloadRows, records[0]!.rows);

    const targets: Record<string, (kind: MutationKind) => Outcome> = {
      manifest: (kind) => {
        const damaged = mutate(manifest, kind, random, () => noise(random));
        return isDeepStrictEqual(decodeManifest(damaged, MANIFEST_NAME), decodedManifest) ? 'correct' : wrong('manifest');
      },
      schema: (kind) => {
        const damaged = mutate(serializedSchema, kind, random, () => noise(random));
        return schemasEqual(deserializeSchema(damaged, 'schema', 0), schema) ? 'correct' : wrong('schema');
      },
      'leaf record': (kind) => {
        const damaged = mutate(leafBytes, kind, random, () => foreignFor(leafName, built.media, built.media, random));
        const leaves = LeafFile.open(FaultyFile.fromImage(leafName, damaged), built.id, 0, schema, new LeafCache(0));
        const k = random.nextInt(records.length);
        const rows = new Uint8Array(leaves.read(records[k]!.leafId, records[k]!.location, records[k]!.rows).buffer.slice(0));
        return isDeepStrictEqual(rows, rowsOf[k]) ? 'correct' : wrong(`leaf ${k}`);
      },
      // The payload has no checksum of its own (the record's covers it): only robustness here -
      // a CorruptionError or rows of the right size, whatever the bytes.
      'leaf payload': (kind) => {
        const rows = decodeLeaf(schema, mutate(payload, kind, random, () => payload.slice().reverse()), records[0]!.rows);
        return rows.length === records[0]!.rows * schema.rowBytes ? 'correct' : wrong('payload size');
      },
    };
    const names = Object.keys(targets);
    const start = performance.now();
    for (let i = 0; i < DECODER_MUTANTS; i++) {
      const target = names[i % names.length]!;
      const kind = MUTATION_KINDS[random.nextInt(MUTATION_KINDS.length)]!;
      expectTypedOrCorrect(`decoder mutant ${i}: ${kind} of ${target}`, () => targets[target]!(kind));
    }
    console.log(`decoder mutants: ${DECODER_MUTANTS} in ${Math.round(performance.now() - start)} ms`);
    console.log(`corruption mutants: ${DECODER_MUTANTS + STORE_MUTANTS}, typed errors: ${counts['typed error']} (invariant errors: ${counts.invariant}), correct answers: ${counts.correct}, wrong answers flagged by verify: ${counts['flagged by verify']}, crashes: 0, silent wrong answers: 0`);
  }, CAMPAIGN_TIMEOUT_MS);
});

function wrong(what: string): never {
  throw new Error(`wrong answer from a damaged ${what} without an error`);
}
