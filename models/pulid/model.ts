/** The PuLID model: the frozen base (UNet under `unet.`, VAE decoder under `vae.`, face recognizer φ by its tfjs
 * names) and the trainable part (ID encoder under `id_adapter.`, ID attention under `id_adapter_attn_layers.`), and
 * the graphs built on them: the training step (one graph: losses, gradients, AdamW, gradient accumulation) and
 * ID-conditioned sampling. */
import { adamw, full, grad, guardUpdates, input, param, precisionPolicy, scaledGrads, segment, type Precision, type Tensor, type Update } from '../../compiler/index';
import { ParamRegistry } from '../nn/index';
import { UNet2DConditionModel, pooledTextDim } from '../unet/index';
import { VaeDecoder } from '../vae/index';
import { eulerSchedule, makeSampler, sdxlSchedulerConfig, type EulerSchedule, type NoiseQuery, type NoiseSampler, type SamplerName } from '../sched/index';
import { FrozenParams } from '../face/layers';
import type { PulidConfig } from './config';
import { IdEncoder, type IdFeatures } from './id-encoder';
import { IdFormer, type IdTokenEncoder } from './id-former';
import { IdAttention, type IdAttentionMode } from './id-attention';
import { diffusionLoss, lightningAlignment, lightningBranch, lightningIdLoss, type FaceRegion, type LightningCheckpoint } from './losses';

const tsConst = (t: number): Tensor => full([1], t);

export class PulidModel {
  readonly base: ParamRegistry;
  readonly trainable: ParamRegistry;
  readonly unet: UNet2DConditionModel;
  readonly vae: VaeDecoder;
  /** v1's IDEncoder, or v1.1's IDFormer when `config.idEncoder.former` is set. */
  readonly idEncoder: IdTokenEncoder;
  readonly idAttention: IdAttention;
  readonly recognizer = new FrozenParams();
  readonly schedule: EulerSchedule;
  constructor(readonly config: PulidConfig, opts: { seed?: number } = {}) {
    const seed = opts.seed ?? 0;
    this.base = new ParamRegistry({ seed: seed + 13, trainable: false });
    this.trainable = new ParamRegistry({ seed: seed + 17, trainable: true });
    this.unet = new UNet2DConditionModel(config.unet, { registry: this.base, prefix: 'unet' });
    this.vae = new VaeDecoder(this.base.scope('vae'), config.vae);
    const idScope = this.trainable.scope('id_adapter');
    this.idEncoder = config.idEncoder.former ? new IdFormer(idScope, config.idEncoder) : new IdEncoder(idScope, config.idEncoder);
    this.idAttention = new IdAttention(this.trainable.scope('id_adapter_attn_layers'), this.unet, config.idEncoder.bodyTokens);
    this.schedule = eulerSchedule(sdxlSchedulerConfig, config.lightningSteps);
  }
  get latentSize(): number { return this.config.unet.sampleSize; }
  get imageSize(): number { return this.config.unet.sampleSize * 8; }
  get vitTokens(): number { const v = this.config.vision; return (v.imageSize / v.patchSize) ** 2 + 1; }
  get pooledDim(): number { return pooledTextDim(this.config.unet); }

  /** Graph inputs for one reference's ID features, named `<prefix>id_cond`, `<prefix>vit_<i>`. */
  idInputs(batch: number, prefix = ''): IdFeatures {
    const e = this.config.idEncoder;
    return {
      idCond: input(`${prefix}id_cond`, [batch, e.faceDim + e.clipEmbedDim]),
      vitHidden: Array.from({ length: e.vitLayers }, (_v, i) => input(`${prefix}vit_${i}`, [batch, this.vitTokens, e.vitWidth])),
    };
  }
  textInputs(batch: number, prefix = ''): { context: Tensor; pooled: Tensor; timeIds: Tensor } {
    const c = this.config;
    return {
      context: input(`${prefix}context`, [batch, c.textLength, c.unet.crossAttentionDim]),
      pooled: input(`${prefix}pooled`, [batch, this.pooledDim]),
      timeIds: input(`${prefix}time_ids`, [batch, c.unet.timeIds]),
    };
  }
}

export type Stage = 1 | 2 | 3;

export interface TrainStepOptions {
  /** 1: L_diff only (small graph). 2 and 3 share one graph with the Lightning branch; λ's are inputs. */
  stage: Stage;
  batch?: number;
  /** Micro-steps per optimizer step: gradients are summed in `<param>.grad_acc` and applied when input `apply` = 1. */
  accumulation?: number;
  mode?: IdAttentionMode;
  faceRegion?: FaceRegion;
  weightDecay?: number;
  /** false: leave out the decode + φ + L_id part of the Lightning graph (for cheap float64 gradient checks). */
  idLoss?: boolean;
  /** f16 training: the backward pass is seeded by input `loss_scale`, gradients are unscaled before AdamW, and
   * every update is guarded by output `grads_finite` (a step whose gradients overflowed changes nothing). */
  lossScale?: boolean;
  /** Checkpoint segments (losses.ts, LightningCheckpoint) on the Lightning branch's gradient steps, the L_diff
   * UNet (resnet blocks and transformer layers), the VAE decoder's blocks and each layer's alignment terms; false
   * or absent: none. Gradients are bitwise the same either way; only the memory plan changes. */
  checkpoint?: LightningCheckpoint | false;
  /** The precision the step will be compiled with (compile's `precision`, carried on the result for the
   * compiler and the planner); 'f16' turns lossScale on unless it is given. Default 'f32'. */
  precision?: Precision;
}

export interface TrainStepGraph {
  outputs: Record<string, Tensor>;
  updates: Update[];
  /** The trainable parameter names. */
  params: string[];
  /** Non-trainable state the optimizer owns (moments, step, gradient accumulators). */
  state: string[];
  /** Input names the step expects. */
  inputs: string[];
  /** Pass to compile / lowerProgram as `precision`. */
  precision: Precision;
}

/** Which graph a stage uses: stages 2 and 3 are the same program. */
export const graphKind = (stage: Stage): 'diff' | 'full' => (stage === 1 ? 'diff' : 'full');

/** The whole training step as one graph. Inputs: latents, noise, alpha (√ᾱ_t) and sigma (√(1−ᾱ_t)) [B], timestep [B],
 * context / pooled / time_ids, id_cond, vit_0..4, lr, apply; for stages 2–3 also t2i_noise, t2i_context, t2i_pooled,
 * t2i_time_ids, face_ref [B, 128] (φ of the reference), lambda_id, lambda_sem, lambda_layout.
 * Outputs: loss, l_diff (and l_id, l_sem, l_layout, image for the Lightning graph). */
export function trainStepGraph(m: PulidModel, o: TrainStepOptions): TrainStepGraph {
  const B = o.batch ?? 1, S = m.latentSize, acc = o.accumulation ?? 1;
  const latents = input('latents', [B, 4, S, S]), noise = input('noise', [B, 4, S, S]);
  const alpha = input('alpha', [B]), sigma = input('sigma', [B]), timestep = input('timestep', [B]);
  const text = m.textInputs(B);
  const tokens = m.idEncoder.forward(m.idInputs(B));
  const xt = latents.mul(alpha.reshape([B, 1, 1, 1]) as never).add(noise.mul(sigma.reshape([B, 1, 1, 1]) as never) as never);
  // With checkpoints, the L_diff UNet's resnet blocks and transformer layers are segments too.
  const cp = o.checkpoint || undefined;
  const unit = cp && ((body: () => Tensor, inputs: readonly Tensor[]) => segment(body, (h) => [h], { when: cp.when ?? 'always', inputs }));
  const eps = m.unet.forward({
    sample: xt, timestep, encoderHiddenStates: text.context, textEmbeds: text.pooled, timeIds: text.timeIds,
    hooks: { crossAttention: m.idAttention.hook({ idTokens: tokens, mode: o.mode }), ...(unit ? { unit } : {}) },
  });
  const lDiff = diffusionLoss(eps, noise);
  const outputs: Record<string, Tensor> = { l_diff: lDiff };
  let loss = lDiff;
  if (graphKind(o.stage) === 'full') {
    const t2i = m.textInputs(B, 't2i_');
    const br = lightningBranch({
      unet: m.unet, idAttention: m.idAttention, schedule: m.schedule, noise: input('t2i_noise', [B, 4, S, S]),
      context: t2i.context, pooled: t2i.pooled, timeIds: t2i.timeIds, idTokens: tokens, mode: o.mode, gradSteps: m.config.gradSteps,
      ...(o.checkpoint ? { checkpoint: o.checkpoint } : {}),
    });
    const al = lightningAlignment(br, o.checkpoint || undefined);
    const lamSem = input('lambda_sem', []), lamLayout = input('lambda_layout', []);
    loss = loss.add(al.sem.mul(lamSem as never) as never).add(al.layout.mul(lamLayout as never) as never);
    Object.assign(outputs, { l_sem: al.sem, l_layout: al.layout });
    if (o.idLoss ?? true) {
      const id = lightningIdLoss(br.latentsTid, m.vae, input('face_ref', [B, 128]), m.recognizer, o.faceRegion, o.checkpoint || undefined);
      loss = loss.add(id.loss.mul(input('lambda_id', []) as never) as never);
      Object.assign(outputs, { l_id: id.loss, image: id.image });
    }
  }
  outputs.loss = loss;

  const params = [...m.trainable.params.values()];
  const precision = precisionPolicy(o.precision, 'trainStepGraph: precision').precision;
  const scaled = (o.lossScale ?? precision === 'f16') ? scaledGrads(loss, params, input('loss_scale', [])) : undefined;
  const grads = scaled ? scaled.grads : grad(loss, params);
  if (scaled) outputs.grads_finite = scaled.finite;
  const lr = input('lr', []);
  const state: string[] = [];
  let updates: Update[];
  const nameOf = (t: Tensor) => (t.node.attrs as { name: string }).name;
  if (acc === 1) {
    updates = adamw(params, grads, { lr, weightDecay: o.weightDecay ?? 0.01 });
  } else {
    const apply = input('apply', []).gt(0.5);
    const sums = params.map((p, i) => {
      const a = param(`${nameOf(p)}.grad_acc`, p.shape, { trainable: false });
      return { a, s: a.add(grads[i] as never) as Tensor };
    });
    const inner = adamw(params, sums.map((x) => x.s.mul(1 / acc)), { lr, weightDecay: o.weightDecay ?? 0.01 });
    updates = [
      ...inner.map((u) => ({ param: u.param, value: apply.select(u.value, u.param) })),
      ...sums.map((x) => ({ param: x.a, value: apply.select(0, x.s) })),
    ];
  }
  if (scaled) updates = guardUpdates(updates, scaled.finite);
  for (const u of updates) if (!(u.param.node.attrs as { trainable?: boolean }).trainable) state.push(nameOf(u.param));
  const inputs = ['latents', 'noise', 'alpha', 'sigma', 'timestep', 'context', 'pooled', 'time_ids', 'id_cond',
    ...Array.from({ length: m.config.idEncoder.vitLayers }, (_v, i) => `vit_${i}`), 'lr',
    ...(acc > 1 ? ['apply'] : []), ...(scaled ? ['loss_scale'] : []),
    ...(graphKind(o.stage) === 'full' ? ['t2i_noise', 't2i_context', 't2i_pooled', 't2i_time_ids', 'face_ref', 'lambda_id', 'lambda_sem', 'lambda_layout'] : [])];
  return { outputs, updates, params: params.map(nameOf), state, inputs, precision };
}

export interface GenerateGraphOptions {
  batch?: number;
  /** Reference photos of the person. */
  references?: number;
  /** v1 encoder, several photos: every token of the extra photos (true, default) or their first 5 (the app's default). */
  idMix?: boolean;
  mode?: IdAttentionMode;
  /** Zero tokens appended to the ID tokens in every ID attention (NUM_ZERO; default 0). */
  numZero?: number;
  /** Classifier-free guidance scale (1: conditional branch only, as Lightning uses ≈ 1.2 or 1). */
  guidance?: number;
  /** Sampler steps (default: the config's Lightning steps). */
  steps?: number;
  /** Default `euler` (trailing, SDXL-Lightning). */
  sampler?: SamplerName;
}

export interface GenerateGraph {
  image: Tensor;
  tokens: Tensor;
  /** The σ grid of the sampler (x_T = noise · σ-scale is inside the graph). */
  sigmas: readonly number[];
  /** dpmpp-sde-karras: the noise the graph reads as `sde_noise_<k>` inputs, in call order (see brownianNoise). */
  noiseQueries: NoiseQuery[];
}

/** The conditional inputs of `generateGraph` (batch 1): each reference's id_cond and ViT states (a face's
 * `FaceFeatures`), the prompt's encoding, the initial noise [1, 4, h, w], and the ID scale. */
export function generateFeeds(m: PulidModel, refs: readonly { idCond: ArrayLike<number>; vit: readonly ArrayLike<number>[] }[],
  prompt: { context: ArrayLike<number>; pooled: ArrayLike<number> }, noise: ArrayLike<number>, idScale: number): Record<string, ArrayLike<number>> {
  const px = m.imageSize;
  const f: Record<string, ArrayLike<number>> = { context: prompt.context, pooled: prompt.pooled, time_ids: [px, px, 0, 0, px, px], noise, id_scale: [idScale] };
  refs.forEach((r, i) => { f[`ref${i}_id_cond`] = r.idCond; r.vit.forEach((v, j) => { f[`ref${i}_vit_${j}`] = v; }); });
  return f;
}

/** ID-conditioned sampling + decode as one graph. Inputs: noise, context, pooled, time_ids, id_scale,
 * ref<r>_id_cond / ref<r>_vit_<i>; with guidance ≠ 1 also uncond_context, uncond_pooled (uncond ID = the encoder on
 * zeros, as the reference pipelines); for the SDE sampler sde_noise_<k> (one per `noiseQueries` entry).
 * Output: image [B, 3, 8h, 8w] in about [-1, 1]. */
export function generateGraph(m: PulidModel, o: GenerateGraphOptions = {}): GenerateGraph {
  const B = o.batch ?? 1, S = m.latentSize, R = o.references ?? 1, g = o.guidance ?? 1;
  const text = m.textInputs(B);
  const idScale = input('id_scale', []);
  const tokens = m.idEncoder.tokensFor(Array.from({ length: R }, (_v, r) => m.idInputs(B, `ref${r}_`)), { idMix: o.idMix });
  const hook = (idTokens: Tensor) => m.idAttention.hook({ idTokens, mode: o.mode, idScale, numZero: o.numZero });
  let uncond: { context: Tensor; pooled: Tensor; tokens: Tensor } | undefined;
  if (g !== 1) {
    const u = m.idEncoder.unconditional(B, m.vitTokens, { references: R, idMix: o.idMix });
    uncond = { context: input('uncond_context', text.context.shape), pooled: input('uncond_pooled', text.pooled.shape), tokens: u };
  }
  const eps = (x: Tensor, t: number, branch: { context: Tensor; pooled: Tensor; tokens: Tensor }) => m.unet.forward({
    sample: x, timestep: tsConst(t), encoderHiddenStates: branch.context, textEmbeds: branch.pooled, timeIds: text.timeIds,
    hooks: { crossAttention: hook(branch.tokens) },
  });
  const model = (x: Tensor, t: number): Tensor => {
    const c = eps(x, t, { context: text.context, pooled: text.pooled, tokens });
    if (!uncond) return c;
    const u = eps(x, t, uncond);
    return u.add(c.sub(u).mul(g));
  };
  const noiseQueries: NoiseQuery[] = [];
  const sdeNoise: NoiseSampler = (sigma, sigmaNext, k) => { noiseQueries.push({ sigma, sigmaNext }); return input(`sde_noise_${k}`, [B, 4, S, S]); };
  const sampler = makeSampler(o.sampler ?? 'euler', { steps: o.steps ?? m.config.lightningSteps, noise: sdeNoise });
  const lat = sampler.sample(model, input('noise', [B, 4, S, S])).latents;
  return { image: m.vae.decode(lat), tokens, sigmas: sampler.sigmas, noiseQueries };
}
