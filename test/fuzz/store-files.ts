// Whole stores for the corruption fuzzer: built on simulated media with a model of every answer,
// a file of them replaced by damaged bytes, then opened, queried and compared with the model.

import { isDeepStrictEqual } from 'node:util';
import { MANIFEST_NAME } from '../../src/manifest.js';
import { SimulatedMedia } from '../../src/media.js';
import { SimulatedRegion } from '../../src/pmem/simulated-region.js';
import { FaultyFile } from '../../src/ssd/faulty-file.js';
import { Store } from '../../src/store.js';
import type { Stream } from '../../src/stream.js';
import { Random } from '../../src/util/random.js';
import { STOCK, StockModel, type StockEvent, expectAggregatesClose } from '../model.js';
import { wholeWords } from './pmem-openers.js';
import type { Outcome } from './tally.js';

export const FUZZ_OPTIONS = { nodeSize: 1024, spare: 0.1, ringLeaves: 4, syncEvery: 2, flushEvery: 5, oooQueueBytes: 64 * 40 } as const;
const EVENTS_PER_STREAM = 1200;
const CONSUMER = 'billing';

/** The answers a stream must give: the model's. */
interface Expected {
  readonly events: StockEvent[];
  readonly ranges: { from: number; to: number; aggregate: Record<string, unknown>; where: StockEvent[] }[];
  readonly probe: { ts: number; get: StockEvent[]; asOf: StockEvent | undefined };
  readonly committedLsn: number;
}

export interface BuiltStore {
  readonly media: SimulatedMedia;
  readonly id: Uint8Array;
  readonly expected: Map<string, Expected>;
}

export const storeIdOf = (fill: number) => new Uint8Array(16).fill(fill);

/**
 * A store with two streams - one with late events, merged and still queued, one in order - each
 * with a consumer that committed a position; closed cleanly, or as a power failure left it.
 */
export function buildStore(fill: number, crash: boolean): BuiltStore {
  const random = new Random(fill);
  const media = new SimulatedMedia();
  const id = storeIdOf(fill);
  const store = Store.openOn(media, FUZZ_OPTIONS, { storeId: id, pmemDir: '/simulated' });
  const expected = new Map<string, Expected>();
  for (const [name, late] of [['ticks', true], ['quotes', false]] as const) {
    const stream = store.createStream(name, STOCK);
    const model = new StockModel();
    let ts = 0;
    for (let seq = 0; seq < EVENTS_PER_STREAM; seq++) {
      const event = { ts: late && random.nextInt(10) === 0 ? random.nextInt(ts + 1) : (ts += random.nextInt(3)), seq, symbol: random.nextInt(10), price: random.nextInt(10_000) / 100, volume: 1 + random.nextInt(1000) };
      stream.append(event);
      model.append(event);
      if (late && seq === 700) stream.mergeLateEvents();
    }
    stream.flush();
    const consumer = stream.consumer(CONSUMER, { from: 'earliest' });
    consumer.next();
    consumer.commit();
    expected.set(name, expectedOf(model, random, consumer.committed));
  }
  if (!crash) store.close();
  return { media: crash ? media.crash(fill) : media, id, expected };
}

function expectedOf(model: StockModel, random: Random, committedLsn: number): Expected {
  const newest = model.newest ?? 0;
  const ranges = [[-Infinity, Infinity], ...Array.from({ length: 3 }, () => [random.nextInt(newest), random.nextInt(newest)].sort((a, b) => a - b))].map(([from, to]) => ({
    from: from!,
    to: to!,
    aggregate: model.aggregate(from!, to!),
    where: model.range(from!, to!, { price: [20, 40] }),
  }));
  const ts = model.events[Math.floor(model.events.length / 2)]!.ts;
  return { events: model.events.slice(), ranges, probe: { ts, get: model.events.filter((e) => e.ts === ts), asOf: model.asOf(ts + 1) }, committedLsn };
}

/** Opens a damaged store and compares every stream with the model; a wrong answer must be one verify({ full: true }) reports. */
export function openAndCompare(media: SimulatedMedia, built: BuiltStore): Outcome {
  const store = Store.openOn(media, FUZZ_OPTIONS, { storeId: built.id, pmemDir: '/simulated' });
  try {
    let correct = true;
    let positions = true;
    for (const [name, expected] of built.expected) {
      const stream = store.stream(name);
      correct &&= answersMatch(stream, expected);
      positions &&= stream.consumers().includes(CONSUMER) && stream.consumer(CONSUMER).committed === expected.committedLsn;
    }
    if (correct && positions) return 'correct';
    const violations = Object.values(store.verify({ full: true })).flat();
    if (violations.length > 0) return 'flagged by verify';
    throw new Error('a wrong answer that verify({ full: true }) does not see');
  } finally {
    store.close();
  }
}

function answersMatch(stream: Stream, expected: Expected): boolean {
  if (!isDeepStrictEqual([...stream.replay()], expected.events)) return false;
  for (const range of expected.ranges) {
    if (!aggregatesClose(stream.aggregate(range.from, range.to), range.aggregate)) return false;
    if (!isDeepStrictEqual([...stream.range(range.from, range.to, { where: { price: [20, 40] } })], range.where)) return false;
  }
  const { probe } = expected;
  return isDeepStrictEqual(stream.get(probe.ts), probe.get) && isDeepStrictEqual(stream.asOf(probe.ts + 1), probe.asOf);
}

function aggregatesClose(actual: Record<string, unknown>, expected: Record<string, unknown>): boolean {
  try {
    expectAggregatesClose(actual, expected);
    return true;
  } catch {
    return false;
  }
}

/** A copy of `media` with the named file replaced by `bytes`. */
export function withFile(media: SimulatedMedia, name: string, bytes: Uint8Array): SimulatedMedia {
  const copy = media.restart();
  if (name === MANIFEST_NAME) copy.writeSmallAtomically(name, bytes);
  else if (copy.regions.has(name)) copy.regions.set(name, SimulatedRegion.fromImage(name, wholeWords(bytes)));
  else copy.files.set(name, FaultyFile.fromImage(name, bytes));
  return copy;
}

export function fileBytes(media: SimulatedMedia, name: string): Uint8Array {
  if (name === MANIFEST_NAME) return media.readSmall(name)!;
  return media.regions.get(name)?.liveImage() ?? media.files.get(name)!.contents();
}

export function fileNames(media: SimulatedMedia): string[] {
  return [MANIFEST_NAME, ...media.files.keys(), ...media.regions.keys()];
}

/** The same file of another store, the other stream's file of the same kind, or noise. */
export function foreignFor(name: string, own: SimulatedMedia, other: SimulatedMedia, random: Random): Uint8Array {
  const choice = random.nextInt(3);
  const otherStream = name.replace(/stream-(\d+)/, (_, n: string) => `stream-${1 - Number(n)}`);
  if (choice === 0 && fileNames(other).includes(name)) return fileBytes(other, name);
  if (choice === 1 && fileNames(own).includes(otherStream)) return fileBytes(own, otherStream);
  return noise(random);
}

/** Random bytes: a decoder's foreign input. */
export function noise(random: Random): Uint8Array {
  return new Uint8Array(random.nextInt(8192)).map(() => random.nextInt(256));
}
