import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BoundsError, IoError, MisuseError } from '../src/errors.js';
import { NodeSsdFile } from '../src/ssd/file.js';

const dir = mkdtempSync(join(tmpdir(), 'chronotier-ssd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('NodeSsdFile', () => {
  it('appends, reads, syncs, truncates and reopens', () => {
    const path = join(dir, 'a');
    const file = NodeSsdFile.open(path, { create: true });
    expect(file.append(new Uint8Array([1, 2, 3]))).toBe(0);
    expect(file.append(new Uint8Array([4, 5]))).toBe(3);
    file.sync();
    expect(file.read(1, 3)).toEqual(new Uint8Array([2, 3, 4]));
    file.truncate(4);
    expect(file.size).toBe(4);
    file.close();
    expect(statSync(path).size).toBe(4);
    const again = NodeSsdFile.open(path, { create: false });
    expect(again.size).toBe(4);
    expect(again.read(0, 4)).toEqual(new Uint8Array([1, 2, 3, 4]));
    again.close();
  });

  it('refuses reads past the end and use after close', () => {
    const file = NodeSsdFile.open(join(dir, 'b'), { create: true });
    file.append(new Uint8Array(8));
    expect(() => file.read(4, 5)).toThrow(BoundsError);
    file.close();
    expect(() => file.append(new Uint8Array(1))).toThrow(MisuseError);
    expect(() => file.read(0, 1)).toThrow(expect.objectContaining({ code: 'FILE_CLOSED' }));
  });

  it('reports a missing file as IoError ENOENT with its path', () => {
    expect(() => NodeSsdFile.open(join(dir, 'missing', 'x'), { create: false })).toThrow(expect.objectContaining({ code: 'ENOENT', path: join(dir, 'missing', 'x') }));
    expect(() => NodeSsdFile.open(join(dir, 'missing', 'x'), { create: true })).toThrow(IoError);
  });

  it('fails with ENOSPC on a full device and keeps its size', () => {
    let file: NodeSsdFile;
    try {
      file = NodeSsdFile.open('/dev/full', { create: false });
    } catch {
      return; // no /dev/full on this system
    }
    expect(() => file.append(new Uint8Array(4096))).toThrow(expect.objectContaining({ code: 'ENOSPC' }));
    expect(file.size).toBe(0);
    file.close();
  });
});
