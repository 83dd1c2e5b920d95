/** 2-D convolution (NCHW activations, OIHW weights, stride, asymmetric padding, dilation, groups) and its two
 * backward ops. The three share one loop nest in the reference; each is its own template on the back end. */
import { fmt, numel, type Shape } from '../ir/shape';
import { isFloat } from '../ir/dtype';
import type { Conv2dAttrs } from './attrs';
import { fail, type OpDef, type TypeInfo } from './entry';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

/** Output spatial size of a conv along one dim. */
const outDim = (n: number, k: number, s: number, lo: number, hi: number, d: number) => M.floor((n + lo + hi - d * (k - 1) - 1) / s) + 1;

export function convOutShape(x: Shape, w: Shape, a: Conv2dAttrs): number[] {
  if (x.length !== 4 || w.length !== 4) fail('conv2d needs x [N,C,H,W] and w [O,C/groups,kh,kw]');
  const [n, c, h, wd] = x, [o, cg, kh, kw] = w;
  if (a.groups < 1 || c !== cg * a.groups || o % a.groups !== 0) fail(`channels: x has ${c}, w expects ${cg}x${a.groups} groups, ${o} outputs`);
  const ho = outDim(h, kh, a.stride[0], a.padding[0], a.padding[1], a.dilation[0]);
  const wo = outDim(wd, kw, a.stride[1], a.padding[2], a.padding[3], a.dilation[1]);
  if (ho < 1 || wo < 1) fail(`output would be ${ho}x${wo}`);
  return [n, o, ho, wo];
}

/** Visits every (output, weight, input) triple of the conv: f(yOffset, wOffset, xOffset). */
function convLoop(x: Shape, w: Shape, y: Shape, a: Conv2dAttrs, f: (yo: number, wo: number, xo: number) => void): void {
  const [n, c, h, wd] = x, [o, cg, kh, kw] = w, [, , ho, wo] = y;
  const og = o / a.groups;
  for (let b = 0; b < n; b++) for (let oc = 0; oc < o; oc++) {
    const g = M.floor(oc / og);
    for (let i = 0; i < ho; i++) for (let j = 0; j < wo; j++) {
      const yo = ((b * o + oc) * ho + i) * wo + j;
      for (let ci = 0; ci < cg; ci++) for (let p = 0; p < kh; p++) {
        const ih = i * a.stride[0] - a.padding[0] + p * a.dilation[0];
        if (ih < 0 || ih >= h) continue;
        for (let q = 0; q < kw; q++) {
          const iw = j * a.stride[1] - a.padding[2] + q * a.dilation[1];
          if (iw < 0 || iw >= wd) continue;
          f(yo, ((oc * cg + ci) * kh + p) * kw + q, ((b * c + g * cg + ci) * h + ih) * wd + iw);
        }
      }
    }
  }
}

const floats = (ins: readonly TypeInfo[]) => {
  if (!ins.every((t) => t.dtype === ins[0].dtype && isFloat(t.dtype))) fail('needs equal float dtypes');
  return ins[0].dtype;
};
const convAttrs = (a: Conv2dAttrs): Conv2dAttrs => ({ stride: a.stride, padding: a.padding, dilation: a.dilation, groups: a.groups });
const convFlops = (y: Shape, w: Shape) => 2 * numel(y) * w[1] * w[2] * w[3];

export const conv2d: OpDef<'conv2d'> = {
  arity: 2,
  infer: (ins, a) => ({ shape: convOutShape(ins[0].shape, ins[1].shape, a), dtype: floats(ins) }),
  vjp: {
    saves: { inputs: [0, 1], output: false },
    grad: (g, { inputs: [x, w], attrs }) => [g.convBwdData(w, convAttrs(attrs), x.shape), x.convBwdWeight(g, convAttrs(attrs), w.shape)],
  },
  ref: ([x, w], a, out) => {
    const y = new Float64Array(numel(out.shape));
    convLoop(x.shape, w.shape, out.shape, a, (yo, wo, xo) => { y[yo] += x.data[xo] * w.data[wo]; });
    return y;
  },
  lower: { kind: 'extern', lowPrecision: true, template: 'conv2d', flops: (c) => convFlops(c.outShape, c.inShapes[1]) },
};

/** dx = conv2d_bwd_data(dy, w): the input gradient (a transposed convolution). */
export const conv2dBwdData: OpDef<'conv2d_bwd_data'> = {
  arity: 2,
  infer: ([dy, w], a) => {
    const y = convOutShape(a.inShape, w.shape, a);
    if (fmt(y) !== fmt(dy.shape)) fail(`dy ${fmt(dy.shape)} is not the conv output ${fmt(y)} of input ${fmt(a.inShape)}`);
    return { shape: a.inShape, dtype: floats([dy, w]) };
  },
  vjp: {
    saves: { inputs: [0, 1], output: false },
    grad: (g, { inputs: [dy, w], attrs }) => [g.conv2d(w, convAttrs(attrs)), g.convBwdWeight(dy, convAttrs(attrs), w.shape)],
  },
  ref: ([dy, w], a) => {
    const dx = new Float64Array(numel(a.inShape));
    convLoop(a.inShape, w.shape, dy.shape, a, (yo, wo, xo) => { dx[xo] += dy.data[yo] * w.data[wo]; });
    return dx;
  },
  lower: { kind: 'extern', lowPrecision: true, template: 'conv2d_bwd_data', flops: (c) => convFlops(c.inShapes[0], c.inShapes[1]) },
};

/** dw = conv2d_bwd_weight(x, dy): the weight gradient. */
export const conv2dBwdWeight: OpDef<'conv2d_bwd_weight'> = {
  arity: 2,
  infer: ([x, dy], a) => {
    const y = convOutShape(x.shape, a.wShape, a);
    if (fmt(y) !== fmt(dy.shape)) fail(`dy ${fmt(dy.shape)} is not the conv output ${fmt(y)}`);
    return { shape: a.wShape, dtype: floats([x, dy]) };
  },
  vjp: {
    saves: { inputs: [0, 1], output: false },
    grad: (g, { inputs: [x, dy], attrs }) => [dy.convBwdData(g, convAttrs(attrs), x.shape), x.conv2d(g, convAttrs(attrs))],
  },
  ref: ([x, dy], a) => {
    const dw = new Float64Array(numel(a.wShape));
    convLoop(x.shape, a.wShape, dy.shape, a, (yo, wo, xo) => { dw[wo] += dy.data[yo] * x.data[xo]; });
    return dw;
  },
  lower: { kind: 'extern', lowPrecision: true, template: 'conv2d_bwd_weight', flops: (c) => convFlops(c.inShapes[1], c.outShape) },
};
