/** The float64 reference evaluator: the oracle every back end is checked against. It walks the graph in
 * order and calls each op's `ref` in plain JavaScript, computing every float type exactly in float64. It is
 * NOT the fast path (no fusion, no memory planning, no native code) and is meant for tests and small graphs. */
import type { Node } from '../ir/node';
import { collect, type GraphSpec } from '../ir/graph';
import { fmt, numel } from '../ir/shape';
import { castValue } from '../ir/dtype';
import { initValues } from '../ir/init';
import { OPS } from '../ops/registry';
import type { NDArray } from './ndarray';

/** Parameter values by name; missing ones are initialized from their declared initializer on first use. */
export type ParamStore = Map<string, Float64Array>;

export interface EvalResult {
  readonly outputs: Record<string, NDArray>;
  /** Every node's value, for tests that look inside. */
  readonly values: Map<number, NDArray>;
}

function leafValue(n: Node, feeds: Readonly<Record<string, ArrayLike<number>>>, store: ParamStore): Float64Array {
  if (n.op === 'input') {
    const a = (n as Node<'input'>).attrs;
    const v = feeds[a.name];
    if (!v) throw new Error(`reference: no value fed for input '${a.name}' ${fmt(a.shape)}`);
    if (v.length !== numel(a.shape)) throw new Error(`reference: input '${a.name}' needs ${numel(a.shape)} values ${fmt(a.shape)}, got ${v.length}`);
    return Float64Array.from(v, (x) => castValue(x, a.dtype));
  }
  const a = (n as Node<'param'>).attrs;
  let v = store.get(a.name);
  if (!v) { v = initValues(a.init, numel(a.shape)); store.set(a.name, v); }
  if (v.length !== numel(a.shape)) throw new Error(`reference: parameter '${a.name}' holds ${v.length} values, needs ${fmt(a.shape)}`);
  return v;
}

/** Evaluates the outputs, then applies the updates to `store` (all reads see the values before the step). */
export function evaluate(spec: GraphSpec, feeds: Readonly<Record<string, ArrayLike<number>>> = {}, store: ParamStore = new Map()): EvalResult {
  const { order } = collect(spec);
  const values = new Map<number, NDArray>();
  for (const n of order) {
    const data = n.op === 'input' || n.op === 'param'
      ? leafValue(n, feeds, store)
      : (OPS[n.op].ref as (i: readonly NDArray[], a: unknown, o: object, t: object[]) => Float64Array)(
        n.inputs.map((i) => values.get(i.id)!), n.attrs, { shape: n.shape, dtype: n.dtype }, n.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })));
    values.set(n.id, { shape: n.shape, data });
  }
  const outputs: Record<string, NDArray> = {};
  for (const [k, t] of Object.entries(spec.outputs)) outputs[k] = values.get(t.node.id)!;
  for (const u of spec.updates ?? []) store.set((u.param.node as Node<'param'>).attrs.name, values.get(u.value.node.id)!.data.slice());
  return { outputs, values };
}
