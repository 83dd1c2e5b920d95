/** One gradient-check case per differentiable primitive (keyed by op, so the registry test can demand one for
 * every op with a VJP), plus the composites built from them. */
import * as k from '../../compiler/index';
import { constant } from '../../compiler/index';
import type { GradCase } from '../support/gradcheck';
import type { Op } from '../../compiler/ops/attrs';

const conv = { stride: [2, 1], padding: [1, 0, 2, 1], dilation: [1, 2], groups: 2 } as const;
const idx = constant([2, 0, 2, 1], [4], 'i32');

export const primitiveGradCases: Partial<Record<Op, GradCase>> = {
  neg: { name: 'neg', shapes: [[2, 3]], f: (x) => x.neg() },
  exp: { name: 'exp', shapes: [[2, 3]], f: (x) => x.exp() },
  log: { name: 'log', shapes: [[2, 3]], domains: ['positive'], f: (x) => x.log() },
  sqrt: { name: 'sqrt', shapes: [[2, 3]], domains: ['positive'], f: (x) => x.sqrt() },
  rsqrt: { name: 'rsqrt', shapes: [[2, 3]], domains: ['positive'], f: (x) => x.rsqrt() },
  recip: { name: 'recip', shapes: [[2, 3]], domains: ['positive'], f: (x) => x.recip() },
  abs: { name: 'abs', shapes: [[2, 3]], domains: ['distinct'], f: (x) => x.add(0.1).abs() },
  tanh: { name: 'tanh', shapes: [[2, 3]], f: (x) => x.tanh() },
  sigmoid: { name: 'sigmoid', shapes: [[2, 3]], f: (x) => x.sigmoid() },
  erf: { name: 'erf', shapes: [[2, 3]], f: (x) => x.erf() },
  sin: { name: 'sin', shapes: [[2, 3]], f: (x) => x.sin() },
  cos: { name: 'cos', shapes: [[2, 3]], f: (x) => x.cos() },
  cast: { name: 'cast f32->f16->f32', shapes: [[2, 3]], f: (x) => x.cast('f16').cast(x.dtype).mul(x) },
  add: { name: 'add (broadcast)', shapes: [[2, 3], [3]], f: (a, b) => a.add(b) },
  sub: { name: 'sub (broadcast)', shapes: [[2, 1], [1, 3]], f: (a, b) => a.sub(b) },
  mul: { name: 'mul (broadcast)', shapes: [[2, 3], [2, 1]], f: (a, b) => a.mul(b) },
  div: { name: 'div (broadcast)', shapes: [[2, 3], [3]], domains: ['real', 'positive'], f: (a, b) => a.div(b) },
  pow: { name: 'pow', shapes: [[2, 3], [2, 3]], domains: ['positive', 'real'], f: (a, b) => a.pow(b) },
  maximum: { name: 'maximum', shapes: [[2, 3], [2, 3]], domains: ['distinct', 'real'], f: (a, b) => a.maximum(b) },
  minimum: { name: 'minimum', shapes: [[2, 3], [3]], domains: ['distinct', 'real'], f: (a, b) => a.minimum(b) },
  where: { name: 'where', shapes: [[2, 3], [2, 3], [3]], f: (c, a, b) => c.gt(0).select(a, b) },
  sum: { name: 'sum', shapes: [[2, 3, 4]], f: (x) => x.sum([0, 2], true) },
  max: { name: 'max', shapes: [[2, 3, 4]], domains: ['distinct'], f: (x) => x.max([1]) },
  reshape: { name: 'reshape', shapes: [[2, 6]], f: (x) => x.reshape([3, 4]).mul(constant([1, 2, 3, 4], [4])) },
  permute: { name: 'permute', shapes: [[2, 3, 4]], f: (x) => x.permute([2, 0, 1]) },
  expand: { name: 'expand', shapes: [[3, 1]], f: (x) => x.expand([2, 3, 4]) },
  slice: { name: 'strided slice', shapes: [[5, 7]], f: (x) => x.slice([1, 0], [5, 7], [2, 3]) },
  pad: { name: 'pad (interior)', shapes: [[2, 3]], f: (x) => x.pad([[1, 0, 1], [0, 2, 0]], 0.5) },
  concat: { name: 'concat', shapes: [[2, 3], [2, 1]], f: (a, b) => k.concat([a, b, a], 1) },
  gather: { name: 'gather', shapes: [[2, 3, 2]], f: (x) => x.gather(idx, 1) },
  scatter_add: { name: 'scatter_add', shapes: [[2, 4, 2]], f: (x) => x.scatterAdd(idx, 1, 3) },
  matmul: { name: 'batched matmul (broadcast)', shapes: [[2, 1, 3, 4], [3, 4, 2]], f: (a, b) => a.matmul(b) },
  conv2d: { name: 'conv2d stride/pad/dilation/groups', shapes: [[1, 4, 5, 6], [4, 2, 2, 3]], f: (x, w) => x.conv2d(w, conv) },
  conv2d_bwd_data: { name: 'conv2d_bwd_data', shapes: [[1, 4, 3, 5], [4, 2, 2, 3]], f: (dy, w) => dy.convBwdData(w, conv, [1, 4, 5, 6]) },
  conv2d_bwd_weight: { name: 'conv2d_bwd_weight', shapes: [[1, 4, 5, 6], [1, 4, 3, 5]], f: (x, dy) => x.convBwdWeight(dy, conv, [4, 2, 2, 3]) },
  sdpa: { name: 'sdpa', shapes: [[2, 3, 4], [2, 5, 4], [2, 5, 3]], f: (q, kk, v) => k.sdpa(q, kk, v) },
};

export const compositeGradCases: GradCase[] = [
  { name: 'sdpa causal', shapes: [[1, 4, 3], [1, 4, 3], [1, 4, 2]], f: (q, kk, v) => k.sdpa(q, kk, v, { causal: true, scale: 0.7 }) },
  { name: 'softmax', shapes: [[3, 5]], f: (x) => k.softmax(x) },
  { name: 'logSoftmax', shapes: [[3, 5]], f: (x) => k.logSoftmax(x, 0) },
  { name: 'layerNorm', shapes: [[3, 6], [6], [6]], f: (x, w, b) => k.layerNorm(x, w, b) },
  { name: 'groupNorm', shapes: [[2, 4, 3, 2], [4], [4]], f: (x, w, b) => k.groupNorm(x, 2, w, b) },
  { name: 'gelu (erf)', shapes: [[2, 5]], f: (x) => k.gelu(x) },
  { name: 'gelu (tanh)', shapes: [[2, 5]], f: (x) => k.gelu(x, 'tanh') },
  { name: 'geglu', shapes: [[2, 6]], f: (x) => k.geglu(x) },
  { name: 'silu', shapes: [[2, 5]], f: (x) => x.silu() },
  { name: 'relu', shapes: [[2, 5]], domains: ['distinct'], f: (x) => x.add(0.05).relu() },
  { name: 'leakyRelu', shapes: [[2, 5]], domains: ['distinct'], f: (x) => x.add(0.05).leakyRelu(0.2) },
  { name: 'var (unbiased)', shapes: [[3, 4]], f: (x) => x.var(1, false, 1) },
  { name: 'maxPool2d 3x3/2 same', shapes: [[1, 2, 5, 5]], domains: ['distinct'], f: (x) => k.maxPool2d(x, 3, 2, 'same') },
  { name: 'avgPool2d 3x3/2 same', shapes: [[1, 2, 5, 4]], f: (x) => k.avgPool2d(x, 3, 2, 'same') },
  { name: 'upsampleNearest', shapes: [[1, 2, 2, 3]], f: (x) => k.upsampleNearest(x, 2) },
  { name: 'cosineSimilarity', shapes: [[3, 4], [3, 4]], f: (a, b) => k.cosineSimilarity(a, b) },
  { name: 'normalize', shapes: [[3, 4]], f: (x) => k.normalize(x) },
  { name: 'linear', shapes: [[2, 3], [4, 3], [4]], f: (x, w, b) => k.linear(x, w, b) },
  { name: 'conv2d + bias, same padding', shapes: [[1, 2, 4, 4], [3, 2, 3, 3], [3]], f: (x, w, b) => k.conv2d(x, w, b, { stride: 2, padding: 'same' }) },
  { name: 'stack + mean', shapes: [[2, 3], [2, 3]], f: (a, b) => k.stack([a, b], 1).mean(2) },
  { name: 'second use of a node (accumulation)', shapes: [[2, 3]], f: (x) => x.mul(x.exp()).add(x.sin()) },
];
