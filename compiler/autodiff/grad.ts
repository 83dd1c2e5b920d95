/** Reverse-mode autodiff that produces a graph: cotangents are ordinary tensors built from each op's VJP rule,
 * so gradients are compiled, fused and planned like any other computation. */
import type { Node } from '../ir/node';
import { topoSort } from '../ir/graph';
import { fmt, sameShape } from '../ir/shape';
import { isFloat } from '../ir/dtype';
import { OPS } from '../ops/registry';
import { isDifferentiable } from '../ops/entry';
import { Tensor } from '../dsl/tensor';
import { full } from '../dsl/creation';
import { inBackward } from '../ir/segment';
import { withSource } from '../ir/source';

/** Gradients of `y` (a scalar, or any shape with an explicit cotangent `seed`) with respect to `wrt`. Leaves
 * that `y` does not depend on get zeros. stop_gradient and non-differentiable ops (comparisons, generators)
 * pass no cotangent. */
export function grad(y: Tensor, wrt: readonly Tensor[], seed?: Tensor): Tensor[] {
  return inBackward(() => gradOf(y, wrt, seed));
}

function gradOf(y: Tensor, wrt: readonly Tensor[], seed?: Tensor): Tensor[] {
  if (!seed && y.size !== 1) throw new Error(`grad: y has shape ${fmt(y.shape)}; give a cotangent for non-scalar outputs`);
  if (!isFloat(y.dtype)) throw new Error(`grad: y has dtype ${y.dtype}, not a float`);
  const order = topoSort([y.node]);
  const targets = new Set(wrt.map((t) => t.node.id));
  // Nodes on a path from some wrt leaf to y: only these need cotangents.
  const needs = new Set<number>();
  for (const n of order) if (targets.has(n.id) || n.inputs.some((i) => needs.has(i.id))) needs.add(n.id);

  const cot = new Map<number, Tensor>([[y.node.id, seed ?? full(y.shape, 1, y.dtype)]]);
  for (let k = order.length - 1; k >= 0; k--) {
    const n = order[k];
    const g = cot.get(n.id);
    if (!g || n.inputs.length === 0 || !needs.has(n.id)) continue;
    const rule = OPS[n.op].vjp;
    if (!isDifferentiable(rule)) continue;
    const grads = withSource(`${n.src} (backward of ${n.op})`, () => (rule.grad as (g: Tensor, ctx: object) => readonly (Tensor | null)[])(g, {
      inputs: n.inputs.map((i) => new Tensor(i)), out: new Tensor(n), attrs: n.attrs,
    }));
    n.inputs.forEach((inp, i) => {
      const gi = grads[i];
      if (!gi || !needs.has(inp.id)) return;
      if (!sameShape(gi.shape, inp.shape)) throw new Error(`grad: VJP of ${n.op} gave ${fmt(gi.shape)} for input ${i} of shape ${fmt(inp.shape)} (${n.src})`);
      const prev = cot.get(inp.id);
      cot.set(inp.id, prev ? withSource(`${inp.src} (gradient sum of ${inp.op})`, () => prev.add(gi)) : gi);
    });
  }
  return wrt.map((t) => cot.get(t.node.id) ?? full(t.shape, 0, t.dtype));
}

/** The trainable parameters `y` depends on, in graph order (frozen ones are left out). */
export function trainableParams(y: Tensor): Tensor[] {
  return topoSort([y.node]).filter((n): n is Node<'param'> => n.op === 'param' && (n as Node<'param'>).attrs.trainable).map((n) => new Tensor(n));
}

export function valueAndGrad(y: Tensor, wrt?: readonly Tensor[]): { value: Tensor; grads: Tensor[]; params: Tensor[] } {
  const params = wrt ? [...wrt] : trainableParams(y);
  return { value: y, grads: grad(y, params), params };
}
