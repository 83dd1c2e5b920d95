import { callerLocation } from '../ir/source';
import { KilnShapeError } from '../ir/errors';
import { intern, type Node } from '../ir/node';
import type { Op, OpAttrs } from './attrs';
import { RuleError } from './entry';
import { OPS } from './registry';

/** Builds (or finds) the node `op(inputs; attrs)`: runs the op's shape/dtype rule and, when it fails, throws a
 * KilnShapeError naming the op, the operands and the caller's file:line. The one way nodes are made. */
export function apply<K extends Op>(op: K, inputs: readonly Node[], attrs: OpAttrs[K]): Node<K> {
  const def = OPS[op];
  const where = callerLocation();
  const types = inputs.map((n) => ({ shape: n.shape, dtype: n.dtype }));
  if (def.arity >= 0 && inputs.length !== def.arity) {
    throw new KilnShapeError(op, types.map((t) => t.shape), types.map((t) => t.dtype), `takes ${def.arity} inputs, got ${inputs.length}`, where);
  }
  let out;
  try {
    out = def.infer(types, attrs);
  } catch (e) {
    if (!(e instanceof RuleError)) throw e;
    throw new KilnShapeError(op, types.map((t) => t.shape), types.map((t) => t.dtype), e.message, where);
  }
  return intern(op, inputs, attrs, out.shape, out.dtype, where);
}
