/** The PuLID trainer: stages 1 (L_diff), 2 (+ λ_id·L_id), 3 (+ L_align), each resuming from the last. The whole
 * training step (forward, both Lightning paths, decode, φ, losses, gradients, AdamW, gradient accumulation) is one
 * compiled program; stages 2 and 3 share one program (the λ's are inputs), stage 1 uses the smaller L_diff-only one.
 * Only the ID encoder and id_to_k / id_to_v train. Every random draw (sample order, timestep, noise, style prompt)
 * is a pure function of (seed, micro-step), so a checkpoint (trainable weights + AdamW moments and step + gradient
 * accumulators + the step counters) resumes exactly. */
import fs from 'node:fs';
import path from 'node:path';
import { compile, DynamicLossScale, precisionPolicy, type Feed, type LossScaleOptions, type MemoryReport, type ParamStore, type Precision, type Program } from '../../compiler/index';
import { normalFill, uniformFill } from '../../compiler/ir/philox';
import { initValues } from '../../compiler/ir/init';
import type { Init } from '../../compiler/ops/attrs';
import { checkpointLayout, readCheckpoint, writeCheckpoint, type TrainerSettings } from './checkpoint';
import { loadFaceRecognizerParams } from '../face/recognizer';
import { alphasCumprod, sdxlSchedulerConfig } from '../sched/index';
import type { LossWeights } from './config';
import { graphKind, trainStepGraph, type PulidModel, type Stage, type TrainStepGraph } from './model';
import type { LightningCheckpoint } from './losses';
import type { IdAttentionMode } from './id-attention';
import type { PulidSample } from './data';
import { ID_LOSS_PROMPT, STYLE_PROMPTS, type TextConditioner } from './text';

export interface TrainerOptions {
  /** Optimizer steps per stage (index 0 → stage 1). */
  steps: Record<Stage, number>;
  lr?: number;
  accumulation?: number;
  batch?: number;
  seed?: number;
  memoryBudget?: number;
  /** Checkpoint segments on the Lightning step's gradient steps (LightningCheckpoint; false: none). Default: with
   * a memoryBudget, every resnet block and transformer layer is a candidate the planner recomputes only as far
   * as the budget needs (`{ unit: 'layer', when: 'budget' }`); without one, none (nothing recomputed). */
  checkpoint?: LightningCheckpoint | false;
  mode?: IdAttentionMode;
  lambdas?: LossWeights;
  /** Kernel fusion per program (default true; false: one kernel per op, for measuring what fusion saves). */
  fusion?: { diff?: boolean; full?: boolean };
  /** 'cpu' (default) or 'cuda' (generated CUDA through nvcc and the driver; a clear error where there is no GPU). */
  backend?: 'cpu' | 'cuda' | 'cuda-emu';
  /** Frozen base weights (unet.*, vae.*) by key, e.g. from a diffusers folder. */
  baseWeights?: ParamStore;
  /** Optimizer steps with a non-finite loss or gradient that are skipped (not applied) before the run stops with
   * a NonFiniteTrainingError (default 3). */
  maxNonFiniteSteps?: number;
  /** Where skipped steps are reported (default console.warn). */
  log?: (line: string) => void;
  /** Mixed precision of the step programs (compile's `precision`): 'bf16' / 'f16' store activations and frozen
   * weights in that type with f32 masters, gradients and AdamW state; default 'f32'. 'f16' adds dynamic loss
   * scaling: a step whose gradients overflow is skipped inside the program and the scale halves (reported, and
   * not counted against maxNonFiniteSteps unless the scale is at its minimum). */
  precision?: Precision;
  /** f16 loss scaling settings (DynamicLossScale; default start 2^16, halve on overflow, double after 2000 good steps). */
  lossScale?: LossScaleOptions;
}

/** Too many optimizer steps had a non-finite loss or gradient; none of them was applied, so the weights (and any
 * checkpoint saved from them) are the last good ones. */
export class NonFiniteTrainingError extends Error {
  constructor(readonly skipped: readonly StepRecord[]) {
    super(`training stopped: ${skipped.length} optimizer steps had a non-finite loss or gradient and were not applied (` +
      skipped.slice(-5).map((r) => `stage ${r.stage} step ${r.step}: ${lossText(r)}`).join('; ') + ')');
    this.name = 'NonFiniteTrainingError';
  }
}

/** A trainer option out of range (caught before anything is built, so no value reaches a kernel). */
export class TrainerOptionsError extends RangeError {
  constructor(readonly option: string, readonly value: unknown, expected: string) {
    super(`PulidTrainer: ${option} = ${String(value)}; expected ${expected}`);
    this.name = 'TrainerOptionsError';
  }
}

function checkTrainerOptions(o: TrainerOptions): void {
  const int = (name: string, v: number | undefined, min: number) => {
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= min)) throw new TrainerOptionsError(name, v, `an integer ≥ ${min}`);
  };
  for (const s of [1, 2, 3] as const) int(`steps[${s}]`, o.steps?.[s] ?? Number.NaN, 0);
  int('accumulation', o.accumulation, 1);
  int('batch', o.batch, 1);
  int('seed', o.seed, 0);
  int('maxNonFiniteSteps', o.maxNonFiniteSteps, 1);
  if (o.lr !== undefined && !(Number.isFinite(o.lr) && o.lr > 0)) throw new TrainerOptionsError('lr', o.lr, 'a finite number > 0');
  if (o.memoryBudget !== undefined && !(Number.isFinite(o.memoryBudget) && o.memoryBudget > 0)) throw new TrainerOptionsError('memoryBudget', o.memoryBudget, 'a finite number of bytes > 0');
  if (o.checkpoint !== undefined && o.checkpoint !== false && (typeof o.checkpoint !== 'object' || !['step', 'layer'].includes(o.checkpoint.unit) || !['always', 'budget', undefined].includes(o.checkpoint.when))) {
    throw new TrainerOptionsError('checkpoint', o.checkpoint, "false or { unit: 'step' | 'layer', when?: 'always' | 'budget' }");
  }
  precisionPolicy(o.precision, 'PulidTrainer: precision');  // KilnPrecisionError for an unknown name
}

const lossText = (r: StepRecord): string => LOSS_KEYS.filter((k) => r[k] !== undefined).map((k) => `${k} ${r[k]}`).join(', ');

/** The loss outputs of a training step program (stage 1 has only the first two). */
export const LOSS_KEYS = ['loss', 'l_diff', 'l_id', 'l_sem', 'l_layout'] as const;

export interface StepRecord {
  stage: Stage; step: number; micro: number; loss: number; l_diff: number; l_id?: number; l_sem?: number; l_layout?: number; ms: number;
  /** The step's loss or gradients were not finite: its update was not applied (weights and optimizer state kept). */
  skipped?: true;
  /** f16: the gradients overflowed at this loss scale (the step was skipped and the scale lowered). */
  overflowScale?: number;
}

export interface CompiledStep { kind: 'diff' | 'full'; program: Program; graph: TrainStepGraph; compileSeconds: number; memory: MemoryReport; owner?: PulidTrainer }

/** Programs are shared by trainers of the same model and options (scheduling a training step takes minutes even
 * when the native build is a cache hit); the trainer that last ran one owns the values in it. */
const shared = new WeakMap<PulidModel, Map<string, CompiledStep>>();

const ALPHAS = alphasCumprod(sdxlSchedulerConfig);
/** First draw key of the evaluation set (training keys count up from 0). */
const EVAL_DRAWS = 2 ** 30;

export class PulidTrainer {
  readonly lr: number;
  readonly accumulation: number;
  readonly batch: number;
  readonly seed: number;
  readonly lambdas: LossWeights;
  /** Optimizer steps done, per stage; the stage being trained. */
  stage: Stage = 1;
  done: Record<Stage, number> = { 1: 0, 2: 0, 3: 0 };
  private programs = new Map<'diff' | 'full', CompiledStep>();
  private active?: CompiledStep;
  /** Trainable weights + optimizer state by name (host copy while switching programs). */
  private state = new Map<string, Float32Array>();
  /** The tensors a checkpoint holds (trainable weights, AdamW state, accumulators), by name and shape. */
  readonly layout: ReadonlyMap<string, readonly number[]>;
  /** Steps skipped for non-finite values, in this trainer's lifetime. */
  readonly skipped: StepRecord[] = [];
  /** f16 only: the loss scale fed to the step programs, and the steps skipped for gradient overflow. */
  readonly lossScale?: DynamicLossScale;
  readonly overflows: StepRecord[] = [];
  constructor(readonly model: PulidModel, readonly data: readonly PulidSample[], readonly text: TextConditioner, readonly opts: TrainerOptions) {
    checkTrainerOptions(opts);
    this.lr = opts.lr ?? 1e-3;
    this.accumulation = opts.accumulation ?? 1;
    this.batch = opts.batch ?? 1;
    this.seed = opts.seed ?? 0;
    this.lambdas = opts.lambdas ?? model.config.lambdas;
    this.layout = checkpointLayout(model.trainable.params, this.accumulation);
    if (opts.precision === 'f16') this.lossScale = new DynamicLossScale(opts.lossScale);
  }

  /** Builds and compiles (or finds in the compile cache) the program of a stage. */
  async compileStage(stage: Stage): Promise<CompiledStep> {
    const kind = graphKind(stage);
    const have = this.programs.get(kind);
    if (have) return have;
    const key = JSON.stringify([kind, this.batch, this.accumulation, this.opts.mode ?? 'plain', this.opts.memoryBudget ?? null, this.checkpointOption ?? null, this.opts.baseWeights ? 'w' : '', this.fusionFor(kind), this.opts.backend ?? 'cpu', this.opts.precision ?? 'f32']);
    const byModel = shared.get(this.model) ?? new Map<string, CompiledStep>();
    shared.set(this.model, byModel);
    const prior = byModel.get(key);
    if (prior) { this.programs.set(kind, prior); return prior; }
    const graph = trainStepGraph(this.model, { stage, batch: this.batch, accumulation: this.accumulation, mode: this.opts.mode, precision: this.opts.precision, lossScale: this.lossScale !== undefined, checkpoint: this.checkpointOption });
    const t0 = performance.now();
    const program = await compile({ outputs: graph.outputs, updates: graph.updates }, { backend: this.opts.backend ?? 'cpu', budget: this.opts.memoryBudget, fusion: this.fusionFor(kind), precision: graph.precision });
    const compileSeconds = (performance.now() - t0) / 1000;
    const kept = [...graph.params, ...graph.state];
    if (kept.length !== this.layout.size || kept.some((n) => !this.layout.has(n))) {
      throw new Error(`PulidTrainer: the ${kind} program keeps [${kept.join(', ')}], the checkpoint layout is [${[...this.layout.keys()].join(', ')}] (checkpoint.ts and model.ts disagree)`);
    }
    const frozen: ParamStore = new Map(this.opts.baseWeights ?? []);
    if (kind === 'full') for (const [k, v] of loadFaceRecognizerParams()) frozen.set(k, v);
    program.loadParams(frozen, { strict: false });
    const c: CompiledStep = { kind, program, graph, compileSeconds, memory: program.memoryReport() };
    this.programs.set(kind, c);
    if (!this.opts.baseWeights) byModel.set(key, c);
    return c;
  }

  private fusionFor(kind: 'diff' | 'full'): boolean { return this.opts.fusion?.[kind] ?? true; }
  /** The Lightning checkpoint segments the step is built with (TrainerOptions.checkpoint and its default). */
  private get checkpointOption(): LightningCheckpoint | undefined {
    const c = this.opts.checkpoint;
    if (c === false) return undefined;
    return c ?? (this.opts.memoryBudget !== undefined ? { unit: 'layer', when: 'budget' } : undefined);
  }

  /** The trainable + optimizer-state names (the checkpoint's contents). */
  stateNames(c: CompiledStep): string[] { return [...c.graph.params, ...c.graph.state]; }

  private activate(c: CompiledStep): void {
    if (this.active === c && c.owner === this) return;
    if (this.active && this.active.owner === this) for (const n of this.stateNames(this.active)) this.state.set(n, this.active.program.getParam(n) as Float32Array);
    if (c.owner && c.owner !== this) c.owner.release(c);
    for (const n of this.stateNames(c)) { c.program.setParam(n, this.state.get(n) ?? this.initialValue(n)); }
    c.owner = this;
    this.active = c;
  }

  /** Declared init of a trainable parameter; zeros for optimizer state (a fresh trainer's start). */
  private initialValue(n: string): Float32Array {
    const t = this.model.trainable.params.get(n);
    if (t) return Float32Array.from(initValues((t.node.attrs as { init: Init }).init, t.size));
    return new Float32Array(this.layout.get(n)!.reduce((a, b) => a * b, 1));
  }

  /** Another trainer takes over a shared program: keep this trainer's values on the host. */
  private release(c: CompiledStep): void {
    for (const n of this.stateNames(c)) this.state.set(n, c.program.getParam(n) as Float32Array);
    c.owner = undefined;
    if (this.active === c) this.active = undefined;
  }

  /** Global micro-step index (over all stages): the key of every random draw. */
  microIndex(stage: Stage, step: number, micro: number): number {
    const before = stage === 1 ? 0 : stage === 2 ? this.opts.steps[1] : this.opts.steps[1] + this.opts.steps[2];
    return ((before + step) * this.accumulation + micro) * this.batch;
  }

  /** The feeds of one micro-step. */
  feeds(stage: Stage, step: number, micro: number): Record<string, Feed> {
    return this.feedsAt(stage, this.microIndex(stage, step, micro), micro === this.accumulation - 1);
  }

  /** The feeds whose random draws are keyed by `k0` .. `k0 + batch - 1`; `apply` gates the update when
   * accumulating gradients. */
  feedsAt(stage: Stage, k0: number, apply = true): Record<string, Feed> {
    const m = this.model, B = this.batch, S = m.latentSize;
    const cat = (xs: ArrayLike<number>[]) => { const n = xs[0].length, o = new Float64Array(n * xs.length); xs.forEach((x, i) => o.set(x as ArrayLike<number>, i * n)); return o; };
    const picks = Array.from({ length: B }, (_v, b) => k0 + b);
    const samples = picks.map((k) => this.data[k % this.data.length]);
    const ts = picks.map((k) => Math.min(999, Math.floor(uniformFill(1, this.seed + 101, k)[0] * 1000)));
    const px = m.imageSize, timeIds = [px, px, 0, 0, px, px];
    const f: Record<string, Feed> = {
      latents: cat(samples.map((s) => s.latents)),
      noise: cat(picks.map((k) => normalFill(4 * S * S, this.seed + 202, k))),
      timestep: ts, alpha: ts.map((t) => Math.sqrt(ALPHAS[t])), sigma: ts.map((t) => Math.sqrt(1 - ALPHAS[t])),
      context: cat(samples.map((s) => s.text.context)), pooled: cat(samples.map((s) => s.text.pooled)), time_ids: cat(samples.map(() => timeIds)),
      id_cond: cat(samples.map((s) => s.id.idCond)), lr: this.lr,
    };
    samples[0].id.vit.forEach((_v, i) => { f[`vit_${i}`] = cat(samples.map((s) => s.id.vit[i])); });
    if (this.accumulation > 1) f.apply = apply ? 1 : 0;
    if (this.lossScale) f.loss_scale = this.lossScale.scale;
    if (graphKind(stage) === 'full') {
      // Stage 2: the paper's fixed ID-loss prompt; stage 3: the style prompts too (the alignment branch's).
      const prompts = picks.map((k) => (stage === 2 ? ID_LOSS_PROMPT : STYLE_PROMPTS[k % STYLE_PROMPTS.length]));
      const enc = prompts.map((p) => this.text.encode(p));
      Object.assign(f, {
        t2i_noise: cat(picks.map((k) => normalFill(4 * S * S, this.seed + 303, k))),
        t2i_context: cat(enc.map((e) => e.context)), t2i_pooled: cat(enc.map((e) => e.pooled)), t2i_time_ids: cat(samples.map(() => timeIds)),
        face_ref: cat(samples.map((s) => s.id.descriptor)),
        lambda_id: this.lambdas.id, lambda_sem: stage === 3 ? this.lambdas.sem : 0, lambda_layout: stage === 3 ? this.lambdas.layout : 0,
      });
    }
    return f;
  }

  /** One optimizer step (accumulation micro-steps) of the current stage. A step whose loss or updated weights,
   * moments or accumulators are not finite (a non-finite gradient makes the AdamW moments non-finite) is undone:
   * the host copy taken before it is put back, the record says `skipped`, and it is reported; after
   * `maxNonFiniteSteps` such steps a NonFiniteTrainingError stops training. The step counter still advances (the
   * batch is consumed, otherwise the same draws would fail again). */
  async step(): Promise<StepRecord & { image?: Float32Array }> {
    const c = await this.compileStage(this.stage);
    this.activate(c);
    const names = this.stateNames(c);
    const before = names.map((n) => Float32Array.from(c.program.getParam(n) as Float32Array));
    const t0 = performance.now();
    const rec: Record<string, number> = {};
    let image: Float32Array | undefined;
    let finite = true;
    for (let micro = 0; micro < this.accumulation; micro++) {
      const out = c.program.run(this.feeds(this.stage, this.done[this.stage], micro));
      // f16: an overflowing micro-step changed nothing in the program (its updates are guarded).
      if (out.grads_finite && out.grads_finite[0] === 0) finite = false;
      for (const k of LOSS_KEYS) if (out[k]) rec[k] = (rec[k] ?? 0) + out[k][0] / this.accumulation;
      if (out.image) image = out.image as Float32Array;
    }
    const r: StepRecord = { stage: this.stage, step: this.done[this.stage], micro: this.accumulation, loss: rec.loss, l_diff: rec.l_diff, l_id: rec.l_id, l_sem: rec.l_sem, l_layout: rec.l_layout, ms: performance.now() - t0 };
    for (const k of LOSS_KEYS) if (r[k] === undefined) delete r[k];
    this.done[this.stage]++;
    if (this.lossScale && Number.isFinite(r.loss)) {
      const scale = this.lossScale.scale, { applied, atFloor } = this.lossScale.update(finite);
      if (!applied) {
        r.skipped = true;
        r.overflowScale = scale;
        this.overflows.push(r);
        (this.opts.log ?? console.warn)(`stage ${r.stage} step ${r.step}: f16 gradients overflowed at loss scale ${scale}; step skipped, scale now ${this.lossScale.scale} (${this.overflows.length} overflow steps so far)`);
        // At the minimum scale the overflow is a real non-finite gradient: it counts like one.
        if (atFloor) { this.skipped.push(r); if (this.skipped.length >= this.maxNonFinite) throw new NonFiniteTrainingError(this.skipped); }
        return { ...r, image: undefined };
      }
    }
    const bad = LOSS_KEYS.some((k) => r[k] !== undefined && !Number.isFinite(r[k])) || names.some((n) => !allFinite(c.program.getParam(n) as Float32Array));
    if (bad) {
      names.forEach((n, i) => c.program.setParam(n, before[i]));
      r.skipped = true;
      this.skipped.push(r);
      (this.opts.log ?? console.warn)(`stage ${r.stage} step ${r.step}: non-finite ${Number.isFinite(r.loss) ? 'gradients' : 'loss'} (${lossText(r)}); update not applied (${this.skipped.length} of at most ${this.maxNonFinite} such steps)`);
      if (this.skipped.length >= this.maxNonFinite) throw new NonFiniteTrainingError(this.skipped);
      image = undefined;
    }
    return { ...r, image };
  }

  private get maxNonFinite(): number { return this.opts.maxNonFiniteSteps ?? 3; }

  /** Losses of the current weights on a fixed evaluation set: one feed per training face, keyed by draws no
   * training step uses. The step program runs and its update is undone (weights, optimizer state and
   * accumulators restored), so the same weights give the same numbers, before and after a stage. */
  async evaluate(stage: Stage): Promise<Record<string, number>> {
    const c = await this.compileStage(stage);
    this.activate(c);
    const keep = this.stateNames(c).map((n) => [n, Float32Array.from(c.program.getParam(n) as Float32Array)] as const);
    const sum: Record<string, number> = {};
    const n = this.data.length;
    for (let i = 0; i < n; i++) {
      const out = c.program.run(this.feedsAt(stage, EVAL_DRAWS + i * this.batch, false));
      for (const k of LOSS_KEYS) if (out[k]) sum[k] = (sum[k] ?? 0) + out[k][0] / n;
      for (const [name, v] of keep) c.program.setParam(name, v);
    }
    return sum;
  }

  /** Current trainable weights and optimizer state: every tensor of the layout (initial values for those no
   * program has held yet). */
  snapshot(): Map<string, Float32Array> {
    const out = new Map(this.state);
    if (this.active && this.active.owner === this) for (const n of this.stateNames(this.active)) out.set(n, this.active.program.getParam(n) as Float32Array);
    for (const n of this.layout.keys()) if (!out.has(n)) out.set(n, this.initialValue(n));
    return out;
  }

  /** What a checkpoint records about this trainer (batch, accumulation and mode must match on resume). */
  settings(): TrainerSettings {
    return { batch: this.batch, accumulation: this.accumulation, mode: this.opts.mode ?? 'plain', seed: this.seed, lr: this.lr, steps: { ...this.opts.steps } };
  }

  /** Atomic safetensors checkpoint (checkpoint.ts): weights (`id_adapter.*`, `id_adapter_attn_layers.*`), AdamW
   * state, accumulators, and in the metadata the counters, the full config, the settings, a content checksum. */
  save(file: string): void {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeCheckpoint(file, { stage: this.stage, done: { ...this.done }, config: this.model.config, trainer: this.settings(), tensors: this.snapshot() }, this.layout);
  }

  /** Restores a checkpoint written by `save`, after checking it (readCheckpoint: format, checksum, same config
   * and program settings unless `allowConfigChange`, exactly this layout, finite values). */
  load(file: string, o: { allowConfigChange?: boolean } = {}): void {
    const ck = readCheckpoint(file, { config: this.model.config, settings: this.settings(), layout: this.layout, allowConfigChange: o.allowConfigChange });
    this.state = ck.tensors;
    this.stage = ck.stage;
    this.done = { ...ck.done };
    const a = this.active;
    this.active = undefined;
    if (a) this.activate(a);
  }
}

function allFinite(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
}

