/**
 * face-api's 68-point landmark net (src/faceLandmarkNet/FaceLandmark68Net.ts over
 * src/faceFeatureExtractor/FaceFeatureExtractor.ts) in Kiln's DSL, plus the host-side geometry face-api
 * applies around it: landmark post-processing, the dlib-style aligned face box the recognizer is fed from,
 * and the 5 points (eye centres, nose tip, mouth corners) PuLID aligns with.
 *
 * Graph: face crop [N, 3, 112, 112] in 0..255 (padded to square, centred; see landmarkInput) →
 * (x − meanRGB) / 255 → 4 dense blocks (dense0: 3×3/2 conv, dense1..3: separable 3×3/2; then 3 separable
 * 3×3 convs each, with dense connections and ReLUs) 112 → 56 → 28 → 14 → 7 → avgPool 7×7/2 → fc 256 → 136.
 * Output: [N, 136] = (x, y) pairs relative to the 112 square.
 */
import { avgPool2d, constant, conv2d, linear, type Tensor } from '../../compiler/index';
import { faceApiNetInput, type Image } from '../io/image';
import { channelwise, depthwise, FrozenParams } from './layers';
import { RECOGNIZER_MEAN_RGB } from './recognizer';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export const LANDMARK_INPUT_SIZE = 112;
export type Point = [number, number];

/** tf.separableConv2d(x, depthwise [3,3,C,1], pointwise [1,1,C,O], stride, 'same') + bias. */
function separable(p: FrozenParams, x: Tensor, prefix: string, out: number, stride: number): Tensor {
  const d = depthwise(p, x, `${prefix}/depthwise_filter`, 3, stride);
  return conv2d(d, p.get(`${prefix}/pointwise_filter`, [out, x.shape[1], 1, 1]), p.get(`${prefix}/bias`, [out]));
}

function denseBlock4(p: FrozenParams, x: Tensor, prefix: string, out: number, first: boolean): Tensor {
  const out1 = (first
    ? conv2d(x, p.get(`${prefix}/conv0/filters`, [out, x.shape[1], 3, 3]), p.get(`${prefix}/conv0/bias`, [out]), { stride: 2, padding: 'same' })
    : separable(p, x, `${prefix}/conv0`, out, 2)).relu();
  const out2 = separable(p, out1, `${prefix}/conv1`, out, 1);
  const out3 = separable(p, out2.add(out1).relu(), `${prefix}/conv2`, out, 1);
  const out4 = separable(p, out1.add(out2.add(out3)).relu(), `${prefix}/conv3`, out, 1);
  return out1.add(out2.add(out3.add(out4))).relu();
}

/** The landmark graph: [N, 3, 112, 112] 0..255 → [N, 136] relative (x, y) pairs. */
export function faceLandmarkGraph(faces: Tensor, params = new FrozenParams()): Tensor {
  let x = faces.sub(constant(RECOGNIZER_MEAN_RGB, [3, 1, 1], faces.dtype)).div(255);
  x = denseBlock4(params, x, 'dense0', 32, true);
  x = denseBlock4(params, x, 'dense1', 64, false);
  x = denseBlock4(params, x, 'dense2', 128, false);
  x = denseBlock4(params, x, 'dense3', 256, false);
  const pooled = avgPool2d(x, 7, 2).reshape([faces.shape[0], -1]);
  return linear(pooled, params.get('fc/weights', [136, 256]), params.get('fc/bias', [136]));
}

/** Planar [3, S, S] float input from an HWC image as face-api's toBatchTensor(S, centred) builds it. */
export function planarNetInput(img: Image<Uint8Array | Float32Array>, size: number, centred = true): Float32Array {
  const sq = faceApiNetInput(img, size, centred);
  const n = size * size;
  const out = new Float32Array(3 * n);
  for (let q = 0; q < n; q++) for (let c = 0; c < 3; c++) out[c * n + q] = sq.data[q * 3 + c]!;
  return out;
}

export const landmarkInput = (crop: Image<Uint8Array | Float32Array>): Float32Array => planarNetInput(crop, LANDMARK_INPUT_SIZE);

/** FaceLandmark68NetBase.postProcess + FaceLandmarks: net output (136 values) on a crop of w × h pixels →
 * 68 points in crop pixels, then shifted by (shiftX, shiftY) (face-api shifts by the detection box's
 * unrounded corner). */
export function landmarkPoints(out: ArrayLike<number>, w: number, h: number, shiftX = 0, shiftY = 0): Point[] {
  const s = LANDMARK_INPUT_SIZE / M.max(w, h);
  const sw = w * s, sh = h * s;
  const padX = sw < sh ? M.abs(sw - sh) / 2 : 0, padY = sh < sw ? M.abs(sw - sh) / 2 : 0;
  const pts: Point[] = [];
  for (let i = 0; i < 68; i++) {
    const rx = (out[2 * i]! * LANDMARK_INPUT_SIZE - padX) / sw, ry = (out[2 * i + 1]! * LANDMARK_INPUT_SIZE - padY) / sh;
    pts.push([rx * w + shiftX, ry * h + shiftY]);
  }
  return pts;
}

const centre = (pts: readonly Point[]): Point => [pts.reduce((a, p) => a + p[0], 0) / pts.length, pts.reduce((a, p) => a + p[1], 0) / pts.length];

/** FaceLandmarks.alignDlib: the square face box the recognizer crops, from the eye and mouth centres.
 * `cropW`, `cropH` are the landmark crop's size (face-api caps the box with them, oddly but faithfully). */
export function alignedFaceBox(pts: readonly Point[], cropW: number, cropH: number): [number, number, number, number] {
  const refs = [centre(pts.slice(36, 42)), centre(pts.slice(42, 48)), centre(pts.slice(48, 68))];
  const [le, re, mouth] = refs;
  const dist = (a: Point) => M.hypot(mouth[0] - a[0], mouth[1] - a[1]);
  const size = M.floor((dist(le) + dist(re)) / 2 / 0.45);
  const c = centre(refs);
  const x = M.floor(M.max(0, c[0] - 0.5 * size)), y = M.floor(M.max(0, c[1] - 0.43 * size));
  return [x, y, M.min(size, cropW + x), M.min(size, cropH + y)];
}

/** The 5 points PuLID / insightface align with, in image order: eye centres (image-left first), nose tip,
 * mouth corners (image-left first). From the 68-point iBUG layout: eyes 36–41 / 42–47, nose tip 30,
 * mouth corners 48 / 54. */
export function fivePoints(pts: readonly Point[]): Point[] {
  return [centre(pts.slice(36, 42)), centre(pts.slice(42, 48)), pts[30]!, pts[48]!, pts[54]!];
}
