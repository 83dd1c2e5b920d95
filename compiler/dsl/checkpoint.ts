/** `checkpoint(fn)`, as jax.checkpoint / torch.utils.checkpoint: the returned function computes what `fn` does,
 * but a training step built from it keeps only the segment's inputs and outputs; the values inside are
 * recomputed, templates (GEMM, conv, attention) included, just before the backward pass needs them. The graph
 * and its kernels are the same as without the checkpoint, so gradients are bitwise identical; only the memory
 * plan differs (compiler/schedule/memory-checkpoint.ts). */
import { inSegment } from '../ir/segment';
import { Tensor } from './tensor';

type Result = Tensor | readonly Tensor[] | Readonly<Record<string, Tensor>>;

const tensorsOf = (r: Result): Tensor[] => (r instanceof Tensor ? [r] : Array.isArray(r) ? [...(r as readonly Tensor[])] : Object.values(r as Record<string, Tensor>));

export function checkpoint<A extends unknown[], R extends Result>(fn: (...args: A) => R): (...args: A) => R {
  return (...args: A): R => inSegment(() => fn(...args), (r) => tensorsOf(r).map((t) => t.node));
}
