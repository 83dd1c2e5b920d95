/** Kernel IR: what a fused group lowers to and what the renderers print. Scalar expressions are immutable and
 * hash-consed by structure (so equal subexpressions render once): `key` is an interned id (`#n`, equal keys mean
 * the same node) and `h` a structural hash for canonical ordering, both O(1) per node however much the DAG
 * shares; kernels say how they iterate. */
import type { DType } from '../ir/dtype';
import type { Shape } from '../ir/shape';
import type { ScalarOp, TemplateName } from '../ops/lowering';

export type Expr =
  | { readonly k: 'const'; readonly v: number; readonly dt: DType; readonly key: string; readonly h: number }
  /** A loop index in [0, extent). */
  | { readonly k: 'var'; readonly name: string; readonly extent: number; readonly dt: 'i32'; readonly key: string; readonly h: number }
  | { readonly k: 'alu'; readonly op: ScalarOp; readonly args: readonly Expr[]; readonly dt: DType; readonly key: string; readonly h: number }
  | { readonly k: 'where'; readonly args: readonly [Expr, Expr, Expr]; readonly dt: DType; readonly key: string; readonly h: number }
  | { readonly k: 'cast'; readonly x: Expr; readonly dt: DType; readonly key: string; readonly h: number }
  /** buffer[off], or 0 where `mask` is false (the address is then never touched). */
  | { readonly k: 'load'; readonly buf: number; readonly off: Expr; readonly mask: Expr | null; readonly dt: DType; readonly key: string; readonly h: number }
  | { readonly k: 'philox'; readonly key_: Expr; readonly ctr: Expr; readonly stream: number; readonly dt: 'f32'; readonly key: string; readonly h: number }
  /** The value of the kernel's reduction or template at the current output element. */
  | { readonly k: 'acc'; readonly slot: number; readonly dt: DType; readonly key: string; readonly h: number };

/** One buffer write: `value` stored at flat offset `off` of `buf`. */
export interface Store { readonly buf: number; readonly off: Expr; readonly value: Expr; readonly dt: DType }

/** A loop nest over `shape` (one var per dim, row-major), storing elementwise. */
export interface PointwiseKernel {
  readonly kind: 'pointwise';
  readonly name: string;
  readonly vars: readonly Expr[];
  readonly shape: Shape;
  readonly stores: readonly Store[];
  readonly ops: readonly string[];
}

/** For each outer index, combine `value` over the inner loop nest into `acc`, then run the epilogue stores
 * (which may read `acc`). */
export interface ReduceKernel {
  readonly kind: 'reduce';
  readonly name: string;
  readonly outerVars: readonly Expr[];
  readonly outer: Shape;
  readonly innerVars: readonly Expr[];
  readonly inner: Shape;
  readonly combine: 'add' | 'max';
  readonly value: Expr;
  readonly accDtype: DType;
  readonly stores: readonly Store[];
  readonly ops: readonly string[];
}

/** An operand of a template: a buffer seen through strides (a view: transposes and broadcasts are free). */
export interface StridedView { readonly buf: number; readonly shape: Shape; readonly strides: readonly number[]; readonly offset: number; readonly dt: DType }

/** A hand-written template (GEMM, conv, attention) whose epilogue runs the fused stores for each output
 * element; `outVars` are the template's output index variables the epilogue expressions use. */
export interface ExternKernel {
  readonly kind: 'extern';
  readonly name: string;
  readonly template: TemplateName;
  readonly attrs: Readonly<Record<string, unknown>>;
  readonly operands: readonly StridedView[];
  readonly outShape: Shape;
  readonly outVars: readonly Expr[];
  readonly accDtype: DType;
  readonly stores: readonly Store[];
  readonly ops: readonly string[];
  readonly flops: number;
}

/** Copies buffers into parameter storage at the end of a step (optimizer updates). */
export interface CommitKernel {
  readonly kind: 'commit';
  readonly name: string;
  readonly copies: readonly { readonly from: number; readonly to: number; readonly bytes: number }[];
  readonly ops: readonly string[];
}

/** A row kernel (a persistent reduction): for each outer index, several reductions over the same inner loop
 * nest run one after another (a later one may read an earlier one's `acc` slot), then the stores run over the
 * same inner nest. Softmax, layer norm and group norm + SiLU each become one such kernel. */
export interface RowKernel {
  readonly kind: 'row';
  readonly name: string;
  readonly outerVars: readonly Expr[];
  readonly outer: Shape;
  readonly innerVars: readonly Expr[];
  readonly inner: Shape;
  readonly reductions: readonly { readonly combine: 'add' | 'max'; readonly value: Expr; readonly dt: DType }[];
  readonly stores: readonly Store[];
  readonly ops: readonly string[];
}

export type Kernel = PointwiseKernel | ReduceKernel | ExternKernel | CommitKernel | RowKernel;
