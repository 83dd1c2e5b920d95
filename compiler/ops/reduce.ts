/** Reductions over a set of axes: sum and max. mean, var, softmax and the norms are compositions of these. */
import { normAxis, stridesOf, type Shape } from '../ir/shape';
import { castValue } from '../ir/dtype';
import type { OpAttrs } from './attrs';
import { fail, type OpDef, type TypeInfo } from './entry';
import { product } from './helpers';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

type R = OpAttrs['sum'];

/** Normalized, sorted, unique axes (the DSL normalizes before building, so nodes hash alike). */
export function reduceAxes(attrs: R, rank: number): number[] {
  const ax = attrs.axes.map((a) => normAxis(a, rank));
  if (new Set(ax).size !== ax.length) fail(`repeated axis in [${attrs.axes.join(',')}]`);
  return ax.sort((a, b) => a - b);
}

export function reducedShape(shape: Shape, axes: readonly number[], keepdims: boolean): number[] {
  return keepdims ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_d, i) => !axes.includes(i));
}

function infer(ins: readonly TypeInfo[], a: R): TypeInfo {
  const x = ins[0];
  if (x.dtype === 'bool') fail('cannot reduce bool (cast first)');
  return { shape: reducedShape(x.shape, reduceAxes(a, x.shape.length), a.keepdims), dtype: x.dtype };
}

function refReduce(x: { shape: Shape; data: Float64Array }, a: R, init: number, f: (acc: number, v: number) => number, dtype: TypeInfo['dtype']): Float64Array {
  const axes = reduceAxes(a, x.shape.length);
  const kept = reducedShape(x.shape, axes, true);
  const out = new Float64Array(product(kept)).fill(init);
  const kst = stridesOf(kept).map((st, i) => (axes.includes(i) ? 0 : st));
  const r = x.shape.length;
  const idx = new Array<number>(r).fill(0);
  for (let k = 0; k < x.data.length; k++) {
    let o = 0;
    for (let i = 0; i < r; i++) o += idx[i] * kst[i];
    out[o] = f(out[o], x.data[k]);
    for (let i = r - 1; i >= 0; i--) { if (++idx[i] < x.shape[i]) break; idx[i] = 0; }
  }
  return out.map((v) => castValue(v, dtype));
}

const axesOf = (a: R, s: Shape) => reduceAxes(a, s.length);

export const sum: OpDef<'sum'> = {
  arity: 1,
  infer,
  vjp: {
    saves: { inputs: [], output: false },
    grad: (g, { inputs: [x], attrs }) => {
      const kept = reducedShape(x.shape, reduceAxes(attrs, x.shape.length), true);
      return [g.reshape(kept).expand(x.shape)];
    },
  },
  ref: ([x], a, out) => refReduce(x, a, 0, (s, v) => s + v, out.dtype),
  lower: { kind: 'reduce', combine: 'add', axes: axesOf },
};

export const max: OpDef<'max'> = {
  arity: 1,
  infer,
  vjp: {
    saves: { inputs: [0], output: true },
    grad: (g, { inputs: [x], out, attrs }) => {
      const axes = reduceAxes(attrs, x.shape.length);
      const kept = reducedShape(x.shape, axes, true);
      const hit = x.eq(out.reshape(kept)).cast(x.dtype);
      return [hit.mul(g.reshape(kept)).div(hit.sum(axes, true))];
    },
  },
  ref: ([x], a, out) => refReduce(x, a, -Infinity, M.max, out.dtype),
  lower: { kind: 'reduce', combine: 'max', axes: axesOf },
};
