/** The typed front end: a Tensor is a handle on an IR node whose TypeScript type carries its dtype and, where
 * the shape is a literal tuple, its shape. Methods build nodes through `apply`, which checks every shape at
 * graph-build time; the type-level rules in shape-types.ts catch the literal cases before that. */
import type { DType } from '../ir/dtype';
import { normAxis, type Shape } from '../ir/shape';
import type { Node } from '../ir/node';
import type { Conv2dAttrs, Op, OpAttrs } from '../ops/attrs';
import { apply } from '../ops/apply';
import type { Broadcast, Check, Matmul, Result } from './shape-types';

/** A number, or a tensor whose shape broadcasts with S (checked by the type system where both are literal).
 * Methods take their own shape through a `this` parameter rather than the class's S, which keeps Tensor
 * covariant in its shape: a Tensor<[2, 3]> is a Tensor. */
export type Operand<S extends Shape, B extends Shape, D extends DType> = number | (Tensor<B, D> & Check<Broadcast<S, B>>);
type Bcast<S extends Shape, B extends Shape> = Result<Broadcast<S, B>>;

export class Tensor<S extends Shape = Shape, D extends DType = DType> {
  constructor(readonly node: Node) {}

  get shape(): S { return this.node.shape as S; }
  get dtype(): D { return this.node.dtype as D; }
  get rank(): number { return this.node.shape.length; }
  get size(): number { return this.node.shape.reduce((a, b) => a * b, 1); }
  toString(): string { return `Tensor<[${this.shape.join(',')}], ${this.dtype}> = ${this.node.op}#${this.node.id}`; }

  // ---- building blocks
  /** A one-input op; its attributes are typed by the op (`OpAttrs[K]`), so a misspelt one is a tsc error. */
  private un<T extends Shape = S, E extends DType = D, K extends Op = Op>(op: K, ...attrs: {} extends OpAttrs[K] ? [OpAttrs[K]?] : [OpAttrs[K]]): Tensor<T, E> {
    return new Tensor(apply(op, [this.node], (attrs[0] ?? {}) as OpAttrs[K]));
  }
  /** A number becomes a scalar constant of this tensor's dtype (like JAX's weak types). */
  lift(o: number | Tensor): Tensor {
    return typeof o === 'number' ? new Tensor(apply('const', [], { value: o, shape: [], dtype: this.dtype })) : o;
  }
  private bin<R extends Shape, E extends DType = D>(op: Op, o: number | Tensor): Tensor<R, E> {
    return new Tensor(apply(op, [this.node, this.lift(o).node], {} as never));
  }
  private binR<R extends Shape>(op: Op, o: number | Tensor): Tensor<R, 'bool'> {
    return new Tensor(apply(op, [this.lift(o).node, this.node], {} as never));
  }

  // ---- elementwise binary (broadcasting)
  add<X extends Shape, E extends DType, B extends Shape = []>(this: Tensor<X, E>, o: Operand<X, B, NoInfer<E>>): Tensor<Bcast<X, B>, E> { return this.bin('add', o); }
  sub<X extends Shape, E extends DType, B extends Shape = []>(this: Tensor<X, E>, o: Operand<X, B, NoInfer<E>>): Tensor<Bcast<X, B>, E> { return this.bin('sub', o); }
  mul<X extends Shape, E extends DType, B extends Shape = []>(this: Tensor<X, E>, o: Operand<X, B, NoInfer<E>>): Tensor<Bcast<X, B>, E> { return this.bin('mul', o); }
  div<X extends Shape, E extends DType, B extends Shape = []>(this: Tensor<X, E>, o: Operand<X, B, NoInfer<E>>): Tensor<Bcast<X, B>, E> { return this.bin('div', o); }
  pow<X extends Shape, E extends DType, B extends Shape = []>(this: Tensor<X, E>, o: Operand<X, B, NoInfer<E>>): Tensor<Bcast<X, B>, E> { return this.bin('pow', o); }
  maximum<X extends Shape, E extends DType, B extends Shape = []>(this: Tensor<X, E>, o: Operand<X, B, NoInfer<E>>): Tensor<Bcast<X, B>, E> { return this.bin('maximum', o); }
  minimum<X extends Shape, E extends DType, B extends Shape = []>(this: Tensor<X, E>, o: Operand<X, B, NoInfer<E>>): Tensor<Bcast<X, B>, E> { return this.bin('minimum', o); }
  lt<X extends Shape, E extends DType, B extends Shape = []>(this: Tensor<X, E>, o: Operand<X, B, NoInfer<E>>): Tensor<Bcast<X, B>, 'bool'> { return this.bin('cmplt', o); }
  le<X extends Shape, E extends DType, B extends Shape = []>(this: Tensor<X, E>, o: Operand<X, B, NoInfer<E>>): Tensor<Bcast<X, B>, 'bool'> { return this.bin('cmple', o); }
  gt<X extends Shape, E extends DType, B extends Shape = []>(this: Tensor<X, E>, o: Operand<X, B, NoInfer<E>>): Tensor<Bcast<X, B>, 'bool'> { return this.binR('cmplt', o); }
  ge<X extends Shape, E extends DType, B extends Shape = []>(this: Tensor<X, E>, o: Operand<X, B, NoInfer<E>>): Tensor<Bcast<X, B>, 'bool'> { return this.binR('cmple', o); }
  eq<X extends Shape, E extends DType, B extends Shape = []>(this: Tensor<X, E>, o: Operand<X, B, NoInfer<E>>): Tensor<Bcast<X, B>, 'bool'> { return this.bin('cmpeq', o); }
  ne<X extends Shape, E extends DType, B extends Shape = []>(this: Tensor<X, E>, o: Operand<X, B, NoInfer<E>>): Tensor<Bcast<X, B>, 'bool'> { return this.bin('cmpne', o); }
  and<X extends Shape, E extends DType, B extends Shape = []>(this: Tensor<X, E>, o: Operand<X, B, NoInfer<E>>): Tensor<Bcast<X, B>, 'bool'> { return this.bin('and', o); }
  or<X extends Shape, E extends DType, B extends Shape = []>(this: Tensor<X, E>, o: Operand<X, B, NoInfer<E>>): Tensor<Bcast<X, B>, 'bool'> { return this.bin('or', o); }

  /** `cond.select(a, b)`: a where this (bool) is true, else b. Numbers take the tensor operand's dtype. */
  select(a: number | Tensor, b: number | Tensor): Tensor {
    const ref = typeof a !== 'number' ? a : typeof b !== 'number' ? b : null;
    if (!ref) throw new Error('select: at least one of a, b must be a tensor');
    return new Tensor(apply('where', [this.node, ref.lift(a).node, ref.lift(b).node], {}));
  }

  // ---- elementwise unary
  neg(): Tensor<S, D> { return this.un('neg'); }
  exp(): Tensor<S, D> { return this.un('exp'); }
  log(): Tensor<S, D> { return this.un('log'); }
  sqrt(): Tensor<S, D> { return this.un('sqrt'); }
  rsqrt(): Tensor<S, D> { return this.un('rsqrt'); }
  recip(): Tensor<S, D> { return this.un('recip'); }
  abs(): Tensor<S, D> { return this.un('abs'); }
  tanh(): Tensor<S, D> { return this.un('tanh'); }
  sigmoid(): Tensor<S, D> { return this.un('sigmoid'); }
  erf(): Tensor<S, D> { return this.un('erf'); }
  sin(): Tensor<S, D> { return this.un('sin'); }
  cos(): Tensor<S, D> { return this.un('cos'); }
  floor(): Tensor<S, D> { return this.un('floor'); }
  not(): Tensor<S, 'bool'> { return this.un('not'); }
  cast<E extends DType>(dtype: E): Tensor<S, E> { return (dtype as DType) === this.dtype ? (this as never) : this.un('cast', { dtype }); }
  /** Identity forward; blocks gradients. */
  stopGradient(): Tensor<S, D> { return this.un('stop_gradient'); }
  square(): Tensor<S, D> { return this.mul(this as never) as never; }
  /** max(x, 0), NaN kept (as PyTorch); the gradient at 0 is 0. */
  relu(): Tensor<S, D> { return this.le(0).select(0, this) as never; }
  leakyRelu(slope = 0.01): Tensor<S, D> { return this.gt(0).select(this, this.mul(slope)) as never; }
  silu(): Tensor<S, D> { return this.mul(this.sigmoid() as never) as never; }

  // ---- reductions
  private axesOf(axes?: number | readonly number[]): number[] {
    const list = axes === undefined ? this.shape.map((_d, i) => i) : typeof axes === 'number' ? [axes] : [...axes];
    return list.map((a) => (a < 0 ? a + this.rank : a)).sort((a, b) => a - b);
  }
  sum(axes?: number | readonly number[], keepdims = false): Tensor<Shape, D> { return this.un('sum', { axes: this.axesOf(axes), keepdims }); }
  max(axes?: number | readonly number[], keepdims = false): Tensor<Shape, D> { return this.un('max', { axes: this.axesOf(axes), keepdims }); }
  min(axes?: number | readonly number[], keepdims = false): Tensor<Shape, D> { return this.neg().max(axes, keepdims).neg(); }
  mean(axes?: number | readonly number[], keepdims = false): Tensor<Shape, D> {
    const ax = this.axesOf(axes);
    return this.sum(ax, keepdims).div(ax.reduce((n, a) => n * this.shape[a], 1));
  }
  /** Variance with `correction` subtracted from the count (0: population, as the norms use; 1: unbiased). */
  var(axes?: number | readonly number[], keepdims = false, correction = 0): Tensor<Shape, D> {
    const ax = this.axesOf(axes);
    const n = ax.reduce((c, a) => c * this.shape[a], 1);
    const d = this.sub(this.mean(ax, true) as never);
    return d.mul(d as never).sum(ax, keepdims).div(n - correction);
  }

  // ---- movement
  reshape<const T extends Shape>(shape: T): Tensor<T, D> {
    const known = shape.reduce((a, b) => (b === -1 ? a : a * b), 1);
    const resolved = shape.map((d) => (d === -1 ? this.size / known : d));
    return this.un('reshape', { shape: resolved });
  }
  permute(perm: readonly number[]): Tensor<Shape, D> { return this.un('permute', { perm: perm.map((p) => normAxis(p, this.rank)) }); }
  transpose(a: number, b: number): Tensor<Shape, D> {
    const perm = this.shape.map((_d, i) => i);
    const [x, y] = [normAxis(a, this.rank), normAxis(b, this.rank)];
    [perm[x], perm[y]] = [perm[y], perm[x]];
    return this.permute(perm);
  }
  /** Swaps the last two axes. */
  mT(): Tensor<Shape, D> { return this.transpose(-2, -1); }
  expand<const T extends Shape>(shape: T): Tensor<T, D> { return this.un('expand', { shape }); }
  slice(starts: readonly number[], stops: readonly number[], steps?: readonly number[]): Tensor<Shape, D> {
    return this.un('slice', { starts, stops, steps: steps ?? starts.map(() => 1) });
  }
  /** `length` elements of `axis` from `start`. */
  narrow(axis: number, start: number, length: number): Tensor<Shape, D> {
    const ax = normAxis(axis, this.rank);
    return this.slice(this.shape.map((_d, i) => (i === ax ? start : 0)), this.shape.map((d, i) => (i === ax ? start + length : d)));
  }
  pad(pads: readonly (readonly [number, number] | readonly [number, number, number])[], value = 0): Tensor<Shape, D> {
    return this.un('pad', { pads: pads.map((p) => [p[0], p[1], p[2] ?? 0]), value });
  }
  unsqueeze(axis: number): Tensor<Shape, D> {
    const ax = axis < 0 ? axis + this.rank + 1 : axis;
    return this.reshape([...this.shape.slice(0, ax), 1, ...this.shape.slice(ax)]);
  }
  squeeze(axis: number): Tensor<Shape, D> {
    const ax = normAxis(axis, this.rank);
    if (this.shape[ax] !== 1) throw new Error(`squeeze: axis ${axis} of [${this.shape.join(',')}] is not 1`);
    return this.reshape(this.shape.filter((_d, i) => i !== ax));
  }
  flatten(start = 0, end = -1): Tensor<Shape, D> {
    const [s, e] = [normAxis(start, this.rank), normAxis(end, this.rank)];
    return this.reshape([...this.shape.slice(0, s), this.shape.slice(s, e + 1).reduce((a, b) => a * b, 1), ...this.shape.slice(e + 1)]);
  }
  gather(idx: Tensor, axis: number): Tensor<Shape, D> { return new Tensor(apply('gather', [this.node, idx.node], { axis: normAxis(axis, this.rank) })); }
  scatterAdd(idx: Tensor, axis: number, size: number): Tensor<Shape, D> { return new Tensor(apply('scatter_add', [this.node, idx.node], { axis, size })); }

  // ---- compute
  matmul<X extends Shape, E extends DType, B extends Shape>(this: Tensor<X, E>, o: Tensor<B, NoInfer<E>> & Check<Matmul<X, B>>): Tensor<Result<Matmul<X, B>>, E> {
    return new Tensor(apply('matmul', [this.node, (o as Tensor).node], {}));
  }
  conv2d(w: Tensor, a: Conv2dAttrs): Tensor { return new Tensor(apply('conv2d', [this.node, w.node], canonConv(a))); }
  convBwdData(w: Tensor, a: Conv2dAttrs, inShape: Shape): Tensor {
    return new Tensor(apply('conv2d_bwd_data', [this.node, w.node], { ...canonConv(a), inShape: [...inShape] }));
  }
  convBwdWeight(dy: Tensor, a: Conv2dAttrs, wShape: Shape): Tensor {
    return new Tensor(apply('conv2d_bwd_weight', [this.node, dy.node], { ...canonConv(a), wShape: [...wShape] }));
  }
  sdpaGrad(k: Tensor, v: Tensor, dout: Tensor, a: OpAttrs['sdpa_grad']): Tensor {
    return new Tensor(apply('sdpa_grad', [this.node, k.node, v.node, dout.node], { scale: a.scale, causal: a.causal, wrt: a.wrt }));
  }
}

/** Conv attributes in one key order, so equal convolutions hash to one node. */
export const canonConv = (a: Conv2dAttrs): Conv2dAttrs =>
  ({ stride: [...a.stride] as [number, number], padding: [...a.padding] as [number, number, number, number], dilation: [...a.dilation] as [number, number], groups: a.groups });
