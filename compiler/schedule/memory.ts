/** The memory planner: one arena per program. Liveness from the step list, offsets by best fit with in-place
 * reuse where legal, and under a byte budget, rematerialization of cheap values instead of keeping them.
 * See README.md (Memory planner) for the algorithm; plan-types.ts for the contract with the scheduler. */
import { MemoryBudgetError, type MemoryPlan, type PlanInput, type PlanStep } from './plan-types';
import { bufferMap } from './memory-liveness';
import { alignUp, assignOffsets } from './memory-offsets';
import { analyze, recomputesOf, rematerialize } from './memory-remat';
import { applyCheckpoints } from './memory-checkpoint';
import { chooseSegments } from './memory-segments';
import { formatBytes } from './memory-report';
import { delayUpdates, trimCommits } from './memory-commit';

export { checkPlan } from './memory-check';
export { formatMemoryReport, formatBytes, parseBytes, residentBytes, bytesByKind, type BytesByKind } from './memory-report';
export { MemoryBudgetError };

export function planMemory(input: PlanInput): MemoryPlan {
  const alignment = input.alignment ?? 64;
  if (!Number.isInteger(alignment) || alignment < 1) throw new Error(`memory plan: alignment must be a positive integer, got ${alignment}`);
  const bufs = bufferMap(input.buffers);
  const stepIds = new Set<number>();
  for (const s of input.steps) {
    if (stepIds.has(s.id)) throw new Error(`memory plan: step id ${s.id} appears twice`);
    stepIds.add(s.id);
  }
  const naiveBytes = input.buffers.reduce((sum, b) => sum + b.bytes, 0);
  const { budget } = input;

  // Params and consts are resident and cannot be recomputed: below their footprint nothing can help.
  let resident = 0;
  for (const b of input.buffers) if ((b.kind === 'param' || b.kind === 'const') && b.bytes > 0) resident = alignUp(resident, alignment) + b.bytes;
  if (budget !== undefined && budget < resident) {
    throw new MemoryBudgetError(budget, resident, `parameters and constants alone take ${formatBytes(resident)} and stay resident for the whole run`);
  }

  // Update kernels after their parameters' last readers, so they can write the new values in place.
  const given = input.stagedUpdates ? input.steps.map(({ copies: _, ...s }) => s) : input.steps;
  const { steps: ordered, moved: delayedUpdates } = delayUpdates(bufs, given);
  // Checkpoint segments first (they recompute whatever the budget), then rematerialization under the budget.
  const optional = input.optionalSegments ?? [];
  let cp = applyCheckpoints(bufs, ordered, new Set(optional));
  // Under a budget, candidate segments first (whole modules, cheap to decide), kernel-level recompute after.
  let segments: MemoryPlan['segments'];
  if (budget !== undefined && optional.length) {
    const c = chooseSegments(cp, optional, budget, alignment);
    cp = c;
    segments = { candidates: optional.length, chosen: c.chosen.length, probes: c.probes };
  } else if (optional.length) segments = { candidates: optional.length, chosen: 0, probes: 0 };
  let steps: readonly PlanStep[] = cp.steps;
  let planBufs = cp.bufs;
  let result;
  if (budget === undefined) {
    const a = analyze(planBufs, steps);
    result = { a, layout: assignOffsets(planBufs, steps, a.lifetimes, a.inPlace, alignment, a.commits), recomputed: recomputesOf(steps, cp.clones) };
  } else {
    const r = rematerialize(cp.bufs, cp.steps, budget, alignment, cp);
    steps = r.steps; planBufs = r.bufs;
    result = { a: r.analysis, layout: r.layout, recomputed: r.recomputed };
  }
  // The commit step without the copies made in place; lifetimes of the schedule that runs (the layout and the
  // live curve do not change: committed values hold no memory of their own).
  const commits = result.a.commits;
  if (commits.length) {
    steps = trimCommits(steps, commits);
    result = { ...result, a: analyze(planBufs, steps, commits) };  // the commit step is last: clones keep their places
  }
  return {
    steps,
    buffers: [...planBufs.values()],
    offsets: result.layout.offsets,
    lifetimes: result.a.lifetimes,
    arenaBytes: result.layout.arenaBytes,
    naiveBytes,
    peakLiveBytes: result.a.curve.peak,
    ...(budget !== undefined ? { budget } : {}),
    recomputed: result.recomputed,
    ...(segments ? { segments } : {}),
    inPlace: result.a.inPlace.map(({ read, write }) => ({ read, write })),
    flops: { base: sumCost(input.steps), recompute: sumCost(steps.filter((s) => s.recomputeOf !== undefined)) },
    commits: commits.map(({ value, param, step }) => ({ value, param, step })),
    delayedUpdates,
  };
}

function sumCost(steps: readonly PlanStep[]): number {
  let n = 0;
  for (const s of steps) n += s.cost;
  return n;
}

/** The floor: the smallest arena the planner can reach for this schedule, with every value it can recompute
 * recomputed (a budget at or above it succeeds, one below fails with MemoryBudgetError). One more planning run
 * with the smallest possible budget: on a deep schedule this takes as long as planning to that budget. */
export function memoryFloor(input: PlanInput): number {
  let resident = 0;
  for (const b of input.buffers) if ((b.kind === 'param' || b.kind === 'const') && b.bytes > 0) resident = alignUp(resident, input.alignment ?? 64) + b.bytes;
  try {
    return planMemory({ ...input, budget: resident }).arenaBytes;
  } catch (e) {
    if (e instanceof MemoryBudgetError) return e.minimumBytes;
    throw e;
  }
}
