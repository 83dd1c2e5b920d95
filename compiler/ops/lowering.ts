import type { DType } from '../ir/dtype';
import type { Shape } from '../ir/shape';

/** Scalar operations of the kernel IR: the ops-handler interface every renderer implements, one method each.
 * Index arithmetic uses the same ops on i32 values. */
export type ScalarOp =
  | 'add' | 'sub' | 'mul' | 'div' | 'idiv' | 'mod' | 'pow' | 'max' | 'min'
  | 'lt' | 'le' | 'eq' | 'ne' | 'and' | 'or' | 'not'
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'recip' | 'abs' | 'tanh' | 'sigmoid' | 'erf' | 'sin' | 'cos' | 'floor';

/** The hand-written templates (kernels/cpu, kernels/cuda) an `extern` lowering names. Each renderer keeps a
 * `Record<TemplateName, …>`, so a template missing from a back end is a tsc error. */
export type TemplateName = 'matmul' | 'conv2d' | 'conv2d_bwd_data' | 'conv2d_bwd_weight' | 'sdpa' | 'sdpa_grad' | 'scatter_add';

/** What a pointwise lowering builds with. `V` is the back end's scalar value (a kernel-IR node, or a number in
 * the test interpreter). Loads take i32 index values, one per input dimension. */
export interface Builder<V> {
  c(value: number, dtype: DType): V;
  alu(op: ScalarOp, ...args: V[]): V;
  where(cond: V, a: V, b: V): V;
  cast(x: V, dtype: DType): V;
  /** With `mask`, the load happens only where the mask is true (0 elsewhere): out-of-range indices are safe. */
  load(input: number, idx: readonly V[], mask?: V): V;
  /** Philox4x32-10 uniform in [0,1) for element `counter` of stream `stream` under `key` (see ir/philox.ts). */
  philox(key: V, counter: V, stream: number): V;
}

/** Shape, element strides and element offset of a view of a buffer. */
export interface StridedLayout { readonly shape: Shape; readonly strides: readonly number[]; readonly offset: number }

export interface LowerCtx<A> {
  readonly attrs: A;
  readonly inShapes: readonly Shape[];
  readonly inDtypes: readonly DType[];
  readonly outShape: Shape;
  readonly outDtype: DType;
}

/** How the back end turns an op into kernels. The kind is the property fusion decides on:
 * - `source`: a buffer (input, parameter, constant data); no kernel.
 * - `pointwise`: each output element is an expression of loads at computed indices (elementwise, broadcast,
 *   movement, gather, generators). Chains of these fuse into one kernel by substituting loads.
 * - `reduce`: combines input 0 over `axes`; pointwise producers fuse in as a prologue, consumers as epilogue.
 * - `extern`: a hand-written template (GEMM, conv, attention); pointwise consumers fuse as its epilogue.
 * `cost` is a rough per-element price that rematerialization weighs against bytes kept. */
export type Lowering<A> =
  /** A buffer the program holds: fed by the host (`input`), resident across runs (`param`), or embedded data
   * (`const`). */
  | { readonly kind: 'source'; readonly storage: 'input' | 'param' | 'const' }
  | { readonly kind: 'pointwise'; readonly cost: number; emit<V>(b: Builder<V>, out: readonly V[], ctx: LowerCtx<A>): V;
      /** Elementwise: output element i reads element i of every input of the output's shape. */
      readonly elementwise?: boolean;
      /** For bijective movement ops: where element `inIdx` of input 0 lands in the output (the inverse of
       * `emit`'s index map), so an epilogue can store a template's result straight into a moved layout. */
      forward?<V>(b: Builder<V>, inIdx: readonly V[], ctx: LowerCtx<A>): V[];
      /** Movement ops that a strided layout can express: the layout of the output given input 0's (null when
       * it cannot, e.g. a reshape of a non-contiguous view). Templates read such views without a copy. */
      view?(src: StridedLayout, ctx: LowerCtx<A>): StridedLayout | null }
  | { readonly kind: 'reduce'; readonly combine: 'add' | 'max'; axes(attrs: A, inShape: Shape): readonly number[] }
  | { readonly kind: 'extern'; readonly template: TemplateName; readonly flops: (ctx: LowerCtx<A>) => number;
      /** The template reads operands through arbitrary strides (so transposes and broadcasts need no copy);
       * otherwise operands must be contiguous buffers. */
      readonly stridedOperands?: boolean;
      /** The template reads bf16/f16 operands and accumulates in f32 (GEMM, conv, attention): the precision
       * policy (passes/precision.ts) casts its float operands down. Without it the policy keeps them f32. */
      readonly lowPrecision?: boolean };
