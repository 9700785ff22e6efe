// Loads the bench extras - peer stores and chart libraries - from bench/peers/node_modules, never
// from the main install: chronotier's users need none of them, and `npm run bench:peers:install`
// puts them there. A module that is missing or fails to load is reported with the reason, so a
// bench can say why an engine is absent instead of dropping it silently.

import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** bench/peers/package.json, from dist/bench/*.js (the compiled location) or bench/*.ts. */
const PEERS_PACKAGE = fileURLToPath(new URL(import.meta.url.includes('/dist/bench/') ? '../../bench/peers/package.json' : './peers/package.json', import.meta.url));
const requireFromPeers = createRequire(PEERS_PACKAGE);

export type Loaded<T> = { readonly module: T; readonly error?: undefined } | { readonly module?: undefined; readonly error: string };

const INSTALL_HINT = 'run `npm run bench:peers:install`';

function reason(name: string, err: unknown): string {
  const message = err instanceof Error ? err.message.split('\n')[0]! : String(err);
  return (err as { code?: string }).code === 'MODULE_NOT_FOUND' || (err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND'
    ? `${name} is not installed in bench/peers (${INSTALL_HINT})`
    : `${name} failed to load: ${message}`;
}

/** A CommonJS (or dual) package from bench/peers/node_modules. */
export function requirePeer<T>(name: string): Loaded<T> {
  try {
    return { module: requireFromPeers(name) as T };
  } catch (err) {
    return { error: reason(name, err) };
  }
}

/** An ES-module-only package (vega, vega-lite) from bench/peers/node_modules. */
export async function importPeer<T>(name: string): Promise<Loaded<T>> {
  try {
    return { module: (await import(pathToFileURL(requireFromPeers.resolve(name)).href)) as T };
  } catch (err) {
    return { error: reason(name, err) };
  }
}
