import { numel, stridesOf, type Shape } from '../ir/shape';

/** A contiguous row-major float64 array: the value type of the reference evaluator. */
export interface NDArray {
  readonly shape: Shape;
  readonly data: Float64Array;
}

export const nd = (shape: Shape, data?: ArrayLike<number>): NDArray => {
  const n = numel(shape);
  const d = new Float64Array(n);
  if (data) {
    if (data.length !== n) throw new Error(`nd: ${data.length} values for shape [${shape.join(',')}]`);
    d.set(data);
  }
  return { shape, data: d };
};

/** For every output position, the flat offset into an input of shape `inShape` broadcast to `outShape`. */
export function broadcastOffsets(inShape: Shape, outShape: Shape): Int32Array {
  const n = numel(outShape);
  const r = outShape.length;
  const inSt = stridesOf(inShape);
  const st = outShape.map((d, i) => {
    const j = i - (r - inShape.length);
    return j < 0 || inShape[j] === 1 ? 0 : inSt[j];
  });
  const off = new Int32Array(n);
  const idx = new Array<number>(r).fill(0);
  let o = 0;
  for (let k = 0; k < n; k++) {
    off[k] = o;
    for (let a = r - 1; a >= 0; a--) {
      idx[a]++;
      o += st[a];
      if (idx[a] < outShape[a]) break;
      o -= st[a] * outShape[a];
      idx[a] = 0;
    }
  }
  return off;
}

/** Calls `f(outFlat, index)` for every multi-index of `shape` in row-major order (index array is reused). */
export function forEachIndex(shape: Shape, f: (flat: number, idx: number[]) => void): void {
  const n = numel(shape);
  const idx = new Array<number>(shape.length).fill(0);
  for (let k = 0; k < n; k++) {
    f(k, idx);
    for (let a = shape.length - 1; a >= 0; a--) {
      if (++idx[a] < shape[a]) break;
      idx[a] = 0;
    }
  }
}
