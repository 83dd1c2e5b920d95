/** Detection, landmarks, alignment and descriptor for sample1.jpg (three faces) against face-api's
 * detectAllFaces(ssd).withFaceLandmarks().withFaceDescriptors(). One photo only: on the float64 reference
 * evaluator one SSD forward at 512×512 takes minutes (see models/face/README.md); the compiled CPU back end
 * will make this cheap enough for all six demo photos. Landmarks and the descriptor: largest face only. */
import { beforeAll, describe, expect, it } from '@jest/globals';
import path from 'node:path';
import { decodeImage } from '../../models/io/image';
import { createFaceEmbedder } from '../../models/face/embedder';
import type { Detection } from '../../models/face/detector';
import { faceApi, type OracleFace } from './oracle';

const img = decodeImage(path.resolve('node_modules/@vladmandic/face-api/demo/sample1.jpg'));
const embedder = createFaceEmbedder({ maxFaces: 1 });
const area = (b: readonly number[]) => b[2]! * b[3]!;
let oracle: OracleFace[];
let ours: Detection[];

beforeAll(() => {
  oracle = faceApi<{ faces: OracleFace[] }>('pipeline', img).faces.sort((a, b) => area(b.box) - area(a.box));
  ours = embedder.detect(img);
}, 900_000);

describe('face pipeline vs face-api on sample1.jpg', () => {
  it('finds the same faces: boxes within 2 px, scores within 1e-3', () => {
    expect(ours.length).toBe(oracle.length);
    oracle.forEach((o, i) => {
      const d = ours[i]!;
      const dBox = Math.max(...o.box.map((v, k) => Math.abs(v - d.box[k]!)));
      console.log(`face ${i}: box Δ ${dBox.toFixed(4)} px, score ${d.score.toFixed(5)} vs ${o.score.toFixed(5)}`);
      expect(dBox).toBeLessThanOrEqual(2);
      expect(Math.abs(d.score - o.score)).toBeLessThanOrEqual(1e-3);
    });
  });

  it('largest face: landmarks within 1 px, the same aligned box, the same descriptor', () => {
    const [f] = embedder.embedDetections(img, ours.slice(0, 1)).faces;
    const o = oracle[0]!;
    const dLm = Math.max(...o.landmarks.map(([x, y], k) => Math.hypot(x! - f!.landmarks[k]![0], y! - f!.landmarks[k]![1])));
    const dAlign = Math.max(...o.alignedRect.map((v, k) => Math.abs(v - f!.alignedBox[k]!)));
    let dot = 0, na = 0, nb = 0;
    o.descriptor.forEach((v, k) => { dot += v * f!.descriptor[k]!; na += v * v; nb += f!.descriptor[k]! ** 2; });
    const cos = dot / Math.sqrt(na * nb);
    console.log(`largest face: landmarks max Δ ${dLm.toFixed(4)} px, aligned box Δ ${dAlign}, descriptor cosine ${cos.toFixed(8)}`);
    expect(dLm).toBeLessThanOrEqual(1);
    expect(dAlign).toBeLessThanOrEqual(1);
    expect(cos).toBeGreaterThanOrEqual(0.9999);
    expect(f!.landmarks5).toHaveLength(5);
  }, 900_000);
});
