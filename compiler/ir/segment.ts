/** Checkpoint segments (the DSL's `checkpoint(fn)`): which nodes were built inside which segment. A node built
 * inside a segment is interned under a key that names the segment, so it is never shared with an equal node
 * built elsewhere (hash-consing would otherwise leak the tag into graphs built without the checkpoint), and the
 * tag itself is kept beside the node. The tag changes neither the op, nor fusion, nor the kernels: only the
 * memory planner reads it, and recomputes a segment's inner values during the backward pass instead of keeping
 * them from the forward pass. */
import type { Node } from './node';

const tags = new WeakMap<Node, number>();
const outputs = new WeakMap<Node, number>();
let current: number | undefined;
let nextSegment = 1;

/** The segment a node belongs to (built inside it and not one of its outputs), if any. */
export const segmentOf = (n: Node): number | undefined => tags.get(n);

/** The segment whose output this node is (kept, not recomputed; the segment's forward pass ends with it). */
export const segmentOutputOf = (n: Node): number | undefined => outputs.get(n);

/** The segment nodes built now belong to (inside `inSegment`), if any. */
export const currentSegment = (): number | undefined => current;

/** The segment's declared inputs (`inSegment`'s `inputs`), when given. */
let currentInputs: ReadonlySet<Node> | undefined;

/** The segment a node built now from `inputs` belongs to. With declared inputs, a node that reads neither one of
 * them nor a node of the segment does not depend on the segment's arguments (e.g. the ID tokens' K/V, a text
 * K/V, the time embedding's projection): it is built as outside any segment, so it stays shared (hash-consed)
 * with the same node elsewhere, as without the checkpoint, and the gradient graph is the same, to the bit. */
export function segmentFor(inputs: readonly Node[]): number | undefined {
  if (current === undefined || !currentInputs) return current;
  for (const i of inputs) if (currentInputs.has(i) || tags.get(i) === current) return current;
  return undefined;
}

/** Called by `intern` when it creates a node under a segment. */
export function tagNode(n: Node, segment: number): void { tags.set(n, segment); }

/** Called by `intern` for a rebuilt segment output (see rebuiltMark). */
export function markOutput(n: Node, segment: number): void { outputs.set(n, segment); }

/** Segments the planner recomputes only when a budget asks for it (`checkpoint(fn, { when: 'budget' })`). */
const optional = new Set<number>();
export const isOptionalSegment = (segment: number): boolean => optional.has(segment);

/** Passes after the DSL (the precision pass, simplify) rebuild nodes with new inputs through `intern`, outside any
 * segment and outside `grad`; the rebuilt node keeps the original's marks (its segment or segment output, and
 * whether autodiff built it). The original is found by its attributes object, which a rebuild passes on
 * unchanged: each mark is inherited when every node built with that object (and op) has the same. A cast a pass
 * inserts after a value inherits the value's marks (an inner value's cast is recomputed with it). */
const byAttrs = new WeakMap<object, Node[]>();
export function noteAttrs(n: Node): void {
  const a = n.attrs as unknown;
  if (typeof a !== 'object' || a === null) return;
  const l = byAttrs.get(a);
  if (l) l.push(n); else byAttrs.set(a, [n]);
}
export interface RebuiltMark { segment?: number; output: boolean; backward: boolean }
const markOf = (n: Node): RebuiltMark => {
  const t = tags.get(n), o = outputs.get(n);
  return { ...(t !== undefined ? { segment: t } : o !== undefined ? { segment: o } : {}), output: t === undefined && o !== undefined, backward: backward.has(n) };
};
export function rebuiltMark(op: string, inputs: readonly Node[], attrs: unknown): RebuiltMark | undefined {
  if (typeof attrs !== 'object' || attrs === null) return undefined;
  const built = byAttrs.get(attrs)?.filter((n) => n.op === op);
  if (!built?.length) {
    if (op !== 'cast' || inputs.length !== 1) return undefined;
    const m = markOf(inputs[0]);
    return { ...(m.segment !== undefined && !m.output ? { segment: m.segment } : {}), output: false, backward: m.backward };
  }
  const marks = built.map(markOf), first = marks[0];
  const same = marks.every((m) => m.segment === first.segment && m.output === first.output);
  return { ...(same && first.segment !== undefined ? { segment: first.segment } : {}), output: same && first.output, backward: marks.every((m) => m.backward) };
}

/** Runs `body` with every node it builds tagged with a fresh segment; the nodes in `keep` (the segment's
 * outputs) are untagged afterwards: they are kept, the rest is recomputed (`optional`: only when the planner's
 * budget needs it). A segment inside a segment joins the outer one. */
export function inSegment<T>(body: () => T, keep: (result: T) => readonly Node[], opts: { optional?: boolean; inputs?: readonly Node[] } = {}): T {
  if (current !== undefined) return body();
  current = nextSegment++;
  if (opts.optional) optional.add(current);
  currentInputs = opts.inputs ? new Set(opts.inputs) : undefined;
  let result: T;
  try { result = body(); } finally { current = undefined; currentInputs = undefined; }
  for (const n of keep(result)) {
    const s = tags.get(n);
    if (s !== undefined) { outputs.set(n, s); tags.delete(n); }
  }
  return result;
}

/** Nodes first built while differentiating (autodiff's `grad`): the memory report counts their buffers as
 * gradients rather than activations. A node shared with the forward pass (hash-consing) stays forward. */
const backward = new WeakSet<Node>();
let inGrad = 0;
export const isBackward = (n: Node): boolean => backward.has(n);
export function noteBuilt(n: Node, rebuiltBackward = false): void { if (inGrad > 0 || rebuiltBackward) backward.add(n); }
export function inBackward<T>(body: () => T): T {
  inGrad++;
  try { return body(); } finally { inGrad--; }
}

/** `to` replaces `from` in a rewritten graph (simplify): a new node (a higher id) keeps `from`'s marks (a
 * segment's output, built by autodiff); the segment tag itself travels in the intern key. */
export function inheritMarks(from: Node, to: Node): void {
  if (to === from || to.id < from.id) return;
  const o = outputs.get(from);
  if (o !== undefined && !tags.has(to)) outputs.set(to, o);
  if (backward.has(from)) backward.add(to);
}
