/** Lowering: one fusion group to one kernel. Each op's registry lowering builds scalar expressions through a
 * Builder over kernel-IR expressions; loads of inlined nodes are replaced by their own expressions at the
 * loaded index (fusion by substitution), loads of realized nodes become buffer loads. */
import type { Node } from '../ir/node';
import { numel, stridesOf, type Shape } from '../ir/shape';
import { OPS } from '../ops/registry';
import type { Builder, LowerCtx } from '../ops/lowering';
import { isFreeLeaf, isView, viewLayout } from '../ops/views';

/** What fusion hands lowering: `root` is realized; `region` is every node inlined into it (root included);
 * `anchor` is the reduction or template the kernel is built around, if any (its result feeds the fused
 * epilogue); `rows` are the reductions over trailing axes that run as stages of a row kernel, in order;
 * `others` are further realized nodes of the root's shape that a plain pointwise kernel stores beside its root
 * (side outputs, fusion step 5), computed inline wherever the kernel reads them. */
export interface KernelGroup {
  readonly root: Node;
  readonly anchor: Node | null;
  readonly region: readonly Node[];
  readonly rows: readonly Node[];
  readonly others?: readonly Node[];
}
type Group = KernelGroup;
import { ctxOf } from '../ops/context';
import * as E from './expr';
import type { Expr, Kernel, Store, StridedView } from './kir';

/** An epilogue read its anchor at another element than the one being produced. Fusion asks `canAnchor`
 * before it commits to an epilogue, so lowering a group fusion decided never meets this: it is an internal
 * error, not a signal to fuse again. */
export class AnchorMismatch extends Error {
  constructor(readonly anchor: Node) { super(`lower: internal error: anchor ${anchor.op}#${anchor.id} read off-position (fusion should have asked canAnchor)`); }
}

export interface LowerEnv {
  /** Buffer id of every realized node. */
  readonly bufferOf: ReadonlyMap<number, number>;
}

class Emitter {
  private memo = new Map<string, Expr>();
  /** Row-kernel reductions: node id → accumulator slot, all at position `anchorPos`. */
  rows = new Map<number, number>();
  /** Nodes computed inline although realized: the root and the group's side outputs. */
  private inline: ReadonlySet<Node>;
  constructor(private env: LowerEnv, root: Node, private anchor: Node | null, private anchorPos: Expr | null, private misread: (n: Node) => void, others: readonly Node[] = []) {
    this.inline = new Set([root, ...others]);
  }

  /** Value of `n` at multi-index `ix`, under `mask` (loads happen only where it holds). */
  emit(n: Node, ix: readonly Expr[], mask: Expr | null): Expr {
    const key = `${n.id}|${ix.map((e) => e.key).join(',')}|${mask?.key ?? ''}`;
    const hit = this.memo.get(key);
    if (hit) return hit;
    let out: Expr;
    const buf = this.inline.has(n) ? undefined : this.env.bufferOf.get(n.id);
    const slot = this.rows.get(n.id);
    if (n === this.anchor || slot !== undefined) {
      if (E.flatIndex(ix, n.shape).key !== this.anchorPos!.key) this.misread(n);
      out = E.acc(n.dtype, slot ?? 0);
    } else if (buf !== undefined) {
      out = E.load(buf, E.flatIndex(ix, n.shape), n.dtype, mask);
    } else {
      const low = OPS[n.op].lower;
      if (low.kind !== 'pointwise') throw new Error(`lower: ${n.op}#${n.id} is neither realized nor pointwise`);
      const b: Builder<Expr> = {
        c: (v, dt) => E.cnst(v, dt),
        alu: (op, ...args) => E.alu(op, ...args),
        where: (c, x, y) => E.where(c, x, y),
        cast: (x, dt) => E.cast(x, dt),
        load: (i, idx, m) => this.emit(n.inputs[i], idx, m ? (mask ? E.alu('and', mask, m) : m) : mask),
        philox: (k, c, s) => E.philox(k, c, s),
      };
      out = (low.emit as (b: Builder<Expr>, o: readonly Expr[], c: LowerCtx<unknown>) => Expr)(b, ix, ctxOf(n));
    }
    this.memo.set(key, out);
    return out;
  }
}

export { ctxOf };

const vars = (prefix: string, shape: Shape) => shape.map((d, i) => E.variable(`${prefix}${i}`, d));

/** The root's index of the element that anchor element `ix` becomes: follow the chain from anchor to root,
 * mapping the index through elementwise ops (unchanged) and bijective moves (their `forward`); anywhere else
 * assume flat order is kept (lowering then checks it). */
function rootIndex(g: Group, ix: readonly Expr[]): readonly Expr[] {
  const path: Node[] = [];
  const inRegion = new Set(g.region), dead = new Set<Node>();  // nodes known not to lead to the anchor: linear
  const find = (n: Node): boolean => {
    if (n === g.anchor) return true;
    if (dead.has(n)) return false;
    for (const i of n.inputs) if (inRegion.has(i) && find(i)) { path.push(n); return true; }
    dead.add(n);
    return false;
  };
  find(g.root);
  let cur = ix, prev = g.anchor!;
  const b = { c: (v: number, dt: 'i32') => E.cnst(v, dt), alu: E.alu } as unknown as Builder<Expr>;
  for (const n of path) {
    const low = OPS[n.op].lower;
    if (low.kind === 'pointwise' && low.elementwise && prev.shape.length === n.shape.length && prev.shape.every((d, i) => d === n.shape[i])) { prev = n; continue; }
    if (low.kind === 'pointwise' && low.forward && n.inputs[0] === prev) cur = low.forward(b, cur, ctxOf(n) as never);
    else cur = E.unflatten(E.flatIndex(cur, prev.shape), n.shape);
    prev = n;
  }
  return cur;
}

/** Stores of the group's root for the anchor element at `anchorIdx`. */
function epilogue(g: Group, em: Emitter, buf: number, anchorIdx: readonly Expr[]): Store[] {
  const r = g.root;
  const ix = g.anchor === r ? anchorIdx : rootIndex(g, anchorIdx);
  return [{ buf, off: E.flatIndex(ix, r.shape), value: em.emit(r, ix, null), dt: r.dtype }];
}

/** A template operand as a strided view of a realized buffer (through the ops' `view` layouts). */
function viewOf(n: Node, env: LowerEnv): StridedView {
  const layout = viewLayout(n, { has: (id: number) => env.bufferOf.has(id) });
  if (!layout) throw new Error(`lower: template operand ${n.op}#${n.id} is not a strided view of a buffer (${n.src})`);
  let base = n;
  while (!env.bufferOf.has(base.id)) base = base.inputs[0];
  return { buf: env.bufferOf.get(base.id)!, shape: layout.shape, strides: layout.strides, offset: layout.offset, dt: n.dtype };
}

const internal = (n: Node): never => { throw new AnchorMismatch(n); };

/** Whether `g` can be built around its anchor (or its row reductions): every read of them in the epilogue is
 * at the element being produced. Fusion asks this before it commits (Inductor's can_fuse_vertical), by lowering
 * the candidate with the nodes outside its region standing for buffers. */
export function canAnchor(g: Group): boolean {
  const inside = new Set(g.region.map((n) => n.id));
  const bufferOf = { get: (id: number) => (inside.has(id) && id !== g.anchor?.id && !g.rows.some((r) => r.id === id) ? undefined : 0), has: (id: number) => !inside.has(id) } as unknown as ReadonlyMap<number, number>;
  let fits = true;
  lowerGroup(g, { bufferOf }, 'probe', () => { fits = false; });
  return fits;
}

/** Lowers one group. `name` is the kernel's name (it says what it fuses). */
export function lowerGroup(g: Group, env: LowerEnv, name: string, misread: (n: Node) => void = internal): Kernel {
  const rootBuf = env.bufferOf.get(g.root.id)!;
  const ops = [...new Set(g.region.filter((n) => !isView(n) && !isFreeLeaf(n)).map((n) => n.op))];
  const a = g.anchor;
  if (g.rows.length) return lowerRows(g, env, name, rootBuf, ops, misread);
  if (!a) {
    const others = g.others ?? [];
    const { vars: v, shape, stores } = coalescedLoops(g.root.shape, (ix) => {
      // One emitter for every root: a side output the root reads is the same expression as its own store.
      const em = new Emitter(env, g.root, null, null, misread, others);
      return [g.root, ...others].map((r) => ({ buf: r === g.root ? rootBuf : env.bufferOf.get(r.id)!, off: E.flatIndex(ix, r.shape), value: em.emit(r, ix, null), dt: r.dtype }));
    });
    return { kind: 'pointwise', name, vars: v, shape, stores, ops };
  }
  const low = OPS[a.op].lower;
  if (low.kind === 'reduce') {
    const x = a.inputs[0];
    const axes = low.axes(a.attrs as never, x.shape);
    const outer = x.shape.filter((_d, i) => !axes.includes(i)), inner = axes.map((i) => x.shape[i]);
    const ov = vars('o', outer), iv = vars('r', inner);
    let j = 0;
    const inIdx = x.shape.map((_d, i) => (axes.includes(i) ? iv[axes.indexOf(i)] : ov[j++]));
    const keep = a.shape.length === x.shape.length;
    let o = 0;
    const aIdx = keep ? x.shape.map((_d, i) => (axes.includes(i) ? E.idx(0) : ov[o++])) : ov;
    const pos = E.flatIndex(aIdx, a.shape);
    const em = new Emitter(env, g.root, a, pos, misread);
    const value = em.emit(x, inIdx, null);
    return { kind: 'reduce', name, outerVars: ov, outer, innerVars: iv, inner, combine: low.combine, value, accDtype: a.dtype, stores: epilogue(g, em, rootBuf, aIdx), ops };
  }
  if (low.kind === 'extern') {
    const ov = vars('o', a.shape);
    const pos = E.flatIndex(ov, a.shape);
    const em = new Emitter(env, g.root, a, pos, misread);
    return {
      kind: 'extern', name, template: low.template, attrs: a.attrs as Record<string, unknown>, operands: a.inputs.map((i) => viewOf(i, env)),
      outShape: a.shape, outVars: ov, accDtype: a.dtype, stores: epilogue(g, em, rootBuf, ov), ops, flops: low.flops(ctxOf(a) as never),
    };
  }
  throw new Error(`lower: anchor ${a.op} has lowering kind ${low.kind}`);
}

/** A row kernel: the reductions' kept (leading) dims are the rows; each reduction and the root are indexed
 * through the flat position row * inner + i, which index simplification turns back into plain loop
 * variables wherever the shapes agree. */
function lowerRows(g: Group, env: LowerEnv, name: string, rootBuf: number, ops: string[], misread: (n: Node) => void): Kernel {
  const first = g.rows[0].inputs[0];
  const low0 = OPS[g.rows[0].op].lower as { axes(a: unknown, s: Shape): readonly number[] };
  const nAxes = low0.axes(g.rows[0].attrs, first.shape).length;
  const outer = first.shape.slice(0, first.shape.length - nAxes), inner = first.shape.slice(first.shape.length - nAxes);
  const ov = vars('o', outer), iv = vars('r', inner);
  const pos = E.flatIndex(ov, outer);
  const flat = E.alu('add', E.alu('mul', pos, E.idx(numel(inner))), E.flatIndex(iv, inner));
  const em = new Emitter(env, g.root, null, pos, misread);
  const reductions = g.rows.map((r, slot) => {
    const x = r.inputs[0];
    const value = em.emit(x, E.unflatten(flat, x.shape), null);
    em.rows.set(r.id, slot);
    return { combine: (OPS[r.op].lower as { combine: 'add' | 'max' }).combine, value, dt: r.dtype };
  });
  const ix = E.unflatten(flat, g.root.shape);
  const stores = [{ buf: rootBuf, off: E.flatIndex(ix, g.root.shape), value: em.emit(g.root, ix, null), dt: g.root.dtype }];
  return { kind: 'row', name, outerVars: ov, outer, innerVars: iv, inner, reductions, stores, ops };
}

/** Loop coalescing (Inductor's loop merging, tinygrad's view merging): adjacent dims of a pointwise kernel's loop
 * nest run as one loop of their product when no index the kernel computes needs them apart. The root's index
 * over a merged group is unflattened from the group's variable (i = m / e, j = m % e) and index simplification
 * puts every affine read back together (a·i + b·j with a = b·e is b·m); a merge is kept when the kernel it
 * yields holds no more divisions or remainders of loop variables than the nest without it, so a transpose, a
 * broadcast along one of the dims or a padding mask keeps its dims apart. An AdamW update of a [32, 64, 3, 3]
 * weight was a nest whose inner loop ran 3 elements; it is one loop of 18432 (and kernels that differ only in how
 * a contiguous tensor is shaped now render the same function). Tried from the innermost dim outwards, after the
 * whole nest as one loop (the common case: one emission). `stores(ix)` builds the kernel's stores at root index ix. */
function coalescedLoops(shape: Shape, stores: (ix: readonly Expr[]) => Store[]): { vars: Expr[]; shape: number[]; stores: Store[] } {
  const attempt = (groups: readonly (readonly [number, number])[]) => {
    const gshape = groups.map(([lo, hi]) => numel(shape.slice(lo, hi)));
    const gv = vars('i', gshape);
    const ix = groups.flatMap(([lo, hi], k) => (hi - lo === 1 ? [gv[k]] : E.unflatten(gv[k], shape.slice(lo, hi))));
    const st = stores(ix);
    return { vars: gv, shape: gshape, stores: st, divmods: loopDivmods(st) };
  };
  const n = shape.length;
  if (n <= 1) return attempt(n ? [[0, 1]] : []);
  const whole = attempt([[0, n]]);
  if (whole.divmods === 0) return whole;
  let groups: (readonly [number, number])[] = shape.map((_d, i) => [i, i + 1] as const);
  let best = attempt(groups);
  for (let k = n - 2; k >= 0; k--) {  // dim k is still a group of its own, just before the one starting at k + 1
    const at = groups.findIndex(([lo]) => lo === k + 1);
    const cand = [...groups.slice(0, at - 1), [k, groups[at][1]] as const, ...groups.slice(at + 1)];
    const tried = attempt(cand);
    if (tried.divmods <= best.divmods) { groups = cand; best = tried; }
  }
  return best;
}

/** Integer divisions and remainders of loop variables in a kernel's stores (each distinct node once). */
function loopDivmods(stores: readonly Store[]): number {
  const hasVar = new Map<string, boolean>();
  let count = 0;
  const walk = (e: Expr): boolean => {
    const hit = hasVar.get(e.key);
    if (hit !== undefined) return hit;
    let v = e.k === 'var';
    for (const c of E.children(e)) v = walk(c) || v;
    if (v && e.k === 'alu' && (e.op === 'idiv' || e.op === 'mod')) count++;
    hasVar.set(e.key, v);
    return v;
  };
  for (const st of stores) { walk(st.off); walk(st.value); }
  return count;
}

export const kernelElements = (k: Kernel): number =>
  k.kind === 'pointwise' ? numel(k.shape) : k.kind === 'reduce' || k.kind === 'row' ? numel(k.outer) * numel(k.inner) : k.kind === 'extern' ? numel(k.outShape) : 0;
