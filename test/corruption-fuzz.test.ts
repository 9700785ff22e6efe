import { isDeepStrictEqual } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { LeafCache } from '../src/cache/leaf-cache.js';
import { CorruptionError } from '../src/errors.js';
import { decodeLeaf, encodeLeaf } from '../src/leaf/codec.js';
import { MANIFEST_NAME, decodeManifest } from '../src/manifest.js';
import { deserializeSchema, parseSchema, schemasEqual, serializeSchema } from '../src/schema.js';
import { FaultyFile } from '../src/ssd/faulty-file.js';
import { LeafFile, type RecoveredLeaf } from '../src/ssd/leaf-file.js';
import { Random } from '../src/util/random.js';
import { MUTATION_KINDS, type MutationKind, mutate } from './fuzz/mutate.js';
import { PMEM_KINDS, pmemFileName, pmemTargets } from './fuzz/pmem-openers.js';
import { pageOffsetOf, rootRecordOf, withOpenLeafLineage } from './flank-images.js';
import { type BuiltStore, FUZZ_OPTIONS, buildStore, fileBytes, fileNames, foreignFor, noise, openAndCompare, withFile } from './fuzz/store-files.js';
import { type Outcome, Tally, wrong } from './fuzz/tally.js';
import { CAMPAIGN_TIMEOUT_MS, STOCK } from './model.js';

// Corruption fuzzing (LevelDB's corruption_test, SQLite's dbfuzz): damaged copies of every file
// a store has - MANIFEST, leaf file, and each PMem file (flank, index nodes, leaf and node
// aggregates, translation, out-of-order queue, consumer slots) - must give a typed error or a
// correct answer; never an untyped exception, an InvariantError, a hang, a wrong answer or an
// unbounded allocation (tally.ts). Most mutants go straight to the decoders and per-file openers
// (microseconds each); a few thousand damage a whole store, which is then opened, queried
// against the model (replay, aggregates, where-ranges, get, asOf, consumer positions) and, if an
// answer is wrong, verified: a wrong answer is allowed only where no checksum can see the damage
// (DURABILITY.md) and then verify({ full: true }) must report it.
// CHRONOTIER_FUZZ_SCALE (or CHRONOTIER_LONG=1: x10) multiplies the counts.

const SCALE = Number(process.env.CHRONOTIER_FUZZ_SCALE ?? (process.env.CHRONOTIER_LONG === '1' ? 10 : 1));
const DECODER_MUTANTS = 100_000 * SCALE;
const STORE_MUTANTS = 1_500 * SCALE;

const tally = new Tally();
afterAll(() => console.log(`corruption ${tally.summary()}`));

/** One store of each kind the fuzzer damages, and an unrelated store for foreign files. */
const stores = { clean: buildStore(1, false), crashed: buildStore(2, true), other: buildStore(3, false) };

describe('corruption fuzzing', () => {
  it('whole stores with one damaged file: a typed error or the right answer, never a silent wrong one', () => {
    const damaged: BuiltStore[] = [stores.clean, stores.crashed];
    const other = stores.other.media;
    for (const built of damaged) expect(openAndCompare(built.media.restart(), built), 'the undamaged store').toBe('correct');
    const random = new Random(99);
    const byKind = new Map<MutationKind, number>();
    const start = performance.now();
    for (let i = 0; i < STORE_MUTANTS; i++) {
      const built = damaged[i % damaged.length]!;
      const names = fileNames(built.media);
      const name = names[random.nextInt(names.length)]!;
      const kind = MUTATION_KINDS[random.nextInt(MUTATION_KINDS.length)]!;
      byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
      const bytes = mutate(fileBytes(built.media, name), kind, random, () => foreignFor(name, built.media, other, random));
      tally.run(`store mutant ${i}: ${kind} of ${name}`, () => openAndCompare(withFile(built.media, name, bytes), built));
    }
    console.log(`store mutants: ${STORE_MUTANTS} (${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')}) in ${Math.round(performance.now() - start)} ms`);
  }, CAMPAIGN_TIMEOUT_MS);

  it('regressions it found: each is refused with a CorruptionError, not misread', () => {
    const built = stores.crashed;
    const refuse = (name: string, damage: (bytes: Uint8Array) => Uint8Array, message: RegExp) => {
      const media = withFile(built.media, name, damage(fileBytes(built.media, name)));
      expect(() => openAndCompare(media, built), name).toThrow(CorruptionError);
      expect(() => openAndCompare(media, built), name).toThrow(message);
    };
    // The newest root record copy damaged after leaves were filled past it: the older copy would drop their rows.
    refuse('stream-1.flank', (bytes) => {
      const newest = rootRecordOf(bytes).offset;
      bytes.fill(0, newest + 192, newest + 256);
      return bytes;
    }, /newest root record is damaged/);
    // The open leaf's lineage damaged (it has no checksum) - into garbage, or into what a merge step
    // writes (replaces the leaf before, part 0 of 1, late events queued): not taken for an
    // interrupted merge's page and emptied, since no merge was under way.
    for (const [part, parts, replacesField] of [[2, 1, 0x9e3779b1], [0, 1, undefined]] as const) {
      refuse('stream-0.flank', (bytes) => withOpenLeafLineage(bytes, FUZZ_OPTIONS, part, parts, replacesField), /damaged lineage: no merge was under way/);
    }
    // A truncated PMem array: slots the tree names are gone.
    refuse('stream-0.leaf-aggregates', (bytes) => bytes.slice(0, 1024), /truncated/);
    // An acknowledged late event damaged in the queue: never silently cut off.
    refuse('stream-0.ooo', (bytes) => {
      bytes[512 + 4 + 3]! ^= 0x10;
      return bytes;
    }, /was acknowledged but fails its check word/);
    // The open leaf's (count, CRC) word zeroed: an empty page's CRC is seeded, so this is not "no rows".
    refuse('stream-1.flank', (bytes) => {
      const page = pageOffsetOf(rootRecordOf(bytes).openLeafId, FUZZ_OPTIONS);
      bytes.fill(0, page, page + 8);
      return bytes;
    }, /no prefix of its rows has the stored CRC/);
    // The queue's generation flipped: not an emptying of the queue.
    refuse('stream-0.ooo', (bytes) => {
      bytes[256 + 2]! ^= 0x04;
      return bytes;
    }, /acknowledged word names generation/);
    // The queue's generation one up (one bit flip from an even one): it would read as emptied, its
    // acknowledged events gone; the tree's merge cursor never took them.
    refuse('stream-0.ooo', (bytes) => {
      const view = new DataView(bytes.buffer);
      view.setUint32(256, view.getUint32(256, true) + 1, true);
      return bytes;
    }, /at offset 256: the out-of-order queue reads as emptied .* never merged/);
    // A translation file cut inside its state block.
    refuse('stream-0.translation', (bytes) => bytes.slice(0, 384), /shorter than its header and state block/);
    // A durable leaf's translation slot zeroed: refused when read, not an invariant failure.
    refuse('stream-1.translation', (bytes) => bytes.fill(0, 512, 520), /has no translation slot/);
  });

  it('decoders and per-file openers of every file kind: a typed error or the original, for every mutant', () => {
    const random = new Random(7);
    const built = stores.clean;
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
    for (const [kind, target] of Object.entries(pmemTargets(built))) {
      const name = pmemFileName(kind as (typeof PMEM_KINDS)[number]);
      targets[name] = (mutation) => target.check(mutate(target.original, mutation, random, () => foreignFor(name, built.media, stores.other.media, random)));
    }
    const names = Object.keys(targets);
    const start = performance.now();
    for (let i = 0; i < DECODER_MUTANTS; i++) {
      const target = names[i % names.length]!;
      const kind = MUTATION_KINDS[random.nextInt(MUTATION_KINDS.length)]!;
      tally.run(`decoder mutant ${i}: ${kind} of ${target}`, () => targets[target]!(kind));
    }
    console.log(`decoder and opener mutants: ${DECODER_MUTANTS} (${names.join(', ')}) in ${Math.round(performance.now() - start)} ms`);
  }, CAMPAIGN_TIMEOUT_MS);
});

