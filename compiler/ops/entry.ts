import type { DType } from '../ir/dtype';
import type { Shape } from '../ir/shape';
import type { NDArray } from '../reference/ndarray';
import type { Tensor } from '../dsl/tensor';
import type { Lowering } from './lowering';
import type { Node } from '../ir/node';
import type { Op, OpAttrs } from './attrs';

export interface TypeInfo { readonly shape: Shape; readonly dtype: DType }

/** Thrown by a shape rule with the reason only; `apply` adds op, operands and the caller's location. */
export class RuleError extends Error {}
export const fail = (reason: string): never => { throw new RuleError(reason); };

export interface VjpCtx<K extends Op> {
  readonly inputs: readonly Tensor[];
  readonly out: Tensor;
  readonly attrs: OpAttrs[K];
}

/** A reverse-mode rule: one cotangent per input (null where none flows). `saves` declares which forward values
 * the rule reads (inputs by position, the output): exactly those, as test/ops/saves.test.ts checks for every
 * primitive, so it is a true statement of what the backward pass keeps alive. docs/ops.md lists it. The memory
 * planner does not read it yet: it sees the same facts as buffer lifetimes of the compiled step. */
export interface Vjp<K extends Op> {
  readonly saves: { readonly inputs: readonly number[]; readonly output: boolean };
  grad(g: Tensor, ctx: VjpCtx<K>): readonly (Tensor | null)[];
}
/** Ops with no derivative say why (comparisons, integer generators, backward-only ops). */
export interface NotDifferentiable { readonly none: string }

/** One op, defined once: its shape/dtype rule, VJP, float64 reference and lowering. */
export interface OpDef<K extends Op> {
  /** Number of inputs, or -1 for any number (concat). */
  readonly arity: number;
  infer(ins: readonly TypeInfo[], attrs: OpAttrs[K]): TypeInfo;
  readonly vjp: Vjp<K> | NotDifferentiable;
  ref(ins: readonly NDArray[], attrs: OpAttrs[K], out: TypeInfo, inTypes: readonly TypeInfo[]): Float64Array;
  readonly lower: Lowering<OpAttrs[K]>;
  /** Algebraic identities of this op (x + 0 → x, reshape of a reshape, ...), applied by passes/simplify.ts to
   * a node whose inputs are already simplified; null keeps the node. */
  readonly simplify?: (n: Node<K>) => Node | null;
}

export type OpTable = { readonly [K in Op]: OpDef<K> };

export const isDifferentiable = <K extends Op>(v: Vjp<K> | NotDifferentiable): v is Vjp<K> => 'grad' in v;
