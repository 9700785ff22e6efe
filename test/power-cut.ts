// A power failure in tests: the simulated media's write-back hook throws PowerCut at a chosen
// write-back, and the media's crash image is what a restart finds.

import type { SimulatedMedia } from '../src/media.js';
import type { Store } from '../src/store.js';

/** Thrown by the write-back hook: the power failed there. */
export class PowerCut extends Error {}

/**
 * Runs `work` on `media`, failing the power at its `cutAt`-th write-back from now (never, if
 * Infinity). Returns the media a restart finds (`seed` picks which unpersisted writes survived),
 * how many write-backs ran, and whether the power failed before `work` ended. Each store `work` opened through `track` is dropped afterwards -
 * closed, errors ignored, once the crash image is taken: a recovery slice it left pending on the
 * event loop, which a synchronous campaign never turns, would keep it and its media alive
 * (~1 MB per cut: a 30,000-point campaign ran out of memory).
 */
export function runUntilPowerCut(media: SimulatedMedia, cutAt: number, seed: number, work: (track: (store: Store) => Store) => void): { media: SimulatedMedia; writeBacks: number; cut: boolean } {
  const opened: Store[] = [];
  let cut = false;
  const before = media.writeBackCount;
  media.onWriteBack = (count) => {
    if (count - before >= cutAt) throw new PowerCut();
  };
  try {
    work((store) => {
      opened.push(store);
      return store;
    });
  } catch (err) {
    if (!(err instanceof PowerCut)) throw err;
    cut = true;
  } finally {
    media.onWriteBack = undefined;
  }
  const writeBacks = media.writeBackCount - before;
  const crashed = media.crash(seed);
  for (const store of opened) {
    try {
      store.close();
    } catch {
      // The in-memory store of a process that lost power: nothing of it is read again.
    }
  }
  return { media: crashed, writeBacks, cut };
}
