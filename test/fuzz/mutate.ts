// Mutations of a file's bytes, as storage damages them: flipped bits, overwritten runs, zeroed
// pages, truncation, two blocks swapped (misdirected writes), or another file's contents.

import type { Random } from '../../src/util/random.js';

export type MutationKind = 'bit-flips' | 'byte-run' | 'zero-page' | 'truncate' | 'swap-blocks' | 'foreign';
export const MUTATION_KINDS: readonly MutationKind[] = ['bit-flips', 'byte-run', 'zero-page', 'truncate', 'swap-blocks', 'foreign'];

/** A damaged copy of `bytes`; `foreign` supplies the replacement for the 'foreign' kind. */
export function mutate(bytes: Uint8Array, kind: MutationKind, random: Random, foreign: () => Uint8Array): Uint8Array {
  if (bytes.length === 0 && kind !== 'foreign') return new Uint8Array(random.nextInt(64)).map(() => random.nextInt(256));
  const out = bytes.slice();
  switch (kind) {
    case 'bit-flips':
      for (let n = 1 + random.nextInt(8); n > 0; n--) out[random.nextInt(out.length)]! ^= 1 << random.nextInt(8);
      return out;
    case 'byte-run': {
      const at = random.nextInt(out.length);
      for (let i = at, end = Math.min(out.length, at + 1 + random.nextInt(64)); i < end; i++) out[i] = random.nextInt(256);
      return out;
    }
    case 'zero-page': {
      const page = [64, 256, 4096][random.nextInt(3)]!;
      const at = Math.floor(random.nextInt(out.length) / page) * page;
      out.fill(0, at, at + page);
      return out;
    }
    case 'truncate':
      return out.slice(0, random.nextInt(out.length));
    case 'swap-blocks': {
      const block = [8, 64, 256][random.nextInt(3)]!;
      const blocks = Math.floor(out.length / block);
      if (blocks < 2) return out;
      const a = random.nextInt(blocks) * block;
      const b = random.nextInt(blocks) * block;
      const first = out.slice(a, a + block);
      out.copyWithin(a, b, b + block);
      out.set(first, b);
      return out;
    }
    case 'foreign':
      return foreign();
  }
}
