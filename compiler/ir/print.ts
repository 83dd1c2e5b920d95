/** A readable text form of the graph IR: one line per node with its id, op, inputs, attributes (values,
 * permutations, bounds, names), result type and source line. `KILN_DUMP=graph` prints it; golden pass tests
 * compare it. Example:
 *
 *   %3 = input {name="x"} : [2,3]:f32                      @ examples/readme.ts:3:11
 *   %7 = permute(%3) {perm=[1,0]} : [3,2]:f32              @ examples/readme.ts:4:13
 */
import type { Node } from './node';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

/** Embedded data prints its first values only. */
const SHOWN = 6;

function num(v: number): string {
  return Object.is(v, -0) ? '-0' : String(v);
}

/** One attribute value: numbers (with -0, NaN, ±Infinity), strings quoted, arrays, objects, typed arrays
 * abbreviated. */
export function formatValue(v: unknown): string {
  if (typeof v === 'number') return num(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'boolean' || v === null || v === undefined) return String(v);
  if (ArrayBuffer.isView(v)) {
    const a = v as unknown as ArrayLike<number>;
    const head = Array.from({ length: M.min(a.length, SHOWN) }, (_x, i) => num(a[i]));
    return `<${a.length} values: ${head.join(', ')}${a.length > SHOWN ? ', …' : ''}>`;
  }
  if (Array.isArray(v)) return `[${v.map(formatValue).join(',')}]`;
  return `{${Object.entries(v as object).map(([k, x]) => `${k}=${formatValue(x)}`).join(', ')}}`;
}

/** A node's attributes, leaving out what its type already says (shape, dtype) and internal ids. */
export function formatAttrs(n: Node): string {
  const a = n.attrs as Record<string, unknown>;
  const same = (k: string, x: unknown) => (k === 'shape' && Array.isArray(x) && x.length === n.shape.length && x.every((d, i) => d === n.shape[i])) || (k === 'dtype' && x === n.dtype) || k === 'uid';
  const shown = Object.entries(a).filter(([k, x]) => !same(k, x));
  return shown.length ? ` {${shown.map(([k, x]) => `${k}=${formatValue(x)}`).join(', ')}}` : '';
}

export function formatNode(n: Node, name: (m: Node) => string = (m) => `%${m.id}`): string {
  const ins = n.inputs.length ? `(${n.inputs.map(name).join(', ')})` : '';
  return `${name(n)} = ${n.op}${ins}${formatAttrs(n)} : [${n.shape.join(',')}]:${n.dtype}`;
}

/** The graph in topological order, then the outputs. `renumber` names nodes %0, %1, … in order (stable across
 * processes, for golden tests); otherwise by node id. `sources: false` leaves out the source lines. */
export function printGraph(order: readonly Node[], outputs: Readonly<Record<string, Node>> = {}, opts: { renumber?: boolean; sources?: boolean } = {}): string {
  const ids = new Map(order.map((n, i) => [n.id, i]));
  const name = (m: Node) => `%${opts.renumber ? ids.get(m.id) ?? `?${m.id}` : m.id}`;
  const lines = order.map((n) => {
    const s = formatNode(n, name);
    return opts.sources === false ? s : `${s.padEnd(56)} @ ${n.src}`;
  });
  const outs = Object.entries(outputs);
  if (outs.length) lines.push(`outputs: ${outs.map(([k, n]) => `${k}=${name(n)}`).join(', ')}`);
  return lines.join('\n');
}
