/** Turns the constant tensors of a graph into inputs (with their values as feeds), so a test graph made of
 * constants exercises kernels instead of being folded away at compile time. */
import { Tensor } from '../../compiler/index';
import { intern, type Node } from '../../compiler/ir/node';
import { topoSort } from '../../compiler/ir/graph';
import { apply } from '../../compiler/ops/apply';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export function liftConstants(outputs: Record<string, Tensor>, prefix: string): { outputs: Record<string, Tensor>; feeds: Record<string, Float64Array> } {
  const map = new Map<number, Node>();
  const feeds: Record<string, Float64Array> = {};
  for (const n of topoSort(Object.values(outputs).map((t) => t.node))) {
    if (n.op === 'tensor') {
      const a = n.attrs as { data: Float64Array; shape: readonly number[]; dtype: Node['dtype'] };
      const name = `${prefix}_c${n.id}`;
      feeds[name] = a.data;
      map.set(n.id, apply('input', [], { name, shape: a.shape, dtype: a.dtype }));
      continue;
    }
    const ins = n.inputs.map((i) => map.get(i.id)!);
    map.set(n.id, ins.every((x, i) => x === n.inputs[i]) ? n : intern(n.op, ins, n.attrs as never, n.shape, n.dtype, n.src));
  }
  return { outputs: Object.fromEntries(Object.entries(outputs).map(([k, t]) => [k, new Tensor(map.get(t.node.id)!)])), feeds };
}

/** Normwise relative error of `got` against the float64 reference `want`. */
export function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let d = 0, n = 0;
  for (let i = 0; i < want.length; i++) { d += (got[i] - want[i]) ** 2; n += want[i] ** 2; }
  return M.sqrt(d) / M.max(M.sqrt(n), 1e-30);
}
