import type { DType } from '../ir/dtype';
import type { Shape } from '../ir/shape';

/** Initializers for parameters, computed on the host from a seed with the same Philox stream as `rand`. */
export type Init =
  | { kind: 'zeros' } | { kind: 'ones' } | { kind: 'constant'; value: number }
  | { kind: 'normal'; std: number; seed: number; mean?: number }
  | { kind: 'uniform'; low: number; high: number; seed: number };

export interface Conv2dAttrs {
  readonly stride: readonly [number, number];
  /** [top, bottom, left, right]: TensorFlow's 'same' padding is asymmetric, so both sides are explicit. */
  readonly padding: readonly [number, number, number, number];
  readonly dilation: readonly [number, number];
  readonly groups: number;
}

type None = Record<string, never>;
type Reduce = { readonly axes: readonly number[]; readonly keepdims: boolean };

/** The primitive op list: each key is one op and its attributes. Every concern (shape rule, VJP, float64
 * reference, lowering) is a table over these keys, so `tsc` reports a missing rule. Composite ops (softmax,
 * layer norm, GELU, pooling, ...) live in compiler/dsl as compositions of these. */
export interface OpAttrs {
  // sources
  input: { readonly name: string; readonly shape: Shape; readonly dtype: DType };
  param: { readonly name: string; readonly shape: Shape; readonly dtype: DType; readonly trainable: boolean; readonly init: Init; readonly uid: number };
  const: { readonly value: number; readonly shape: Shape; readonly dtype: DType };
  tensor: { readonly data: Float64Array; readonly shape: Shape; readonly dtype: DType; readonly uid: number };
  iota: { readonly shape: Shape; readonly axis: number; readonly dtype: DType };
  rand_uniform: { readonly shape: Shape; readonly stream: number };
  // unary elementwise
  neg: None; exp: None; log: None; sqrt: None; rsqrt: None; recip: None; abs: None; tanh: None; sigmoid: None;
  erf: None; sin: None; cos: None; not: None; floor: None;
  cast: { readonly dtype: DType };
  stop_gradient: None;
  // binary elementwise (broadcasting)
  add: None; sub: None; mul: None; div: None; pow: None; maximum: None; minimum: None;
  cmplt: None; cmple: None; cmpeq: None; cmpne: None; and: None; or: None;
  // ternary
  where: None;
  // reductions
  sum: Reduce; max: Reduce;
  // movement
  reshape: { readonly shape: Shape };
  permute: { readonly perm: readonly number[] };
  expand: { readonly shape: Shape };
  slice: { readonly starts: readonly number[]; readonly stops: readonly number[]; readonly steps: readonly number[] };
  /** Per dim [low, high, interior] (XLA's pad): interior inserts values between elements, so pad is slice's VJP. */
  pad: { readonly pads: readonly (readonly [number, number, number])[]; readonly value: number };
  concat: { readonly axis: number };
  gather: { readonly axis: number };
  scatter_add: { readonly axis: number; readonly size: number };
  // compute (hand-written templates on the back end)
  matmul: None;
  conv2d: Conv2dAttrs;
  conv2d_bwd_data: Conv2dAttrs & { readonly inShape: Shape };
  conv2d_bwd_weight: Conv2dAttrs & { readonly wShape: Shape };
  sdpa: { readonly scale: number; readonly causal: boolean };
  sdpa_grad: { readonly scale: number; readonly causal: boolean; readonly wrt: 0 | 1 | 2 };
}

export type Op = keyof OpAttrs;
