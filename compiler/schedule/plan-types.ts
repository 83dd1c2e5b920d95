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
}

export interface PlanStep {
  readonly id: number;
  /** For reports, e.g. the kernel name. */
  readonly label: string;
  readonly reads: readonly number[];
  readonly writes: readonly number[];
  /** The step is pure and cheap enough to run again later to recompute its outputs (pointwise and reduction
   * kernels such as norms and activations; not GEMM/conv/attention, not parameter updates). */
  readonly recomputable: boolean;
  /** Relative cost of running the step once (arithmetic operations, roughly). */
  readonly cost: number;
  /** Pairs (read buffer, written buffer) where the step reads the input at exactly the index it writes, so the
   * output may reuse the input's memory when this step is the input's last reader. */
  readonly inPlace?: readonly { readonly read: number; readonly write: number }[];
  /** Set on steps the planner inserted: the id of the step they re-run. */
  readonly recomputeOf?: number;
}

export interface PlanInput {
  readonly buffers: readonly PlanBuffer[];
  readonly steps: readonly PlanStep[];
  /** Byte budget for the arena (params and constants included); absent: no limit, no rematerialization. */
  readonly budget?: number;
  /** Offsets are multiples of this (default 64). */
  readonly alignment?: number;
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
}

/** A budget the planner could not meet, even after rematerializing every candidate. */
export class MemoryBudgetError extends Error {
  constructor(readonly budget: number, readonly minimumBytes: number, detail: string) {
    super(`memory plan: the budget of ${budget} bytes cannot be met; the smallest arena found needs ${minimumBytes} bytes (${detail})`);
    this.name = 'MemoryBudgetError';
  }
}
