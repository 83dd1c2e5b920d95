/** Fusion: decides which nodes are materialized in memory ("realized") and which are inlined into the kernel
 * of a realized consumer. Decisions come only from registry properties (lowering kind, cost, whether a
 * template reads strided operands), never from op names, and every decision not to fuse records why
 * (`explain()` prints them).
 *
 * 1. Leaves, outputs, reductions and templates start realized; template operands must be buffers (or strided
 *    views of buffers, where the template reads through strides).
 * 2. Pointwise nodes are inlined into every kernel that reads them; one read by several kernels is realized
 *    instead when recomputing it would cost more than `maxInlineCost` (repeated to a fixed point). Within one
 *    kernel, a value read through several movement ops (pooling windows, stencil taps) is evaluated once per index
 *    map: the costliest is realized while cost x maps exceeds `maxRecomputeCost` (a max-pool's backward recomputed
 *    the whole chain of window maxima for each of the 9 windows, a 554-line expression per element).
 * 3. Epilogues: a reduction or template whose value flows through single-use pointwise nodes into one realized
 *    pointwise root of the same size becomes that root's anchor, so the kernel computes it and applies the
 *    epilogue before storing, when `canAnchor` (codegen) says the epilogue reads the anchor at the element it
 *    produces; otherwise the anchor stays a kernel of its own and the reason is recorded. Lowering then follows
 *    what fusion decided (Inductor's can_fuse_vertical; no exception-driven re-fusion).
 * 4. Row kernels: reductions over trailing axes whose every reader lies in one pointwise kernel of the
 *    reduced input's size run as stages of that kernel (softmax, layer norm, group norm + SiLU: one kernel
 *    each, when nothing else needs the statistics).
 * 5. Side outputs (multi-output kernels): a value that must be stored because the caller wants it (an output or
 *    a parameter update's new value, `sideOutputs`) and whose every reader lies in one plain pointwise kernel of
 *    the same shape is computed in that kernel and stored beside its root, instead of in a kernel of its own
 *    whose buffer the other reads back. AdamW's new moments m' and v' are read only by the parameter's update,
 *    so one kernel per parameter reads p, g, m, v once and writes p', m', v' (three kernels before). The kernel
 *    computes every root at each element from the same loads (codegen shares the expressions), so what it stores
 *    is what the separate kernels stored. */
import type { Node } from '../ir/node';
import { numel, stridesOf } from '../ir/shape';
import { OPS } from '../ops/registry';
import { isFreeLeaf, isView, viewLayout } from '../ops/views';
import { canAnchor, type KernelGroup } from '../codegen/lower';

/** A kernel to generate: `root` is realized; `region` is every node inlined into it (root included); `anchor`
 * is the reduction or template the kernel is built around, if any (its result feeds the fused epilogue). */
export type Group = KernelGroup;

/** Why a node was not fused into its consumer's kernel:
 * - `operand-in-memory`: a template operand must be a buffer (or a strided view of one);
 * - `shared-expensive`: read by several kernels and too costly to recompute in each;
 * - `recompute-multiplied`: read by one kernel at several index maps, each a full recomputation, too costly in all;
 * - `consumer-not-pointwise`, `several-exits`, `broadcast-epilogue`, `anchor-taken`: no single same-size
 *   pointwise epilogue to build the kernel around;
 * - `anchor-misread`: the epilogue reads the anchor at another element (canAnchor said no);
 * - `rows-misread`: reductions that would be row stages are read at other rows. */
export type WhyNotCode = 'operand-in-memory' | 'shared-expensive' | 'recompute-multiplied' | 'consumer-not-pointwise' | 'several-exits' | 'broadcast-epilogue' | 'anchor-taken' | 'anchor-misread' | 'rows-misread';
export interface WhyNot { readonly node: Node; readonly code: WhyNotCode; readonly text: string }

export interface FusionResult {
  readonly realized: ReadonlySet<number>;
  readonly groups: readonly Group[];
  /** Each decision not to fuse, as text (`explain()` prints these) ... */
  readonly whyNot: readonly string[];
  /** ... and structured, for tests and tools: the node, a reason code, the same text. */
  readonly reasons: readonly WhyNot[];
}

const kind = (n: Node) => OPS[n.op].lower.kind;
const cost = (n: Node) => { const l = OPS[n.op].lower; return l.kind === 'pointwise' ? l.cost : Infinity; };
/** Inlined region of a realized root: DFS through unrealized inputs, inputs first. */
function regionOf(root: Node, realized: { has(id: number): boolean }, anchor?: Node): Node[] {
  const seen = new Set<number>(), out: Node[] = [];
  const visit = (n: Node) => {
    if (seen.has(n.id)) return;
    seen.add(n.id);
    for (const i of n.inputs) if (!realized.has(i.id) || i === anchor) visit(i);
    out.push(n);
  };
  visit(root);
  return out;
}

function regionCost(region: readonly Node[]): number {
  return region.reduce((c, n) => c + (kind(n) === 'pointwise' ? cost(n) : 0), 0);
}

/** Most index maps counted per node (a value read through more is realized the same way). */
const MAPS_CAP = 64;
/** For each node of a kernel's region, the distinct paths of movement ops (non-elementwise pointwise ops) from the
 * root down to it: the index maps the kernel evaluates it at (paths through equal movement nodes would share one map
 * after codegen's hash-consing; these count them apart, an upper bound). `region` lists inputs first. */
function indexMaps(region: readonly Node[], root: Node): Map<number, Set<string>> {
  const inRegion = new Set(region.map((n) => n.id));
  const maps = new Map<number, Set<string>>([[root.id, new Set([''])]]);
  for (let i = region.length - 1; i >= 0; i--) {
    const u = region[i], su = maps.get(u.id);
    if (!su) continue;
    const l = OPS[u.op].lower;
    const moves = l.kind === 'pointwise' && !l.elementwise && u.inputs.length > 0;
    for (const inp of new Set(u.inputs)) {
      if (!inRegion.has(inp.id)) continue;
      let s = maps.get(inp.id);
      if (!s) maps.set(inp.id, (s = new Set()));
      for (const sig of su) {
        if (s.size >= MAPS_CAP) break;
        s.add(moves ? `${sig}/${u.id}` : sig);
      }
    }
  }
  return maps;
}

export function fuse(order: readonly Node[], roots: readonly Node[], forced: ReadonlySet<number> = new Set(), maxInlineCost = 8, enabled = true, sideOutputs: ReadonlySet<number> = new Set(), maxRecomputeCost = 16): FusionResult {
  const reasons: WhyNot[] = [];
  const why = (n: Node, code: WhyNotCode, text: string) => { reasons.push({ node: n, code, text: `${n.op}#${n.id} (${n.src}): ${text}` }); };
  const realized = new Set<number>();
  const realize = (n: Node, reason: string, code: WhyNotCode = 'operand-in-memory') => {
    if (realized.has(n.id)) return;
    realized.add(n.id);
    if (reason) why(n, code, reason);
  };
  const users = new Map<number, Node[]>();
  for (const n of order) for (const i of new Set(n.inputs)) { const us = users.get(i.id); if (us) us.push(n); else users.set(i.id, [n]); }
  const rootIds = new Set(roots.map((r) => r.id));

  // 1. What must be in memory.
  for (const n of order) {
    const k = kind(n);
    if (k === 'source' || rootIds.has(n.id) || k === 'reduce' || k === 'extern') realize(n, '');
    else if (!enabled && !isFreeLeaf(n)) realize(n, '');
  }
  for (const n of order) {
    const low = OPS[n.op].lower;
    if (low.kind !== 'extern') continue;
    for (const i of n.inputs) {
      if (low.stridedOperands) {
        // Walk down the views to the first node that must hold memory; realize it unless the chain is a view.
        let v = i;
        while (!realized.has(v.id) && isView(v)) v = v.inputs[0];
        if (!realized.has(v.id)) realize(v, `operand of ${n.op}#${n.id} must be in memory (a ${v.op} is not a strided view)`);
        if (!viewLayout(i, realized)) realize(i, `operand of ${n.op}#${n.id}: this chain of views has no strided layout`);
      } else if (!realized.has(i.id)) realize(i, `operand of ${n.op}#${n.id} must be in memory (the template reads contiguous buffers)`);
    }
  }

  // 2. Pointwise values read by several kernels: recompute when cheap, else realize.
  const shared = (): boolean => {
    let any = false;
    for (let changed = true; changed;) {
      changed = false;
      const readers = new Map<number, number>();
      for (const n of order) {
        if (!realized.has(n.id) || kind(n) === 'source') continue;
        for (const r of regionOf(n, realized)) if (r !== n) readers.set(r.id, (readers.get(r.id) ?? 0) + 1);
      }
      for (const n of order) {
        const k = readers.get(n.id) ?? 0;
        if (k < 2 || realized.has(n.id)) continue;
        const c = regionCost(regionOf(n, realized));
        if (c > maxInlineCost) { realize(n, `read by ${k} kernels and recomputing it costs ${c} > ${maxInlineCost}`, 'shared-expensive'); changed = any = true; }
      }
    }
    return any;
  };
  // 2b. Values one kernel evaluates at several index maps: read through different movement ops (the windows of a
  //     pooling, the taps of a stencil), each map is a separate evaluation of the whole inlined expression. Realize
  //     the costliest while its cost times its maps exceeds maxRecomputeCost; a value realized here is a kernel
  //     root in turn, looked at after the others. Then step 2 again (new kernels may share an inlined value).
  const multiplied = (): boolean => {
    let any = false;
    const queue = order.filter((n) => realized.has(n.id) && kind(n) !== 'source');
    for (let q = 0; q < queue.length; q++) {
      const root = queue[q];
      for (;;) {
        const region = regionOf(root, realized);
        const maps = indexMaps(region, root);
        let worst: { n: Node; k: number; c: number } | null = null;
        for (const n of region) {
          const k = maps.get(n.id)?.size ?? 0;
          if (n === root || k < 2 || kind(n) !== 'pointwise' || isFreeLeaf(n)) continue;
          const c = regionCost(regionOf(n, realized));
          if (c * k > maxRecomputeCost && (!worst || c * k > worst.c * worst.k)) worst = { n, k, c };
        }
        if (!worst) break;
        realize(worst.n, `evaluated at ${worst.k >= MAPS_CAP ? `${MAPS_CAP}+` : worst.k} index maps in the kernel of ${root.op}#${root.id}, recomputing it costs ${worst.c} each (${worst.c * worst.k} > ${maxRecomputeCost})`, 'recompute-multiplied');
        queue.push(worst.n);
        any = true;
      }
    }
    return any;
  };
  shared();
  if (enabled) while (multiplied() && shared());

  // 3. Epilogue fusion.
  const anchorOf = new Map<number, Node>();
  if (enabled) {
    for (const a of order) {
      if (kind(a) !== 'reduce' && kind(a) !== 'extern') continue;
      if (rootIds.has(a.id)) continue;
      // Everything downstream of `a` through unrealized pointwise nodes must end in one realized node: then
      // those nodes are inlined only there, and that kernel can be built around `a`.
      const seen = new Set<number>(), exits = new Set<Node>();
      let bad = '';
      for (const stack = [a]; stack.length && !bad;) {
        for (const u of users.get(stack.pop()!.id) ?? []) {
          if (kind(u) !== 'pointwise') { bad = `its consumer ${u.op} is a ${kind(u)}, not a pointwise epilogue`; break; }
          if (realized.has(u.id)) exits.add(u);
          else if (!seen.has(u.id)) { seen.add(u.id); stack.push(u); }
        }
      }
      let n: Node;
      if (!bad && exits.size === 1) n = [...exits][0];
      else {
        // Several exits: store at the first shared value of the single-use chain, when it has the same size.
        n = a;
        for (;;) {
          const us = users.get(n.id) ?? [];
          if (us.length > 1 && n !== a && numel(n.shape) === numel(a.shape) && kind(n) === 'pointwise') { realize(n, ''); break; }
          if (us.length !== 1 || kind(us[0]) !== 'pointwise') { bad ||= `${us.length} consumers reach ${exits.size} kernels`; break; }
          n = us[0];
          if (realized.has(n.id)) break;
        }
        if (n === a || (bad && !realized.has(n.id))) { why(a, bad.startsWith('its consumer') ? 'consumer-not-pointwise' : 'several-exits', bad || 'no epilogue'); continue; }
      }
      if (numel(n.shape) !== numel(a.shape)) { why(a, 'broadcast-epilogue', `the epilogue ${n.op}#${n.id} has ${numel(n.shape)} elements, the ${a.op} ${numel(a.shape)} (a broadcast)`); continue; }
      if (anchorOf.has(n.id)) { why(a, 'anchor-taken', `the kernel of ${n.op}#${n.id} already has an anchor`); continue; }
      if (forced.has(a.id) || !canAnchor({ root: n, anchor: a, rows: [], region: regionOf(n, realized, a) })) {
        why(a, 'anchor-misread', 'an epilogue reads it at another index than the element it computes');
        continue;
      }
      anchorOf.set(n.id, a);
      realized.delete(a.id);
    }
  }

  // 4. Row kernels.
  const rowsOf = new Map<number, Node[]>();
  if (enabled) {
    const pos = new Map(order.map((n, i) => [n.id, i]));
    // Which kernels (by root) compute each inlined node: a reduction may join a row kernel only if every
    // reader of it is computed in that kernel alone.
    const readers = new Map<number, Set<number>>();
    for (const r of order) {
      if (!realized.has(r.id) || kind(r) === 'source') continue;
      for (const m of regionOf(r, realized, anchorOf.get(r.id))) if (m !== r) readers.set(m.id, (readers.get(m.id) ?? new Set()).add(r.id));
    }
    for (const p of order) {
      if (!realized.has(p.id) || kind(p) !== 'pointwise' || anchorOf.has(p.id)) continue;
      // Most kernels read no reduction: skip them before copying the realized set.
      if (!regionOf(p, realized).some((r) => r.inputs.some((c) => kind(c) === 'reduce' && realized.has(c.id)))) continue;
      const taken: Node[] = [];
      let inner = -1;
      // The realized set without the reductions taken (or being tried) as stages of this kernel.
      const dropped = new Set<number>();
      const without = { has: (id: number) => realized.has(id) && !dropped.has(id) };
      for (let grew = true; grew;) {
        grew = false;
        for (const r of regionOf(p, without)) for (const c of r.inputs) {
          if (kind(c) !== 'reduce' || !realized.has(c.id) || taken.includes(c) || rootIds.has(c.id) || forced.has(c.id)) continue;
          const x = c.inputs[0], low = OPS[c.op].lower;
          if (low.kind !== 'reduce') continue;
          const axes = low.axes(c.attrs as never, x.shape);
          const trailing = axes.every((a, i) => a === x.shape.length - axes.length + i);
          const n = axes.reduce((m, a) => m * x.shape[a], 1);
          if (!trailing || numel(x.shape) !== numel(p.shape) || (inner >= 0 && n !== inner)) continue;
          dropped.add(c.id);
          const region = new Set(regionOf(p, without).map((m) => m.id));
          const mine = (u: Node) => u === p || (region.has(u.id) && [...(readers.get(u.id) ?? [])].every((k) => k === p.id || taken.some((t) => t.id === k)));
          if (!(users.get(c.id) ?? []).every(mine)) { dropped.delete(c.id); continue; }
          taken.push(c);
          inner = n;
          grew = true;
        }
      }
      if (!taken.length) continue;
      // Fusion decides, lowering follows: ask before committing that every stage is read at its own row.
      const sorted = [...taken].sort((a, b) => pos.get(a.id)! - pos.get(b.id)!);
      if (!canAnchor({ root: p, anchor: null, rows: sorted, region: regionOf(p, without) })) {
        why(p, 'rows-misread', `its reductions ${taken.map((t) => `${t.op}#${t.id}`).join(', ')} are read at other rows than the one computed, so they are not stages of its kernel`);
        continue;
      }
      for (const r of taken) realized.delete(r.id);
      rowsOf.set(p.id, taken.sort((a, b) => pos.get(a.id)! - pos.get(b.id)!));
    }
  }

  const groups: Group[] = [];
  for (const n of order) {
    if (!realized.has(n.id) || kind(n) === 'source') continue;
    const anchor = kind(n) !== 'pointwise' ? n : anchorOf.get(n.id) ?? null;
    const rows = rowsOf.get(n.id) ?? [];
    groups.push({ root: n, anchor, rows, region: regionOf(n, realized, anchor ?? undefined) });
  }
  return { realized, groups: enabled && sideOutputs.size ? withSideOutputs(groups, realized, users, sideOutputs) : groups, whyNot: reasons.map((r) => r.text), reasons };
}

/** 5. Side outputs: merges into a plain pointwise group G each group Q whose root is in `sideOutputs`, plain
 * pointwise too, of G's shape, and read by no node outside G's region (so G is its only reader and nothing runs
 * between Q's old place and G that needs Q's buffer). G keeps its place in the order (after Q: it reads Q); Q's
 * root and those merged into Q join G's `others`, and G's region then runs through them. */
function withSideOutputs(groups: readonly Group[], realized: ReadonlySet<number>, users: ReadonlyMap<number, Node[]>, sideOutputs: ReadonlySet<number>): Group[] {
  const plain = (g: Group) => kind(g.root) === 'pointwise' && !g.anchor && !g.rows.length;
  // Groups kept so far, by root id, in order: a group merged into a later one leaves it.
  const out = new Map<number, Group>();
  for (const g0 of groups) {
    let g = g0;
    if (plain(g)) {
      const inRegion = new Set(g.region.map((n) => n.id));
      // Candidates by root id (a value read by several nodes of the region is taken once), as merged so far.
      const take = new Map<number, Group>();
      for (const n of g.region) for (const i of n.inputs) {
        const q = out.get(i.id);
        if (!q || q === g || take.has(i.id) || !sideOutputs.has(i.id) || !plain(q)) continue;
        if (q.root.shape.length !== g.root.shape.length || q.root.shape.some((d, k) => d !== g.root.shape[k])) continue;
        if (!(users.get(i.id) ?? []).every((u) => inRegion.has(u.id))) continue;
        take.set(i.id, q);
      }
      if (take.size) {
        const others = [...(g.others ?? []), ...[...take.values()].flatMap((q) => [q.root, ...(q.others ?? [])])];
        const inline = new Set(others.map((o) => o.id));
        for (const id of take.keys()) out.delete(id);
        g = { ...g, others, region: regionOf(g.root, { has: (id: number) => realized.has(id) && !inline.has(id) }) };
      }
    }
    out.set(g.root.id, g);
  }
  return [...out.values()];
}
