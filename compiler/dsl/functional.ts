/** Composite ops: built from primitives, so they need no VJP or lowering of their own; the back end's fusion
 * turns each into one or two kernels (softmax, norms) or folds it into a neighbour (activations, pooling). */
import { normAxis, sameShape, type Shape } from '../ir/shape';
import { apply } from '../ops/apply';
import type { Conv2dAttrs } from '../ops/attrs';
import { Tensor } from './tensor';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

const pair = (v: number | readonly [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

export const where = (cond: Tensor, a: number | Tensor, b: number | Tensor): Tensor => cond.select(a, b);
export const matmul = (a: Tensor, b: Tensor): Tensor => a.matmul(b as never);
export const concat = (xs: readonly Tensor[], axis: number): Tensor =>
  new Tensor(apply('concat', xs.map((x) => x.node), { axis: normAxis(axis, xs[0].rank) }));
export const stack = (xs: readonly Tensor[], axis = 0): Tensor => concat(xs.map((x) => x.unsqueeze(axis)), axis);

export function softmax(x: Tensor, axis = -1): Tensor {
  const z = x.sub(x.max(axis, true).stopGradient());
  const e = z.exp();
  return e.div(e.sum(axis, true));
}
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const z = x.sub(x.max(axis, true).stopGradient());
  return z.sub(z.exp().sum(axis, true).log());
}

/** GELU, exact (erf) or with the tanh approximation. */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  if (approximate === 'tanh') return x.mul(0.5).mul(x.add(x.pow(3).mul(0.044715)).mul(M.sqrt(2 / M.PI)).tanh().add(1));
  return x.mul(0.5).mul(x.mul(M.SQRT1_2).erf().add(1));
}

/** GEGLU: split the last axis in two halves h, g; return h * gelu(g) (diffusers' order). */
export function geglu(x: Tensor): Tensor {
  const n = x.shape[x.rank - 1] / 2;
  return x.narrow(-1, 0, n).mul(gelu(x.narrow(-1, n, n)));
}

/** y = x W^T + b with W [out, in] (PyTorch layout, so state dicts load as they are). */
export function linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
  const y = x.matmul(w.mT() as never);
  return b ? y.add(b) : y;
}

/** Layer norm over the trailing `normalizedShape.length` axes. */
export function layerNorm(x: Tensor, weight?: Tensor, bias?: Tensor, eps = 1e-5, normalizedRank = 1): Tensor {
  const axes = Array.from({ length: normalizedRank }, (_v, i) => x.rank - normalizedRank + i);
  let y = x.sub(x.mean(axes, true)).mul(x.var(axes, true).add(eps).rsqrt());
  if (weight) y = y.mul(weight);
  if (bias) y = y.add(bias);
  return y;
}

/** Group norm on NC... activations with per-channel affine (PyTorch semantics). */
export function groupNorm(x: Tensor, groups: number, weight?: Tensor, bias?: Tensor, eps = 1e-5): Tensor {
  const [n, c] = x.shape;
  if (c % groups) throw new Error(`groupNorm: ${c} channels do not split into ${groups} groups`);
  const g = x.reshape([n, groups, -1]);
  const y = g.sub(g.mean(2, true)).mul(g.var(2, true).add(eps).rsqrt()).reshape(x.shape);
  const bc = [c, ...x.shape.slice(2).map(() => 1)];
  let out = y;
  if (weight) out = out.mul(weight.reshape(bc));
  if (bias) out = out.add(bias.reshape(bc));
  return out;
}

export interface ConvOptions {
  stride?: number | readonly [number, number];
  /** Symmetric [h, w], explicit [top, bottom, left, right], or 'same' (TensorFlow's, asymmetric when odd). */
  padding?: number | readonly [number, number] | readonly [number, number, number, number] | 'same' | 'valid';
  dilation?: number | readonly [number, number];
  groups?: number;
}

function samePad(n: number, k: number, s: number, d: number): [number, number] {
  const out = M.ceil(n / s), total = M.max((out - 1) * s + d * (k - 1) + 1 - n, 0);
  return [M.floor(total / 2), total - M.floor(total / 2)];
}

export function convAttrs(x: Shape, w: Shape, o: ConvOptions = {}): Conv2dAttrs {
  const stride = pair(o.stride ?? 1), dilation = pair(o.dilation ?? 1);
  const p = o.padding ?? 0;
  let padding: [number, number, number, number];
  if (p === 'same') padding = [...samePad(x[2], w[2], stride[0], dilation[0]), ...samePad(x[3], w[3], stride[1], dilation[1])];
  else if (p === 'valid') padding = [0, 0, 0, 0];
  else if (typeof p === 'number') padding = [p, p, p, p];
  else if (p.length === 2) padding = [p[0], p[0], p[1], p[1]];
  else padding = [p[0], p[1], p[2], p[3]];
  return { stride, padding, dilation, groups: o.groups ?? 1 };
}

/** conv2d with optional bias (added as an epilogue the back end fuses into the conv kernel). */
export function conv2d(x: Tensor, w: Tensor, b?: Tensor, o: ConvOptions = {}): Tensor {
  const y = x.conv2d(w, convAttrs(x.shape, w.shape, o));
  return b ? y.add(b.reshape([b.size, 1, 1])) : y;
}

/** Nearest-neighbour upsampling of NCHW by an integer factor: a reshape and a broadcast. */
export function upsampleNearest(x: Tensor, factor = 2): Tensor {
  const [n, c, h, w] = x.shape;
  return x.reshape([n, c, h, 1, w, 1]).expand([n, c, h, factor, w, factor]).reshape([n, c, h * factor, w * factor]);
}

/** Pooling as strided slices combined elementwise: the max or the sum over each k x k window. */
function pool(x: Tensor, k: number | readonly [number, number], s: number | readonly [number, number] | undefined, padding: ConvOptions['padding'], mode: 'max' | 'sum'): Tensor {
  const [kh, kw] = pair(k), [sh, sw] = pair(s ?? k);
  const [pt, pb, pl, pr] = convAttrs(x.shape, [1, 1, kh, kw], { stride: [sh, sw], padding }).padding;
  const padded = pt || pb || pl || pr ? x.pad([[0, 0], [0, 0], [pt, pb], [pl, pr]], mode === 'max' ? -Infinity : 0) : x;
  const [n, c, h, w] = padded.shape;
  const ho = M.floor((h - kh) / sh) + 1, wo = M.floor((w - kw) / sw) + 1;
  let acc: Tensor | null = null;
  for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) {
    const win = padded.slice([0, 0, i, j], [n, c, i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1], [1, 1, sh, sw]);
    acc = acc === null ? win : mode === 'max' ? acc.maximum(win) : acc.add(win);
  }
  return acc!;
}
export const maxPool2d = (x: Tensor, k: number | readonly [number, number], stride?: number | readonly [number, number], padding: ConvOptions['padding'] = 0) => pool(x, k, stride, padding, 'max');
/** Average over the valid (unpadded) elements of each window, as TensorFlow and count_include_pad=False do. */
export function avgPool2d(x: Tensor, k: number | readonly [number, number], stride?: number | readonly [number, number], padding: ConvOptions['padding'] = 0): Tensor {
  const sum = pool(x, k, stride, padding, 'sum');
  const count = pool(new Tensor(apply('const', [], { value: 1, shape: [1, 1, x.shape[2], x.shape[3]], dtype: x.dtype })), k, stride, padding, 'sum');
  return sum.div(count);
}

/** softmax(scale q k^T) v over [..., L, D] tensors; scale defaults to 1/sqrt(D). */
export function sdpa(q: Tensor, k: Tensor, v: Tensor, opts: { scale?: number; causal?: boolean } = {}): Tensor {
  return new Tensor(apply('sdpa', [q.node, k.node, v.node], { scale: opts.scale ?? 1 / M.sqrt(q.shape[q.rank - 1]), causal: opts.causal ?? false }));
}

/** Cosine similarity along `axis` of the broadcast shape of `a` and `b` (PyTorch semantics: both inputs are
 * broadcast first, so [3,5,4] vs [3,5,1] compares each row with a constant vector, and a negative axis counts
 * from the end of the broadcast shape). */
export function cosineSimilarity(a: Tensor, b: Tensor, axis = -1, eps = 1e-8): Tensor {
  const prod = a.mul(b);  // a KilnShapeError naming both shapes when they do not broadcast
  const shape = prod.shape;
  if (!sameShape(a.shape, shape)) a = a.expand(shape);
  if (!sameShape(b.shape, shape)) b = b.expand(shape);
  const dot = prod.sum(axis);
  const na = a.square().sum(axis).sqrt(), nb = b.square().sum(axis).sqrt();
  return dot.div(na.mul(nb).maximum(eps));
}

/** L2-normalize along an axis. */
export const normalize = (x: Tensor, axis = -1, eps = 1e-12): Tensor => x.div(x.square().sum(axis, true).sqrt().maximum(eps));

export const mseLoss = (a: Tensor, b: Tensor): Tensor => a.sub(b).square().mean();

