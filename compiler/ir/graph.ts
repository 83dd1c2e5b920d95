/** A program to compile or evaluate: named outputs plus parameter updates (the optimizer step), so a whole
 * training step is one graph. */
import type { Node } from './node';
import type { DType } from './dtype';
import { fmt, sameShape, type Shape } from './shape';

/** What the IR needs of a DSL tensor (a `Tensor` is one): its node, shape and dtype. The IR does not import
 * the DSL. */
export interface GraphValue { readonly node: Node; readonly shape: Shape; readonly dtype: DType }
export interface Update<T extends GraphValue = GraphValue> { readonly param: T; readonly value: T }
export interface GraphSpec<T extends GraphValue = GraphValue> {
  readonly outputs: Readonly<Record<string, T>>;
  readonly updates?: readonly Update<T>[];
}

/** Nodes reachable from `roots`, inputs before users (iterative DFS: UNet graphs are deep). */
export function topoSort(roots: readonly Node[]): Node[] {
  const order: Node[] = [];
  const state = new Map<number, 1 | 2>();
  for (const root of roots) {
    const stack: [Node, number][] = [[root, 0]];
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [n, i] = top;
      if (i === 0) {
        if (state.get(n.id) === 2) { stack.pop(); continue; }
        state.set(n.id, 1);
      }
      if (i < n.inputs.length) {
        top[1]++;
        const c = n.inputs[i];
        if (!state.has(c.id)) stack.push([c, 0]);
        continue;
      }
      stack.pop();
      if (state.get(n.id) !== 2) { state.set(n.id, 2); order.push(n); }
    }
  }
  return order;
}

export interface Collected {
  readonly order: readonly Node[];
  readonly inputs: readonly Node<'input'>[];
  readonly params: readonly Node<'param'>[];
}

/** Orders a graph and checks its leaves: input and parameter names are unique, updates fit their targets. */
export function collect(spec: GraphSpec): Collected {
  const roots = [...Object.values(spec.outputs).map((t) => t.node), ...(spec.updates ?? []).flatMap((u) => [u.param.node, u.value.node])];
  const order = topoSort(roots);
  const inputs = order.filter((n): n is Node<'input'> => n.op === 'input');
  const params = order.filter((n): n is Node<'param'> => n.op === 'param');
  const seen = new Map<string, Node>();
  for (const n of [...inputs, ...params]) {
    const name = (n as Node<'input'>).attrs.name;
    const prev = seen.get(name);
    if (prev && prev !== n) throw new Error(`graph: two different leaves are named '${name}' (${prev.src} and ${n.src})`);
    seen.set(name, n);
  }
  for (const u of spec.updates ?? []) {
    if (u.param.node.op !== 'param') throw new Error(`graph: update target is a ${u.param.node.op}, not a parameter`);
    if (!sameShape(u.param.shape, u.value.shape) || u.param.dtype !== u.value.dtype) {
      throw new Error(`graph: update of '${(u.param.node as Node<'param'>).attrs.name}' has ${fmt(u.value.shape)}:${u.value.dtype}, the parameter ${fmt(u.param.shape)}:${u.param.dtype}`);
    }
  }
  return { order, inputs, params };
}
