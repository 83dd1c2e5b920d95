/** Hand-checked forward values: one case per primitive (keyed by op so the registry test can demand one for
 * every op), each small enough to verify on paper. The comments give the arithmetic. */
import * as k from '../../compiler/index';
import { constant as c, full, iota, Rng, input } from '../../compiler/index';
import type { Op } from '../../compiler/ops/attrs';
import type { Tensor } from '../../compiler/index';

export interface ForwardCase { build: () => Tensor; expected: readonly number[]; shape: readonly number[]; feeds?: Record<string, number[]>; tol?: number }

const x23 = () => c([1, -2, 3, -4, 5, -6], [2, 3]);
const p4 = () => c([0.25, 1, 4, 9], [4]);
const E = Math.E;

export const forwardCases: Record<Op, ForwardCase> = {
  input: { build: () => input('a', [2]), feeds: { a: [7, 8] }, expected: [7, 8], shape: [2] },
  param: { build: () => k.param('w', [3], { init: { kind: 'constant', value: 1.5 } }), expected: [1.5, 1.5, 1.5], shape: [3] },
  const: { build: () => full([2, 2], 3.5), expected: [3.5, 3.5, 3.5, 3.5], shape: [2, 2] },
  tensor: { build: () => c([1, 2.5, -3], [3]), expected: [1, 2.5, -3], shape: [3] },
  iota: { build: () => iota([2, 3], 1), expected: [0, 1, 2, 0, 1, 2], shape: [2, 3] },
  // Random123's known-answer vector: philox4x32_10(ctr = 0, key = 0) = 6627e8d5 e169c58d bc57ac4c 9b00dbd8; the
  // uniform is (word >>> 8) / 2^24.
  rand_uniform: { build: () => new Rng(0).uniform([4]), expected: [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8].map((w) => (w >>> 8) / 2 ** 24), shape: [4] },
  neg: { build: () => x23().neg(), expected: [-1, 2, -3, 4, -5, 6], shape: [2, 3] },
  exp: { build: () => c([0, 1, -1], [3]).exp(), expected: [1, E, 1 / E], shape: [3] },
  log: { build: () => c([1, E, E * E], [3]).log(), expected: [0, 1, 2], shape: [3] },
  sqrt: { build: () => p4().sqrt(), expected: [0.5, 1, 2, 3], shape: [4] },
  rsqrt: { build: () => p4().rsqrt(), expected: [2, 1, 0.5, 1 / 3], shape: [4] },
  recip: { build: () => p4().recip(), expected: [4, 1, 0.25, 1 / 9], shape: [4] },
  abs: { build: () => x23().abs(), expected: [1, 2, 3, 4, 5, 6], shape: [2, 3] },
  // tanh(x) = (e^2x - 1)/(e^2x + 1): tanh(ln 2) = (4-1)/(4+1) = 0.6
  tanh: { build: () => c([0, Math.LN2, -Math.LN2], [3]).tanh(), expected: [0, 0.6, -0.6], shape: [3] },
  // sigmoid(ln 3) = 1 / (1 + 1/3) = 0.75
  sigmoid: { build: () => c([0, Math.log(3), -Math.log(3)], [3]).sigmoid(), expected: [0.5, 0.75, 0.25], shape: [3] },
  // erf(1) = 0.8427007929497149, erf(0.5) = 0.5204998778130465 (Abramowitz & Stegun table 7.1)
  erf: { build: () => c([0, 1, -0.5], [3]).erf(), expected: [0, 0.8427007929497149, -0.5204998778130465], shape: [3] },
  sin: { build: () => c([0, Math.PI / 6, Math.PI / 2], [3]).sin(), expected: [0, 0.5, 1], shape: [3] },
  cos: { build: () => c([0, Math.PI / 3, Math.PI], [3]).cos(), expected: [1, 0.5, -1], shape: [3] },
  floor: { build: () => c([1.5, -1.5, 2], [3]).floor(), expected: [1, -2, 2], shape: [3] },
  not: { build: () => c([1, 0], [2], 'bool').not(), expected: [0, 1], shape: [2] },
  // f32 -> i32 truncates toward zero; -> bool is "not zero"
  cast: { build: () => c([1.7, -1.7, 0, 3], [4]).cast('i32'), expected: [1, -1, 0, 3], shape: [4] },
  stop_gradient: { build: () => x23().stopGradient(), expected: [1, -2, 3, -4, 5, -6], shape: [2, 3] },
  // [[1,-2,3],[-4,5,-6]] + [10,20,30] broadcast over rows
  add: { build: () => x23().add(c([10, 20, 30], [3])), expected: [11, 18, 33, 6, 25, 24], shape: [2, 3] },
  // column [1,2] minus row [10,20,30]
  sub: { build: () => c([1, 2], [2, 1]).sub(c([10, 20, 30], [1, 3])), expected: [-9, -19, -29, -8, -18, -28], shape: [2, 3] },
  mul: { build: () => x23().mul(c([2, -1], [2, 1])), expected: [2, -4, 6, 4, -5, 6], shape: [2, 3] },
  div: { build: () => x23().div(c([1, 2, 4], [3])), expected: [1, -1, 0.75, -4, 2.5, -1.5], shape: [2, 3] },
  pow: { build: () => c([2, 9, 4], [3]).pow(c([3, 0.5, -1], [3])), expected: [8, 3, 0.25], shape: [3] },
  maximum: { build: () => x23().maximum(0), expected: [1, 0, 3, 0, 5, 0], shape: [2, 3] },
  minimum: { build: () => x23().minimum(c([0, 0, 10], [3])), expected: [0, -2, 3, -4, 0, -6], shape: [2, 3] },
  cmplt: { build: () => x23().lt(3), expected: [1, 1, 0, 1, 0, 1], shape: [2, 3] },
  cmple: { build: () => x23().le(3), expected: [1, 1, 1, 1, 0, 1], shape: [2, 3] },
  cmpeq: { build: () => x23().eq(c([1, 2, 3], [3])), expected: [1, 0, 1, 0, 0, 0], shape: [2, 3] },
  cmpne: { build: () => x23().ne(5), expected: [1, 1, 1, 1, 0, 1], shape: [2, 3] },
  and: { build: () => c([1, 1, 0, 0], [4], 'bool').and(c([1, 0, 1, 0], [4], 'bool')), expected: [1, 0, 0, 0], shape: [4] },
  or: { build: () => c([1, 1, 0, 0], [4], 'bool').or(c([1, 0, 1, 0], [4], 'bool')), expected: [1, 1, 1, 0], shape: [4] },
  where: { build: () => x23().gt(0).select(x23(), c([100, 200, 300], [3])), expected: [1, 200, 3, 100, 5, 300], shape: [2, 3] },
  // rows: 1-2+3 = 2, -4+5-6 = -5
  sum: { build: () => x23().sum(1), expected: [2, -5], shape: [2] },
  max: { build: () => x23().max(0, true), expected: [1, 5, 3], shape: [1, 3] },
  reshape: { build: () => x23().reshape([3, 2]), expected: [1, -2, 3, -4, 5, -6], shape: [3, 2] },
  permute: { build: () => x23().permute([1, 0]), expected: [1, -4, -2, 5, 3, -6], shape: [3, 2] },
  expand: { build: () => c([1, 2], [2, 1]).expand([2, 3]), expected: [1, 1, 1, 2, 2, 2], shape: [2, 3] },
  // rows 0..1 step 1, cols 0..3 step 2 -> [[1,3],[-4,-6]]
  slice: { build: () => x23().slice([0, 0], [2, 3], [1, 2]), expected: [1, 3, -4, -6], shape: [2, 2] },
  // [1,2] padded low 1, high 2, interior 1 with 9: [9,1,9,2,9,9]
  pad: { build: () => c([1, 2], [2]).pad([[1, 2, 1]], 9), expected: [9, 1, 9, 2, 9, 9], shape: [6] },
  concat: { build: () => k.concat([c([1, 2], [2, 1]), c([3, 4, 5, 6], [2, 2])], 1), expected: [1, 3, 4, 2, 5, 6], shape: [2, 3] },
  // take columns [2, 0] of each row
  gather: { build: () => x23().gather(c([2, 0], [2], 'i32'), 1), expected: [3, 1, -6, -4], shape: [2, 2] },
  // rows of [[1,2],[3,4],[5,6]] added into rows [1,0,1] of a 2-row zero tensor: row0 = [3,4], row1 = [6,8]
  scatter_add: { build: () => c([1, 2, 3, 4, 5, 6], [3, 2]).scatterAdd(c([1, 0, 1], [3], 'i32'), 0, 2), expected: [3, 4, 6, 8], shape: [2, 2] },
  // [[1,2],[3,4]] @ [[5,6],[7,8]] = [[19,22],[43,50]]
  matmul: { build: () => c([1, 2, 3, 4], [2, 2]).matmul(c([5, 6, 7, 8], [2, 2])), expected: [19, 22, 43, 50], shape: [2, 2] },
  // 3x3 input 1..9, 2x2 kernel [[1,0],[0,-1]], stride 1: x[i,j] - x[i+1,j+1] = -4 everywhere
  conv2d: { build: () => c([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]).conv2d(c([1, 0, 0, -1], [1, 1, 2, 2]), { stride: [1, 1], padding: [0, 0, 0, 0], dilation: [1, 1], groups: 1 }), expected: [-4, -4, -4, -4], shape: [1, 1, 2, 2] },
  // dy = ones 2x2, w = [[1,0],[0,-1]]: dx[i,j] = sum over windows covering (i,j): +1 at top-left positions, -1 at bottom-right
  conv2d_bwd_data: { build: () => full([1, 1, 2, 2], 1).convBwdData(c([1, 0, 0, -1], [1, 1, 2, 2]), { stride: [1, 1], padding: [0, 0, 0, 0], dilation: [1, 1], groups: 1 }, [1, 1, 3, 3]), expected: [1, 1, 0, 1, 0, -1, 0, -1, -1], shape: [1, 1, 3, 3] },
  // dy = ones 2x2 over x = 1..9: dw[p,q] = sum of the 2x2 block of x starting at (p,q): 12, 16, 24, 28
  conv2d_bwd_weight: { build: () => c([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]).convBwdWeight(full([1, 1, 2, 2], 1), { stride: [1, 1], padding: [0, 0, 0, 0], dilation: [1, 1], groups: 1 }, [1, 1, 2, 2]), expected: [12, 16, 24, 28], shape: [1, 1, 2, 2] },
  // one query, keys with scores ln 1 and ln 3 (scale 1): weights 1/4, 3/4 over v = [4, 8] -> 7
  sdpa: { build: () => k.sdpa(c([1], [1, 1, 1]), c([0, Math.log(3)], [1, 2, 1]), c([4, 8], [1, 2, 1]), { scale: 1 }), expected: [7], shape: [1, 1, 1] },
  // same attention, dO = 1: dV = P^T dO = [1/4, 3/4]
  sdpa_grad: { build: () => c([1], [1, 1, 1]).sdpaGrad(c([0, Math.log(3)], [1, 2, 1]), c([4, 8], [1, 2, 1]), full([1, 1, 1], 1), { scale: 1, causal: false, wrt: 2 }), expected: [0.25, 0.75], shape: [1, 2, 1] },
};
