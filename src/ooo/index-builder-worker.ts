// The worker side of WorkerIndexBuilder (index-builder.ts): maps the queue file, sorts the live
// slots by (timestamp, slot) and publishes them in shared memory. It never writes the file.

import { workerData } from 'node:worker_threads';
import { NativeRegion } from '../pmem/native-region.js';
import { queueRowOffset } from './queue.js';
import { INDEX_WORKER_COUNT, INDEX_WORKER_DONE, INDEX_WORKER_HEADER_WORDS, type IndexWorkerConfig, sortBase } from './index-builder.js';

const config = workerData as IndexWorkerConfig;
const shared = new Int32Array(config.shared);
let outcome = 2;
try {
  const region = NativeRegion.open(config.queuePath, { create: false });
  try {
    const sorted = sortBase({ end: config.end, cursor: config.cursor, view: new DataView(region.buffer), geometry: config.geometry, offsetOf: (slot) => queueRowOffset(config.geometry, slot) });
    shared.set(sorted, INDEX_WORKER_HEADER_WORDS);
    shared[INDEX_WORKER_COUNT] = sorted.length;
    outcome = 1;
  } finally {
    region.close();
  }
} finally {
  Atomics.store(shared, INDEX_WORKER_DONE, outcome);
  Atomics.notify(shared, INDEX_WORKER_DONE);
}
