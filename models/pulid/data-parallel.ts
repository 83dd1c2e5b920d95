/** The PuLID trainer on many processes (`mpirun -np N …`): data parallel over the job's communicator.
 *
 * Each rank trains on `batch` samples per micro-step; the global batch is N·batch, and rank r takes the draw keys
 * r·batch … r·batch + batch − 1 of each global micro-step, so the samples, timesteps and noise of one global step
 * are exactly those of a single-process PulidTrainer with batch N·batch (its keys k0 … k0 + N·batch − 1). The step
 * is a compiled/data-parallel.ts DataParallelStep (gradient program, bucketed all-reduce of the gradients, AdamW
 * program), started from rank 0's parameters. Only rank 0 writes checkpoints, which are the single-process
 * trainer's format with batch = the global batch: a run resumes with any rank count whose ranks × batch is the
 * same (data order is by global key), and a single-process trainer with the global batch resumes it too. */
import fs from 'node:fs';
import path from 'node:path';
import { adamw } from '../../compiler/autodiff/optim';
import { input } from '../../compiler/dsl/creation';
import { DataParallelStep } from '../../compiler/data-parallel';
import type { ParamStore, Program } from '../../compiler/index';
import { communicator, type Communicator } from '../../runtime/collective';
import { checkpointLayout, readCheckpoint, writeCheckpoint, type TrainerSettings } from './checkpoint';
import { loadFaceRecognizerParams } from '../face/recognizer';
import { graphKind, trainStepGraph, type PulidModel, type Stage } from './model';
import type { PulidSample } from './data';
import type { TextConditioner } from './text';
import { LOSS_KEYS, NonFiniteTrainingError, PulidTrainer, TrainerOptionsError, type StepRecord, type TrainerOptions } from './trainer';

export interface DataParallelTrainerOptions extends TrainerOptions {
  /** Default: the job's communicator. */
  comm?: Communicator;
  /** Largest gradient all-reduce in bytes (default 25 MiB). */
  bucketBytes?: number;
}

/** What the CLI reads of a compiled stage (the same fields as PulidTrainer's CompiledStep). */
export interface DataParallelStage { kind: 'diff' | 'full'; step: DataParallelStep; program: Program; compileSeconds: number; memory: ReturnType<Program['memoryReport']> }

/** Evaluation draws start here (as in trainer.ts: training keys count up from 0). */
const EVAL_DRAWS = 2 ** 30;

export class DataParallelPulidTrainer {
  readonly comm: Communicator;
  /** A single-process trainer with the per-rank batch: it builds this rank's feeds. */
  private readonly local: PulidTrainer;
  readonly globalBatch: number;
  stage: Stage = 1;
  done: Record<Stage, number> = { 1: 0, 2: 0, 3: 0 };
  readonly layout: ReadonlyMap<string, readonly number[]>;
  readonly skipped: StepRecord[] = [];
  private readonly steps = new Map<'diff' | 'full', DataParallelStage>();
  private active?: DataParallelStage;
  /** State to load into the next program that becomes active (after `load`, or carried between stages). */
  private pending?: Map<string, Float32Array>;

  constructor(readonly model: PulidModel, readonly data: readonly PulidSample[], readonly text: TextConditioner, readonly opts: DataParallelTrainerOptions) {
    // The gradient all-reduce runs on f32 gradient buffers and knows no loss scale: mixed precision stays single-process.
    if (opts.precision !== undefined && opts.precision !== 'f32') throw new TrainerOptionsError('precision', opts.precision, "'f32' when training on several ranks (bf16/f16 data-parallel training is not supported yet)");
    this.local = new PulidTrainer(model, data, text, opts);
    this.comm = opts.comm ?? communicator();
    this.globalBatch = this.local.batch * this.comm.size;
    this.layout = checkpointLayout(model.trainable.params, this.local.accumulation);
  }

  get rank(): number { return this.comm.rank; }

  async compileStage(stage: Stage): Promise<DataParallelStage> {
    const kind = graphKind(stage);
    const have = this.steps.get(kind);
    if (have) return have;
    const g = trainStepGraph(this.model, { stage, batch: this.local.batch, accumulation: 1, mode: this.opts.mode });
    const params = [...this.model.trainable.params.values()];
    const t0 = performance.now();
    const step = await DataParallelStep.compile({
      outputs: g.outputs, params, accumulation: this.local.accumulation,
      optimizer: (p, gr) => adamw(p, gr, { lr: input('lr', []), weightDecay: 0.01 }),
    }, { backend: this.opts.backend ?? 'cpu', budget: this.opts.memoryBudget, fusion: this.opts.fusion?.[kind] ?? true, comm: this.comm, bucketBytes: this.opts.bucketBytes });
    const frozen: ParamStore = new Map(this.opts.baseWeights ?? []);
    if (kind === 'full') for (const [k, v] of loadFaceRecognizerParams()) frozen.set(k, v);
    step.loadFrozen(frozen);
    const c: DataParallelStage = { kind, step, program: step.gradProgram, compileSeconds: (performance.now() - t0) / 1000, memory: step.gradProgram.memoryReport() };
    this.steps.set(kind, c);
    return c;
  }

  /** Makes `c` the running program: the state it starts from is the previous program's, or a loaded
   * checkpoint's, or (first time) its own initial values; then every rank takes rank 0's. */
  private activate(c: DataParallelStage): void {
    if (this.active === c && !this.pending) return;
    const from = this.pending ?? (this.active ? this.stateOf(this.active) : undefined);
    if (from) for (const n of [...c.step.params, ...c.step.optimizerState]) { const v = from.get(n); if (v) c.step.setParam(n, v); }
    c.step.syncFromRoot(0);
    this.pending = undefined;
    this.active = c;
  }

  private stateOf(c: DataParallelStage): Map<string, Float32Array> {
    return new Map([...c.step.params, ...c.step.optimizerState].map((n) => [n, c.step.getParam(n) as Float32Array]));
  }

  /** Feeds of this rank's shard of global micro-step `micro` of step `step`. */
  feeds(stage: Stage, step: number, micro: number): ReturnType<PulidTrainer['feedsAt']> {
    const k0 = (this.local.microIndex(stage, step, micro) / this.local.batch) * this.globalBatch + this.rank * this.local.batch;
    return this.local.feedsAt(stage, k0, true);
  }

  /** One optimizer step on every rank; the record's losses are the global means (the same on every rank). */
  async step(): Promise<StepRecord & { image?: Float32Array }> {
    const c = await this.compileStage(this.stage);
    this.activate(c);
    const stage = this.stage, step = this.done[stage];
    const r = c.step.run((micro) => this.feeds(stage, step, micro), { lr: this.local.lr });
    const rec: StepRecord = { stage, step, micro: this.local.accumulation, loss: r.scalars.loss, l_diff: r.scalars.l_diff, l_id: r.scalars.l_id, l_sem: r.scalars.l_sem, l_layout: r.scalars.l_layout, ms: r.ms.compute + r.ms.reduce + r.ms.apply };
    for (const k of LOSS_KEYS) if (rec[k] === undefined) delete rec[k];
    this.done[stage]++;
    if (r.skipped) {
      rec.skipped = true;
      this.skipped.push(rec);
      if (this.rank === 0) (this.opts.log ?? console.warn)(`stage ${stage} step ${step}: non-finite loss or gradients; update not applied on any rank (${this.skipped.length} of at most ${this.opts.maxNonFiniteSteps ?? 3})`);
      if (this.skipped.length >= (this.opts.maxNonFiniteSteps ?? 3)) throw new NonFiniteTrainingError(this.skipped);
    }
    const image = r.local.image as Float32Array | undefined;
    return { ...rec, ...(image && !r.skipped ? { image } : {}) };
  }

  /** Losses on the fixed evaluation set, the draws shared out over the ranks as in training. The gradient program
   * runs (it updates nothing but the gradient buffers, which the next step overwrites). */
  async evaluate(stage: Stage): Promise<Record<string, number>> {
    const c = await this.compileStage(stage);
    this.activate(c);
    const keys = LOSS_KEYS.filter((k) => k in c.program.parts.outputs);
    const sum = new Float64Array(keys.length);
    const n = this.data.length;
    for (let i = 0; i < n; i++) {
      const out = c.program.run(this.local.feedsAt(stage, EVAL_DRAWS + i * this.globalBatch + this.rank * this.local.batch, true));
      keys.forEach((k, j) => { sum[j] += out[k][0] / n; });
    }
    this.comm.allReduce(sum, 'mean');
    return Object.fromEntries(keys.map((k, j) => [k, sum[j]]));
  }

  snapshot(): Map<string, Float32Array> {
    const out = this.pending ? new Map(this.pending) : this.active ? this.stateOf(this.active) : new Map<string, Float32Array>();
    // Tensors no program holds yet: the declared initial values (zeros for optimizer state); between steps the
    // single-process trainer's accumulators are zero too, so its checkpoints and ours are interchangeable.
    const missing = [...this.layout.keys()].filter((n) => !out.has(n));
    if (missing.length) {
      const init = this.local.snapshot();
      for (const n of missing) out.set(n, n.endsWith('.grad_acc') ? new Float32Array(init.get(n)!.length) : init.get(n)!);
    }
    return out;
  }

  /** Batch = the global batch: what the numbers depend on. */
  settings(): TrainerSettings { return { ...this.local.settings(), batch: this.globalBatch }; }

  /** Rank 0 writes the checkpoint (atomically: a temporary file renamed over the old one, so a rank killed
   * mid-write leaves the previous one); the other ranks return. */
  save(file: string): void {
    if (this.rank !== 0) return;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeCheckpoint(file, { stage: this.stage, done: { ...this.done }, config: this.model.config, trainer: this.settings(), tensors: this.snapshot() }, this.layout);
  }

  /** Every rank reads the checkpoint (a shared file system, or a copy per node); rank 0's values are then broadcast
   * when its program next runs. */
  load(file: string, o: { allowConfigChange?: boolean } = {}): void {
    const ck = readCheckpoint(file, { config: this.model.config, settings: this.settings(), layout: this.layout, allowConfigChange: o.allowConfigChange });
    this.pending = ck.tensors;
    this.stage = ck.stage;
    this.done = { ...ck.done };
  }
}
