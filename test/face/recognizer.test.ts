/** The recognizer φ against face-api's own FaceRecognitionNet on the same 150×150 input, and its gradient
 * with respect to the image against central differences, both on the compiled CPU back end (float32). The
 * float64 reference evaluator checked both before (cosine 1.00000000, gradient rel err 1.9e-8) at 10 s per
 * forward and 200 s for the gradient check; the compiled forward takes tens of milliseconds. */
import { describe, expect, it } from '@jest/globals';
import path from 'node:path';
import { constant, grad, input } from '../../compiler/index';
import { compiledExecutor, createFaceEmbedder } from '../../models/face/embedder';
import { crop, decodeImage, faceApiNetInput } from '../../models/io/image';
import { planarNetInput } from '../../models/face/landmarks';
import { faceRecognizerGraph, loadFaceRecognizerParams } from '../../models/face/recognizer';
import { depthwiseToOihw, hwioToOihw, kilnShape, transpose2d } from '../../models/face/weights';
import { faceApi } from './oracle';

// libgomp's default active wait costs 10–30× per kernel on a shared, busy machine (read when it loads).
process.env.OMP_WAIT_POLICY ??= 'passive';

const demo = path.resolve('node_modules/@vladmandic/face-api/demo');
const cosine = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { d += a[i]! * b[i]!; na += a[i]! ** 2; nb += b[i]! ** 2; }
  return d / Math.sqrt(na * nb);
};

describe('weight layout conversion', () => {
  it('HWIO → OIHW, depthwise HWCM → [C·M,1,H,W], dense [in,out] → [out,in]', () => {
    // tfjs [kh=1, kw=2, I=2, O=3] holding its own flat index, so any index slip shows.
    const shape = [1, 2, 2, 3];
    const tf = Float32Array.from({ length: 12 }, (_v, k) => k);
    const oihw = hwioToOihw(tf, shape);
    for (let w = 0; w < 2; w++) for (let i = 0; i < 2; i++) for (let o = 0; o < 3; o++) expect(oihw[(o * 2 + i) * 2 + w]).toBe(tf[(w * 2 + i) * 3 + o]);
    const dw = depthwiseToOihw(tf, [1, 2, 3, 2]); // C = 3, M = 2
    for (let w = 0; w < 2; w++) for (let c = 0; c < 3; c++) for (let m = 0; m < 2; m++) expect(dw[(c * 2 + m) * 2 + w]).toBe(tf[(w * 3 + c) * 2 + m]);
    expect(Array.from(transpose2d([1, 2, 3, 4, 5, 6], [2, 3]))).toEqual([1, 4, 2, 5, 3, 6]);
    expect(kilnShape('a/depthwise_weights', [3, 3, 32, 1])).toEqual([32, 1, 3, 3]);
    expect(kilnShape('a/filters', [7, 7, 3, 32])).toEqual([32, 3, 7, 7]);
    expect(kilnShape('fc', [256, 128])).toEqual([128, 256]);
  });
});

describe('face recognizer vs face-api', () => {
  it('gives face-api\'s descriptor on an aligned crop of sample1.jpg (compiled, cosine ≥ 0.9999)', async () => {
    const img = decodeImage(path.join(demo, 'sample1.jpg'));
    // The dlib-aligned box face-api computes for the first face of sample1 (see pipeline.test.ts).
    const face = faceApiNetInput(crop(img, 369, 394, 213, 213), 150);
    const embedder = await createFaceEmbedder({ networks: ['recognizer'] });
    const ours = embedder.describe(planarNetInput(face, 150));
    const theirs = faceApi<{ descriptor: number[] }>('descriptor', face).descriptor;
    const cos = cosine(ours, theirs);
    const maxAbs = Math.max(...theirs.map((v, i) => Math.abs(v - ours[i]!)));
    console.log(`recognizer: cosine ${cos.toFixed(8)}, max |Δ| ${maxAbs.toExponential(2)}`);
    expect(cos).toBeGreaterThanOrEqual(0.9999);
  }, 120_000);
});

describe('gradient of φ with respect to the image (compiled)', () => {
  it('matches central differences of the compiled forward along a ±1 direction over the whole image (rel err ≤ 3e-2)', async () => {
    // Both sides in float32: the gradient graph grad(φ(x)·c, x) compiled, and (f(x + εv) − f(x − εv)) / 2ε with
    // the compiled forward. The direction covers the whole image so the difference stands well above float32
    // rounding of f (≈ 0.44); ε = 0.1 (pixels 0..255) keeps the ReLU kinks crossed few. A wrong gradient (a
    // transposed filter, a lost branch) is off by O(1); float32 rounding and curvature leave ≈ 1e-2.
    const params = loadFaceRecognizerParams();
    const img = decodeImage(path.join(demo, 'sample1.jpg'));
    const x0 = planarNetInput(faceApiNetInput(crop(img, 369, 394, 213, 213), 150), 150);
    const c = Float64Array.from({ length: 128 }, (_v, i) => Math.sin(1 + 7 * i));
    const x = input('image', [1, 3, 150, 150]);
    const f = faceRecognizerGraph(x).mul(constant(c, [1, 128])).sum();
    const [g] = grad(f, [x]);
    const [backward, forward] = await Promise.all([compiledExecutor({ outputs: { g } }, params), compiledExecutor({ outputs: { f } }, params)]);
    const dx = backward.run({ image: x0 }).g;
    const v = Float32Array.from(x0, (_x, i) => (Math.cos(1 + 3 * i + 0.001 * i * i) > 0 ? 1 : -1));
    const eps = 0.1;
    const at = (s: number) => forward.run({ image: Float32Array.from(x0, (xi, i) => xi + s * eps * v[i]!) }).f[0]!;
    const numeric = (at(1) - at(-1)) / (2 * eps);
    let analytic = 0;
    for (let i = 0; i < v.length; i++) analytic += dx[i]! * v[i]!;
    const rel = Math.abs(numeric - analytic) / Math.max(Math.abs(numeric), Math.abs(analytic));
    console.log(`φ gradient: analytic ${analytic.toExponential(6)}, numeric ${numeric.toExponential(6)}, rel err ${rel.toExponential(2)}`);
    expect(rel).toBeLessThanOrEqual(3e-2);
  }, 120_000);
});
