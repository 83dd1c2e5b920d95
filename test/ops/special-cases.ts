/** Forward cases with NaN, ±Inf, -0 and denormals, for every op where they mean something. The expected values
 * are IEEE 754 (what the float64 reference and PyTorch give): NaN propagates through max/min, reductions,
 * softmax, norms and losses; -0 keeps its sign where the op defines one. Each case is checked against the
 * reference and against every compiled back end (test/backend/special-values.test.ts). */
import * as k from '../../compiler/index';
import { constant as c } from '../../compiler/index';
import type { Tensor } from '../../compiler/index';

export interface SpecialCase { readonly build: () => Tensor; readonly expected: readonly number[] }

const NaN_ = Number.NaN, Inf = Number.POSITIVE_INFINITY;
const DENORM = 2 ** -140;  // an f32 denormal (f32's smallest normal is 2^-126)

export const specialCases: Record<string, SpecialCase> = {
  // the case: the max of [1, NaN, 3, 2] is NaN (C's `v > acc ? v : acc` and CUDA's fmaxf gave 3)
  max_nan: { build: () => c([1, NaN_, 3, 2], [4]).max(0), expected: [NaN_] },
  max_nan_last: { build: () => c([1, 3, 2, NaN_], [4]).max(0), expected: [NaN_] },
  max_rows: { build: () => c([-Inf, 1, 3, -Inf, -Inf, -Inf, Inf, 0, NaN_], [3, 3]).max(1), expected: [3, -Inf, NaN_] },
  // a long row (the C++ back end reduces it with an OpenMP simd reduction): NaN in the middle
  max_long: { build: () => c(Array.from({ length: 1000 }, (_v, i) => (i === 517 ? NaN_ : i)), [1000]).max(0), expected: [NaN_] },
  min_nan: { build: () => c([1, NaN_, -3], [3]).min(0), expected: [NaN_] },
  maximum: { build: () => c([NaN_, 1, Inf, -Inf, -0, 0, 2], [7]).maximum(c([1, NaN_, 5, 5, 0, -0, -Inf], [7])), expected: [NaN_, NaN_, Inf, 5, 0, 0, 2] },
  minimum: { build: () => c([NaN_, 1, Inf, -Inf, -0, 0, 2], [7]).minimum(c([1, NaN_, 5, 5, 0, -0, Inf], [7])), expected: [NaN_, NaN_, 5, -Inf, -0, -0, 2] },
  relu: { build: () => c([NaN_, -Inf, Inf, -0], [4]).relu(), expected: [NaN_, 0, Inf, 0] },
  // softmax: a NaN anywhere in a row makes the row NaN; +Inf gives Inf - Inf = NaN; -Inf entries get weight 0
  softmax: { build: () => k.softmax(c([1, NaN_, 2, 0, Inf, 1, 0, -Inf, 0], [3, 3])), expected: [NaN_, NaN_, NaN_, NaN_, NaN_, NaN_, 0.5, 0, 0.5] },
  log_softmax: { build: () => k.logSoftmax(c([0, -Inf, 0, 1, NaN_, 1], [2, 3])), expected: [-Math.LN2, -Inf, -Math.LN2, NaN_, NaN_, NaN_] },
  layer_norm: { build: () => k.layerNorm(c([1, NaN_, 3, 1, Inf, 3, 1, 2, 3], [3, 3])), expected: [NaN_, NaN_, NaN_, NaN_, NaN_, NaN_, -1.2247356859083902, 0, 1.2247356859083902] },
  sum: { build: () => c([1, Inf, 2, Inf, -Inf, 0, NaN_, 1, 1], [3, 3]).sum(1), expected: [Inf, NaN_, NaN_] },
  mean: { build: () => c([-Inf, 1, 1, 1], [2, 2]).mean(1), expected: [-Inf, 1] },
  mse_loss: { build: () => k.stack([k.mseLoss(c([1, Inf], [2]), c([0, 0], [2])), k.mseLoss(c([1, NaN_], [2]), c([0, 0], [2]))]), expected: [Inf, NaN_] },
  // cross entropy as -log_softmax[label]: a NaN logit makes the loss NaN
  cross_entropy: { build: () => k.logSoftmax(c([NaN_, 0, 0], [1, 3])).narrow(1, 1, 1).neg().sum(), expected: [NaN_] },
  exp: { build: () => c([-Inf, Inf, NaN_, -0], [4]).exp(), expected: [0, Inf, NaN_, 1] },
  log: { build: () => c([0, -0, -1, Inf, NaN_], [5]).log(), expected: [-Inf, -Inf, NaN_, Inf, NaN_] },
  sqrt: { build: () => c([-0, -1, Inf, NaN_], [4]).sqrt(), expected: [-0, NaN_, Inf, NaN_] },
  rsqrt: { build: () => c([0, Inf, -1], [3]).rsqrt(), expected: [Inf, 0, NaN_] },
  recip: { build: () => c([0, -0, Inf, -Inf], [4]).recip(), expected: [Inf, -Inf, 0, -0] },
  div: { build: () => c([1, 1, 0, Inf, -1], [5]).div(c([0, -0, 0, Inf, Inf], [5])), expected: [Inf, -Inf, NaN_, NaN_, -0] },
  mul: { build: () => c([0, -0, Inf, 2], [4]).mul(c([Inf, 1, -1, -0], [4])), expected: [NaN_, -0, -Inf, -0] },
  add: { build: () => c([Inf, -0, -0, NaN_], [4]).add(c([-Inf, -0, 0, 1], [4])), expected: [NaN_, -0, 0, NaN_] },
  neg: { build: () => c([0, -0, Inf, NaN_], [4]).neg(), expected: [-0, 0, -Inf, NaN_] },
  abs: { build: () => c([-0, -Inf, NaN_], [3]).abs(), expected: [0, Inf, NaN_] },
  pow: { build: () => c([0, -0, Inf, NaN_, 1], [5]).pow(c([-1, -1, -0.5, 0, NaN_], [5])), expected: [Inf, -Inf, 0, 1, 1] },
  tanh: { build: () => c([Inf, -Inf, -0, NaN_], [4]).tanh(), expected: [1, -1, -0, NaN_] },
  sigmoid: { build: () => c([Inf, -Inf, NaN_], [3]).sigmoid(), expected: [1, 0, NaN_] },
  erf: { build: () => c([Inf, -Inf, -0, NaN_], [4]).erf(), expected: [1, -1, -0, NaN_] },
  sin: { build: () => c([Inf, -0, NaN_], [3]).sin(), expected: [NaN_, -0, NaN_] },
  floor: { build: () => c([-0, -Inf, NaN_, -0.5], [4]).floor(), expected: [-0, -Inf, NaN_, -1] },
  // comparisons with NaN are false, except "not equal"
  cmplt: { build: () => c([NaN_, 1, -Inf], [3]).lt(c([1, NaN_, Inf], [3])), expected: [0, 0, 1] },
  cmpeq: { build: () => c([NaN_, -0, Inf], [3]).eq(c([NaN_, 0, Inf], [3])), expected: [0, 1, 1] },
  cmpne: { build: () => c([NaN_, -0], [2]).ne(c([NaN_, 0], [2])), expected: [1, 0] },
  where: { build: () => c([NaN_, 1], [2]).gt(0).select(c([NaN_, NaN_], [2]), c([Inf, Inf], [2])), expected: [Inf, NaN_] },
  // f32 denormals survive arithmetic (no flush to zero): 2^-140 * 2 = 2^-139, and 2^-140 - 2^-140 = 0
  denormal: { build: () => c([DENORM, DENORM, 1], [3]).mul(c([2, 0.5, DENORM], [3])), expected: [2 ** -139, 2 ** -141, DENORM] },
  max_pool_nan: { build: () => k.maxPool2d(c([1, NaN_, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], [1, 1, 4, 4]), 2), expected: [NaN_, 8, 14, 16] },
  // templates: a NaN operand reaches exactly the outputs that read it; Inf * 0 inside a dot product is NaN
  matmul: { build: () => c([1, NaN_, 2, 3], [2, 2]).matmul(c([1, 0, 0, 1], [2, 2])), expected: [NaN_, NaN_, 2, 3] },
  matmul_inf: { build: () => c([Inf, 1], [1, 2]).matmul(c([0, 1, 1, 1], [2, 2])), expected: [NaN_, Inf] },
  conv2d: { build: () => c([1, 2, NaN_, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]).conv2d(c([1, 0, 0, 1], [1, 1, 2, 2]), { stride: [1, 1], padding: [0, 0, 0, 0], dilation: [1, 1], groups: 1 }), expected: [6, NaN_, 12, 14] },
  // one query over keys with a NaN score: every weight is NaN, so the output is
  sdpa: { build: () => k.sdpa(c([1], [1, 1, 1]), c([0, NaN_], [1, 2, 1]), c([4, 8], [1, 2, 1]), { scale: 1 }), expected: [NaN_] },
  cosine_inf: { build: () => k.cosineSimilarity(c([Inf, 1, 1, 1], [2, 2]), c([1, 1, 1, 1], [2, 2])), expected: [NaN_, 1] },
};

/** IEEE comparison: NaN matches NaN, infinities match exactly, a zero matches only a zero of the same sign,
 * anything else within `tol` relative. Returns a description of the first mismatch, or null. */
export function ieeeMismatch(got: ArrayLike<number>, want: readonly number[], tol: number): string | null {
  if (got.length !== want.length) return `length ${got.length}, want ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    const ok = Number.isNaN(w) ? Number.isNaN(g)
      : !Number.isFinite(w) || w === 0 ? Object.is(g, w)
        : Math.abs(g - w) <= tol * Math.abs(w);
    if (!ok) return `[${i}] = ${Object.is(g, -0) ? '-0' : g}, want ${Object.is(w, -0) ? '-0' : w}`;
  }
  return null;
}
