/** Rematerialization under a byte budget: while the arena is over budget, pick a temp that is live across the
 * peak but not used there, written by a cheap pure step, and re-run that step just before the value's next
 * use; the original copy then dies early. Greedy by bytes saved at the peak per unit of cost; far over budget,
 * many independent splits per round (`safeBatch`). */
import { MemoryBudgetError, type LiveTensor, type PlanBuffer, type PlanStep, type Recompute } from './plan-types';
import { formatBytes } from './memory-report';
import { computeLifetimes, findInPlace, liveCurve, type InPlacePair, type Lifetime, type LiveCurve } from './memory-liveness';
import { assignOffsets, type Layout } from './memory-offsets';
import { findCommits, type CommitPair } from './memory-commit';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export interface Analysis {
  readonly lifetimes: Map<number, Lifetime>;
  readonly inPlace: InPlacePair[];
  readonly curve: LiveCurve;
  /** Update values committed in place (memory-commit.ts): they hold no memory of their own. */
  readonly commits: CommitPair[];
}

/** `fixed`: the commits already decided (a final schedule whose commit step no longer copies them). */
export function analyze(bufs: ReadonlyMap<number, PlanBuffer>, steps: readonly PlanStep[], fixed?: readonly CommitPair[]): Analysis {
  const lifetimes = computeLifetimes(bufs, steps);
  const commits = fixed ? [...fixed] : findCommits(bufs, steps);
  const committed = new Set(commits.map((c) => c.value));
  const inPlace = findInPlace(bufs, steps, lifetimes, committed);
  return { lifetimes, inPlace, commits, curve: liveCurve(bufs, steps, lifetimes, inPlace, committed) };
}

export interface RematResult {
  readonly steps: PlanStep[];
  readonly bufs: Map<number, PlanBuffer>;
  readonly analysis: Analysis;
  readonly layout: Layout;
  readonly recomputed: Recompute[];
}

export interface Candidate { buffer: number; writer: number; nextRead: number }

/** Buffers worth splitting at the peak: temps live across it but not touched there, with one writer that is
 * recomputable and writes only them. */
function candidates(steps: readonly PlanStep[], bufs: ReadonlyMap<number, PlanBuffer>, a: Analysis): Candidate[] {
  const p = a.curve.peakAt;
  if (p < 0) return [];
  const touched = new Set([...steps[p].reads, ...steps[p].writes]);
  for (const c of a.commits) touched.add(c.value);  // in its parameter's memory: nothing to free
  // One pass for writer counts and the first read after the peak, rather than a scan per buffer.
  const writers = new Map<number, number>(), nextRead = new Map<number, number>();
  steps.forEach((s, i) => {
    for (const id of s.writes) writers.set(id, (writers.get(id) ?? 0) + 1);
    if (i > p) for (const id of s.reads) if (!nextRead.has(id)) nextRead.set(id, i);
  });
  const found: Candidate[] = [];
  for (const [id, [first, last]] of a.lifetimes) {
    if (bufs.get(id)!.kind !== 'temp' || first >= p || last <= p || touched.has(id)) continue;
    const w = steps[first];
    if (!w.recomputable || w.writes.length !== 1 || w.reads.includes(id) || writers.get(id) !== 1) continue;
    const n = nextRead.get(id);
    if (n !== undefined) found.push({ buffer: id, writer: first, nextRead: n });
  }
  return found;
}

export interface Ids { nextStep: number; nextBuf: number; rootStep: Map<number, number>; rootBuf: Map<number, number> }
const rootOf = (m: ReadonlyMap<number, number>, id: number): number => m.get(id) ?? id;

/** The schedule with a clone of the candidate's writer inserted before its next read, or null when a value
 * the clone reads is overwritten in between (it would compute something else). Each read of the clone uses
 * the newest copy of that value before the clone, so a recomputed input is not kept alive for it. */
export function withClone(steps: readonly PlanStep[], c: Candidate, ids: Ids, bufs: ReadonlyMap<number, PlanBuffer>): { steps: PlanStep[]; replacement: PlanBuffer; clone: PlanStep } | null {
  const w = steps[c.writer];
  const version = new Map(w.reads.map((x) => [x, x]));
  for (let i = c.writer + 1; i < c.nextRead; i++) {
    for (const y of steps[i].writes) {
      for (const x of w.reads) {
        if (y === x) return null;
        if (rootOf(ids.rootBuf, y) === rootOf(ids.rootBuf, x)) version.set(x, y);
      }
    }
  }
  const orig = bufs.get(c.buffer)!;
  const replacement: PlanBuffer = { id: ids.nextBuf, bytes: orig.bytes, kind: 'temp', label: `${orig.label} (recomputed)`, ...(orig.role ? { role: orig.role } : {}) };
  const clone: PlanStep = {
    id: ids.nextStep, label: `${w.label} (recompute)`, reads: w.reads.map((x) => version.get(x)!),
    writes: [replacement.id], recomputable: true, cost: w.cost, recomputeOf: rootOf(ids.rootStep, w.id),
    ...(w.inPlace ? { inPlace: w.inPlace.map((q) => ({ read: version.get(q.read) ?? q.read, write: replacement.id })) } : {}),
  };
  const swap = (x: number): number => (x === c.buffer ? replacement.id : x);
  const later = steps.slice(c.nextRead).map((s): PlanStep => ({
    ...s, reads: s.reads.map(swap), ...(s.inPlace ? { inPlace: s.inPlace.map((q) => ({ read: swap(q.read), write: q.write })) } : {}),
  }));
  return { steps: [...steps.slice(0, c.nextRead), clone, ...later], replacement, clone };
}

/** Progress measure: the peak, then how many points reach it. Requiring it to fall strictly on every pick
 * guarantees termination (integer bytes, finitely many points) and that no pick makes things worse. */
const better = (x: LiveCurve, y: LiveCurve): boolean => x.peak < y.peak || (x.peak === y.peak && x.peakCount < y.peakCount);

/** Fresh ids for a schedule's clones: after the largest step and buffer ids in use. */
export function freshIds(steps: readonly PlanStep[], bufs: ReadonlyMap<number, PlanBuffer>): Ids {
  let s = -1, b = -1;
  for (const x of steps) s = M.max(s, x.id);
  for (const x of bufs.keys()) b = M.max(b, x);
  return { nextStep: s + 1, nextBuf: b + 1, rootStep: new Map(), rootBuf: new Map() };
}

/** The clones' records in the final schedule, by position. */
export function recomputesOf(steps: readonly PlanStep[], clones: readonly Clone[]): Recompute[] {
  const at = new Map(steps.map((s, i) => [s.id, i]));
  return clones.map((c): Recompute => ({ step: c.step, at: at.get(c.clone)!, buffer: c.buffer, replacement: c.replacement, bytes: c.bytes }))
    .sort((x, y) => x.at - y.at);
}

/** `start`: clones already made (checkpoint segments) and the ids they used. */
export function rematerialize(bufsIn: ReadonlyMap<number, PlanBuffer>, input: readonly PlanStep[], budget: number, alignment: number, start?: { ids: Ids; clones: readonly Clone[] }): RematResult {
  let steps = [...input];
  const bufs = new Map(bufsIn);
  const ids: Ids = start?.ids ?? freshIds(input, bufsIn);
  const clones: Clone[] = [...(start?.clones ?? [])];
  let a = analyze(bufs, steps);
  let best = Infinity;
  let resident = 0;
  for (const b of bufs.values()) if (b.kind === 'param' || b.kind === 'const') resident += b.bytes;
  for (let round = 0; ; round++) {
    const layout = assignOffsets(bufs, steps, a.lifetimes, a.inPlace, alignment, a.commits);
    if (layout.arenaBytes <= budget) return { steps, bufs, analysis: a, layout, recomputed: recomputesOf(steps, clones) };
    best = M.min(best, layout.arenaBytes);
    // Deep schedules take many splits per round; the batch does not depend on the budget, so the search takes
    // the same path whatever the budget and a refused budget's reported minimum is reachable.
    const batch = input.length >= BATCH_MIN_STEPS && round < 4 * input.length + 64 ? safeBatch(steps, bufs, a, ids, (a.curve.peak - resident) / 32) : null;
    if (batch && better(batch.a.curve, a.curve)) {
      clones.push(...batch.clones);
      for (const [id, b] of batch.bufs) bufs.set(id, b);
      Object.assign(ids, batch.ids);
      steps = batch.steps;
      a = batch.a;
      continue;
    }
    let pick: { steps: PlanStep[]; replacement: PlanBuffer; clone: PlanStep; c: Candidate; a: Analysis } | null = null;
    if (round < 4 * input.length + 64) {
      // Best first by the bytes a split saves at the peak per unit of cost, computed from the lifetimes (the
      // buffer leaves the peak; inputs of its writer that were dead there come back to life until the clone);
      // later writers first on a tie. Each trial is checked by a full analysis, so usually one runs per round.
      const p = a.curve.peakAt;
      const score = new Map<Candidate, number>();
      for (const c of candidates(steps, bufs, a)) {
        let saved = bufs.get(c.buffer)!.bytes;
        for (const x of new Set(steps[c.writer].reads)) {
          const lt = a.lifetimes.get(x);
          if (lt && lt[1] < p) saved -= bufs.get(x)!.bytes;
        }
        if (saved > 0) score.set(c, saved / M.max(steps[c.writer].cost, 1e-9));
      }
      const ordered = [...score.keys()].sort((x, y) => score.get(y)! - score.get(x)! || y.writer - x.writer);
      for (const c of ordered) {
        const trial = withClone(steps, c, ids, bufs);
        if (!trial) continue;
        bufs.set(trial.replacement.id, trial.replacement);
        const ta = analyze(bufs, trial.steps);
        bufs.delete(trial.replacement.id);
        if (better(ta.curve, a.curve)) { pick = { ...trial, c, a: ta }; break; }
      }
    }
    if (!pick) { const d = describePeak(steps, bufs, a); throw new MemoryBudgetError(budget, best, d.text, d.largest); }
    clones.push(commit(pick, pick.c, ids, bufs));
    steps = pick.steps;
    a = pick.a;
  }
}

/** Schedules at least this long take splits in batches (`safeBatch`). */
const BATCH_MIN_STEPS = 1000;

export interface Clone { step: number; clone: number; buffer: number; replacement: number; bytes: number }

/** Records an applied clone: the new buffer, where its ids come from, the next free ids. */
export function commit(t: { replacement: PlanBuffer; clone: PlanStep }, c: Candidate, ids: Ids, bufs: Map<number, PlanBuffer>): Clone {
  bufs.set(t.replacement.id, t.replacement);
  ids.rootBuf.set(t.replacement.id, rootOf(ids.rootBuf, c.buffer));
  ids.rootStep.set(t.clone.id, t.clone.recomputeOf!);
  ids.nextBuf++; ids.nextStep++;
  return { step: t.clone.recomputeOf!, clone: t.clone.id, buffer: rootOf(ids.rootBuf, c.buffer), replacement: t.replacement.id, bytes: t.replacement.bytes };
}

/** Many splits at once, for deep schedules far over budget (one trial analysis per split does not scale to
 * 30k steps). Only "safe" candidates: every value the writer reads stays live until the clone runs anyway,
 * and no other split of the batch touches them, so a clone makes nothing live longer and each split lowers
 * the peak by its own bytes. Best bytes per cost first, until the splits save `target` bytes (a fixed share of
 * the peak's activations). */
function safeBatch(steps: readonly PlanStep[], bufsIn: ReadonlyMap<number, PlanBuffer>, a: Analysis, idsIn: Ids, target: number): { steps: PlanStep[]; a: Analysis; clones: Clone[]; bufs: Map<number, PlanBuffer>; ids: Ids } | null {
  const bufs = new Map(bufsIn);
  const ids: Ids = { ...idsIn, rootStep: new Map(idsIn.rootStep), rootBuf: new Map(idsIn.rootBuf) };
  const live = (x: number, until: number) => { const b = bufs.get(x)!; return b.kind === 'param' || b.kind === 'const' || (a.lifetimes.get(x)?.[1] ?? -2) >= until; };
  const perCost = (c: Candidate) => bufs.get(c.buffer)!.bytes / M.max(steps[c.writer].cost, 1e-9);
  const safe = candidates(steps, bufs, a).filter((c) => steps[c.writer].reads.every((x) => live(x, c.nextRead)))
    .sort((x, y) => perCost(y) - perCost(x));
  const chosen: Candidate[] = [];
  const split = new Set<number>(), readByClones = new Set<number>();
  let saved = 0;
  for (const c of safe) {
    if (saved >= target) break;
    const reads = steps[c.writer].reads;
    if (readByClones.has(c.buffer) || reads.some((x) => split.has(x))) continue;
    chosen.push(c);
    split.add(c.buffer);
    for (const x of reads) readByClones.add(x);
    saved += bufs.get(c.buffer)!.bytes;
  }
  if (chosen.length < 2) return null;
  // Insert the latest first: earlier insertion points keep their indices.
  let out: PlanStep[] = [...steps];
  const clones: Clone[] = [];
  for (const c of chosen.sort((x, y) => y.nextRead - x.nextRead)) {
    const t = withClone(out, c, ids, bufs);
    if (!t) continue;
    out = t.steps;
    clones.push(commit(t, c, ids, bufs));
  }
  return clones.length ? { steps: out, a: analyze(bufs, out), clones, bufs, ids } : null;
}

/** Why the budget failed: what is live at the peak, largest first, each with the source line that built it. */
function describePeak(steps: readonly PlanStep[], bufs: ReadonlyMap<number, PlanBuffer>, a: Analysis): { text: string; largest: LiveTensor[] } {
  const p = a.curve.peakAt;
  const live = [...a.lifetimes].filter(([, [f, l]]) => f <= p && p <= l).map(([id]) => bufs.get(id)!).sort((x, y) => y.bytes - x.bytes);
  const where = p < 0 ? 'before the first step' : `at step ${p} (${steps[p].label})`;
  const largest = live.slice(0, 5).map((b): LiveTensor => ({ label: b.label, bytes: b.bytes, kind: b.kind, ...(b.role ? { role: b.role } : {}) }));
  const top = largest.map((b) => `${b.label}: ${formatBytes(b.bytes)}, ${b.role ?? b.kind}`).join('; ');
  return {
    largest,
    text: `at its peak, ${where}, ${live.length} tensors hold ${formatBytes(a.curve.peak)} and none of them can be recomputed to lower it; the largest are ${top}${live.length > 5 ? `; and ${live.length - 5} more` : ''}`,
  };
}
