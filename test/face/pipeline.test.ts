/** The whole pipeline on the compiled CPU back end (float32) against face-api's
 * detectAllFaces(ssd).withFaceLandmarks().withFaceDescriptors() (tfjs-backend-wasm, float32) on all six demo
 * photos: the same faces, boxes within 2 px, scores within 1e-3, 68 landmarks within 1 px, the same aligned
 * box (±1 px), descriptor cosine ≥ 0.9999 for every face. One oracle process for the six photos (≈ 20 s). */
import { beforeAll, describe, expect, it } from '@jest/globals';
import path from 'node:path';
import { decodeImage, type Image } from '../../models/io/image';
import { createFaceEmbedder, type EmbeddedFace } from '../../models/face/embedder';
import { faceApi, type OracleFace } from './oracle';

// libgomp's default active wait costs 10–30× per kernel on a shared, busy machine (read when it loads).
process.env.OMP_WAIT_POLICY ??= 'passive';

const PHOTOS = [1, 2, 3, 4, 5, 6].map((k) => `sample${k}.jpg`);
const demo = path.resolve('node_modules/@vladmandic/face-api/demo');
const cosine = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { d += a[i]! * b[i]!; na += a[i]! ** 2; nb += b[i]! ** 2; }
  return d / Math.sqrt(na * nb);
};
const boxDelta = (a: readonly number[], b: readonly number[]) => Math.max(...a.map((v, k) => Math.abs(v - b[k]!)));

let images: Image[];
let oracle: OracleFace[][];
let ours: EmbeddedFace[][];

beforeAll(async () => {
  let t = performance.now();
  const lap = (what: string) => { const now = performance.now(); console.log(`${what}: ${((now - t) / 1000).toFixed(1)} s`); t = now; };
  images = PHOTOS.map((p) => decodeImage(path.join(demo, p)));
  lap('decode');
  oracle = faceApi<{ faces: OracleFace[] }[]>('pipeline', images).map((r) => r.faces);
  lap('oracle');
  const embedder = await createFaceEmbedder();
  lap('embedder');
  ours = images.map((img) => embedder.embed(img).faces);
  lap('embed');
}, 300_000);

describe('face pipeline (compiled CPU) vs face-api on the six demo photos', () => {
  it.each(PHOTOS.map((p, i) => [p, i] as const))('%s: same faces, boxes, scores, landmarks, aligned boxes, descriptors', (photo, i) => {
    const theirs = oracle[i]!, mine = ours[i]!;
    expect(mine.length).toBe(theirs.length);
    expect(mine.length).toBeGreaterThan(0);
    const lines: string[] = [];
    for (const o of theirs) {
      // Pair each face-api face with the nearest Kiln box (both lists are sorted by area, but near-ties may swap).
      const f = mine.reduce((best, m) => (boxDelta(m.box, o.box) < boxDelta(best.box, o.box) ? m : best));
      const dBox = boxDelta(f.box, o.box);
      const dScore = Math.abs(f.score - o.score);
      const dLm = Math.max(...o.landmarks.map(([x, y], k) => Math.hypot(x! - f.landmarks[k]![0], y! - f.landmarks[k]![1])));
      const dAlign = boxDelta(f.alignedBox, o.alignedRect);
      const cos = cosine(f.descriptor, o.descriptor);
      lines.push(`  box Δ ${dBox.toFixed(4)} px, score Δ ${dScore.toExponential(1)}, landmarks Δ ${dLm.toFixed(4)} px, aligned Δ ${dAlign}, cosine ${cos.toFixed(8)} (1 − cos ${(1 - cos).toExponential(1)})`);
      expect(dBox).toBeLessThanOrEqual(2);
      expect(dScore).toBeLessThanOrEqual(1e-3);
      expect(dLm).toBeLessThanOrEqual(1);
      expect(dAlign).toBeLessThanOrEqual(1);
      expect(cos).toBeGreaterThanOrEqual(0.9999);
      expect(f.landmarks5).toHaveLength(5);
    }
    console.log(`${photo}: ${theirs.length} faces\n${lines.join('\n')}`);
  });
});
