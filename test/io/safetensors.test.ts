import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  openSafetensors,
  readSafetensors,
  writeSafetensors,
  SafetensorsDtypeError,
  SafetensorsError,
  SafetensorsHeaderJsonError,
  SafetensorsHeaderLengthError,
  SafetensorsOffsetError,
  SafetensorsOverlapError,
  SafetensorsSizeMismatchError,
  SafetensorsTruncatedError,
  SafetensorsUsageError,
  type TensorInput,
} from '../../models/io/safetensors';

const here = path.dirname(fileURLToPath(import.meta.url));
const reference = path.join(here, '../fixtures/io/reference-0.8.0.safetensors');
let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-safetensors-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const bytesOf = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** A raw file: 8-byte length (or `len`), header text, data bytes. */
function rawFile(name: string, header: unknown, data: Uint8Array = new Uint8Array(0), len?: bigint): string {
  const text = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(len ?? BigInt(text.length));
  const p = path.join(dir, name);
  fs.writeFileSync(p, Buffer.concat([lenBuf, text, data]));
  return p;
}

const tmpLeftovers = () => fs.readdirSync(dir).filter((f) => f.includes('.tmp-'));

describe('writeSafetensors / openSafetensors round trip', () => {
  const f32 = new Float32Array([1.5, -0, NaN, Infinity, 3.4028234663852886e38, 1e-45, -7.25, 0.1]);
  const f16 = new Uint16Array([0x0000, 0x8000, 0x0001, 0x3c00, 0x7bff, 0x7c00, 0xfc00, 0x7e01, 0x1234, 0xabcd]);
  const bf16 = new Uint16Array([0x3f80, 0xff80, 0x0001, 0x7fc1, 0x4049, 0xc2f7]);
  const i32 = new Int32Array([0, -1, 2147483647, -2147483648, 42, 7]);
  const tensors: Record<string, TensorInput> = {
    'w.f32': { dtype: 'F32', shape: [2, 4], data: f32 },
    'w.f16': { dtype: 'F16', shape: [10], data: f16 },
    'w.bf16': { dtype: 'BF16', shape: [2, 3], data: bf16 },
    'w.i32': { dtype: 'I32', shape: [3, 2], data: i32 },
    'w.i64': { dtype: 'I64', shape: [2], data: new BigInt64Array([-(2n ** 62n), 5n]) },
    'w.u8': { dtype: 'U8', shape: [3], data: new Uint8Array([0, 128, 255]) },
    'w.bool': { dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) },
    'w.f64': { dtype: 'F64', shape: [1], data: new Float64Array([Math.PI]) },
    'w.empty': { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
    'w.scalar': { dtype: 'F32', shape: [], data: new Float32Array([2]) },
  };

  it('reads back every tensor bit-exactly, with metadata', () => {
    const p = path.join(dir, 'roundtrip.safetensors');
    writeSafetensors(p, tensors, { format: 'pt', note: 'ünïcode' });
    const f = openSafetensors(p);
    try {
      expect(f.names().sort()).toEqual(Object.keys(tensors).sort());
      expect(f.metadata).toEqual({ format: 'pt', note: 'ünïcode' });
      for (const [name, t] of Object.entries(tensors)) {
        const got = f.read(name);
        expect(got.dtype).toBe(t.dtype);
        expect(got.shape).toEqual(t.shape);
        expect(got.data.constructor).toBe(t.data.constructor);
        expect(bytesOf(got.data).equals(bytesOf(t.data))).toBe(true);
      }
      expect(f.header.get('w.i32')).toEqual({ dtype: 'I32', shape: [3, 2], offsets: expect.any(Array) });
    } finally {
      f.close();
    }
    expect(tmpLeftovers()).toEqual([]);
  });

  it('lays the file out like the reference implementation, byte for byte', () => {
    const p = path.join(dir, 'like-reference.safetensors');
    writeSafetensors(
      p,
      {
        b: { dtype: 'F32', shape: [2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) },
        a: { dtype: 'I64', shape: [3], data: new BigInt64Array([1n, 2n, 3n]) },
        c: { dtype: 'F16', shape: [2], data: new Float32Array([1.5, -2]) }, // converted to f16 by the writer
        z: { dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) },
      },
      { k: 'v', format: 'np' },
    );
    expect(fs.readFileSync(p).equals(fs.readFileSync(reference))).toBe(true);
  });

  it('reads the reference file; readAsFloat32 widens every dtype', () => {
    const { tensors: t, metadata } = readSafetensors(reference);
    expect(metadata).toEqual({ format: 'np', k: 'v' });
    expect(Array.from(t.get('a')!.data as BigInt64Array)).toEqual([1n, 2n, 3n]);
    const f = openSafetensors(reference);
    expect(Array.from(f.readAsFloat32('c'))).toEqual([1.5, -2]);
    expect(Array.from(f.readAsFloat32('a'))).toEqual([1, 2, 3]);
    expect(Array.from(f.readAsFloat32('b'))).toEqual([0, 1, 2, 3, 4, 5]);
    expect(Array.from(f.readAsFloat32('z'))).toEqual([1, 0]);
    expect(() => f.read('nope')).toThrow(SafetensorsUsageError);
    f.close();
    expect(() => f.read('a')).toThrow(/closed/);
  });

  it('converts bf16 and refuses lossy I64', () => {
    const p = path.join(dir, 'conv.safetensors');
    writeSafetensors(p, {
      b: { dtype: 'BF16', shape: [3], data: new Float32Array([1, -3, 0.15625]) },
      big: { dtype: 'I64', shape: [1], data: new BigInt64Array([2n ** 60n]) },
    });
    const f = openSafetensors(p);
    expect(Array.from(f.readAsFloat32('b'))).toEqual([1, -3, 0.15625]);
    expect(() => f.readAsFloat32('big')).toThrow(SafetensorsUsageError);
    f.close();
  });

  it('pads the header with spaces to a multiple of 8', () => {
    const p = path.join(dir, 'pad.safetensors');
    writeSafetensors(p, { x: { dtype: 'U8', shape: [1], data: new Uint8Array([9]) } });
    const buf = fs.readFileSync(p);
    const n = Number(buf.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    expect(buf.subarray(8, 8 + n).toString()).toMatch(/^\{.*\} *$/);
  });
});

describe('malformed files raise their named error, naming the file', () => {
  const f32x2 = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  const cases: [string, () => string, new (...a: never[]) => SafetensorsError, RegExp?][] = [
    ['shorter than 8 bytes', () => (fs.writeFileSync(path.join(dir, 'short'), Buffer.alloc(5)), path.join(dir, 'short')), SafetensorsTruncatedError],
    ['header length 0', () => rawFile('len0', '', undefined, 0n), SafetensorsHeaderLengthError],
    ['header length > 100 MB', () => rawFile('len-huge', '{}', undefined, 200_000_000n), SafetensorsHeaderLengthError],
    ['header length > file size', () => rawFile('len-big', '{}', undefined, 1000n), SafetensorsHeaderLengthError],
    ['header runs past EOF', () => rawFile('hdr-trunc', '{"a":', undefined, 9n), SafetensorsTruncatedError],
    ['bad JSON', () => rawFile('badjson', '{"a": [1, }'), SafetensorsHeaderJsonError],
    ['JSON not an object', () => rawFile('array', '[1,2]'), SafetensorsHeaderJsonError],
    ['entry missing dtype', () => rawFile('nodtype', { a: { shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)), SafetensorsHeaderJsonError, /"a"/],
    ['bad shape', () => rawFile('badshape', { a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, new Uint8Array(8)), SafetensorsHeaderJsonError],
    ['non-string metadata', () => rawFile('badmeta', { __metadata__: { k: 1 } }), SafetensorsHeaderJsonError],
    ['negative offsets', () => rawFile('negoff', { a: { ...f32x2, data_offsets: [-8, 0] } }, new Uint8Array(8)), SafetensorsOffsetError, /"a"/],
    ['begin > end', () => rawFile('backwards', { a: { ...f32x2, data_offsets: [8, 0] } }, new Uint8Array(8)), SafetensorsOffsetError],
    ['offsets past EOF', () => rawFile('pasteof', { a: { ...f32x2, data_offsets: [8, 16] } }, new Uint8Array(8)), SafetensorsTruncatedError, /"a"/],
    ['truncated data', () => rawFile('datatrunc', { a: f32x2 }, new Uint8Array(5)), SafetensorsTruncatedError, /"a"/],
    ['overlap', () => rawFile('overlap', { a: f32x2, b: { ...f32x2, data_offsets: [4, 12] } }, new Uint8Array(12)), SafetensorsOverlapError, /"b".*"a"/],
    ['unknown dtype', () => rawFile('dtype', { a: { ...f32x2, dtype: 'F8_E9M9' } }, new Uint8Array(8)), SafetensorsDtypeError, /F8_E9M9/],
    ['size mismatch', () => rawFile('size', { a: { ...f32x2, shape: [3] } }, new Uint8Array(8)), SafetensorsSizeMismatchError, /"a"/],
  ];
  it.each(cases.map(([label, make, Err, names]) => ({ label, make, Err, names })))('$label', ({ make, Err, names }) => {
    const p = make();
    let caught: unknown;
    try {
      openSafetensors(p).close();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(Err);
    expect(caught).toBeInstanceOf(SafetensorsError);
    expect((caught as Error).name).toBe(Err.name);
    expect((caught as Error).message).toContain(p);
    if (names) expect((caught as Error).message).toMatch(names);
  });
});

describe('atomic write', () => {
  const good = { x: { dtype: 'F32' as const, shape: [2], data: new Float32Array([1, 2]) } };

  it('rejects bad input before touching the disk, leaving the old file', () => {
    const p = path.join(dir, 'keep.safetensors');
    writeSafetensors(p, good);
    const before = fs.readFileSync(p);
    expect(() => writeSafetensors(p, { x: { dtype: 'F32', shape: [3], data: new Float32Array(2) } })).toThrow(SafetensorsSizeMismatchError);
    expect(() => writeSafetensors(p, { x: { dtype: 'I32', shape: [2], data: new Float32Array(2) } })).toThrow(SafetensorsDtypeError);
    expect(fs.readFileSync(p).equals(before)).toBe(true);
    expect(tmpLeftovers()).toEqual([]);
  });

  it('an I/O failure mid-write removes the temp file and keeps the old file', () => {
    const p = path.join(dir, 'keep2.safetensors');
    writeSafetensors(p, good);
    const before = fs.readFileSync(p);
    const spy = jest.spyOn(fs, 'fsyncSync').mockImplementation(() => {
      throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    });
    try {
      expect(() => writeSafetensors(p, { y: { dtype: 'F32', shape: [1], data: new Float32Array([9]) } })).toThrow(/ENOSPC/);
    } finally {
      spy.mockRestore();
    }
    expect(fs.readFileSync(p).equals(before)).toBe(true);
    expect(tmpLeftovers()).toEqual([]);
  });

  it('a failing rename (target is a folder) removes the temp file', () => {
    const p = path.join(dir, 'is-a-dir');
    fs.mkdirSync(p);
    expect(() => writeSafetensors(p, good)).toThrow();
    expect(fs.statSync(p).isDirectory()).toBe(true);
    expect(tmpLeftovers()).toEqual([]);
  });
});
