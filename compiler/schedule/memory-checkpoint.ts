/** Checkpoint segments in the plan: a buffer tagged with a segment (a value computed inside a DSL
 * `checkpoint(fn)`, not one of its outputs) is kept only while the segment's own forward steps run; every read
 * after the segment's last writing step gets a recomputed copy, made by a clone of the writer inserted just
 * before the first such read (or before the first clone that reads it: a clone reads the newest copy of each
 * input, so a recomputed value feeds the next recompute and the original is not kept for it). The segment's
 * forward steps end with the last step that writes one of its values or outputs. So the whole segment,
 * templates included, is re-run in order before the backward pass needs it, and only its inputs and outputs
 * stay live in between. An inner value that a forward step after the segment reads (fusion can move a segment
 * output's last op, e.g. a residual add, into its reader, which then reads an inner value) is what the segment
 * hands on: it is kept like an output. Only reads by the backward pass (steps that write gradients) count.
 *
 * One pass over the schedule for any set of segments (linear in steps + reads), so the segment policy
 * (memory-segments.ts) can try many sets on a 100k-step SDXL schedule. */
import type { PlanBuffer, PlanStep } from './plan-types';
import { freshIds, type Clone, type Ids } from './memory-remat';

export interface Checkpointed { steps: PlanStep[]; bufs: Map<number, PlanBuffer>; ids: Ids; clones: Clone[] }

const rootOf = (m: ReadonlyMap<number, number>, id: number): number => m.get(id) ?? id;

/** What recomputing each segment would clone: per segment, the inner buffers read after its forward steps
 * (bytes), and their writers' cost (FLOPs). Segments with nothing read later are absent. */
export interface SegmentCost { segment: number; bytes: number; cost: number; buffers: number[] }

interface Prepared {
  position: Map<number, number>;
  /** Tagged buffer → its single writer's position, for buffers a segment can recompute. */
  writerAt: Map<number, number>;
  /** Tagged buffer → first read position after its segment's forward steps. */
  firstRead: Map<number, number>;
  /** Buffer → positions of steps that write it (to refuse a clone whose input is overwritten before it). */
  writePositions: Map<number, number[]>;
}

function prepare(bufs: ReadonlyMap<number, PlanBuffer>, steps: readonly PlanStep[], segments: ReadonlySet<number> | undefined): Prepared {
  const position = new Map(steps.map((s, i) => [s.id, i]));
  const writePositions = new Map<number, number[]>();
  steps.forEach((s, i) => { for (const b of s.writes) { const l = writePositions.get(b); if (l) l.push(i); else writePositions.set(b, [i]); } });
  const segEnd = new Map<number, number>();
  for (const b of bufs.values()) {
    const seg = b.segment ?? b.segmentOutput, w = writePositions.get(b.id);
    if (seg === undefined || !w) continue;
    const last = w[w.length - 1];
    if ((segEnd.get(seg) ?? -1) < last) segEnd.set(seg, last);
  }
  const writerAt = new Map<number, number>(), end = new Map<number, number>();
  for (const b of bufs.values()) {
    if (b.segment === undefined || b.kind !== 'temp' || (segments && !segments.has(b.segment))) continue;
    const w = writePositions.get(b.id);
    if (!w || w.length !== 1) continue;
    const step = steps[w[0]];
    if (step.recomputable && step.writes.length === 1 && !step.reads.includes(b.id)) { writerAt.set(b.id, w[0]); end.set(b.id, segEnd.get(b.segment)!); }
  }
  // Reads after the segment by forward steps (fusion may put a segment output's last op into its reader outside
  // the segment, which then reads an inner value) keep the original; the recompute is for the backward pass,
  // from the first read by a step that computes gradients. Plans without roles: every read counts.
  let roles = false;
  for (const b of bufs.values()) if (b.role === 'gradient') { roles = true; break; }
  const backward = (s: PlanStep) => !roles || s.writes.some((w) => bufs.get(w)?.role === 'gradient');
  const firstRead = new Map<number, number>(), boundary = new Set<number>();
  steps.forEach((s, i) => {
    let bw: boolean | undefined;
    for (const x of s.reads) {
      const e = end.get(x);
      if (e === undefined || i <= e) continue;
      if ((bw ??= backward(s))) { if (!firstRead.has(x)) firstRead.set(x, i); } else boundary.add(x);
    }
  });
  // An inner value a forward step after the segment reads is what the segment hands on (its output, fused into
  // the reader): it is kept like an output. Recomputing it instead would drag the whole segment's recompute in
  // front of the next segment's.
  for (const x of boundary) { writerAt.delete(x); firstRead.delete(x); }
  return { position, writerAt, firstRead, writePositions };
}

/** Where each clone must run: before the first read after the segment, or before the first clone reading it. */
function needs(steps: readonly PlanStep[], p: Prepared): Map<number, number> {
  const need = new Map(p.firstRead);
  const byWriter = [...p.writerAt].sort((a, b) => b[1] - a[1]);
  for (const [b, w] of byWriter) {
    const n = need.get(b);
    if (n === undefined) continue;
    for (const x of steps[w].reads) if (p.writerAt.has(x) && (need.get(x) ?? Infinity) > n) need.set(x, n);
  }
  return need;
}

/** The recompute each segment would add, for the policy. */
export function segmentCosts(bufs: ReadonlyMap<number, PlanBuffer>, steps: readonly PlanStep[], segments: ReadonlySet<number>): SegmentCost[] {
  const p = prepare(bufs, steps, segments);
  const need = needs(steps, p);
  const bySeg = new Map<number, SegmentCost>();
  for (const [b, w] of p.writerAt) {
    if (!need.has(b)) continue;
    const seg = bufs.get(b)!.segment!;
    let c = bySeg.get(seg);
    if (!c) bySeg.set(seg, c = { segment: seg, bytes: 0, cost: 0, buffers: [] });
    c.bytes += bufs.get(b)!.bytes; c.cost += steps[w].cost; c.buffers.push(b);
  }
  return [...bySeg.values()];
}

/** Recomputes the given segments (all tagged segments when `segments` is absent). */
export function applySegments(bufsIn: ReadonlyMap<number, PlanBuffer>, steps: readonly PlanStep[], segments?: ReadonlySet<number>, idsIn?: Ids): Checkpointed {
  const bufs = new Map(bufsIn);
  const ids: Ids = idsIn ? { ...idsIn, rootStep: new Map(idsIn.rootStep), rootBuf: new Map(idsIn.rootBuf) } : freshIds(steps, bufsIn);
  const p = prepare(bufsIn, steps, segments);
  const need = needs(steps, p);
  // In writer order, so an input's clone is decided before its readers'.
  const planned = [...p.writerAt].filter(([b]) => need.has(b)).sort((a, b) => a[1] - b[1]);
  const cloned = new Set<number>();
  const overwritten = (y: number, from: number, to: number) => (p.writePositions.get(y) ?? []).some((i) => i > from && i < to);
  const at = new Map<number, { b: number; w: number }[]>();
  for (const [b, w] of planned) {
    const n = need.get(b)!;
    // A clone whose original input is rewritten before it would compute something else: keep the value.
    if (steps[w].reads.some((y) => !cloned.has(y) && overwritten(y, w, n))) continue;
    cloned.add(b);
    const l = at.get(n);
    if (l) l.push({ b, w }); else at.set(n, [{ b, w }]);
  }
  if (!cloned.size) return { steps: [...steps], bufs, ids, clones: [] };
  const cur = new Map<number, number>();
  const map = (x: number) => cur.get(x) ?? x;
  const out: PlanStep[] = [];
  const clones: Clone[] = [];
  steps.forEach((s, i) => {
    for (const { b, w } of at.get(i) ?? []) {  // already in writer order
      const ws = steps[w], orig = bufs.get(b)!;
      const replacement: PlanBuffer = { id: ids.nextBuf++, bytes: orig.bytes, kind: 'temp', label: `${orig.label} (recomputed)`, ...(orig.role ? { role: orig.role } : {}) };
      const clone: PlanStep = {
        id: ids.nextStep++, label: `${ws.label} (recompute)`, reads: ws.reads.map(map), writes: [replacement.id], recomputable: true,
        cost: ws.cost, recomputeOf: rootOf(ids.rootStep, ws.id),
        ...(ws.inPlace ? { inPlace: ws.inPlace.map((q) => ({ read: map(q.read), write: replacement.id })) } : {}),
      };
      bufs.set(replacement.id, replacement);
      ids.rootBuf.set(replacement.id, rootOf(ids.rootBuf, b));
      ids.rootStep.set(clone.id, clone.recomputeOf!);
      cur.set(b, replacement.id);
      out.push(clone);
      clones.push({ step: clone.recomputeOf!, clone: clone.id, buffer: rootOf(ids.rootBuf, b), replacement: replacement.id, bytes: replacement.bytes });
    }
    out.push(cur.size && s.reads.some((x) => cur.has(x))
      ? { ...s, reads: s.reads.map(map), ...(s.inPlace ? { inPlace: s.inPlace.map((q) => ({ read: map(q.read), write: q.write })) } : {}) }
      : s);
  });
  return { steps: out, bufs, ids, clones };
}

/** The segments marked `checkpoint(fn)` (not the optional ones): recomputed whatever the budget. */
export function applyCheckpoints(bufsIn: ReadonlyMap<number, PlanBuffer>, input: readonly PlanStep[], optional: ReadonlySet<number> = new Set()): Checkpointed {
  const all = new Set<number>();
  for (const b of bufsIn.values()) if (b.segment !== undefined && !optional.has(b.segment)) all.add(b.segment);
  return applySegments(bufsIn, input, all);
}
