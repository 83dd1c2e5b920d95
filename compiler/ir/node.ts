import type { DType } from './dtype';
import type { Shape } from './shape';
import type { Op, OpAttrs } from '../ops/attrs';
import { currentSegment, segmentFor, markOutput, noteAttrs, noteBuilt, rebuiltMark, tagNode } from './segment';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;
const M_isFinite = Number.isFinite;

/** One immutable graph node. Nodes are hash-consed (same op, inputs and attributes give the same object), so
 * common subexpressions are shared as they are built. `src` is the caller's file:line of the first build. */
export interface Node<K extends Op = Op> {
  readonly id: number;
  readonly op: K;
  readonly inputs: readonly Node[];
  readonly attrs: OpAttrs[K];
  readonly shape: Shape;
  readonly dtype: DType;
  readonly src: string;
  readonly key: string;
}

let nextId = 1;
const table = new Map<string, WeakRef<Node>>();
const registry = new FinalizationRegistry<string>((key) => {
  const ref = table.get(key);
  if (ref && ref.deref() === undefined) table.delete(key);
});

/** Attributes to a canonical string; typed arrays (tensor constants) never take part: those nodes are unique. */
function attrKey(attrs: object): string {
  return JSON.stringify(attrs, (_k, v) => {
    if (v instanceof Float64Array) return `#${v.length}`;
    if (typeof v === 'number' && (!M_isFinite(v) || Object.is(v, -0))) return `#${Object.is(v, -0) ? '-0' : v}`;
    return v;
  });
}

/** `segment`: the checkpoint segment the node is built in (default: the one being built now, ir/segment.ts); it
 * is part of the key, so a node inside a segment is never shared with one outside. */
export function intern<K extends Op>(op: K, inputs: readonly Node[], attrs: OpAttrs[K], shape: Shape, dtype: DType, src: string, segment?: number): Node<K> {
  // A pass that rebuilds a node (precision, simplify) keeps its checkpoint marks (ir/segment.ts, rebuiltMark).
  const rebuilt = segment === undefined && currentSegment() === undefined ? rebuiltMark(op, inputs, attrs) : undefined;
  segment ??= segmentFor(inputs) ?? rebuilt?.segment;
  const key = `${op}(${inputs.map((n) => n.id).join(',')})${attrKey(attrs)}:${dtype}${segment === undefined ? '' : `@${segment}`}`;
  const hit = table.get(key)?.deref();
  if (hit) return hit as Node<K>;
  const node: Node<K> = Object.freeze({ id: nextId++, op, inputs: Object.freeze([...inputs]), attrs: Object.freeze(attrs) as OpAttrs[K], shape: Object.freeze([...shape]), dtype, src, key });
  table.set(key, new WeakRef(node));
  registry.register(node, key);
  if (rebuilt?.output) markOutput(node, rebuilt.segment!);
  else if (segment !== undefined) tagNode(node, segment);
  noteAttrs(node);
  noteBuilt(node, rebuilt?.backward);
  return node;
}

/** A fresh id for nodes that must never be shared (parameters, constant tensors). */
export const uniqueId = (): number => nextId++;
