/** Liveness for the memory planner: when each buffer is live, which in-place pairs are legal, and how many
 * bytes are live at each point of the schedule. Everything here is a pure function of the step list, so the
 * rematerializer can re-run it on every trial schedule and the checker can re-derive it independently. */
import type { PlanBuffer, PlanStep } from './plan-types';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

/** [first step index, last step index], inclusive; -1 = before the first step, steps.length = after the last. */
export type Lifetime = readonly [number, number];
export interface InPlacePair { readonly read: number; readonly write: number; readonly step: number }

export function bufferMap(buffers: readonly PlanBuffer[]): Map<number, PlanBuffer> {
  const map = new Map<number, PlanBuffer>();
  for (const b of buffers) {
    if (map.has(b.id)) throw new Error(`memory plan: buffer id ${b.id} appears twice`);
    if (!Number.isInteger(b.bytes) || b.bytes < 0) throw new Error(`memory plan: buffer ${b.id} (${b.label}) has invalid size ${b.bytes}`);
    map.set(b.id, b);
  }
  return map;
}

/** Lifetimes by the rules in plan-types.ts. Temps that no step touches get no lifetime (nothing to allocate).
 * Throws on schedules no plan can make correct: unknown ids, a temp or output read before it is written, an
 * output never written. */
export function computeLifetimes(bufs: ReadonlyMap<number, PlanBuffer>, steps: readonly PlanStep[]): Map<number, Lifetime> {
  const firstWrite = new Map<number, number>();
  const lastUse = new Map<number, number>();
  const get = (id: number, s: number): PlanBuffer => {
    const b = bufs.get(id);
    if (!b) throw new Error(`memory plan: step ${s} (${steps[s].label}) uses unknown buffer ${id}`);
    return b;
  };
  steps.forEach((step, s) => {
    for (const id of step.reads) {
      const b = get(id, s);
      const w = firstWrite.get(id);
      // A read at the step of the first write would see uninitialized memory.
      if ((b.kind === 'temp' || b.kind === 'output') && (w === undefined || w >= s)) {
        throw new Error(`memory plan: step ${s} (${step.label}) reads ${b.kind} buffer ${id} (${b.label}) before any step writes it`);
      }
      lastUse.set(id, s);
    }
    for (const id of step.writes) {
      get(id, s);
      if (!firstWrite.has(id)) firstWrite.set(id, s);
      lastUse.set(id, s);
    }
  });
  const end = steps.length;
  const lifetimes = new Map<number, Lifetime>();
  for (const b of bufs.values()) {
    switch (b.kind) {
      case 'param': case 'const': lifetimes.set(b.id, [-1, end]); break;
      case 'input': lifetimes.set(b.id, [-1, lastUse.get(b.id) ?? -1]); break;
      case 'output': {
        const w = firstWrite.get(b.id);
        if (w === undefined) throw new Error(`memory plan: output buffer ${b.id} (${b.label}) is never written`);
        lifetimes.set(b.id, [w, end]);
        break;
      }
      case 'temp': {
        const w = firstWrite.get(b.id);
        // A temp written but never read still occupies memory during its writing step: lastUse covers that.
        if (w !== undefined) lifetimes.set(b.id, [w, lastUse.get(b.id)!]);
        break;
      }
    }
  }
  return lifetimes;
}

/** The in-place pairs that are legal under these lifetimes, decided in step order. Each buffer donates at most
 * once and receives at most once; a receiver may donate later, so a chain of pointwise ops runs in one block.
 * Legal means: the donor is a temp (inputs, params, consts and outputs must stay intact), this step is its
 * last use, the receiver is a temp or output first written here, and it fits in the donor. */
export function findInPlace(bufs: ReadonlyMap<number, PlanBuffer>, steps: readonly PlanStep[], lifetimes: ReadonlyMap<number, Lifetime>, committed: ReadonlySet<number> = new Set()): InPlacePair[] {
  const pairs: InPlacePair[] = [];
  const donors = new Set<number>(), receivers = new Set<number>();
  steps.forEach((step, s) => {
    for (const { read, write } of step.inPlace ?? []) {
      const r = bufs.get(read), w = bufs.get(write);
      if (!r || !w || read === write || donors.has(read) || receivers.has(write) || committed.has(read) || committed.has(write)) continue;
      if (r.kind !== 'temp' || (w.kind !== 'temp' && w.kind !== 'output')) continue;
      if (!step.reads.includes(read) || !step.writes.includes(write)) continue;
      // The donor must not be rewritten by this step, nor the receiver read by it: the kernel's contract is
      // "read r[i], then write w[i]", nothing more.
      if (step.writes.includes(read) || step.reads.includes(write)) continue;
      if (lifetimes.get(read)?.[1] !== s || lifetimes.get(write)?.[0] !== s || w.bytes > r.bytes) continue;
      donors.add(read); receivers.add(write);
      pairs.push({ read, write, step: s });
    }
  });
  return pairs;
}

export interface LiveCurve {
  /** live[t + 1] = bytes live at step t, for t = -1 .. steps.length - 1. */
  readonly live: readonly number[];
  readonly peak: number;
  /** First step index (-1 = before the first step) where the peak is reached. */
  readonly peakAt: number;
  /** How many points reach the peak: the rematerializer's tie-breaker, so it always makes progress. */
  readonly peakCount: number;
}

/** Bytes live at every point. An in-place receiver shares its donor's memory, so it is not counted on the
 * step where both are live, nor is an update value committed in place (it lives in its parameter's memory,
 * memory-commit.ts): that keeps peak live a true lower bound of the arena. */
export function liveCurve(bufs: ReadonlyMap<number, PlanBuffer>, steps: readonly PlanStep[], lifetimes: ReadonlyMap<number, Lifetime>, inPlace: readonly InPlacePair[], committed: ReadonlySet<number> = new Set()): LiveCurve {
  const n = steps.length + 1;
  const delta = new Array<number>(n + 1).fill(0);
  for (const [id, [first, last]] of lifetimes) {
    if (committed.has(id)) continue;
    const bytes = bufs.get(id)!.bytes;
    delta[first + 1] += bytes;
    delta[M.min(last, steps.length - 1) + 2] -= bytes;
  }
  for (const p of inPlace) {
    delta[p.step + 1] -= bufs.get(p.write)!.bytes;
    delta[p.step + 2] += bufs.get(p.write)!.bytes;
  }
  const live: number[] = [];
  let acc = 0, peak = 0, peakAt = -1, peakCount = 0;
  for (let i = 0; i < n; i++) {
    acc += delta[i];
    live.push(acc);
    if (acc > peak) { peak = acc; peakAt = i - 1; peakCount = 1; } else if (acc === peak) peakCount++;
  }
  return { live, peak, peakAt, peakCount };
}
