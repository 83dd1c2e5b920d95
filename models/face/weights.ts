/**
 * face-api's tfjs weights as Kiln parameter values.
 *
 * Parameters keep the tfjs weight names (`conv32_1/conv1/conv/filters`, `MobilenetV1/Conv2d_3_depthwise/...`),
 * so a graph's parameters and a manifest line up by name. Only the layouts change, because TensorFlow and
 * Kiln (PyTorch) lay weights out differently:
 *
 * | tfjs weight                           | tfjs layout      | Kiln layout                          |
 * | ------------------------------------- | ---------------- | ------------------------------------ |
 * | conv2d filter                         | [kh, kw, I, O]   | [O, I, kh, kw] (OIHW)                |
 * | depthwise filter (`*depthwise*`)      | [kh, kw, C, M]   | [C·M, 1, kh, kw] (conv2d groups = C) |
 * | dense / matMul weight                 | [in, out]        | [out, in] (`linear`)                 |
 * | bias, scale, batch-norm vectors       | [C]              | [C]                                  |
 *
 * A depthwise filter's output channel c·M + m reads input channel c, which is exactly how a grouped conv
 * with C groups of M outputs orders its outputs. Values are tfjs's float32 weights widened to float64.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ParamStore } from '../../compiler/index';
import { loadTfjsWeights, TfjsWeightsError, type TfjsWeight } from '../io/tfjs-weights';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The `model/` folder of the installed @vladmandic/face-api package. */
export const FACE_API_MODEL_DIR = path.resolve(here, '../../node_modules/@vladmandic/face-api/model');

export type FaceApiModel = 'face_recognition_model' | 'ssd_mobilenetv1_model' | 'face_landmark_68_model';

export const manifestPath = (model: FaceApiModel, dir = FACE_API_MODEL_DIR): string =>
  path.join(dir, `${model}-weights_manifest.json`);

/** [kh, kw, I, O] → [O, I, kh, kw]. */
export function hwioToOihw(data: ArrayLike<number>, [kh, kw, ci, co]: readonly number[]): Float64Array {
  const out = new Float64Array(kh * kw * ci * co);
  for (let h = 0; h < kh; h++) for (let w = 0; w < kw; w++) for (let i = 0; i < ci; i++) for (let o = 0; o < co; o++) {
    out[((o * ci + i) * kh + h) * kw + w] = data[((h * kw + w) * ci + i) * co + o]!;
  }
  return out;
}

/** Depthwise [kh, kw, C, M] → grouped-conv [C·M, 1, kh, kw]. */
export function depthwiseToOihw(data: ArrayLike<number>, [kh, kw, c, m]: readonly number[]): Float64Array {
  const out = new Float64Array(kh * kw * c * m);
  for (let h = 0; h < kh; h++) for (let w = 0; w < kw; w++) for (let i = 0; i < c; i++) for (let j = 0; j < m; j++) {
    out[((i * m + j) * kh + h) * kw + w] = data[((h * kw + w) * c + i) * m + j]!;
  }
  return out;
}

/** [in, out] → [out, in]. */
export function transpose2d(data: ArrayLike<number>, [rows, cols]: readonly number[]): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

/** The Kiln shape of a tfjs weight (see the table above). */
export function kilnShape(name: string, shape: readonly number[]): number[] {
  if (shape.length === 4) {
    const [kh, kw, i, o] = shape;
    return /depthwise/.test(name) ? [i * o, 1, kh, kw] : [o, i, kh, kw];
  }
  if (shape.length === 2) return [shape[1], shape[0]];
  return [...shape];
}

/** One tfjs weight in Kiln's layout. */
export function toKiln(name: string, w: TfjsWeight): Float64Array {
  if (w.shape.length === 4) return /depthwise/.test(name) ? depthwiseToOihw(w.data, w.shape) : hwioToOihw(w.data, w.shape);
  if (w.shape.length === 2) return transpose2d(w.data, w.shape);
  return Float64Array.from(w.data);
}

/** A face-api model's weights in Kiln's layout, with each weight's Kiln shape and the manifest they came from. */
export class FaceApiStore extends Map<string, Float64Array> {
  readonly shapes = new Map<string, readonly number[]>();
  constructor(readonly file: string) {
    super();
  }
}

/** A weight store does not match the graph that reads it: a weight missing, or declared with another shape. */
export class FaceWeightsError extends TfjsWeightsError {
  constructor(
    readonly file: string,
    readonly weight: string,
    detail: string,
  ) {
    super(`${file}: weight '${weight}': ${detail}`);
  }
}

/** Every weight of a face-api model in Kiln's layout, by tfjs name (a ParamStore for `evaluate`). Weights
 * that are data rather than parameters (the SSD anchors `Output/extra_dim`) come back too, unchanged. */
export function loadFaceApiParams(model: FaceApiModel, dir = FACE_API_MODEL_DIR): FaceApiStore {
  const file = manifestPath(model, dir);
  const store = new FaceApiStore(file);
  for (const [name, w] of loadTfjsWeights(file)) {
    store.set(name, toKiln(name, w));
    store.shapes.set(name, kilnShape(name, w.shape));
  }
  return store;
}

/** The parameters a graph reads, by declared shape, checked against a store: every one present, and (for a store
 * from `loadFaceApiParams`) of exactly the declared shape — not just the same element count, which would let a
 * transposed or permuted weight through in the wrong layout. */
export function checkParams(store: ParamStore, declared: ReadonlyMap<string, readonly number[]>, what: string): void {
  const file = store instanceof FaceApiStore ? store.file : what;
  for (const [name, shape] of declared) {
    const v = store.get(name);
    if (!v) throw new FaceWeightsError(file, name, `missing (the ${what} graph reads it as [${shape.join(',')}])`);
    const found = store instanceof FaceApiStore ? store.shapes.get(name) : undefined;
    if (found ? found.length !== shape.length || found.some((d, i) => d !== shape[i]) : v.length !== shape.reduce((a, b) => a * b, 1)) {
      throw new FaceWeightsError(file, name, `the ${what} graph expects [${shape.join(',')}] (Kiln layout), the file holds ${found ? `[${found.join(',')}]` : `${v.length} values`}`);
    }
  }
}
