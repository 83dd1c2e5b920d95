/** Rewrites the buffers a kernel reads and writes (the memory planner's recompute clones and the reads that
 * move to the recomputed copies). */
import * as E from './expr';
import type { Expr, Kernel, Store } from './kir';
import { buffersOf } from './buffers';

export function remapExpr(e: Expr, map: ReadonlyMap<number, number>, memo = new Map<string, Expr>()): Expr {
  const hit = memo.get(e.key);
  if (hit) return hit;
  let out: Expr;
  switch (e.k) {
    case 'load': out = E.load(map.get(e.buf) ?? e.buf, remapExpr(e.off, map, memo), e.dt, e.mask ? remapExpr(e.mask, map, memo) : null); break;
    case 'alu': out = E.alu(e.op, ...e.args.map((a) => remapExpr(a, map, memo))); break;
    case 'where': out = E.where(remapExpr(e.args[0], map, memo), remapExpr(e.args[1], map, memo), remapExpr(e.args[2], map, memo)); break;
    case 'cast': out = E.cast(remapExpr(e.x, map, memo), e.dt); break;
    case 'philox': out = E.philox(remapExpr(e.key_, map, memo), remapExpr(e.ctr, map, memo), e.stream); break;
    default: out = e;
  }
  memo.set(e.key, out);
  return out;
}

/** `reads` remaps loads and template operands; `writes` remaps stores. */
export function remapKernel(k: Kernel, reads: ReadonlyMap<number, number>, writes: ReadonlyMap<number, number>, name = k.name): Kernel {
  if (reads.size === 0 && writes.size === 0 && name === k.name) return k;
  const memo = new Map<string, Expr>();
  const st = (s: Store): Store => ({ buf: writes.get(s.buf) ?? s.buf, off: s.off, value: remapExpr(s.value, reads, memo), dt: s.dt });
  switch (k.kind) {
    case 'pointwise': return { ...k, name, stores: k.stores.map(st) };
    case 'reduce': return { ...k, name, value: remapExpr(k.value, reads, memo), stores: k.stores.map(st) };
    case 'extern': return { ...k, name, operands: k.operands.map((o) => ({ ...o, buf: reads.get(o.buf) ?? o.buf })), stores: k.stores.map(st) };
    case 'row': return { ...k, name, reductions: k.reductions.map((r) => ({ ...r, value: remapExpr(r.value, reads, memo) })), stores: k.stores.map(st) };
    case 'commit': return { ...k, name, copies: k.copies.map((c) => ({ ...c, from: reads.get(c.from) ?? c.from, to: writes.get(c.to) ?? c.to })) };
  }
}

/** The kernel with its buffers renamed to their position among the buffers it touches (0, 1, …) and named
 * `name`: kernels that differ only in where their buffers live become equal. `bufs[i]` is local buffer i's
 * original id. What both renderers print once per distinct kernel. */
export function localizeBuffers(k: Kernel, name: string): { kernel: Kernel; bufs: number[] } {
  const { reads, writes } = buffersOf(k);
  const bufs = [...new Set([...reads, ...writes])];
  const local = new Map(bufs.map((b, i) => [b, i]));
  return { kernel: remapKernel(k, local, local, name), bufs };
}
