// `npm run bench -- <name> [--events N] [--quick]`: runs one named benchmark. Each prints a
// table, then one JSON object as its last line.

import { parseArgs } from './harness.js';

const BENCHES: Record<string, () => Promise<{ run(args: ReturnType<typeof parseArgs>): Promise<void> | void }>> = {
  persist: () => import('./persist.js'),
  ingest: () => import('./ingest.js'),
  query: () => import('./query.js'),
  recovery: () => import('./recovery.js'),
  ooo: () => import('./ooo.js'),
  'ooo-queue': () => import('./ooo-queue.js'),
  'instant-recovery': () => import('./instant-recovery.js'),
  peers: () => import('./peers.js'),
  'flush-sweep': () => import('./flush-sweep.js'),
  translation: () => import('./translation.js'),
  'node-storage': () => import('./node-storage.js'),
};

async function main(): Promise<void> {
  const [name, ...rest] = process.argv.slice(2);
  const load = name === undefined ? undefined : BENCHES[name];
  if (load === undefined) {
    console.error(`usage: npm run bench -- <${Object.keys(BENCHES).join('|')}> [--events N] [--quick]`);
    process.exitCode = 2;
    return;
  }
  const bench = await load();
  await bench.run(parseArgs(rest));
}

await main();
