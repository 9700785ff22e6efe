// The leaf writer's thread (see leaf-writer.ts, WorkerLeafWriter). It maps the stream's flank
// file itself, and loops: wait for submitted leaves; encode and compress each from its ring page;
// append them all with one write; fdatasync; publish their locations and the durable watermark.
// Leaves that arrive while it syncs form the next group, so a busy stream gets group commit.
// Any failure is published and ends the thread: the tree then refuses further appends, and
// nothing acknowledged is lost (the leaves are still in the PMem ring).

import { workerData } from 'node:worker_threads';
import { NativeRegion } from '../pmem/native-region.js';
import { deserializeSchema } from '../schema.js';
import { Flank } from '../tree/flank.js';
import { NodeSsdFile } from './file.js';
import { encodeLeafRecord } from './leaf-file.js';
import { Control } from './leaf-writer.js';
import { utf8Encoder } from '../util/utf8.js';
import type { WorkerConfig } from './worker-leaf-writer.js';

/** Leaves per write + fdatasync at most: a group never spans more than the ring anyway. */
const MAX_GROUP = 256;
const config = workerData as WorkerConfig;
const control = new Int32Array(config.control);
const counts = new Int32Array(config.counts);
const locations = new Float64Array(config.locations);

function run(): void {
  const schema = deserializeSchema(config.schema, 'MANIFEST', 0);
  const flank = Flank.open(NativeRegion.open(config.flankPath, { create: false }), config.geometry, config.storeId, config.streamId);
  const file = NodeSsdFile.open(config.leafPath, { create: false });
  const ring = config.geometry.ringPages;
  try {
    for (let next = config.firstLeaf; Atomics.load(control, Control.Stop) === 0; ) {
      const submitted = Math.min(Atomics.load(control, Control.Submitted), next + MAX_GROUP);
      if (submitted === next) {
        Atomics.wait(control, Control.Submitted, next, 200);
        continue;
      }
      const records: Uint8Array[] = [];
      for (let leafId = next; leafId < submitted; leafId++) {
        const count = counts[leafId % ring]!;
        const rows = new Uint8Array(flank.buffer, flank.rowsOffset(leafId), count * config.geometry.rowBytes);
        records.push(encodeLeafRecord(schema, leafId, rows, count, flank.pageLineage(leafId)));
      }
      let offset = file.append(Buffer.concat(records));
      file.sync();
      records.forEach((record, i) => {
        const slot = ((next + i) % ring) * 2;
        locations[slot] = offset;
        locations[slot + 1] = record.length;
        offset += record.length;
      });
      Atomics.store(control, Control.Durable, submitted);
      Atomics.notify(control, Control.Durable);
      next = submitted;
    }
  } finally {
    file.close();
    flank.close();
  }
}

try {
  run();
} catch (err) {
  const failure = err as { code?: string; syscall?: string; path?: string; message?: string };
  const text = JSON.stringify({ code: failure.code ?? 'EIO', syscall: failure.syscall ?? 'write', path: failure.path ?? config.leafPath, message: failure.message ?? String(err) });
  new Uint8Array(config.failure).set(utf8Encoder.encode(text.slice(0, 1000)));
  Atomics.store(control, Control.Failed, 1);
  Atomics.notify(control, Control.Durable);
}
