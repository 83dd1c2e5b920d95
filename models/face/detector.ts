/**
 * face-api's SSD MobileNet v1 face detector (src/ssdMobilenetv1/) in Kiln's DSL, with box decoding and
 * non-maximum suppression on the host, as face-api does them.
 *
 * Graph: image [1, 3, 512, 512] in 0..255 (the padded, resized input; see detectorInput) → x/127.5 − 1 →
 * MobileNet v1 (conv_0 3×3/2, then 13 depthwise 3×3 + batch norm + ReLU6 / pointwise 1×1 + ReLU6 pairs,
 * stride 2 at pairs 2, 4, 6, 12) → 8 extra pointwise layers → 6 box predictors (on conv_11, the trunk output
 * and 4 extra maps: 32², 16², 8², 4², 2², 1² cells × 3 or 6 anchors = 5118 boxes).
 * Outputs: `boxes` [1, 5118, 4] raw box encodings, `scores` [1, 5118] face probabilities.
 */
import { concat, type Tensor } from '../../compiler/index';
import { faceApiNetInput, type Image } from '../io/image';
import { channelwise, convBias, depthwise, FrozenParams, relu6 } from './layers';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export const DETECTOR_INPUT_SIZE = 512;
const BN_EPS = 0.0010000000474974513;

/** pointwiseConvLayer: conv (1×1 or 3×3, 'same') + batch-norm offset, ReLU6. */
function pointwise(p: FrozenParams, x: Tensor, prefix: string, out: number, stride: number, k = 1): Tensor {
  return relu6(convBias(p, x, `${prefix}/weights`, `${prefix}/convolution_bn_offset`, out, k, stride, 'same'));
}

/** depthwiseConvLayer: depthwise 3×3 'same', tf.batchNorm (moving statistics), ReLU6. */
function depthwiseBn(p: FrozenParams, x: Tensor, prefix: string, stride: number): Tensor {
  const c = x.shape[1];
  const y = depthwise(p, x, `${prefix}/depthwise_weights`, 3, stride);
  const v = (n: string) => channelwise(p.get(`${prefix}/BatchNorm/${n}`, [c]));
  // tfjs batchNorm: (x − mean) · rsqrt(var + eps) · scale + offset
  return relu6(y.sub(v('moving_mean')).mul(v('moving_variance').add(BN_EPS).rsqrt()).mul(v('gamma')).add(v('beta')));
}

const PAIR_OUT = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024];

function mobileNetV1(p: FrozenParams, x: Tensor): { out: Tensor; conv11: Tensor } {
  let out = pointwise(p, x, 'MobilenetV1/Conv2d_0_pointwise', 32, 2, 3);
  let conv11 = out;
  PAIR_OUT.forEach((c, i) => {
    const idx = i + 1;
    out = depthwiseBn(p, out, `MobilenetV1/Conv2d_${idx}_depthwise`, [2, 4, 6, 12].includes(idx) ? 2 : 1);
    out = pointwise(p, out, `MobilenetV1/Conv2d_${idx}_pointwise`, c, 1);
    if (idx === 11) conv11 = out;
  });
  return { out, conv11 };
}

/** NCHW conv output [1, A·k, H, W] → [1, H·W·A, k]: tfjs's NHWC reshape order (cell-major, then anchor). */
const cellsFirst = (y: Tensor, k: number): Tensor => y.permute([0, 2, 3, 1]).reshape([y.shape[0], -1, k]);

function boxPredictor(p: FrozenParams, x: Tensor, i: number): { box: Tensor; cls: Tensor } {
  const anchors = i === 0 ? 3 : 6;
  const pre = `Prediction/BoxPredictor_${i}`;
  const box = convBias(p, x, `${pre}/BoxEncodingPredictor/weights`, `${pre}/BoxEncodingPredictor/biases`, anchors * 4, 1, 1, 'same');
  const cls = convBias(p, x, `${pre}/ClassPredictor/weights`, `${pre}/ClassPredictor/biases`, anchors * 3, 1, 1, 'same');
  return { box: cellsFirst(box, 4), cls: cellsFirst(cls, 3) };
}

/** The detector graph. `image` [1, 3, 512, 512], 0..255. */
export function faceDetectorGraph(image: Tensor, params = new FrozenParams()): { boxes: Tensor; scores: Tensor } {
  const x = image.div(127.5).sub(1);
  const { out, conv11 } = mobileNetV1(params, x);
  const c0 = pointwise(params, out, 'Prediction/Conv2d_0_pointwise', 256, 1);
  const c1 = pointwise(params, c0, 'Prediction/Conv2d_1_pointwise', 512, 2, 3);
  const c2 = pointwise(params, c1, 'Prediction/Conv2d_2_pointwise', 128, 1);
  const c3 = pointwise(params, c2, 'Prediction/Conv2d_3_pointwise', 256, 2, 3);
  const c4 = pointwise(params, c3, 'Prediction/Conv2d_4_pointwise', 128, 1);
  const c5 = pointwise(params, c4, 'Prediction/Conv2d_5_pointwise', 256, 2, 3);
  const c6 = pointwise(params, c5, 'Prediction/Conv2d_6_pointwise', 64, 1);
  const c7 = pointwise(params, c6, 'Prediction/Conv2d_7_pointwise', 128, 2, 3);
  const preds = [conv11, out, c1, c3, c5, c7].map((f, i) => boxPredictor(params, f, i));
  const boxes = concat(preds.map((q) => q.box), 1);
  const cls = concat(preds.map((q) => q.cls), 1);
  return { boxes, scores: cls.narrow(2, 1, 1).sigmoid().reshape([cls.shape[0], cls.shape[1]]) };
}

/** The detector's input as face-api builds it: padToSquare (not centred: padding right/bottom), bilinear
 * resize to 512, HWC → CHW. Returns the planar float image and the padded square's side. */
export function detectorInput(img: Image<Uint8Array | Float32Array>): Float32Array {
  const sq = faceApiNetInput(img, DETECTOR_INPUT_SIZE, false);
  const n = DETECTOR_INPUT_SIZE * DETECTOR_INPUT_SIZE;
  const out = new Float32Array(3 * n);
  for (let p = 0; p < n; p++) for (let c = 0; c < 3; c++) out[c * n + p] = sq.data[p * 3 + c]!;
  return out;
}

export interface Detection {
  /** [x, y, width, height] in image pixels. */
  readonly box: [number, number, number, number];
  readonly score: number;
}

/** outputLayer's decodeBoxesLayer: anchors [n·4] (ymin, xmin, ymax, xmax) and encodings [n·4] → boxes
 * [n·4] as (ymin, xmin, ymax, xmax) in the square input's relative units. */
export function decodeBoxes(anchors: ArrayLike<number>, enc: ArrayLike<number>): Float64Array {
  const n = enc.length / 4;
  const out = new Float64Array(n * 4);
  for (let i = 0; i < n; i++) {
    const [a0, a1, a2, a3] = [anchors[4 * i]!, anchors[4 * i + 1]!, anchors[4 * i + 2]!, anchors[4 * i + 3]!];
    const s0 = a2 - a0, s1 = a3 - a1, c0 = a0 + s0 / 2, c1 = a1 + s1 / 2;
    const h2 = (M.exp(enc[4 * i + 2]! / 5) * s0) / 2, cy = (enc[4 * i]! / 10) * s0 + c0;
    const w2 = (M.exp(enc[4 * i + 3]! / 5) * s1) / 2, cx = (enc[4 * i + 1]! / 10) * s1 + c1;
    out.set([cy - h2, cx - w2, cy + h2, cx + w2], 4 * i);
  }
  return out;
}

function iou(b: ArrayLike<number>, i: number, j: number): number {
  const [y0i, x0i, y1i, x1i] = [M.min(b[4 * i]!, b[4 * i + 2]!), M.min(b[4 * i + 1]!, b[4 * i + 3]!), M.max(b[4 * i]!, b[4 * i + 2]!), M.max(b[4 * i + 1]!, b[4 * i + 3]!)];
  const [y0j, x0j, y1j, x1j] = [M.min(b[4 * j]!, b[4 * j + 2]!), M.min(b[4 * j + 1]!, b[4 * j + 3]!), M.max(b[4 * j]!, b[4 * j + 2]!), M.max(b[4 * j + 1]!, b[4 * j + 3]!)];
  const ai = (y1i - y0i) * (x1i - x0i), aj = (y1j - y0j) * (x1j - x0j);
  if (ai <= 0 || aj <= 0) return 0;
  const inter = M.max(M.min(y1i, y1j) - M.max(y0i, y0j), 0) * M.max(M.min(x1i, x1j) - M.max(x0i, x0j), 0);
  return inter / (ai + aj - inter);
}

/** face-api's ssdMobilenetv1 nonMaxSuppression (greedy, by descending score): indices kept. */
export function nonMaxSuppression(boxes: ArrayLike<number>, scores: ArrayLike<number>, maxOut: number, iouThreshold: number, scoreThreshold: number): number[] {
  const order = Array.from(scores, (s, i) => ({ s, i })).filter((c) => c.s > scoreThreshold).sort((a, b) => b.s - a.s);
  const selected: number[] = [];
  for (const c of order) {
    if (selected.length >= M.min(maxOut, scores.length)) break;
    if (!selected.some((j) => iou(boxes, c.i, j) > iouThreshold)) selected.push(c.i);
  }
  return selected;
}

export interface DetectOptions { minConfidence?: number; maxResults?: number }

/** locateFaces' post-processing: decode, NMS (IoU 0.5), clip to [0, 1], undo the padding, scale to pixels. */
export function postprocessDetections(encodings: ArrayLike<number>, scores: ArrayLike<number>, anchors: ArrayLike<number>, width: number, height: number, opts: DetectOptions = {}): Detection[] {
  const boxes = decodeBoxes(anchors, encodings);
  const keep = nonMaxSuppression(boxes, scores, opts.maxResults ?? 100, 0.5, opts.minConfidence ?? 0.5);
  // computeReshapedDimensions: the image's size inside the 512 square, rounded.
  const scale = DETECTOR_INPUT_SIZE / M.max(width, height);
  const padX = DETECTOR_INPUT_SIZE / M.round(width * scale), padY = DETECTOR_INPUT_SIZE / M.round(height * scale);
  return keep.map((i) => {
    const top = M.max(0, boxes[4 * i]!) * padY, bottom = M.min(1, boxes[4 * i + 2]!) * padY;
    const left = M.max(0, boxes[4 * i + 1]!) * padX, right = M.min(1, boxes[4 * i + 3]!) * padX;
    // FaceDetection keeps the relative box and rescales it to the image.
    return { score: scores[i]!, box: [left * width, top * height, (right - left) * width, (bottom - top) * height] };
  });
}
