import { afterEach, describe, expect, it, vi } from 'vitest';
import { type MissingEngine, type PeerEngine, isMissing, peerEngines, peerOrMissing } from '../bench/peer-engines.js';
import { importPeer, requirePeer } from '../bench/peer-modules.js';
import { run } from '../bench/peers.js';

// The peers bench's "missing peer" path, without installing any peer: a package that is not in
// bench/peers/node_modules, or an engine that fails while measured, must come out as
// { missing: reason } in the table and the JSON - not crash the run, not vanish from it.

const GHOST = 'chronotier-test-ghost-peer';
const NOT_INSTALLED = `${GHOST} is not installed in bench/peers (run \`npm run bench:peers:install\`)`;

afterEach(() => {
  vi.restoreAllMocks();
});

/** Runs the peers bench over `engines` on a few events; returns its printed lines and the last-line JSON. */
async function runPeers(engines: readonly (PeerEngine | MissingEngine)[]): Promise<{ printed: string[]; result: Record<string, any> }> {
  const printed: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((line: unknown) => void printed.push(String(line)));
  vi.spyOn(console, 'error').mockImplementation(() => undefined);
  await run({ events: 20_000, quick: true, flags: new Map() }, engines);
  return { printed, result: JSON.parse(printed.at(-1)!) as Record<string, any> };
}

describe('peers bench: a missing peer', () => {
  it('is reported as not installed by both loaders, with the install hint', async () => {
    expect(requirePeer(GHOST)).toEqual({ error: NOT_INSTALLED });
    expect(await importPeer(GHOST)).toEqual({ error: NOT_INSTALLED });
    const ghost = peerOrMissing(GHOST, 'Ghost', requirePeer(GHOST), () => {
      throw new Error('make must not run for a module that did not load');
    });
    expect(isMissing(ghost) && ghost.error).toBe(NOT_INSTALLED);
  });

  it('appears as missing, with its reason, in the table and the JSON, next to the engines that ran', async () => {
    const chronotier = peerEngines('/dev/shm').find((engine) => engine.key === 'chronotier')!;
    expect(isMissing(chronotier)).toBe(false);
    const failing: PeerEngine = {
      key: 'broken',
      label: 'Broken',
      configuration: 'fails on ingest',
      ingest: () => Promise.reject(new Error('disk on fire')),
      openForQueries: () => Promise.reject(new Error('never opened')),
    };
    const ghost = peerOrMissing('ghost', 'Ghost', requirePeer(GHOST), () => failing);
    const { printed, result } = await runPeers([chronotier, ghost, failing]);

    expect(Object.keys(result)).toEqual(['bench', 'events', 'chronotier', 'ghost', 'broken', 'configurations']);
    expect(result.ghost).toEqual({ missing: NOT_INSTALLED });
    expect(result.broken).toEqual({ missing: 'Broken failed: disk on fire' });
    expect(result.chronotier.ingest_eps).toBeGreaterThan(0);
    expect(result.configurations).not.toHaveProperty('ghost');
    const table = printed.join('\n');
    expect(table).toContain(`Ghost  missing: ${NOT_INSTALLED}`);
    expect(table).toContain('missing: Broken failed: disk on fire');
  });
});
