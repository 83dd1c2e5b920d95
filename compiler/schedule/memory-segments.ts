/** The automatic segment policy under a budget. Candidate segments (`checkpoint(fn, { when: 'budget' })`: the
 * model's module boundaries, e.g. UNet blocks, transformer layers, sampler steps) cost nothing until a budget
 * needs them. Each would free the bytes of its inner values read after its forward steps for the FLOPs of
 * re-running their writers; candidates are ranked by bytes freed per FLOP of recompute and the planner takes the
 * shortest prefix of that ranking whose plan fits (binary search: one segment pass, one liveness analysis and one
 * best-fit layout per probe, each linear in the schedule). If even every candidate does not fit, all of them are
 * taken and the kernel-level rematerializer (memory-remat.ts) continues from there. Deciding at segment
 * granularity first keeps the expensive kernel-by-kernel search for the last few bytes. */
import type { PlanBuffer, PlanStep } from './plan-types';
import { applySegments, segmentCosts, type Checkpointed } from './memory-checkpoint';
import { analyze } from './memory-remat';
import { assignOffsets } from './memory-offsets';

export interface SegmentChoice extends Checkpointed {
  /** The candidates recomputed, best bytes per FLOP first. */
  chosen: number[];
  /** Arena of the chosen plan (before any kernel-level recompute). */
  arenaBytes: number;
  /** Plans tried. */
  probes: number;
}

export function chooseSegments(start: Checkpointed, optional: readonly number[], budget: number, alignment: number): SegmentChoice {
  const ranked = segmentCosts(start.bufs, start.steps, new Set(optional))
    .sort((a, b) => b.bytes / Math.max(b.cost, 1e-9) - a.bytes / Math.max(a.cost, 1e-9) || a.segment - b.segment);
  let probes = 0;
  const probe = (k: number): SegmentChoice => {
    probes++;
    const chosen = ranked.slice(0, k).map((c) => c.segment);
    const r = k === 0 ? { ...start, steps: [...start.steps], bufs: new Map(start.bufs), clones: [] } : applySegments(start.bufs, start.steps, new Set(chosen), start.ids);
    const a = analyze(r.bufs, r.steps);
    const arenaBytes = assignOffsets(r.bufs, r.steps, a.lifetimes, a.inPlace, alignment, a.commits).arenaBytes;
    return { ...r, clones: [...start.clones, ...r.clones], chosen, arenaBytes, probes };
  };
  const none = probe(0);
  if (none.arenaBytes <= budget || !ranked.length) return { ...none, probes };
  const all = probe(ranked.length);
  if (all.arenaBytes > budget) return { ...all, probes };
  let lo = 0, hi = ranked.length, best = all;  // lo does not fit, hi fits
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    const r = probe(mid);
    if (r.arenaBytes <= budget) { hi = mid; best = r; } else lo = mid;
  }
  return { ...best, probes };
}
