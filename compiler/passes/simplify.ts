/** Graph simplification before scheduling: each op's algebraic identities (from its registry entry) and
 * constant folding. Rewritten nodes are re-interned, so common subexpressions stay shared (CSE) and
 * unreachable ones vanish (DCE). */
import { intern, type Node } from '../ir/node';
import { inheritMarks, segmentOf } from '../ir/segment';
import { topoSort, type GraphSpec, type GraphValue } from '../ir/graph';
import { numel } from '../ir/shape';
import { OPS } from '../ops/registry';
import type { NDArray } from '../reference/ndarray';
import { Tensor } from '../dsl/tensor';

/** Constant folding stops at this many elements (bigger constants would bloat the program). */
const FOLD_LIMIT = 4096;

/** Constants the folder may evaluate: embedded data and generators with no inputs. */
const isConstant = (n: Node) => { const l = OPS[n.op].lower; return (l.kind === 'source' && l.storage === 'const') || (l.kind === 'pointwise' && n.inputs.length === 0); };

function constValue(n: Node): NDArray {
  const ref = OPS[n.op].ref as (i: readonly NDArray[], a: unknown, o: object, t: object[]) => Float64Array;
  return { shape: n.shape, data: ref([], n.attrs, { shape: n.shape, dtype: n.dtype }, []) };
}

/** One rewrite of `n` (whose inputs are already simplified), or null to keep it: the op's own identities
 * (its registry entry's `simplify`), then constant folding. */
function rewrite(n: Node): Node | null {
  const own = (OPS[n.op].simplify as ((m: Node) => Node | null) | undefined)?.(n);
  if (own) return own;
  // Constant folding: every input constant, the result small.
  if (n.inputs.length && n.inputs.every(isConstant) && numel(n.shape) <= FOLD_LIMIT && OPS[n.op].lower.kind !== 'source') {
    const ref = OPS[n.op].ref as (i: readonly NDArray[], a: unknown, o: object, t: object[]) => Float64Array;
    const data = ref(n.inputs.map(constValue), n.attrs, { shape: n.shape, dtype: n.dtype }, n.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })));
    if (data.every((v) => Object.is(v, data[0]))) return intern('const', [], { value: data[0], shape: n.shape, dtype: n.dtype }, n.shape, n.dtype, n.src);
    return intern('tensor', [], { data, shape: n.shape, dtype: n.dtype, uid: n.id }, n.shape, n.dtype, n.src);
  }
  return null;
}

export function simplifyNodes(roots: readonly Node[]): Map<number, Node> {
  const map = new Map<number, Node>();
  for (const n of topoSort(roots)) {
    const ins = n.inputs.map((i) => map.get(i.id)!);
    let m = ins.every((x, i) => x === n.inputs[i]) ? n : intern(n.op, ins, n.attrs as never, n.shape, n.dtype, n.src, segmentOf(n));
    for (let r = rewrite(m); r && r !== m; r = rewrite(m)) m = r;
    inheritMarks(n, m);
    map.set(n.id, m);
  }
  return map;
}

export function simplifyGraph(spec: GraphSpec): GraphSpec<Tensor> {
  const roots = [...Object.values(spec.outputs).map((t) => t.node), ...(spec.updates ?? []).flatMap((u) => [u.param.node, u.value.node])];
  const map = simplifyNodes(roots);
  const t = (x: GraphValue) => new Tensor(map.get(x.node.id)!);
  return {
    outputs: Object.fromEntries(Object.entries(spec.outputs).map(([k, v]) => [k, t(v)])),
    updates: (spec.updates ?? []).map((u) => ({ param: t(u.param), value: t(u.value) })),
  };
}
