/** The recognizer φ against face-api's own FaceRecognitionNet on the same 150×150 input, and its gradient
 * with respect to the image against central differences, both on the float64 reference evaluator (about
 * 10 s per forward at 150×150 on an idle core; the gradient check's forward + backward + batch-2 forward
 * took 200 s on a busy 2-core machine: the tests run as few forwards as they can). */
import { describe, expect, it } from '@jest/globals';
import path from 'node:path';
import { constant, evaluate, grad, input } from '../../compiler/index';
import { crop, decodeImage, faceApiNetInput } from '../../models/io/image';
import { planarNetInput } from '../../models/face/landmarks';
import { faceRecognizerGraph, loadFaceRecognizerParams } from '../../models/face/recognizer';
import { depthwiseToOihw, hwioToOihw, kilnShape, transpose2d } from '../../models/face/weights';
import { faceApi } from './oracle';

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
  it('gives face-api\'s descriptor on an aligned crop of sample1.jpg (cosine ≥ 0.9999)', () => {
    const img = decodeImage(path.join(demo, 'sample1.jpg'));
    // The dlib-aligned box face-api computes for the first face of sample1 (see pipeline.test.ts).
    const face = faceApiNetInput(crop(img, 369, 394, 213, 213), 150);
    const ours = evaluate({ outputs: { d: faceRecognizerGraph(input('image', [1, 3, 150, 150])) } }, { image: planarNetInput(face, 150) }, loadFaceRecognizerParams()).outputs.d.data;
    const theirs = faceApi<{ descriptor: number[] }>('descriptor', face).descriptor;
    const cos = cosine(ours, theirs);
    const maxAbs = Math.max(...theirs.map((v, i) => Math.abs(v - ours[i]!)));
    console.log(`recognizer: cosine ${cos.toFixed(8)}, max |Δ| ${maxAbs.toExponential(2)}`);
    expect(cos).toBeGreaterThanOrEqual(0.9999);
  }, 600_000);
});

describe('gradient of φ with respect to the image', () => {
  it('matches central differences along a direction on a 4×4 patch (rel err ≤ 1e-4)', () => {
    const params = loadFaceRecognizerParams();
    const img = decodeImage(path.join(demo, 'sample1.jpg'));
    const x0 = planarNetInput(faceApiNetInput(crop(img, 369, 394, 213, 213), 150), 150);
    const c = Float64Array.from({ length: 128 }, (_v, i) => Math.sin(1 + 7 * i));
    const x = input('image', [1, 3, 150, 150]);
    const loss = faceRecognizerGraph(x).mul(constant(c, [1, 128])).sum();
    const [g] = grad(loss, [x]);
    const dx = evaluate({ outputs: { g } }, { image: x0 }, params).outputs.g.data;
    // Direction: ±1 on a 4×4 patch around the left eye, all 3 channels (48 pixels).
    const v = new Float64Array(x0.length);
    for (let ch = 0; ch < 3; ch++) for (let r = 60; r < 64; r++) for (let col = 50; col < 54; col++) v[(ch * 150 + r) * 150 + col] = Math.cos(ch + 3 * r + 5 * col) > 0 ? 1 : -1;
    const eps = 1e-3;
    const xb = input('image', [2, 3, 150, 150]);
    const fb = faceRecognizerGraph(xb).mul(constant(c, [1, 128])).sum(1);
    const feed = new Float64Array(2 * x0.length);
    for (let i = 0; i < x0.length; i++) { feed[i] = x0[i]! + eps * v[i]!; feed[x0.length + i] = x0[i]! - eps * v[i]!; }
    const f = evaluate({ outputs: { f: fb } }, { image: feed }, params).outputs.f.data;
    const numeric = (f[0]! - f[1]!) / (2 * eps);
    const analytic = dx.reduce((a, gi, i) => a + gi * v[i]!, 0);
    const rel = Math.abs(numeric - analytic) / Math.max(Math.abs(numeric), Math.abs(analytic));
    console.log(`φ gradient: analytic ${analytic.toExponential(6)}, numeric ${numeric.toExponential(6)}, rel err ${rel.toExponential(2)}`);
    expect(rel).toBeLessThanOrEqual(1e-4);
  }, 900_000);
});
