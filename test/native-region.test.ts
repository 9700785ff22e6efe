import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BoundsError, CorruptionError, IoError, MisuseError } from '../src/errors.js';
import { loadNative } from '../src/native.js';
import { NativeRegion, lockFile } from '../src/pmem/native-region.js';
import { ColdReader } from '../src/pmem/cold-reader.js';

const shm = mkdtempSync('/dev/shm/chronotier-native-');
const disk = mkdtempSync(join(tmpdir(), 'chronotier-native-'));
afterAll(() => [shm, disk].forEach((dir) => rmSync(dir, { recursive: true, force: true })));
const DIST = join(import.meta.dirname, '..', 'dist', 'src');
/** statfs(2)'s f_type of tmpfs (linux/magic.h). */
const TMPFS_MAGIC = 0x01021994;

/** Runs an ES module snippet in a fresh node process with `env`, returning its stdout. */
function inChild(code: string, env: Record<string, string> = {}): string {
  return execFileSync(process.execPath, ['--input-type=module', '-e', code], { env: { ...process.env, ...env }, encoding: 'utf8' });
}

for (const variant of ['default', 'msync'] as const) {
  describe(`NativeRegion (${variant} build: ${loadNative(variant).variant})`, () => {
    it('creates, writes, persists, and reopens with the same bytes', () => {
      for (const dir of [shm, disk]) {
        const path = join(dir, `r-${variant}`);
        const region = NativeRegion.open(path, { size: 8192, create: true, variant });
        expect(region.size).toBe(8192);
        new Uint8Array(region.buffer).set([1, 2, 3], 100);
        region.persist(100, 3);
        region.flush(0, 64);
        region.drain();
        region.close();
        const again = NativeRegion.open(path, { create: false, variant });
        expect([...new Uint8Array(again.buffer, 100, 3)]).toEqual([1, 2, 3]);
        expect(again.durability).toBe(dir === shm ? 'volatile-pmem' : 'msync');
        again.close();
      }
    });

    it('readInto reads what the mapping holds, through read(2); ColdReader reads words through it', () => {
      const region = NativeRegion.open(join(shm, `read-${variant}`), { size: 3 * 4096, create: true, variant });
      const bytes = new Uint8Array(region.buffer);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) % 251;
      for (const [offset, length] of [[0, 16], [4090, 12], [8192, 4096], [5, 0]] as const) {
        const into = new Uint8Array(length);
        region.readInto(offset, into);
        expect([...into]).toEqual([...bytes.subarray(offset, offset + length)]);
      }
      expect(() => region.readInto(3 * 4096 - 4, new Uint8Array(8))).toThrow(BoundsError);
      const words = new Int32Array(region.buffer);
      const cold = new ColdReader(region);
      expect([...cold.words(4092, 3)]).toEqual([...words.subarray(1023, 1026)]);
      expect([...cold.words(0, 3 * 1024)]).toEqual([...words]);
      region.close();
      expect(() => region.readInto(0, new Uint8Array(4))).toThrow(MisuseError);
    });

    it("hands over the file system's type with each mapping, so durability needs no statfs of its own", () => {
      const native = loadNative(variant);
      for (const dir of [shm, disk]) {
        const path = join(dir, `fs-${variant}`);
        const created = native.map(path, 4096, true);
        const opened = native.openMapped(path, 0);
        for (const mapping of [created, opened]) expect(mapping.fsType === TMPFS_MAGIC, dir).toBe(dir === shm);
        expect(opened.fsType).toBe(statfsSync(path).type);
        native.unmap(created.buffer);
        native.unmap(opened.buffer!);
      }
    });

    it('detaches the old buffer on grow and close, so stale views throw', () => {
      const region = NativeRegion.open(join(shm, `g-${variant}`), { size: 4096, create: true, variant });
      const old = new DataView(region.buffer);
      old.setUint8(10, 42);
      region.grow(16384);
      expect(() => old.getUint8(10)).toThrow(TypeError);
      expect(new Uint8Array(region.buffer)[10]).toBe(42);
      expect(statSync(join(shm, `g-${variant}`)).size).toBe(16384);
      const current = new DataView(region.buffer);
      region.close();
      expect(() => current.getUint8(0)).toThrow(TypeError);
      expect(() => region.persist(0, 1)).toThrow(MisuseError);
    });

    it('opens mapped with a copy of the first page, holds no descriptor until readInto needs one', () => {
      const path = join(shm, `fd-${variant}`);
      const created = NativeRegion.open(path, { size: 8192, create: true, variant });
      new Uint8Array(created.buffer).fill(3, 4090, 4100);
      created.close();
      const descriptors = () => readdirSync('/proc/self/fd').length;
      const before = descriptors();
      const region = NativeRegion.open(path, { create: false, variant });
      expect(descriptors()).toBe(before);
      const head = region.takeOpenHead();
      expect(head?.length).toBe(4096);
      expect([...head!.subarray(4088)]).toEqual([0, 0, 3, 3, 3, 3, 3, 3]);
      expect(region.takeOpenHead()).toBeUndefined();
      new Uint8Array(region.buffer)[5] = 9;
      expect(head![5]).toBe(0);
      const into = new Uint8Array(8);
      region.readInto(0, into);
      expect(into[5]).toBe(9);
      expect(descriptors()).toBe(before + 1);
      region.close();
      expect(descriptors()).toBe(before);
    });

    it('opens an empty file unmapped: its head is empty and its buffer is refused as damage', () => {
      const path = join(shm, `empty-${variant}`);
      writeFileSync(path, '');
      const region = NativeRegion.open(path, { create: false, variant });
      expect(region.size).toBe(0);
      expect(region.takeOpenHead()?.length).toBe(0);
      expect(() => region.buffer).toThrow(CorruptionError);
      region.close();
      expect(() => NativeRegion.open(join(shm, `missing-${variant}`), { create: false, variant })).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'open' }));
    });

    it('refuses out-of-range persists in TypeScript and in the addon', () => {
      const region = NativeRegion.open(join(shm, `o-${variant}`), { size: 4096, create: true, variant });
      expect(() => region.persist(4000, 200)).toThrow(BoundsError);
      expect(() => loadNative(variant).persist(region.buffer, 4000, 200)).toThrow(RangeError);
      region.close();
    });

    it('reports system errors with errno code, syscall and path', () => {
      const path = join(shm, 'no-such-dir', 'x');
      expect(() => NativeRegion.open(path, { size: 4096, create: true, variant })).toThrow(IoError);
      expect(() => NativeRegion.open(path, { size: 4096, create: true, variant })).toThrow(expect.objectContaining({ code: 'ENOENT', path }));
    });
  });
}

describe('native layer across processes', () => {
  it('libpmem reports /dev/shm as PMem under PMEM_IS_PMEM_FORCE=1, and the msync build never does', () => {
    const path = join(shm, 'forced');
    const probe = (variant: string) =>
      inChild(`import { loadNative } from '${DIST}/native.js'; const m = loadNative('${variant}').map('${path}', 4096, true); console.log(m.isPmem);`, { PMEM_IS_PMEM_FORCE: '1' }).trim();
    expect(probe('msync')).toBe('false');
    if (loadNative('default').variant === 'libpmem') expect(probe('default')).toBe('true');
  });

  it('keeps persisted bytes when the writing process is killed with SIGKILL', async () => {
    const path = join(shm, 'killed');
    const child = spawn(
      process.execPath,
      ['--input-type=module', '-e', `import { NativeRegion } from '${DIST}/pmem/native-region.js'; const r = NativeRegion.open('${path}', { size: 4096, create: true }); new Uint8Array(r.buffer).fill(7, 0, 256); r.persist(0, 256); console.log('ready'); setInterval(() => {}, 1000);`],
      { env: { ...process.env, PMEM_IS_PMEM_FORCE: '1' }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve) => child.stdout.on('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('exit', resolve));
    const region = NativeRegion.open(path, { create: false });
    expect(new Uint8Array(region.buffer, 0, 256).every((b) => b === 7)).toBe(true);
    region.close();
  });

  it('locks a store exclusively, against this process and another', () => {
    const path = join(disk, 'LOCK');
    const lock = lockFile(path);
    expect(() => lockFile(path)).toThrow(expect.objectContaining({ code: 'STORE_LOCKED' }));
    expect(inChild(`import { lockFile } from '${DIST}/pmem/native-region.js'; try { lockFile('${path}'); console.log('got it'); } catch (e) { console.log(e.code); }`).trim()).toBe('STORE_LOCKED');
    lock.release();
    expect(inChild(`import { lockFile } from '${DIST}/pmem/native-region.js'; lockFile('${path}'); console.log('got it');`).trim()).toBe('got it');
  });

  it('survives many mappings dropped to the garbage collector, which unmaps them', () => {
    // V8 does not count mappings as external memory (a collection cannot free a mapped file's
    // pages), so only the buffers' finalizers unmap what was never unmapped explicitly.
    const path = join(shm, 'gc');
    const out = inChild(
      `import { readFileSync } from 'node:fs'; import { loadNative } from '${DIST}/native.js'; const n = loadNative(); const mapped = () => readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((line) => line.endsWith('${path}')).length; for (let i = 0; i < 2000; i++) { const m = n.map('${path}', 65536, true); new Uint8Array(m.buffer)[i % 65536] = 1; if (i % 3 === 0) n.unmap(m.buffer); } const before = mapped(); for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((resolve) => setTimeout(resolve, 10)); } console.log(before, mapped());`,
      { NODE_OPTIONS: '--expose-gc' },
    );
    const [before, after] = out.trim().split(' ').map(Number);
    expect(before).toBeGreaterThan(1000);
    expect(after).toBeLessThan(10);
  });
});
