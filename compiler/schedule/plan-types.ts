/** The memory planner's contract with the scheduler: an ordered list of steps (kernels) over buffers. The
 * planner sees no ops, only sizes, reads, writes and whether a step may be re-run. */

export type BufferKind =
  | 'param'   // resident across runs (weights, optimizer state): live for the whole program, never shared
  | 'const'   // constant data embedded in the program: like params
  | 'input'   // written by the host before the run: live from the start to its last read
  | 'output'  // read by the host after the run: live from its write to the end
  | 'temp';   // everything else: live from its write to its last read

export interface PlanBuffer {
  readonly id: number;
  readonly bytes: number;
  readonly kind: BufferKind;
  /** For reports: what the buffer holds (op and source line, or a parameter's name). */
  readonly label: string;
  /** A value inside a checkpoint segment (DSL `checkpoint(fn)`): once the segment's forward steps are done,
   * every later read gets a recomputed copy instead (memory-checkpoint.ts). */
  readonly segment?: number;
  /** An output of that checkpoint segment: kept, and its writer ends the segment's forward steps. */
  readonly segmentOutput?: number;
  /** For the report: what the bytes are for (the scheduler knows; the planner does not use it). */
  readonly role?: BufferRole;
}

/** What a buffer holds, for the memory report's bytes by kind. */
export type BufferRole = 'frozen' | 'trainable' | 'optimizer' | 'gradient' | 'activation' | 'input' | 'output' | 'constant';

export interface PlanStep {
  readonly id: number;
  /** For reports, e.g. the kernel name. */
  readonly label: string;
  readonly reads: readonly number[];
  readonly writes: readonly number[];
  /** The step is pure and may run again later to recompute its output (pointwise, reduction and row kernels,
   * and the templates: GEMM, conv, attention; not parameter updates). Cost decides what is worth it. */
  readonly recomputable: boolean;
  /** Cost of running the step once: floating-point operations (a template's FLOPs plus its epilogue; elements
   * times fused ops for the rest). The recompute FLOPs in the report are sums of these. */
  readonly cost: number;
  /** Pairs (read buffer, written buffer) where the step reads the input at exactly the index it writes, so the
   * output may reuse the input's memory when this step is the input's last reader. */
  readonly inPlace?: readonly { readonly read: number; readonly write: number }[];
  /** Set on steps the planner inserted: the id of the step they re-run. */
  readonly recomputeOf?: number;
  /** The parameter-update commit: copies reads[i] into writes[i]. The planner places a value in its
   * parameter's memory instead where that is legal, and drops that copy (memory-commit.ts). */
  readonly copies?: boolean;
}

export interface PlanInput {
  readonly buffers: readonly PlanBuffer[];
  readonly steps: readonly PlanStep[];
  /** Candidate segments (`checkpoint(fn, { when: 'budget' })`): recomputed only under a budget that needs them,
   * chosen by memory-segments.ts; the other segments are always recomputed. */
  readonly optionalSegments?: readonly number[];
  /** Byte budget for the arena (params and constants included); absent: no limit, no rematerialization. */
  readonly budget?: number;
  /** Offsets are multiples of this (default 64). */
  readonly alignment?: number;
  /** Keep every update value staged until the commit step copies it (no update committed in place, no update
   * kernel moved): the planner before memory-commit.ts, for comparison. */
  readonly stagedUpdates?: boolean;
}

export interface Recompute {
  readonly step: number;          // the original step that is re-run
  readonly at: number;            // index in the new step list where the clone runs
  readonly buffer: number;        // the original buffer
  readonly replacement: number;   // the new buffer the clone writes (readers after `at` read this one)
  readonly bytes: number;
}

export interface MemoryPlan {
  /** The step list to run: the input's steps plus recompute clones, in order; reads of recomputed values
   * already point at the replacement buffers. */
  readonly steps: readonly PlanStep[];
  readonly buffers: readonly PlanBuffer[];
  /** Byte offset of every buffer in the one arena. */
  readonly offsets: ReadonlyMap<number, number>;
  /** [first step index, last step index] of every buffer in `steps` (-1 = before the first step; steps.length
   * = after the last). */
  readonly lifetimes: ReadonlyMap<number, readonly [number, number]>;
  /** Size of the arena: the highest offset + size in use. */
  readonly arenaBytes: number;
  /** Every buffer separately (the sum of all sizes): what an unplanned program would allocate. */
  readonly naiveBytes: number;
  /** The most bytes live at once (a lower bound for arenaBytes; best-fit may fragment a little above it). */
  readonly peakLiveBytes: number;
  readonly budget?: number;
  readonly recomputed: readonly Recompute[];
  /** Pairs that shared memory in place (read buffer, written buffer). */
  readonly inPlace: readonly { readonly read: number; readonly write: number }[];
  /** Candidate segments (PlanInput.optionalSegments): how many there were, how many the budget made the planner
   * recompute, and how many plans the choice tried. */
  readonly segments?: { readonly candidates: number; readonly chosen: number; readonly probes: number };
  /** Sum of the input steps' costs (forward + backward without recompute) and of the clones' costs. */
  readonly flops: { readonly base: number; readonly recompute: number };
  /** Update values committed in place: `value` lives at `param`'s offset, written at step index `step` after
   * the last read of the parameter's old contents; the commit step no longer copies it. */
  readonly commits: readonly { readonly value: number; readonly param: number; readonly step: number }[];
  /** Update kernels the planner moved to just after their parameter's last reader, so they could commit in place. */
  readonly delayedUpdates: number;
}

/** One of the largest values live where the budget failed. */
export interface LiveTensor { readonly label: string; readonly bytes: number; readonly kind: BufferKind; readonly role?: BufferRole }

/** A budget the planner could not meet, even after rematerializing every candidate. The message is one
 * paragraph: the budget, the floor (the smallest arena the planner reached; any budget at or above it
 * succeeds), and the largest tensors live at the peak with the source lines that built them. */
export class MemoryBudgetError extends Error {
  /** The smallest arena the planner can reach: `minimumBytes` under its usual name. */
  readonly floorBytes: number;
  constructor(readonly budget: number, readonly minimumBytes: number, detail: string, readonly largest: readonly LiveTensor[] = []) {
    super(`memory plan: the budget of ${bytesText(budget)} is below the floor of ${bytesText(minimumBytes)}, the smallest arena the planner can reach with everything it can recompute recomputed; ${detail}. Raise the budget to at least the floor, or mark more of the model with checkpoint(fn)`);
    this.name = 'MemoryBudgetError';
    this.floorBytes = minimumBytes;
  }
}

/** "1.50 MiB (1572864 B)" (memory-report.ts's formatBytes, here to keep this file free of imports). */
function bytesText(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${v.toFixed(2)} ${units[u]} (${n} B)`;
}
