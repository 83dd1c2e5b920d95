/** `checkpoint(fn)`, as jax.checkpoint / torch.utils.checkpoint: the returned function computes what `fn` does,
 * but a training step built from it keeps only the segment's inputs and outputs; the values inside are
 * recomputed, templates (GEMM, conv, attention) included, just before the backward pass needs them. The graph
 * and its kernels are the same as without the checkpoint, so gradients are bitwise identical; only the memory
 * plan differs (compiler/schedule/memory-checkpoint.ts).
 *
 * `when: 'budget'` marks a candidate segment instead: kept whole (no recompute) unless the program is compiled
 * under a `budget` that needs it; the planner then recomputes the candidates that free the most bytes per FLOP
 * of recompute first, until the plan fits (compiler/schedule/memory-segments.ts). Models mark their module
 * boundaries (UNet blocks, transformer layers, sampler steps) this way. */
import { inSegment } from '../ir/segment';
import { Tensor } from './tensor';

type Result = Tensor | readonly Tensor[] | Readonly<Record<string, Tensor>>;

export interface CheckpointOptions {
  /** 'always' (default): recompute the inside in backward; 'budget': only when a memory budget needs it. */
  readonly when?: 'always' | 'budget';
  /** The segment's arguments (checkpoint(fn): its tensor arguments). Given, a node inside that depends on none
   * of them (nor on a node of the segment) is built as outside it: shared with equal nodes elsewhere, as without
   * the checkpoint, so the gradient graph, and its bits, are the same. */
  readonly inputs?: readonly Tensor[];
}

const tensorsOf = (r: Result): Tensor[] => (r instanceof Tensor ? [r] : Array.isArray(r) ? [...(r as readonly Tensor[])] : Object.values(r as Record<string, Tensor>));

export function checkpoint<A extends unknown[], R extends Result>(fn: (...args: A) => R, opts: CheckpointOptions = {}): (...args: A) => R {
  return (...args: A): R => segment(() => fn(...args), tensorsOf, { ...opts, inputs: args.flatMap((a) => (a instanceof Tensor ? [a] : Array.isArray(a) ? a.filter((x): x is Tensor => x instanceof Tensor) : [])) });
}

/** The general form: runs `body` as one segment whose outputs are `outputs(result)`, read after the body (so
 * values the body recorded elsewhere, e.g. attention maps a loss reads later, can be outputs too). */
export function segment<T>(body: () => T, outputs: (result: T) => readonly Tensor[], opts: CheckpointOptions = {}): T {
  if (opts.when !== undefined && opts.when !== 'always' && opts.when !== 'budget') throw new Error(`checkpoint: 'when' is 'always' or 'budget', not '${String(opts.when)}'`);
  return inSegment(body, (r) => outputs(r).map((t) => t.node), { optional: opts.when === 'budget', ...(opts.inputs ? { inputs: opts.inputs.map((t) => t.node) } : {}) });
}
