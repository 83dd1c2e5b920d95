/**
 * face-api's face recognition net (a dlib-style ResNet, 150×150 RGB → 128-d descriptor) in Kiln's DSL,
 * transcribed from face-api src/faceRecognitionNet/ (FaceRecognitionNet.ts, convLayer.ts, residualLayer.ts,
 * scaleLayer.ts). It is differentiable end to end, so it serves as φ in PuLID's ID loss.
 *
 *   x ∈ [0, 255], NCHW ─ (x − meanRGB) / 255
 *   conv32_down   7×7/2 valid, +bias, ×scale +shift, ReLU        150 → 72
 *   maxPool 3×3/2 valid                                          72 → 35
 *   conv32_1..3   residual (3×3 same ×2)                         35
 *   conv64_down   residual-down, + conv64_1..3                   35 → 17
 *   conv128_down  residual-down, + conv128_1..2                  17 → 8
 *   conv256_down  residual-down, + conv256_1..2                  8 → 3 (shortcut 4: see residualDown)
 *   conv256_down_out residual-down                               4 → 1 (shortcut 2)
 *   global mean over H, W → fc (256 → 128, no bias)
 */
import { avgPool2d, constant, input, linear, maxPool2d, type ParamStore, type Tensor } from '../../compiler/index';
import { channelwise, convBias, FrozenParams } from './layers';
import { checkParams, loadFaceApiParams } from './weights';

/** face-api's mean RGB for the recognizer (and the landmark net), in 0..255 units. */
export const RECOGNIZER_MEAN_RGB = [122.782, 117.001, 104.298] as const;
export const RECOGNIZER_INPUT_SIZE = 150;

/** convLayer: conv + bias, then the scale layer (x·weights + biases), then ReLU if asked. */
function convLayer(p: FrozenParams, x: Tensor, prefix: string, out: number, k: number, stride: number, relu: boolean, padding: 'same' | 'valid' = 'same'): Tensor {
  let y = convBias(p, x, `${prefix}/conv/filters`, `${prefix}/conv/bias`, out, k, stride, padding);
  y = y.mul(channelwise(p.get(`${prefix}/scale/weights`, [out]))).add(channelwise(p.get(`${prefix}/scale/biases`, [out])));
  return relu ? y.relu() : y;
}

function residual(p: FrozenParams, x: Tensor, prefix: string): Tensor {
  const c = x.shape[1];
  const y = convLayer(p, convLayer(p, x, `${prefix}/conv1`, c, 3, 1, true), `${prefix}/conv2`, c, 3, 1, false);
  return y.add(x).relu();
}

/** residualDown: a 3×3/2 valid conv on the main path, a 2×2/2 average pool on the shortcut. Where their sizes
 * differ (odd inputs: 8 → conv 3, pool 4) face-api appends one zero row and column to the main path; where
 * the channels double it appends zero channels to the shortcut. */
function residualDown(p: FrozenParams, x: Tensor, prefix: string, out: number): Tensor {
  let y = convLayer(p, convLayer(p, x, `${prefix}/conv1`, out, 3, 2, true, 'valid'), `${prefix}/conv2`, out, 3, 1, false);
  let pooled = avgPool2d(x, 2, 2);
  if (pooled.shape[2] !== y.shape[2] || pooled.shape[3] !== y.shape[3]) y = y.pad([[0, 0], [0, 0], [0, 1], [0, 1]]);
  if (pooled.shape[1] !== out) pooled = pooled.pad([[0, 0], [0, out - pooled.shape[1]], [0, 0], [0, 0]]);
  return pooled.add(y).relu();
}

/** The trunk up to the 256-channel feature map, from normalized input. */
function trunk(p: FrozenParams, x: Tensor): Tensor {
  let out = convLayer(p, x, 'conv32_down', 32, 7, 2, true, 'valid');
  out = maxPool2d(out, 3, 2);
  for (const b of ['conv32_1', 'conv32_2', 'conv32_3']) out = residual(p, out, b);
  out = residualDown(p, out, 'conv64_down', 64);
  for (const b of ['conv64_1', 'conv64_2', 'conv64_3']) out = residual(p, out, b);
  out = residualDown(p, out, 'conv128_down', 128);
  for (const b of ['conv128_1', 'conv128_2']) out = residual(p, out, b);
  out = residualDown(p, out, 'conv256_down', 256);
  for (const b of ['conv256_1', 'conv256_2']) out = residual(p, out, b);
  return residualDown(p, out, 'conv256_down_out', 256);
}

/** Descriptor graph φ: images [N, 3, 150, 150] with values 0..255 (float) → [N, 128]. The parameters are
 * frozen and named after face_recognition_model's tfjs weights; feed them with loadFaceRecognizerParams().
 * `params` collects the declared shapes (pass one to check a store against the graph). */
export function faceRecognizerGraph(images: Tensor, params = new FrozenParams()): Tensor {
  const [, c, h, w] = images.shape;
  if (images.rank !== 4 || c !== 3 || h !== RECOGNIZER_INPUT_SIZE || w !== RECOGNIZER_INPUT_SIZE) {
    throw new Error(`faceRecognizerGraph: images must be [N,3,150,150], got [${images.shape.join(',')}]`);
  }
  // face-api: normalize(x, meanRgb).div(255): a per-channel constant subtracted, then / 255.
  const normalized = images.sub(constant(RECOGNIZER_MEAN_RGB, [3, 1, 1], images.dtype)).div(255);
  const features = trunk(params, normalized);
  const pooled = features.mean([2, 3]); // [N, 256]
  return linear(pooled, params.get('fc', [128, 256]));
}

/** face_recognition_model's weights in Kiln's layouts (weights.ts), keyed by tfjs name. */
export function loadFaceRecognizerParams(modelDir?: string): ParamStore {
  const store = loadFaceApiParams('face_recognition_model', modelDir);
  const declared = new FrozenParams();
  faceRecognizerGraph(input('shape_check', [1, 3, RECOGNIZER_INPUT_SIZE, RECOGNIZER_INPUT_SIZE]), declared);
  checkParams(store, declared.declared, 'face_recognition_model');
  return store;
}
