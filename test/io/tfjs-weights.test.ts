/** loadTfjsWeights against face-api's real manifests, with tfjs-core's io.decodeWeights as the oracle. */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  loadTfjsWeights,
  TfjsDtypeError,
  TfjsManifestError,
  TfjsShardMissingError,
  TfjsSizeMismatchError,
  TfjsWeightsError,
} from '../../models/io/tfjs-weights';
import { FaceWeightsError } from '../../models/face/weights';
import { loadFaceRecognizerParams } from '../../models/face/recognizer';

const modelDir = path.resolve('node_modules/@vladmandic/face-api/model');
const manifestOf = (model: string) => path.join(modelDir, `${model}-weights_manifest.json`);
let dir: string;
/** Bit-for-bit equality (jest's toEqual walks big typed arrays element by element, slowly). */
const sameBits = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

beforeAll(async () => {
  tf.env().set('IS_TEST', true); // silences the "install tfjs-node" banner
  await tf.setBackend('cpu');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-tfjs-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

type Manifest = { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];

/** tfjs-core's own decoding of a manifest's first (only) group. */
function oracle(manifestPath: string): Map<string, { shape: number[]; values: Float32Array }> {
  const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as Manifest;
  const out = new Map<string, { shape: number[]; values: Float32Array }>();
  for (const group of manifest) {
    const bytes = Buffer.concat(group.paths.map((p) => fs.readFileSync(path.join(path.dirname(manifestPath), p))));
    const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const decoded = tf.io.decodeWeights(buf, group.weights);
    for (const [name, t] of Object.entries(decoded)) {
      out.set(name, { shape: t.shape, values: Float32Array.from(t.dataSync() as ArrayLike<number>) });
      t.dispose();
    }
  }
  return out;
}

describe('face-api manifests', () => {
  it('face_recognition_model: names, shapes, count and values match tfjs-core exactly', () => {
    const got = loadTfjsWeights(manifestOf('face_recognition_model'));
    expect(got.size).toBe(117);
    expect(got.get('conv32_down/conv/filters')!.shape).toEqual([7, 7, 3, 32]);
    expect(got.get('fc')!.shape).toEqual([256, 128]);
    const want = oracle(manifestOf('face_recognition_model'));
    expect([...got.keys()]).toEqual([...want.keys()]);
    for (const [name, w] of want) {
      const g = got.get(name)!;
      expect(g.shape).toEqual(w.shape);
      expect(sameBits(g.data, w.values)).toBe(true);
    }
  });

  it.each(['ssd_mobilenetv1_model', 'tiny_face_detector_model', 'face_landmark_68_model', 'age_gender_model'])('%s matches tfjs-core (int32 weights rounded like tfjs)', (model) => {
    const got = loadTfjsWeights(manifestOf(model));
    const want = oracle(manifestOf(model));
    expect(got.size).toBe(want.size);
    for (const [name, w] of want) {
      expect(got.get(name)!.shape).toEqual(w.shape);
      expect(sameBits(got.get(name)!.data, w.values)).toBe(true);
    }
  });
});

describe('synthetic manifests', () => {
  /** Writes shards and a manifest into a fresh folder; returns the manifest path. */
  function write(name: string, manifest: unknown, shards: Record<string, Uint8Array>): string {
    const d = fs.mkdtempSync(path.join(dir, `${name}-`));
    for (const [f, bytes] of Object.entries(shards)) fs.writeFileSync(path.join(d, f), bytes);
    const p = path.join(d, 'model-weights_manifest.json');
    fs.writeFileSync(p, JSON.stringify(manifest));
    return p;
  }

  const weights: tf.io.WeightsManifestEntry[] = [
    { name: 'f16', shape: [4], dtype: 'float32', quantization: { dtype: 'float16' } },
    { name: 'u16', shape: [3], dtype: 'float32', quantization: { dtype: 'uint16', scale: 0.001, min: -1.5 } },
    { name: 'plain', shape: [2], dtype: 'float32' },
    { name: 'i32', shape: [2], dtype: 'int32' },
    { name: 'b', shape: [3], dtype: 'bool' },
  ];
  const bytes = Buffer.concat([
    Buffer.from(new Uint16Array([0x3c00, 0x0001, 0xfc00, 0xc500]).buffer), // 1, 2^-24, -Inf, -5
    Buffer.from(new Uint16Array([0, 1234, 65535]).buffer),
    Buffer.from(new Float32Array([0.25, -8]).buffer),
    Buffer.from(new Int32Array([-3, 1 << 20]).buffer),
    Buffer.from([1, 0, 1]),
  ]); // 8 + 6 + 8 + 8 + 3 = 33 bytes, odd offsets included

  it('decodes float16 and uint16 quantization across shards split at odd offsets', () => {
    const p = write('ok', [{ paths: ['s1', 's2', 's3'], weights }], { s1: bytes.subarray(0, 9), s2: bytes.subarray(9, 20), s3: bytes.subarray(20) });
    const got = loadTfjsWeights(p);
    const want = oracle(p);
    for (const [name, w] of want) expect(Array.from(got.get(name)!.data)).toEqual(Array.from(w.values));
    expect(Array.from(got.get('f16')!.data)).toEqual([1, 2 ** -24, -Infinity, -5]);
    expect(got.get('i32')!.dtype).toBe('int32');
  });

  it('missing shard names the file', () => {
    const p = write('missing', [{ paths: ['s1', 'gone.bin'], weights }], { s1: bytes });
    expect(() => loadTfjsWeights(p)).toThrow(TfjsShardMissingError);
    expect(() => loadTfjsWeights(p)).toThrow(/gone\.bin/);
  });

  it('truncated shard reports expected vs actual bytes', () => {
    const p = write('short', [{ paths: ['s1'], weights }], { s1: bytes.subarray(0, 30) });
    expect(() => loadTfjsWeights(p)).toThrow(TfjsSizeMismatchError);
    expect(() => loadTfjsWeights(p)).toThrow(/30 bytes.*33 bytes/);
  });

  it('unknown dtype and quantization dtype', () => {
    const p1 = write('dt', [{ paths: ['s1'], weights: [{ name: 'x', shape: [1], dtype: 'complex128' }] }], { s1: new Uint8Array(8) });
    expect(() => loadTfjsWeights(p1)).toThrow(TfjsDtypeError);
    const p2 = write('qdt', [{ paths: ['s1'], weights: [{ name: 'x', shape: [1], dtype: 'float32', quantization: { dtype: 'int4', scale: 1, min: 0 } }] }], { s1: new Uint8Array(1) });
    expect(() => loadTfjsWeights(p2)).toThrow(/unknown quantization dtype "int4"/);
  });

  it('malformed manifests', () => {
    const p = write('bad', { not: 'an array' }, {});
    expect(() => loadTfjsWeights(p)).toThrow(TfjsManifestError);
    expect(() => loadTfjsWeights(path.join(dir, 'nowhere.json'))).toThrow(TfjsWeightsError);
  });

  it('null groups, weights and quantization are named manifest errors, not TypeErrors', () => {
    const cases: [unknown, RegExp][] = [
      [[null], /\[0\]: expected an object, found null/],
      [[{ paths: ['s1'], weights: [null] }], /\[0\]\.weights\[0\]: expected an object/],
      [[{ paths: ['s1'], weights: [{ name: 'x', shape: [1], dtype: 'float32', quantization: null }] }], /weight "x" at \[0\]\.weights\[0\]\.quantization: expected an object, found null/],
      [[{ paths: null, weights: [] }], /\[0\]\.paths: expected a list/],
      [[{ paths: ['s1'], weights: [{ name: 'x', shape: [2, -1], dtype: 'float32' }] }], /weight "x" at \[0\]\.weights\[0\]\.shape\[1\]: expected an integer ≥ 0, found -1/],
      [[{ paths: ['s1'], weights: [{ name: 'x', shape: [1], dtype: 'float32', quantization: { dtype: 'uint8', min: 0 } }] }], /weight "x".*needs a finite "scale"/],
    ];
    for (const [m, re] of cases) {
      const p = write('null', m, { s1: new Uint8Array(4) });
      expect(() => loadTfjsWeights(p)).toThrow(TfjsManifestError);
      expect(() => loadTfjsWeights(p)).toThrow(re);
      expect(() => loadTfjsWeights(p)).toThrow(p);
    }
  });

  it('quantization parameters must be finite over the whole range (1e999, NaN-producing, float32 overflow)', () => {
    const d = fs.mkdtempSync(path.join(dir, 'inf-'));
    fs.writeFileSync(path.join(d, 's1'), new Uint8Array([0, 255]));
    const text = (scale: string, min: string) => `[{"paths":["s1"],"weights":[{"name":"q","shape":[2],"dtype":"float32","quantization":{"dtype":"uint8","scale":${scale},"min":${min}}}]}]`;
    const p = path.join(d, 'm.json');
    for (const [scale, min, re] of [['1e999', '0', /scale: expected a finite number ≥ 0, found Infinity/], ['-1', '0', /scale: expected a finite number ≥ 0, found -1/],
      ['1e37', '0', /range \[0, 2\.55e\+39\].*not finite in float32/], ['1', '-1e999', /min: expected a finite number, found -Infinity/]] as const) {
      fs.writeFileSync(p, text(scale, min));
      expect(() => loadTfjsWeights(p)).toThrow(re);
      expect(() => loadTfjsWeights(p)).toThrow(TfjsManifestError);
    }
    fs.writeFileSync(p, text('0.5', '-1'));
    expect(Array.from(loadTfjsWeights(p).get('q')!.data)).toEqual([-1, 126.5]);
  });

  it('a weight with the right element count but another shape is refused against the network, naming file and weight', () => {
    const real = JSON.parse(fs.readFileSync(manifestOf('face_recognition_model'), 'utf8')) as Manifest;
    const variants: [string, (w: tf.io.WeightsManifestEntry) => number[] | undefined, RegExp][] = [
      ['conv permuted', (w) => (w.name === 'conv32_down/conv/filters' ? [3, 32, 7, 7] : undefined), /'conv32_down\/conv\/filters'.*expects \[32,3,7,7\].*holds \[7,7,3,32\]/],
      ['fc transposed', (w) => (w.name === 'fc' ? [128, 256] : undefined), /'fc'.*expects \[128,256\].*holds \[256,128\]/],
      ['vector as column', (w) => (w.name === 'conv32_down/scale/biases' ? [32, 1] : undefined), /'conv32_down\/scale\/biases'.*expects \[32\].*holds \[1,32\]/],
    ];
    for (const [label, reshape, re] of variants) {
      const d = fs.mkdtempSync(path.join(dir, 'layout-'));
      const m = real.map((g) => ({ paths: g.paths.map((p) => path.relative(d, path.join(modelDir, p))), weights: g.weights.map((w) => ({ ...w, shape: reshape(w) ?? w.shape })) }));
      fs.writeFileSync(path.join(d, 'face_recognition_model-weights_manifest.json'), JSON.stringify(m));
      expect(loadTfjsWeights(path.join(d, 'face_recognition_model-weights_manifest.json')).size).toBe(117); // the manifest alone is consistent
      let err: unknown;
      try { loadFaceRecognizerParams(d); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(FaceWeightsError);
      expect((err as Error).message).toMatch(re);
      expect((err as Error).message).toContain(d);
      console.log(`${label}: ${(err as Error).message}`);
    }
    expect(loadFaceRecognizerParams().size).toBe(117);
  });
});
