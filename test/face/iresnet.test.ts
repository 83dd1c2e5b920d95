/** The ONNX reader (models/io/onnx.ts), the IResNet (models/face/iresnet.ts) with its weights from ONNX
 * (iresnetOnnx.ts), and the 5-point alignment (align.ts), against test/fixtures/face/ (generate.py, run once:
 * a tiny-width arcface_torch IResNet exported by torch.onnx.export, its outputs in float64, skimage's Umeyama). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile, evaluate, input } from '../../compiler/index';
import { readSafetensors } from '../../models/io/safetensors';
import { OnnxFormatError, OnnxGraphError, OnnxMissingInitializerError, OnnxTensorError, OnnxTruncatedError, openOnnx, parseOnnx } from '../../models/io/onnx';
import { iresnetGraph, IRESNET100, type IResNetConfig } from '../../models/face/iresnet';
import { loadIResNetOnnx } from '../../models/face/iresnetOnnx';
import { AlignmentError, arcfaceInput, arcfaceTransform, similarityTransform, warpAffine } from '../../models/face/align';
import { FrozenParams } from '../../models/face/layers';
import { fullTest } from '../support/full';

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/face');
const FOLDED = path.join(FIX, 'iresnet_tiny.onnx'), UNFOLDED = path.join(FIX, 'iresnet_tiny_bn.onnx');
const ref = readSafetensors(path.join(FIX, 'iresnet_tiny.safetensors')).tensors;
const arr = (k: string) => Float64Array.from(ref.get(k)!.data as ArrayLike<number>);
const TINY: IResNetConfig = { stem: 4, widths: [4, 8, 8, 16], layers: [1, 2, 1, 1], embedding: 8 };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-onnx-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const maxRel = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0, m = 0;
  for (let i = 0; i < b.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); m = Math.max(m, Math.abs(b[i])); }
  return d / m;
};
const spec = (c: IResNetConfig) => ({ outputs: { embedding: iresnetGraph(input('image', [1, 3, 112, 112]), c) } });

describe('ONNX reader on files written by torch.onnx.export', () => {
  test('initializers: names, dims, float32 values; nodes with op types and attributes', () => {
    const m = openOnnx(UNFOLDED);
    const w = m.initializers.get('conv1.weight')!;
    expect(w).toMatchObject({ dims: [4, 3, 3, 3], dtype: 'float32', size: 108 });
    expect(m.read('conv1.weight').length).toBe(108);
    expect(m.initializers.get('layer1.0.bn1.running_var')!.dims).toEqual([4]);
    expect(m.nodes[0].opType).toBe('Conv');
    expect(m.nodes[0].attributes.get('strides')).toEqual([1, 1]);
    expect(m.nodes[0].attributes.get('pads')).toEqual([1, 1, 1, 1]);
    expect(m.nodes.find((n) => n.opType === 'Gemm')!.attributes.get('transB')).toBe(1);
    expect(m.nodes.find((n) => n.opType === 'BatchNormalization')!.attributes.get('epsilon')).toBeCloseTo(1e-5, 10);
  });

  test('a truncated file is OnnxTruncatedError at every cut; a non-ONNX file OnnxFormatError', () => {
    const bytes = fs.readFileSync(FOLDED);
    let truncated = 0;
    for (const cut of [1, 7, 100, 1000, 20000, bytes.length >> 1, bytes.length - 300, bytes.length - 1]) {
      try { parseOnnx(bytes.subarray(0, cut), 'cut.onnx'); } catch (e) {
        if (e instanceof OnnxTruncatedError) truncated++;
        else expect(e).toBeInstanceOf(OnnxFormatError); // cut at a field boundary: the graph is missing or ends early
        continue;
      }
      throw new Error(`cut at ${cut} parsed`);
    }
    expect(truncated).toBeGreaterThanOrEqual(6);
    expect(() => parseOnnx(Buffer.from('not an onnx model at all'), 'x.onnx')).toThrow(/x\.onnx/);
    expect(() => parseOnnx(Buffer.from([0x0b, 0x00]), 'g.onnx')).toThrow(OnnxFormatError); // wire type 3 (group)
    expect(() => parseOnnx(Buffer.alloc(0), 'empty.onnx')).toThrow(/no graph/);
  });

  test('hand-built tensors: raw_data of the wrong size, external data, a string tensor are OnnxTensorErrors; float_data and float16 in raw_data or int32_data decode', () => {
    // A hand-built ModelProto: graph { initializer { dims: 2, data_type: FLOAT, name: "w", raw_data: 4 bytes } }.
    const str = (f: number, b: Buffer) => Buffer.concat([Buffer.from([f << 3 | 2, b.length]), b]);
    const tensor = Buffer.concat([Buffer.from([1 << 3, 2, 2 << 3, 1]), str(8, Buffer.from('w')), str(9, Buffer.alloc(4))]);
    const model = str(7, str(5, tensor));
    expect(() => parseOnnx(model, 'bad.onnx')).toThrow(OnnxTensorError);
    expect(() => parseOnnx(model, 'bad.onnx')).toThrow(/"w".*raw_data holds 4 bytes.*needs 8/);
    const ok = str(7, str(5, Buffer.concat([Buffer.from([1 << 3, 1, 2 << 3, 1]), str(8, Buffer.from('w')), str(9, Buffer.from(new Float32Array([1.5]).buffer))])));
    expect([...parseOnnx(ok).read('w')]).toEqual([1.5]);
    const f16 = str(7, str(5, Buffer.concat([Buffer.from([1 << 3, 2, 2 << 3, 10]), str(8, Buffer.from('h')), str(9, Buffer.from([0x00, 0x3c, 0x00, 0xc0]))])));
    expect([...parseOnnx(f16).read('h')]).toEqual([1, -2]);
    // float_data (packed, field 4) instead of raw_data.
    const fd = str(7, str(5, Buffer.concat([Buffer.from([1 << 3, 2, 2 << 3, 1]), str(8, Buffer.from('f')), str(4, Buffer.from(new Float32Array([0.25, -3]).buffer))])));
    expect([...parseOnnx(fd).read('f')]).toEqual([0.25, -3]);
    // float16 as int32_data (packed varints of the bit patterns), as ONNX stores it without raw_data.
    const varints = Buffer.from([0x80, 0x78, 0x80, 0x80, 0x03]); // 0x3c00 (1), 0xc000 (-2)
    const f16i = str(7, str(5, Buffer.concat([Buffer.from([1 << 3, 2, 2 << 3, 10]), str(8, Buffer.from('i')), str(5, varints)])));
    expect([...parseOnnx(f16i).read('i')]).toEqual([1, -2]);
    // External data (data_location = 1) and an unknown data type: named refusals.
    const ext = str(7, str(5, Buffer.concat([Buffer.from([1 << 3, 1, 2 << 3, 1]), str(8, Buffer.from('e')), Buffer.from([14 << 3, 1])])));
    expect(() => parseOnnx(ext, 'ext.onnx')).toThrow(/"e".*external data/);
    const str8 = str(7, str(5, Buffer.concat([Buffer.from([1 << 3, 1, 2 << 3, 8]), str(8, Buffer.from('s'))])));
    expect(() => parseOnnx(str8, 's.onnx')).toThrow(OnnxTensorError);
  });

  test('an ONNX file without the IResNet initializers: OnnxMissingInitializerError naming them', () => {
    const bytes = fs.readFileSync(FOLDED);
    // Rename one initializer in place (same length), so the node that reads it finds nothing.
    const m = openOnnx(FOLDED);
    const victim = m.nodes.find((n) => n.opType === 'PRelu')!.inputs[1];
    const at = bytes.indexOf(Buffer.from(victim));
    const at2 = bytes.indexOf(Buffer.from(victim), at + 1);
    const patched = Buffer.from(bytes);
    // The initializer's own name is the occurrence inside the initializer list (after the nodes): rename that one.
    patched.write('Z'.repeat(victim.length), at2 > 0 ? at2 : at);
    const p = path.join(dir, 'renamed.onnx');
    fs.writeFileSync(p, patched);
    let err: unknown;
    try { loadIResNetOnnx(p); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(OnnxMissingInitializerError);
    expect((err as OnnxMissingInitializerError).missing).toEqual([victim]);
    expect(String(err)).toContain(victim);
    expect(() => openOnnx(p).require(['conv1.weight', victim], 'test')).toThrow(OnnxMissingInitializerError);
  });

  test('a graph that is not an IResNet, or another config than asked for: OnnxGraphError', () => {
    expect(() => loadIResNetOnnx(FOLDED, IRESNET100)).toThrow(OnnxGraphError);
    expect(() => loadIResNetOnnx(FOLDED, IRESNET100)).toThrow(/"layers":\[1,2,1,1\]/);
  });
});

describe('IResNet from ONNX', () => {
  test('config read off the graph; folded and unfolded exports give the same network', () => {
    const a = loadIResNetOnnx(FOLDED), b = loadIResNetOnnx(UNFOLDED, TINY);
    expect(a.config).toEqual(TINY);
    expect([...a.params.keys()].sort()).toEqual([...b.params.keys()].sort());
    const declared = new FrozenParams();
    iresnetGraph(input('x', [1, 3, 112, 112]), TINY, declared);
    expect([...declared.declared.keys()].sort()).toEqual([...a.params.keys()].sort());
  });

  test('float64 evaluator vs the exported file run in float64 and vs the PyTorch module: ≤ 1e-6 relative', () => {
    const image = arr('image');
    const folded = evaluate(spec(TINY), { image }, loadIResNetOnnx(FOLDED).params).outputs.embedding.data;
    const rel = maxRel(folded, arr('onnx_f64'));
    const unfolded = evaluate(spec(TINY), { image }, loadIResNetOnnx(UNFOLDED).params).outputs.embedding.data;
    const relTorch = maxRel(unfolded, arr('torch_f64'));
    console.log(`iresnet tiny f64: folded file vs ONNX f64 ${rel.toExponential(2)}, BN-kept file vs torch f64 ${relTorch.toExponential(2)}`);
    expect(rel).toBeLessThanOrEqual(1e-6);
    expect(relTorch).toBeLessThanOrEqual(1e-6);
    expect(maxRel(folded, arr('torch_f64'))).toBeGreaterThan(0); // the two references differ (the exporter folded in f32)
  });

  // The compile takes ≈ 45 s cold on the shared 2 cores: the full run only.
  fullTest('compiled f32 vs the float64 reference: ≤ 1e-4 relative', async () => {
    const program = await compile(spec(TINY));
    program.loadParams(loadIResNetOnnx(FOLDED).params, { strict: true });
    const out = program.run({ image: Float32Array.from(arr('image')) }).embedding;
    const rel = maxRel(out, arr('onnx_f64'));
    console.log(`iresnet tiny compiled f32 vs ONNX f64: ${rel.toExponential(2)}`);
    expect(rel).toBeLessThanOrEqual(1e-4);
  });
});

describe('5-point alignment', () => {
  test('similarity transform equals skimage (Umeyama) on both determinant branches', () => {
    for (const [src, m] of [['align_src', 'align_M'], ['align_src_mirrored', 'align_M_mirrored']]) {
      const s = arr(src), want = arr(m);
      const pts = [0, 1, 2, 3, 4].map((i) => [s[2 * i], s[2 * i + 1]] as const);
      const got = arcfaceTransform(pts);
      for (let i = 0; i < 6; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-9 * Math.max(1, Math.abs(want[i])));
    }
    expect(() => similarityTransform([[1, 1], [1, 1]], [[0, 0], [1, 1]])).toThrow(AlignmentError);
    expect(() => arcfaceTransform([[1, 1]])).toThrow(AlignmentError);
  });

  test('warp: a pure translation by whole pixels moves pixels exactly, outside is 0', () => {
    const img = { width: 4, height: 3, channels: 3, data: Uint8Array.from({ length: 36 }, (_, i) => i * 7) };
    const out = warpAffine(img, [1, 0, 1, 0, 1, 2], 4, 3); // dst(x, y) = src(x − 1, y − 2)
    expect(out[((2 * 4) + 1) * 3 + 1]).toBe(img.data[1]);
    expect(out[0]).toBe(0);
    const half = warpAffine(img, [1, 0, 0.5, 0, 1, 0], 4, 3); // dst(1, 0) = mean of src(0, 0) and src(1, 0)
    expect(half[3]).toBeCloseTo((img.data[0] + img.data[3]) / 2, 12);
    const face = arcfaceInput({ width: 8, height: 8, channels: 3, data: new Uint8Array(192).fill(200) }, [[2, 2], [5, 2], [3.5, 4], [2.5, 6], [4.5, 6]]);
    expect(face.length).toBe(3 * 112 * 112);
    expect(face[56 * 112 + 56]).toBe(200);
  });
});
