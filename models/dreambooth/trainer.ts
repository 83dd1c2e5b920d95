/** DreamBooth training: the step as one graph (UNet on the noised batch, instance half + class half, the loss of
 * loss.ts, gradients for the LoRA or for every UNet weight, AdamW), compiled once; draws (which images, timesteps,
 * noise) are pure functions of (seed, step), so a run is reproducible. */
import { adamw, compile, input, grad, type ParamStore, type Program, type Tensor, type Update } from '../../compiler/index';
import { normalFill, uniformFill } from '../../compiler/ir/philox';
import { attachLora, ATTENTION_TARGETS, keyOf, type LoraAdapter, type TargetSpec } from '../nn/lora';
import { alphasCumprod, sdxlSchedulerConfig } from '../sched/index';
import { materialize } from '../weights';
import type { DreamBoothBase } from './base';
import { diffusionTarget, dreamboothLoss, instanceCount, lossWeights, noiseCoefficients, noisyLatents, pairConditioning, stepInputs,
  type DreamBoothLossOptions } from './loss';

export interface DreamBoothTrainOptions extends DreamBoothLossOptions {
  /** 'lora' (the common case: UNet frozen, a LoRA on `targets`) or 'full' (every UNet weight; build the base with
   * `trainable: true`). */
  mode: 'lora' | 'full';
  rank?: number;
  alpha?: number;
  targets?: TargetSpec;
  /** Images per half (instance, class) in one step (default 1). */
  batch?: number;
  lr?: number;
  seed?: number;
  instancePrompt: string;
  classPrompt: string;
  /** The LoRA to train (from `attachDreamBoothLora`, e.g. attached before the sampler was compiled so that the
   * sampler has it); made by the trainer when absent. */
  adapter?: LoraAdapter;
}

/** The LoRA DreamBooth trains, attached to the base UNet, its initial values in `base.store` and its scale 1. */
export function attachDreamBoothLora(base: DreamBoothBase, o: Pick<DreamBoothTrainOptions, 'targets' | 'rank' | 'alpha' | 'seed'>): LoraAdapter {
  const adapter = attachLora(base.unet, { name: 'lora', targets: o.targets ?? ATTENTION_TARGETS, rank: o.rank ?? 4, alpha: o.alpha, stripPrefix: 'unet.', seed: o.seed });
  materialize(base.store, new Map(adapter.params().map((p) => [keyOf(p), p])));
  adapter.setScale(base.store, 1);
  return adapter;
}

export interface StepGraph {
  outputs: Record<string, Tensor>;
  updates: Update[];
  params: Tensor[];
}

/** The training step: inputs `x0`, `noise` [B, 4, s, s], `t` [B], `db_a`, `db_s`, `db_w` [B], `context_rows`
 * [2, L, ctx] and `pooled_rows` [2, P] (instance prompt, class prompt), `time_ids` [B, 6]. */
export function trainStepGraph(base: DreamBoothBase, adapter: LoraAdapter | undefined, o: DreamBoothTrainOptions): StepGraph {
  const c = base.config, s = base.latentSize, n = o.batch ?? 1, prior = o.prior ?? true, B = prior ? 2 * n : n;
  const lossOpts = { ...o, prior };
  const x0 = input('x0', [B, 4, s, s]), noise = input('noise', [B, 4, s, s]), t = input('t', [B]);
  const { a, s: sg, w } = stepInputs(B);
  const rows = prior ? 2 : 1;
  const ctxRows = input('context_rows', [rows, c.textLength, c.unet.crossAttentionDim]), pooledRows = input('pooled_rows', [rows, base.pooledDim]);
  const pred = base.unet.forward({
    sample: noisyLatents(x0, noise, a, sg), timestep: t, timeIds: input('time_ids', [B, 6]),
    encoderHiddenStates: pairConditioning(ctxRows, B, lossOpts), textEmbeds: pairConditioning(pooledRows, B, lossOpts),
  });
  const { loss, instance, prior: priorLoss } = dreamboothLoss(pred, diffusionTarget(x0, noise, a, sg, o.prediction), w, lossOpts);
  const params = o.mode === 'lora' ? adapter!.params() : [...base.registry.params.values()];
  const grads = grad(loss, params);
  const outputs: Record<string, Tensor> = { loss, instance };
  if (priorLoss) outputs.prior = priorLoss;
  return { outputs, updates: adamw(params, grads as Tensor[], { lr: o.lr ?? 1e-3, weightDecay: 1e-2 }), params };
}

export interface StepRecord { step: number; loss: number; instance: number; prior?: number; timesteps: number[] }

export class DreamBoothTrainer {
  readonly adapter?: LoraAdapter;
  private prog?: Program;
  private evalProg?: Program;
  private readonly ac = alphasCumprod(sdxlSchedulerConfig);
  private readonly order: number[][];
  readonly history: StepRecord[] = [];

  constructor(readonly base: DreamBoothBase, readonly instances: readonly Float64Array[], readonly classes: readonly Float64Array[], readonly o: DreamBoothTrainOptions) {
    if (!instances.length) throw new Error('dreambooth: no instance images');
    if ((o.prior ?? true) && !classes.length) throw new Error('dreambooth: prior preservation needs class images');
    if (o.mode === 'lora') this.adapter = o.adapter ?? attachDreamBoothLora(base, o);
    else if (!base.registry.trainable) throw new Error("dreambooth: a full fine-tune needs the base built with { trainable: true }");
    const seed = o.seed ?? 0;
    this.order = [instances.length, classes.length].map((len, k) => shuffled(len, seed * 2 + k));
  }

  /** Compiles the step (and the evaluation forward pass). */
  async init(opts: { backend?: 'cpu' | 'cuda'; memoryBudget?: number } = {}): Promise<void> {
    const g = trainStepGraph(this.base, this.adapter, this.o);
    this.prog = await compile({ outputs: g.outputs, updates: g.updates }, { backend: opts.backend, budget: opts.memoryBudget });
    this.prog.loadParams(this.base.store, { strict: false });
    const ev = evalGraph(this.base, this.instances.length, this.o);
    this.evalProg = await compile({ outputs: { loss: ev } }, { backend: opts.backend });
  }

  get program(): Program { if (!this.prog) throw new Error('dreambooth: call init() first'); return this.prog; }

  /** One optimizer step on draw `step`. */
  step(step = this.history.length): StepRecord {
    const o = this.o, n = o.batch ?? 1, prior = o.prior ?? true, B = prior ? 2 * n : n, s = this.base.latentSize, seed = o.seed ?? 0;
    const x0 = new Float64Array(B * 4 * s * s), per = 4 * s * s;
    for (let k = 0; k < n; k++) x0.set(this.instances[this.order[0]![(step * n + k) % this.instances.length]!]!, k * per);
    if (prior) for (let k = 0; k < n; k++) x0.set(this.classes[this.order[1]![(step * n + k) % this.classes.length]!]!, (n + k) * per);
    const ts = Array.from(uniformFill(B, seed * 131 + step, 17), (u) => Math.min(999, Math.floor(u * 1000)));
    const out = this.program.run(this.feeds(x0, normalFill(B * per, seed * 131 + step, 23), ts));
    const rec: StepRecord = { step, loss: out.loss![0]!, instance: out.instance![0]!, timesteps: ts };
    if (out.prior) rec.prior = out.prior[0]!;
    this.history.push(rec);
    return rec;
  }

  private feeds(x0: Float64Array, noise: Float64Array, ts: number[], prior = this.o.prior ?? true): Record<string, ArrayLike<number>> {
    const o = this.o, B = ts.length;
    const inst = this.base.text(o.instancePrompt), cls = this.base.text(o.classPrompt);
    const { a, s } = noiseCoefficients(ts, this.ac);
    const cat = (x: Float64Array, y: Float64Array) => { const r = new Float64Array(x.length + y.length); r.set(x); r.set(y, x.length); return r; };
    return {
      x0, noise, t: ts, db_a: a, db_s: s, db_w: lossWeights(ts, this.ac, { ...o, prior }),
      context_rows: prior ? cat(inst.context, cls.context) : inst.context, pooled_rows: prior ? cat(inst.pooled, cls.pooled) : inst.pooled,
      time_ids: Array.from({ length: B }, () => this.base.timeIds).flat(),
    };
  }

  /** The trained values: the LoRA's down/up (or every UNet weight), by key. */
  weights(): Map<string, Float32Array> {
    const keys = this.adapter ? this.adapter.params().map(keyOf) : [...this.base.registry.params.keys()];
    return new Map(keys.map((k) => [k, Float32Array.from(this.program.getParam(k))]));
  }

  /** The trained values as float64 in a ParamStore (for saveLora / mergeLora). */
  store(): ParamStore {
    const st: ParamStore = new Map(this.base.store);
    for (const [k, v] of this.weights()) st.set(k, Float64Array.from(v));
    return st;
  }

  /** The instance images' plain ε/v MSE at fixed timesteps and noise (never trained on), with the current weights. */
  evaluate(): number {
    const p = this.evalProg!, names = new Set(p.paramNames());
    for (const [k, v] of this.weights()) if (names.has(k)) p.setParam(k, v);
    if (this.adapter) p.setParam(this.adapter.scaleKey, this.adapter.scaleValues(1));
    const N = this.instances.length, s = this.base.latentSize, per = 4 * s * s;
    const x0 = new Float64Array(N * per);
    this.instances.forEach((z, i) => x0.set(z, i * per));
    const ts = Array.from({ length: N }, (_v, i) => Math.round(((i + 0.5) / N) * 999));
    const f = this.feeds(x0, normalFill(N * per, 777, 29), ts, false);
    return p.run({ ...f, db_w: new Float64Array(N).fill(1) }).loss![0]!;
  }
}

/** The instance-only loss at batch N (no prior half, no weights): what `evaluate` runs. */
function evalGraph(base: DreamBoothBase, N: number, o: DreamBoothTrainOptions): Tensor {
  const c = base.config, s = base.latentSize, lo = { ...o, prior: false, snrGamma: undefined };
  const x0 = input('x0', [N, 4, s, s]), noise = input('noise', [N, 4, s, s]), t = input('t', [N]);
  const { a, s: sg, w } = stepInputs(N);
  const ctx = input('context_rows', [1, c.textLength, c.unet.crossAttentionDim]), pooled = input('pooled_rows', [1, base.pooledDim]);
  const pred = base.unet.forward({ sample: noisyLatents(x0, noise, a, sg), timestep: t, timeIds: input('time_ids', [N, 6]),
    encoderHiddenStates: pairConditioning(ctx, N, lo), textEmbeds: pairConditioning(pooled, N, lo) });
  return dreamboothLoss(pred, diffusionTarget(x0, noise, a, sg, o.prediction), w, lo).loss;
}

/** A seeded permutation of 0..n-1. */
function shuffled(n: number, seed: number): number[] {
  const u = uniformFill(n, seed, 41);
  return Array.from({ length: n }, (_v, i) => i).sort((x, y) => u[x]! - u[y]!);
}

export { instanceCount };
