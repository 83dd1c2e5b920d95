/** Graph simplification before scheduling: algebraic identities, constant folding and dropping
 * stop_gradient (it only matters to autodiff). Rules read registry data and node structure; rewritten nodes
 * are re-interned, so common subexpressions stay shared (CSE) and unreachable ones vanish (DCE). */
import { intern, type Node } from '../ir/node';
import { topoSort, type GraphSpec } from '../ir/graph';
import { numel, sameShape } from '../ir/shape';
import { OPS } from '../ops/registry';
import type { NDArray } from '../reference/ndarray';
import { Tensor } from '../dsl/tensor';

/** Constant folding stops at this many elements (bigger constants would bloat the program). */
const FOLD_LIMIT = 4096;

const isScalarConst = (n: Node, v: number) => n.op === 'const' && (n.attrs as { value: number }).value === v && numel(n.shape) === 1;
const isConstant = (n: Node) => n.op === 'const' || n.op === 'tensor';

function constValue(n: Node): NDArray {
  const ref = OPS[n.op].ref as (i: readonly NDArray[], a: unknown, o: object, t: object[]) => Float64Array;
  return { shape: n.shape, data: ref([], n.attrs, { shape: n.shape, dtype: n.dtype }, []) };
}

/** One rewrite of `n` (whose inputs are already simplified), or null to keep it. */
function rewrite(n: Node): Node | null {
  const [a, b] = n.inputs;
  const same = (x: Node) => sameShape(x.shape, n.shape) && x.dtype === n.dtype;
  switch (n.op) {
    case 'stop_gradient': return a;
    case 'add': if (isScalarConst(b, 0) && same(a)) return a; if (isScalarConst(a, 0) && same(b)) return b; break;
    case 'sub': if (isScalarConst(b, 0) && same(a)) return a; break;
    case 'mul': if (isScalarConst(b, 1) && same(a)) return a; if (isScalarConst(a, 1) && same(b)) return b; break;
    case 'div': if (isScalarConst(b, 1) && same(a)) return a; break;
    case 'neg': if (a.op === 'neg') return a.inputs[0]; break;
    case 'cast': if (a.dtype === n.dtype) return a; break;
    case 'reshape': case 'expand':
      if (sameShape(a.shape, n.shape)) return a;
      if (n.op === 'reshape' && a.op === 'reshape') return intern('reshape', [a.inputs[0]], n.attrs as never, n.shape, n.dtype, n.src);
      break;
    case 'permute': {
      const perm = (n.attrs as { perm: readonly number[] }).perm;
      if (perm.every((p, i) => p === i)) return a;
      if (a.op === 'permute') {
        const inner = (a.attrs as { perm: readonly number[] }).perm;
        return intern('permute', [a.inputs[0]], { perm: perm.map((p) => inner[p]) }, n.shape, n.dtype, n.src);
      }
      break;
    }
  }
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
    let m = ins.every((x, i) => x === n.inputs[i]) ? n : intern(n.op, ins, n.attrs as never, n.shape, n.dtype, n.src);
    for (let r = rewrite(m); r && r !== m; r = rewrite(m)) m = r;
    map.set(n.id, m);
  }
  return map;
}

export function simplifyGraph(spec: GraphSpec): GraphSpec {
  const roots = [...Object.values(spec.outputs).map((t) => t.node), ...(spec.updates ?? []).flatMap((u) => [u.param.node, u.value.node])];
  const map = simplifyNodes(roots);
  const t = (x: Tensor) => new Tensor(map.get(x.node.id)!);
  return {
    outputs: Object.fromEntries(Object.entries(spec.outputs).map(([k, v]) => [k, t(v)])),
    updates: (spec.updates ?? []).map((u) => ({ param: u.param, value: t(u.value) })),
  };
}
