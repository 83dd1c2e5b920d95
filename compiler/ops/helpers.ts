/** Pieces shared by several op entries: broadcasting in the reference, in lowering and in VJPs. */
import { broadcastShapes, fmt, sameShape, type Shape } from '../ir/shape';
import type { Node } from '../ir/node';
import { castValue, type DType } from '../ir/dtype';
import { broadcastOffsets, type NDArray } from '../reference/ndarray';
import type { Tensor } from '../dsl/tensor';
import type { Builder } from './lowering';
import { fail, type TypeInfo } from './entry';

/** Shape rule of n-ary broadcasting ops: shapes broadcast, and dtypes agree where `sameDtype` says so. */
export function broadcastAll(ins: readonly TypeInfo[]): Shape {
  let s: Shape = [];
  for (const t of ins) s = broadcastShapes(s, t.shape) ?? fail(`shapes ${ins.map((i) => fmt(i.shape)).join(', ')} do not broadcast`);
  return s;
}

export function requireSameDtype(ins: readonly TypeInfo[]): DType {
  const d = ins[0].dtype;
  if (ins.some((t) => t.dtype !== d)) fail(`dtypes ${ins.map((t) => t.dtype).join(', ')} differ (cast one explicitly)`);
  return d;
}

/** Reference of an elementwise op over broadcast inputs. */
export function refElementwise(ins: readonly NDArray[], out: TypeInfo, f: (...xs: number[]) => number): Float64Array {
  const n = out.shape.reduce((a, b) => a * b, 1);
  const offs = ins.map((a) => broadcastOffsets(a.shape, out.shape));
  const res = new Float64Array(n);
  const xs = new Array<number>(ins.length);
  for (let k = 0; k < n; k++) {
    for (let i = 0; i < ins.length; i++) xs[i] = ins[i].data[offs[i][k]];
    res[k] = castValue(f(...xs), out.dtype);
  }
  return res;
}

/** Index into an input of shape `inShape` broadcast to the output index `out`. */
export function bcastIdx<V>(b: Builder<V>, out: readonly V[], inShape: Shape): V[] {
  const lead = out.length - inShape.length;
  return inShape.map((d, j) => (d === 1 ? b.c(0, 'i32') : out[j + lead]));
}

/** Loads every input broadcast to the output index. */
export const loadsBroadcast = <V>(b: Builder<V>, out: readonly V[], inShapes: readonly Shape[]): V[] =>
  inShapes.map((s, i) => b.load(i, bcastIdx(b, out, s)));

/** Sums a broadcast cotangent back down to `shape` (the VJP of broadcasting). */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  const lead = g.shape.length - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.shape.length; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  const r = axes.length ? g.sum(axes, true) : g;
  return r.shape.length === shape.length ? r : r.reshape(shape);
}

export const product = (s: Shape): number => s.reduce((a, b) => a * b, 1);

/** A scalar constant equal to `v` (for algebraic identities). */
export const isScalarConst = (n: Node, v: number): boolean => n.op === 'const' && (n.attrs as { value: number }).value === v && product(n.shape) === 1;

/** x op c → x when c is the identity `v` on that side and the result keeps x's shape and dtype. */
export const identity = (side: 0 | 1 | 'both', v: number) => (n: Node): Node | null => {
  const [a, b] = n.inputs;
  const keeps = (x: Node) => sameShape(x.shape, n.shape) && x.dtype === n.dtype;
  if (side !== 0 && isScalarConst(b, v) && keeps(a)) return a;
  if (side !== 1 && isScalarConst(a, v) && keeps(b)) return b;
  return null;
};
