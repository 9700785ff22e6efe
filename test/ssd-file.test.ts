import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { BoundsError, IoError, MisuseError } from '../src/errors.js';
import { NodeSsdFile } from '../src/ssd/file.js';

// Every fs call of file.ts goes through these hooks, so a test can make the operating system
// misbehave in the ways a disk does: short and partial writes, EIO, a failing fdatasync.
type Calls = {
  writeSync?: (fd: number, data: Uint8Array, offset: number, length: number, position: number) => number;
  readSync?: (fd: number, data: Uint8Array, offset: number, length: number, position: number) => number;
  fdatasyncSync?: (fd: number) => void;
  ftruncateSync?: (fd: number, size: number) => void;
  fstatSync?: (fd: number) => fs.Stats;
  fsyncSync?: (fd: number) => void;
};
const hooks = vi.hoisted(() => ({ current: {} as Calls, real: {} as Required<Calls> }));

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  Object.assign(hooks.real, real);
  const via =
    <K extends keyof Calls>(name: K) =>
    (...args: unknown[]) =>
      ((hooks.current[name] ?? real[name]) as (...a: unknown[]) => unknown)(...args);
  return { ...real, writeSync: via('writeSync'), readSync: via('readSync'), fdatasyncSync: via('fdatasyncSync'), ftruncateSync: via('ftruncateSync'), fstatSync: via('fstatSync'), fsyncSync: via('fsyncSync') };
});

const dir = fs.mkdtempSync(join(tmpdir(), 'chronotier-ssd-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  hooks.current = {};
});

let files = 0;
/** A new file in the test directory. */
function fresh(): NodeSsdFile {
  return NodeSsdFile.open(join(dir, `f${files++}`), { create: true });
}

function systemError(code: string, syscall: string): Error {
  return Object.assign(new Error(`${code}: injected, ${syscall}`), { code, syscall });
}

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
const onDisk = (file: NodeSsdFile) => new Uint8Array(fs.readFileSync(file.path));

describe('NodeSsdFile', () => {
  it('appends, reads, syncs, truncates and reopens', () => {
    const file = fresh();
    expect(file.append(new Uint8Array([1, 2, 3]))).toBe(0);
    expect(file.append(new Uint8Array([4, 5]))).toBe(3);
    file.sync();
    expect(file.read(1, 3)).toEqual(new Uint8Array([2, 3, 4]));
    file.truncate(4);
    expect(file.size).toBe(4);
    file.close();
    expect(fs.statSync(file.path).size).toBe(4);
    const again = NodeSsdFile.open(file.path, { create: false });
    expect(again.size).toBe(4);
    expect(again.read(0, 4)).toEqual(new Uint8Array([1, 2, 3, 4]));
    expect(NodeSsdFile.open(file.path, { create: true }).size).toBe(4);
    again.close();
  });

  it('writes in place and at the end, reads into a buffer, and refuses holes and growing truncates', () => {
    const file = fresh();
    file.append(bytes(8, 1));
    file.write(6, bytes(4, 2));
    file.write(10, bytes(2, 3));
    expect(file.size).toBe(12);
    const target = new Uint8Array(6);
    file.readInto(5, target);
    expect(target).toEqual(new Uint8Array([1, 2, 2, 2, 2, 3]));
    expect(() => file.write(13, bytes(1, 0))).toThrow(BoundsError);
    expect(() => file.truncate(13)).toThrow(BoundsError);
    expect(() => file.truncate(-1)).toThrow(BoundsError);
    expect(onDisk(file)).toEqual(new Uint8Array([1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3]));
    file.close();
  });

  it('refuses reads outside the file before allocating, and every call after close', () => {
    const file = fresh();
    file.append(bytes(8, 0));
    expect(() => file.read(4, 5)).toThrow(BoundsError);
    expect(() => file.read(0, 2 ** 40)).toThrow(BoundsError);
    expect(() => file.read(-1, 1)).toThrow(BoundsError);
    expect(() => file.readInto(4, new Uint8Array(5))).toThrow(BoundsError);
    file.close();
    file.close();
    for (const call of [() => file.append(bytes(1, 1)), () => file.write(0, bytes(1, 1)), () => file.read(0, 1), () => file.readInto(0, new Uint8Array(1)), () => file.sync(), () => file.truncate(0)]) {
      expect(call).toThrow(MisuseError);
      expect(call).toThrow(expect.objectContaining({ code: 'FILE_CLOSED' }));
    }
  });

  it('sees what another handle appended (the leaf writer thread), re-statting only past its cached end', () => {
    const reader = fresh();
    const writer = NodeSsdFile.open(reader.path, { create: false });
    writer.append(bytes(16, 7));
    let stats = 0;
    hooks.current.fstatSync = (fd) => (stats++, hooks.real.fstatSync(fd));
    expect(reader.read(8, 8)).toEqual(bytes(8, 7));
    expect(stats).toBe(1);
    reader.read(0, 8);
    expect(stats).toBe(1);
    writer.close();
    reader.close();
  });

  it('reports open failures as IoError with code, syscall and path', () => {
    const missing = join(dir, 'missing', 'x');
    expect(() => NodeSsdFile.open(missing, { create: false })).toThrow(expect.objectContaining({ name: 'IoError', code: 'ENOENT', syscall: 'open', path: missing }));
    expect(() => NodeSsdFile.open(missing, { create: true })).toThrow(expect.objectContaining({ code: 'ENOENT', path: missing }));
  });

  it('makes a created file durable by fsyncing its directory, and only then', () => {
    const synced: number[] = [];
    hooks.current.fsyncSync = (fd) => (synced.push(fd), hooks.real.fsyncSync(fd));
    const file = fresh();
    expect(synced.length).toBe(1);
    NodeSsdFile.open(file.path, { create: true }).close();
    NodeSsdFile.open(file.path, { create: false }).close();
    expect(synced.length).toBe(1);
    file.close();
  });

  it('closes the descriptor, and takes back a name it created, when opening fails after open(2)', () => {
    const before = fs.readdirSync('/proc/self/fd').length;
    hooks.current.fsyncSync = () => {
      throw systemError('EIO', 'fsync');
    };
    const path = join(dir, 'unsynced-name');
    expect(() => NodeSsdFile.open(path, { create: true })).toThrow(expect.objectContaining({ code: 'EIO', syscall: 'fsync', path: dir }));
    expect(fs.existsSync(path)).toBe(false);
    hooks.current = {
      fstatSync: () => {
        throw systemError('EIO', 'fstat');
      },
    };
    expect(() => fresh()).toThrow(expect.objectContaining({ code: 'EIO', syscall: 'fstat' }));
    expect(fs.readdirSync('/proc/self/fd').length).toBe(before);
  });
});

describe('NodeSsdFile under I/O faults', () => {
  it('completes short writes and short reads', () => {
    const file = fresh();
    hooks.current.writeSync = (fd, data, offset, length, position) => hooks.real.writeSync(fd, data, offset, Math.min(length, 3), position);
    hooks.current.readSync = (fd, data, offset, length, position) => hooks.real.readSync(fd, data, offset, Math.min(length, 2), position);
    const data = Uint8Array.from({ length: 100 }, (_, i) => i);
    expect(file.append(data)).toBe(0);
    expect(file.append(data)).toBe(100);
    expect(file.read(50, 100)).toEqual(new Uint8Array([...data.subarray(50), ...data.subarray(0, 50)]));
    hooks.current = {};
    expect(onDisk(file)).toEqual(new Uint8Array([...data, ...data]));
    file.close();
  });

  it('reports a file that ends early while reading as ESHORTREAD', () => {
    const file = fresh();
    file.append(bytes(64, 1));
    hooks.current.readSync = () => 0;
    expect(() => file.read(0, 64)).toThrow(expect.objectContaining({ name: 'IoError', code: 'ESHORTREAD', syscall: 'read', path: file.path }));
    hooks.current.readSync = () => {
      throw systemError('EIO', 'read');
    };
    expect(() => file.readInto(0, new Uint8Array(8))).toThrow(expect.objectContaining({ code: 'EIO', syscall: 'read', path: file.path }));
    file.close();
  });

  it('after a write that failed half-way: size unchanged, landed bytes cut off, next append at the old end', () => {
    const file = fresh();
    file.append(bytes(10, 1));
    file.sync();
    let calls = 0;
    // The first call lands 100 bytes, the second fails: a partial write.
    hooks.current.writeSync = (fd, data, offset, length, position) => {
      if (calls++ === 0) return hooks.real.writeSync(fd, data, offset, Math.min(length, 100), position);
      throw systemError('EIO', 'write');
    };
    expect(() => file.append(bytes(1000, 2))).toThrow(expect.objectContaining({ name: 'IoError', code: 'EIO', syscall: 'write', path: file.path }));
    hooks.current = {};
    expect(file.size).toBe(10);
    expect(fs.statSync(file.path).size).toBe(10);
    expect(file.append(bytes(5, 3))).toBe(10);
    file.sync();
    expect(onDisk(file)).toEqual(new Uint8Array([...bytes(10, 1), ...bytes(5, 3)]));
    file.close();
  });

  it('a failed in-place write does not change the size', () => {
    const file = fresh();
    file.append(bytes(10, 1));
    hooks.current.writeSync = (fd, data, offset, _length, position) => {
      hooks.real.writeSync(fd, data, offset, 1, position);
      throw systemError('ENOSPC', 'write');
    };
    expect(() => file.write(8, bytes(100, 2))).toThrow(expect.objectContaining({ code: 'ENOSPC' }));
    hooks.current = {};
    expect(file.size).toBe(10);
    expect(fs.statSync(file.path).size).toBe(10);
    file.close();
  });

  it('is poisoned when the bytes of a failed write cannot be cut off', () => {
    const file = fresh();
    file.append(bytes(10, 1));
    hooks.current.writeSync = (fd, data, offset, _length, position) => {
      hooks.real.writeSync(fd, data, offset, 50, position);
      throw systemError('EIO', 'write');
    };
    hooks.current.ftruncateSync = () => {
      throw systemError('EIO', 'ftruncate');
    };
    expect(() => file.append(bytes(100, 2))).toThrow(expect.objectContaining({ code: 'EIO', syscall: 'write' }));
    hooks.current = {};
    expect(file.size).toBe(10);
    expect(() => file.append(bytes(1, 3))).toThrow(/poisoned after a failed write/);
    expect(() => file.sync()).toThrow(IoError);
    expect(file.read(0, 10)).toEqual(bytes(10, 1));
    file.close();
  });

  it('is poisoned after a failed fdatasync, which is never retried', () => {
    const file = fresh();
    file.append(bytes(10, 1));
    let datasyncs = 0;
    hooks.current.fdatasyncSync = () => {
      datasyncs++;
      throw systemError('EIO', 'fdatasync');
    };
    expect(() => file.sync()).toThrow(expect.objectContaining({ name: 'IoError', code: 'EIO', syscall: 'fdatasync', path: file.path }));
    hooks.current = {};
    for (const call of [() => file.sync(), () => file.append(bytes(1, 1)), () => file.write(0, bytes(1, 1)), () => file.truncate(0)]) {
      expect(call).toThrow(expect.objectContaining({ name: 'IoError', code: 'EIO' }));
      expect(call).toThrow(/poisoned after a failed sync/);
    }
    expect(datasyncs).toBe(1);
    expect(file.size).toBe(10);
    expect(file.read(0, 10)).toEqual(bytes(10, 1));
    file.close();
    const reopened = NodeSsdFile.open(file.path, { create: false });
    reopened.sync();
    reopened.close();
  });

  it('reports a failed truncate as IoError and keeps its size', () => {
    const file = fresh();
    file.append(bytes(10, 1));
    hooks.current.ftruncateSync = () => {
      throw systemError('EIO', 'ftruncate');
    };
    expect(() => file.truncate(5)).toThrow(expect.objectContaining({ code: 'EIO', syscall: 'ftruncate', path: file.path }));
    expect(file.size).toBe(10);
    file.close();
  });

  it('fails with ENOSPC on a full device and keeps its size', () => {
    let file: NodeSsdFile;
    try {
      file = NodeSsdFile.open('/dev/full', { create: false });
    } catch {
      return; // no /dev/full on this system
    }
    expect(() => file.append(bytes(4096, 1))).toThrow(expect.objectContaining({ code: 'ENOSPC', path: '/dev/full' }));
    expect(file.size).toBe(0);
    file.close();
  });
});
