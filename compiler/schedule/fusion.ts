/** Fusion: decides which nodes are materialized in memory ("realized") and which are inlined into the kernel
 * of a realized consumer. Decisions come only from registry properties (lowering kind and cost), never from op
 * names, and every decision not to fuse records why (`explain()` prints them). */
import type { Node } from '../ir/node';
import { numel } from '../ir/shape';
import { OPS } from '../ops/registry';

/** A kernel to generate: `root` is realized; `region` is every node inlined into it (root included); `anchor`
 * is the reduction or template the kernel is built around, if any (its result feeds the fused epilogue). */
export interface Group {
  readonly root: Node;
  readonly anchor: Node | null;
  readonly region: readonly Node[];
}

export interface FusionResult {
  readonly realized: ReadonlySet<number>;
  readonly groups: readonly Group[];
  readonly whyNot: readonly string[];
}

const kind = (n: Node) => OPS[n.op].lower.kind;
const cost = (n: Node) => { const l = OPS[n.op].lower; return l.kind === 'pointwise' ? l.cost : Infinity; };
/** Movement ops a template can read through strides instead of a copy. */
export const isView = (n: Node) => n.op === 'reshape' || n.op === 'permute' || n.op === 'expand' || n.op === 'slice';

/** Views that keep a strided layout: a reshape only directly over a contiguous buffer (see codegen viewOf). */
const viewable = (v: Node) => v.op !== 'reshape' || !isView(v.inputs[0]);

/** Inlined region of a realized root: DFS through unrealized inputs. */
function regionOf(root: Node, realized: ReadonlySet<number>): Node[] {
  const seen = new Set<number>(), out: Node[] = [];
  const visit = (n: Node) => {
    if (seen.has(n.id)) return;
    seen.add(n.id);
    for (const i of n.inputs) if (!realized.has(i.id)) visit(i);
    out.push(n);
  };
  visit(root);
  return out;
}

/** Pointwise cost of recomputing `n` with its inlined pointwise inputs (stops at anything not pointwise). */
function inlineCost(n: Node, realized: ReadonlySet<number>, memo = new Map<number, number>()): number {
  const hit = memo.get(n.id);
  if (hit !== undefined) return hit;
  let c = cost(n);
  for (const i of n.inputs) if (!realized.has(i.id)) c += inlineCost(i, realized, memo);
  memo.set(n.id, c);
  return c;
}

/** `forced`: nodes that lowering found cannot be inlined after all (an epilogue read its anchor elsewhere). */
export function fuse(order: readonly Node[], roots: readonly Node[], forced: ReadonlySet<number> = new Set(), maxInlineCost = 2): FusionResult {
  const whyNot: string[] = [];
  const realized = new Set<number>();
  const realize = (n: Node, why: string) => {
    if (realized.has(n.id)) return;
    realized.add(n.id);
    if (why) whyNot.push(`${n.op}#${n.id} (${n.src}): ${why}`);
  };
  const users = new Map<number, Node[]>();
  for (const n of order) for (const i of n.inputs) users.set(i.id, [...(users.get(i.id) ?? []), n]);
  const rootIds = new Set(roots.map((r) => r.id));

  for (const n of order) {
    const k = kind(n);
    if (k === 'source') { realize(n, ''); continue; }
    if (rootIds.has(n.id)) { realize(n, ''); continue; }
    if (forced.has(n.id)) { realize(n, 'an epilogue reads it at another index than the element it computes'); continue; }
    const us = users.get(n.id) ?? [];
    if (k === 'reduce' || k === 'extern') {
      if (us.length !== 1) realize(n, `${us.length} consumers: its epilogue cannot be fused into each`);
      else if (kind(us[0]) !== 'pointwise') realize(n, `its consumer ${us[0].op} is a ${kind(us[0])}, not a pointwise epilogue`);
      else if (numel(us[0].shape) !== numel(n.shape)) realize(n, `its consumer ${us[0].op} has another size (broadcast): not an epilogue`);
    }
  }
  // Template operands are buffers, or strided views of buffers where the template reads through strides.
  for (const n of order) {
    const low = OPS[n.op].lower;
    if (low.kind !== 'extern') continue;
    for (const i of n.inputs) {
      let v = i;
      if (low.stridedOperands) while (!realized.has(v.id) && isView(v) && viewable(v)) v = v.inputs[0];
      if (!realized.has(v.id)) realize(v, `operand of ${n.op}#${n.id} must be in memory${low.stridedOperands ? ` (a ${v.op} is not a strided view)` : ' (the template reads contiguous buffers)'}`);
    }
  }
  // Shared pointwise values: inline (recompute) only when cheap and free of reductions.
  for (let changed = true; changed;) {
    changed = false;
    for (const n of order) {
      if (realized.has(n.id) || kind(n) !== 'pointwise') continue;
      const us = users.get(n.id) ?? [];
      if (us.length <= 1) continue;
      const region = regionOf(n, realized);
      const heavy = region.some((r) => kind(r) !== 'pointwise');
      const c = inlineCost(n, realized);
      if (heavy || c > maxInlineCost) {
        realize(n, heavy ? `${us.length} consumers and it contains a reduction or template` : `${us.length} consumers and recomputing costs ${c} > ${maxInlineCost}`);
        changed = true;
      }
    }
    // One anchor per kernel, and only as the kernel's iteration space.
    for (const n of order) {
      if (!realized.has(n.id) || kind(n) === 'source') continue;
      const region = regionOf(n, realized);
      const anchors = region.filter((r) => r !== n && kind(r) !== 'pointwise');
      const self = kind(n) !== 'pointwise';
      if (anchors.length + (self ? 1 : 0) > 1) {
        for (const a of anchors) realize(a, `a second reduction/template in the kernel of ${n.op}#${n.id}`);
        changed = true;
      } else if (anchors.length === 1 && numel(anchors[0].shape) !== numel(n.shape)) {
        realize(anchors[0], `the kernel of ${n.op}#${n.id} iterates over ${numel(n.shape)} elements, the ${anchors[0].op} has ${numel(anchors[0].shape)}`);
        changed = true;
      }
    }
  }

  const groups: Group[] = [];
  for (const n of order) {
    if (!realized.has(n.id) || kind(n) === 'source') continue;
    const region = regionOf(n, realized);
    const anchor = kind(n) !== 'pointwise' ? n : region.find((r) => kind(r) !== 'pointwise') ?? null;
    groups.push({ root: n, anchor, region });
  }
  return { realized, groups, whyNot };
}
