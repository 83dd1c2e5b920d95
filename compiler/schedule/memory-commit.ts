/** Parameter updates committed in place. The scheduler ends the program with one commit step (`copies`) that
 * copies each update's new value (reads[i]) into its parameter (writes[i]); staged that way, every new value
 * (parameters, AdamW moments) is live from its update kernel to the end of the step. Instead, a value whose
 * writer runs after the last read of its parameter's old contents is placed in the parameter's own memory: the
 * update kernel reads the old value and writes the new one in the same buffer, and that copy is dropped.
 *
 * Legal for a pair (value v, param p) when: v is a temp written by exactly one step w, p is written only by the
 * commit step, no step after w reads p, and if w itself reads p it does so only at the element it writes (the
 * kernel's in-place hint (p, v)). Decided on every trial schedule (clones that read p after w make it illegal,
 * and the value is staged as before), so the planner's accounting is always the plan's.
 *
 * `delayUpdates` moves an update kernel that reads its parameter to just after the parameter's last reader (a
 * depth-first schedule runs a layer's update before the input cotangent dy·Wᵀ of the layers below, which still
 * reads W), when nothing it jumps over reads what it writes or writes what it reads: the same kernels on the
 * same values, so the same bits. */
import type { PlanBuffer, PlanStep } from './plan-types';

export interface CommitPair { readonly value: number; readonly param: number; readonly step: number }

/** The (value, param) pairs of the commit steps. */
export function updatePairs(steps: readonly PlanStep[]): { value: number; param: number; at: number }[] {
  const out: { value: number; param: number; at: number }[] = [];
  steps.forEach((s, i) => { if (s.copies) s.reads.forEach((v, j) => out.push({ value: v, param: s.writes[j], at: i })); });
  return out;
}

interface Access { writers: Map<number, number[]>; lastRead: Map<number, number>; readers: Map<number, number[]> }

function accesses(steps: readonly PlanStep[], wanted: ReadonlySet<number> | null): Access {
  const writers = new Map<number, number[]>(), lastRead = new Map<number, number>(), readers = new Map<number, number[]>();
  steps.forEach((s, i) => {
    for (const id of s.writes) if (!wanted || wanted.has(id)) { const l = writers.get(id); if (l) l.push(i); else writers.set(id, [i]); }
    if (s.copies) return;
    for (const id of s.reads) if (!wanted || wanted.has(id)) {
      lastRead.set(id, i);
      const l = readers.get(id); if (l) { if (l[l.length - 1] !== i) l.push(i); } else readers.set(id, [i]);
    }
  });
  return { writers, lastRead, readers };
}

/** The pairs that are legal on this schedule. */
export function findCommits(bufs: ReadonlyMap<number, PlanBuffer>, steps: readonly PlanStep[]): CommitPair[] {
  const pairs = updatePairs(steps);
  if (!pairs.length) return [];
  const wanted = new Set<number>();
  for (const p of pairs) wanted.add(p.value).add(p.param);
  const { writers, lastRead } = accesses(steps, wanted);
  const seen = new Set<number>();
  const out: CommitPair[] = [];
  for (const { value, param, at } of pairs) {
    const v = bufs.get(value), p = bufs.get(param);
    if (!v || !p || v.kind !== 'temp' || p.kind !== 'param' || v.bytes > p.bytes || seen.has(value) || seen.has(param)) continue;
    const wv = writers.get(value), wp = writers.get(param);
    if (!wv || wv.length !== 1 || !wp || wp.length !== 1 || wp[0] !== at) continue;
    const w = wv[0], s = steps[w];
    if ((lastRead.get(param) ?? -1) > w) continue;
    if (s.reads.includes(param) && !(s.inPlace ?? []).some((q) => q.read === param && q.write === value)) continue;
    seen.add(value).add(param);
    out.push({ value, param, step: w });
  }
  return out;
}

/** The commit steps without the copies made in place (a commit left with none is dropped). */
export function trimCommits(steps: readonly PlanStep[], commits: readonly CommitPair[]): PlanStep[] {
  if (!commits.length) return [...steps];
  const done = new Set(commits.map((c) => `${c.value},${c.param}`));
  const out: PlanStep[] = [];
  for (const s of steps) {
    if (!s.copies) { out.push(s); continue; }
    const keep = s.reads.map((v, j) => j).filter((j) => !done.has(`${s.reads[j]},${s.writes[j]}`));
    if (keep.length) out.push({ ...s, reads: keep.map((j) => s.reads[j]), writes: keep.map((j) => s.writes[j]) });
  }
  return out;
}

const anyIn = (positions: readonly number[] | undefined, lo: number, hi: number): boolean => {
  if (!positions) return false;
  // First position > lo, by binary search; is it <= hi?
  let a = 0, b = positions.length;
  while (a < b) { const m = (a + b) >> 1; if (positions[m] <= lo) a = m + 1; else b = m; }
  return a < positions.length && positions[a] <= hi;
};

/** The schedule with each update kernel that reads its parameter moved to just after the parameter's last
 * other reader, where legal (see above). Hazards are checked against the original order: a pair of steps
 * changes order only if one jumps over the other's original position. */
export function delayUpdates(bufs: ReadonlyMap<number, PlanBuffer>, steps: readonly PlanStep[]): { steps: PlanStep[]; moved: number } {
  const pairs = updatePairs(steps);
  if (!pairs.length) return { steps: [...steps], moved: 0 };
  const { writers, lastRead, readers } = accesses(steps, null);
  const after = new Map<number, number[]>();  // target position -> steps moved after it
  const moved = new Set<number>();
  for (const { value, param } of pairs) {
    const wv = writers.get(value);
    if (bufs.get(value)?.kind !== 'temp' || !wv || wv.length !== 1) continue;
    const w = wv[0], s = steps[w];
    const last = lastRead.get(param) ?? -1;
    if (last <= w || moved.has(w) || !s.reads.includes(param)) continue;
    if (s.recomputeOf !== undefined || s.copies) continue;
    const blocked = s.writes.some((x) => anyIn(readers.get(x), w, last) || anyIn(writers.get(x), w, last))
      || s.reads.some((x) => anyIn(writers.get(x), w, last));
    if (blocked) continue;
    moved.add(w);
    const l = after.get(last); if (l) l.push(w); else after.set(last, [w]);
  }
  if (!moved.size) return { steps: [...steps], moved: 0 };
  const out: PlanStep[] = [];
  steps.forEach((s, i) => {
    if (!moved.has(i)) out.push(s);
    for (const w of after.get(i) ?? []) out.push(steps[w]);
  });
  return { steps: out, moved: moved.size };
}
