// Per-file targets for the corruption fuzzer: each PMem file kind of one stream opened on its own
// from damaged bytes, and read the way open() and queries read it. Microseconds each, so most
// mutants go here. Checksummed structures (file headers, the flank's root records and page CRCs,
// queue check words, consumer slots and positions) must give a typed error or exactly the
// original; words no checksum covers (index entries, aggregates, translation slots, trusted queue
// rows) may read back different: 'unchecked', left to verify() at store level.

import { inspect, isDeepStrictEqual } from 'node:util';
import { CorruptionError } from '../../src/errors.js';
import { ConsumerSlots } from '../../src/consumer/consumer-slots.js';
import { OooQueue } from '../../src/ooo/queue.js';
import { SimulatedRegion } from '../../src/pmem/simulated-region.js';
import { parseSchema } from '../../src/schema.js';
import { Aggregate, AggregateArray } from '../../src/tree/aggregate-array.js';
import { Flank, type FlankGeometry, type FlankState } from '../../src/tree/flank.js';
import { IndexNodeArray } from '../../src/tree/index-node-array.js';
import { rowLayout } from '../../src/tree/row-layout.js';
import { TranslationArray } from '../../src/tree/translation-array.js';
import { STOCK } from '../model.js';
import { type BuiltStore, FUZZ_OPTIONS, fileBytes } from './store-files.js';
import { type Outcome, wrong } from './tally.js';

const STREAM = 0;
const layout = rowLayout(parseSchema(STOCK));
const geometry: FlankGeometry = { nodeSize: FUZZ_OPTIONS.nodeSize, ringPages: FUZZ_OPTIONS.ringLeaves, rowBytes: layout.rowBytes };

/** Everything the openers read, decoded from one (undamaged) file of each kind. */
interface Decoded {
  flank: { states: FlankState[]; openCount: number };
  nodes: { entries: number[][] };
  leafAggregates: Aggregate[];
  nodeAggregates: Aggregate[];
  translation: { durable: number; slots: unknown[] };
  queue: { length: number; rows: Uint8Array[]; sortedBlocks: number };
  consumers: { names: string[]; committed: (number | undefined)[] };
}

export type PmemKind = keyof Decoded;
export const PMEM_KINDS: readonly PmemKind[] = ['flank', 'nodes', 'leafAggregates', 'nodeAggregates', 'translation', 'queue', 'consumers'];
const FILE_SUFFIX: Record<PmemKind, string> = { flank: 'flank', nodes: 'nodes', leafAggregates: 'leaf-aggregates', nodeAggregates: 'node-aggregates', translation: 'translation', queue: 'ooo', consumers: 'consumers' };

export const pmemFileName = (kind: PmemKind) => `stream-${STREAM}.${FILE_SUFFIX[kind]}`;

/** Reads a file of `kind` as open() and queries would; its result is compared with the original's. */
function read(kind: PmemKind, bytes: Uint8Array, built: BuiltStore, shape: { leaves: number; nodes: number; cursorGeneration: number }): Decoded[PmemKind] {
  const region = SimulatedRegion.fromImage(pmemFileName(kind), wholeWords(bytes));
  const id = built.id;
  try {
    switch (kind) {
      case 'flank': {
        const flank = Flank.open(region, geometry, id, STREAM);
        const state = flank.readState();
        // As the tree's open does (checkOpenPage): the open leaf's page must hold that leaf.
        if (flank.pageLeafId(state.openLeafId) !== state.openLeafId) throw new CorruptionError(region.path, 0, 'the open leaf page holds another leaf');
        return { states: [state], openCount: flank.verifiedCount(state.openLeafId) };
      }
      case 'nodes': {
        const nodes = IndexNodeArray.open(region, layout, FUZZ_OPTIONS.nodeSize, id, STREAM);
        const entries = Array.from({ length: shape.nodes }, (_, node) => {
          const count = Math.min(nodes.closedCount(node), nodes.capacity);
          return [nodes.level(node), count, ...Array.from({ length: count }, (_, i) => [Number(nodes.key(node, i)), nodes.child(node, i)]).flat()];
        });
        return { entries };
      }
      case 'leafAggregates':
      case 'nodeAggregates': {
        const array = AggregateArray.open(region, layout, id, STREAM, kind === 'leafAggregates' ? 'leaf' : 'index');
        return Array.from({ length: kind === 'leafAggregates' ? shape.leaves : shape.nodes }, (_, slot) => array.read(slot, new Aggregate(layout.numeric.length)));
      }
      case 'translation': {
        const translation = TranslationArray.open(region, id, STREAM);
        return { durable: translation.durableCount, slots: Array.from({ length: Math.min(translation.durableCount, shape.leaves) }, (_, leaf) => translation.get(leaf)) };
      }
      case 'queue': {
        const queue = OooQueue.open(region, layout, id, STREAM, FUZZ_OPTIONS.oooQueueBytes);
        // As the tree's open does (checkQueueEmptying): an emptying needs the merge that took its events.
        if (queue.acknowledgedBeforeEmptying > 0 && shape.cursorGeneration !== queue.generation - 1) throw new CorruptionError(region.path, 0, 'emptied, never merged');
        const rows = Array.from({ length: queue.length }, (_, slot) => new Uint8Array(queue.view.buffer, queue.rowOffset(slot), layout.rowBytes).slice());
        for (const run of queue.sortedRuns()) for (let i = 0; i < run.length; i++) queue.runSlot(run, i);
        return { length: queue.length, rows, sortedBlocks: queue.sortedBlocks };
      }
      case 'consumers': {
        const consumers = ConsumerSlots.open(region, id, STREAM);
        return { names: consumers.names, committed: consumers.names.map((name) => consumers.committed(name)) };
      }
    }
  } finally {
    region.close();
  }
}

/** The per-file targets of one built store: kind -> (damaged bytes) -> outcome. */
export function pmemTargets(built: BuiltStore): Record<PmemKind, { original: Uint8Array; check: (damaged: Uint8Array) => Outcome }> {
  const flankBytes = fileBytes(built.media, pmemFileName('flank'));
  const flank = Flank.open(SimulatedRegion.fromImage('flank', flankBytes), geometry, built.id, STREAM);
  const newest = flank.readState();
  const shape = { leaves: newest.openLeafId, nodes: newest.nextIndexNodeId, cursorGeneration: newest.mergeCursor.generation };
  const originals = Object.fromEntries(PMEM_KINDS.map((kind) => [kind, fileBytes(built.media, pmemFileName(kind))])) as Record<PmemKind, Uint8Array>;
  const decoded = Object.fromEntries(PMEM_KINDS.map((kind) => [kind, read(kind, originals[kind], built, shape)])) as unknown as Decoded;
  // The older root record copy is a legitimate answer of the flank alone (the tree refuses it when rows follow it).
  const older = olderState(flankBytes, newest);
  return Object.fromEntries(
    PMEM_KINDS.map((kind) => [
      kind,
      {
        original: originals[kind],
        check: (damaged: Uint8Array): Outcome => {
          const result = read(kind, damaged, built, shape);
          if (isDeepStrictEqual(result, decoded[kind])) return 'correct';
          if (kind === 'flank') {
            const state = (result as Decoded['flank']).states[0]!;
            if (older !== undefined && isDeepStrictEqual(state, older)) return 'correct';
            return wrong(`flank: ${inspect(result, { depth: 5 })} instead of ${inspect(decoded.flank, { depth: 5 })}`);
          }
          if (kind === 'consumers') return wrong(`consumers: ${inspect(result)} instead of ${inspect(decoded.consumers)}`);
          if (kind === 'queue') {
            const { length } = result as Decoded['queue'];
            // Slots below the trusted count are not re-checked at open (verify({ full }) does); the queue's extent is.
            if (length === decoded.queue.length) return 'unchecked';
            return length < decoded.queue.length && ackWordDamaged(damaged, originals.queue) ? 'queue gap' : wrong(`queue length ${length} instead of ${decoded.queue.length}, ack word damaged: ${ackWordDamaged(damaged, originals.queue)}`);
          }
          return 'unchecked';
        },
      },
    ]),
  ) as Record<PmemKind, { original: Uint8Array; check: (damaged: Uint8Array) => Outcome }>;
}

/** The state in the other root record copy, if it verifies. */
function olderState(flankBytes: Uint8Array, newest: FlankState): FlankState | undefined {
  const bytes = flankBytes.slice();
  const newestAt = 256 + (newest.seq % 2) * 256;
  bytes.fill(0, newestAt, newestAt + 256);
  try {
    return Flank.open(SimulatedRegion.fromImage('flank', bytes), geometry, new Uint8Array(bytes.buffer, 8, 16).slice(), STREAM).readState();
  } catch {
    return undefined;
  }
}

/** A PMem image as a mapping holds it: whole 8-byte words (a file cut mid-word maps its last word zero-filled; SimulatedRegion refuses a partial one). */
export function wholeWords(bytes: Uint8Array): Uint8Array {
  if (bytes.length % 8 === 0) return bytes;
  const padded = new Uint8Array(Math.ceil(bytes.length / 8) * 8);
  padded.set(bytes);
  return padded;
}

/** Whether the queue's acknowledged word (state block bytes 280-288) differs from the original's. */
function ackWordDamaged(damaged: Uint8Array, original: Uint8Array): boolean {
  return !isDeepStrictEqual(damaged.subarray(280, 288), original.subarray(280, 288));
}
