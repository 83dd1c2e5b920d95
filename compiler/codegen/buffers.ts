/** The buffers a kernel reads and writes (for the memory planner and the renderers). */
import type { Expr, Kernel } from './kir';

export function buffersOf(k: Kernel): { reads: number[]; writes: number[] } {
  const reads = new Set<number>();
  const walk = (e: Expr, seen: Set<string>) => {
    if (seen.has(e.key)) return;
    seen.add(e.key);
    if (e.k === 'load') { reads.add(e.buf); walk(e.off, seen); if (e.mask) walk(e.mask, seen); }
    else if (e.k === 'alu') e.args.forEach((a) => walk(a, seen));
    else if (e.k === 'where') e.args.forEach((a) => walk(a, seen));
    else if (e.k === 'cast') walk(e.x, seen);
    else if (e.k === 'philox') { walk(e.key_, seen); walk(e.ctr, seen); }
  };
  if (k.kind === 'commit') return { reads: k.copies.map((c) => c.from), writes: k.copies.map((c) => c.to) };
  const seen = new Set<string>();
  for (const s of k.stores) { walk(s.value, seen); walk(s.off, seen); }
  if (k.kind === 'reduce') walk(k.value, seen);
  if (k.kind === 'row') k.reductions.forEach((r) => walk(r.value, seen));
  if (k.kind === 'extern') k.operands.forEach((o) => reads.add(o.buf));
  return { reads: [...reads], writes: k.stores.map((s) => s.buf) };
}
