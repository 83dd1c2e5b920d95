/** PuLID's training losses as DSL graphs (see docs/pulid-method.md):
 * - L_diff: ε-prediction MSE;
 * - the Lightning T2I branch: the same noise and prompt sampled twice with the 4-step Euler (trailing) schedule,
 *   text only (path t) and text + ID (path tid), as one differentiable graph, recording each cross-attention
 *   layer's Q and text K on both paths;
 * - L_align-sem / L_align-layout over those records;
 * - L_id = 1 − cos(φ(C_id), φ(x̂0)), φ the face recognizer on a fixed face region of the decoded tid image.
 * The paper writes the alignment terms as 2-norms; here each is the mean of squared differences (‖·‖²/numel),
 * averaged over layers and steps, so its size does not grow with the number of layers (70 in SDXL). */
import { constant, cosineSimilarity, full, mseLoss, segment, softmax, type Tensor } from '../../compiler/index';
import { eulerSample, type EulerSchedule } from '../sched/index';
import type { UNet2DConditionModel } from '../unet/index';
import type { VaeDecoder } from '../vae/index';
import { faceRecognizerGraph, RECOGNIZER_INPUT_SIZE } from '../face/recognizer';
import type { FrozenParams } from '../face/layers';
import type { IdAttention, IdAttentionMode, RecordedAttention } from './id-attention';

export const diffusionLoss = (epsPred: Tensor, noise: Tensor): Tensor => mseLoss(epsPred, noise);

/** One layer's [L_align-sem, L_align-layout] terms. */
export function alignmentTerms(a: RecordedAttention, b: RecordedAttention): Tensor[] {
  if (a.layer !== b.layer) throw new Error(`alignmentLosses: layer ${a.layer} vs ${b.layer}`);
  return [mseLoss(semanticAttention(b.q, b.k), semanticAttention(a.q, a.k)), mseLoss(b.q, a.q)];
}

/** softmax(K Qᵀ/√d) Q per head: [B, h, Lk, d]. */
export function semanticAttention(q: Tensor, k: Tensor): Tensor {
  const d = q.shape[q.rank - 1];
  return softmax(k.matmul(q.mT() as never).mul(1 / Math.sqrt(d)) as Tensor, -1).matmul(q as never) as Tensor;
}

/** Alignment losses between the text-only and the text+ID records (same layers, same order). `checkpoint`:
 * each layer's terms are a segment (the L×77 attention maps are recomputed in backward, not kept). */
export function alignmentLosses(t: readonly RecordedAttention[], tid: readonly RecordedAttention[], checkpoint?: LightningCheckpoint, done?: readonly (readonly Tensor[] | undefined)[]): { sem: Tensor; layout: Tensor } {
  if (t.length !== tid.length || t.length === 0) throw new Error(`alignmentLosses: ${t.length} vs ${tid.length} recorded layers`);
  let sem: Tensor | undefined, layout: Tensor | undefined;
  t.forEach((a, i) => {
    const b = tid[i];
    const terms = () => alignmentTerms(a, b);
    const [s, l] = done?.[i] ?? (checkpoint ? segment(terms, (r) => r, { when: checkpoint.when ?? 'always', inputs: [b.q, b.k] }) : terms());
    sem = sem ? sem.add(s) : s;
    layout = layout ? layout.add(l) : l;
  });
  return { sem: sem!.mul(1 / t.length), layout: layout!.mul(1 / t.length) };
}

/** 1 − cos(a, b), averaged over the batch. a, b: [B, D]. */
export const idLoss = (ref: Tensor, gen: Tensor): Tensor => cosineSimilarity(ref, gen, -1).mean().neg().add(1);

/** Bilinear resize weights (PyTorch align_corners=False, half-pixel centres): [out, in]. */
export function resizeMatrix(outSize: number, inSize: number): Float64Array {
  const m = new Float64Array(outSize * inSize), r = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const src = Math.max(0, (o + 0.5) * r - 0.5), i0 = Math.min(Math.floor(src), inSize - 1), i1 = Math.min(i0 + 1, inSize - 1), f = src - i0;
    m[o * inSize + i0] += 1 - f;
    m[o * inSize + i1] += f;
  }
  return m;
}

export interface FaceRegion { x: number; y: number; size: number }

/** Decoded image [B, 3, H, W] in about [-1, 1] → the recognizer's input [B, 3, 150, 150] in 0..255: a fixed square
 * face region (the whole image by default: training images are face crops), resized bilinearly as two matmuls. */
export function faceInput(img: Tensor, region?: FaceRegion): Tensor {
  const [, , H, W] = img.shape, r = region ?? { x: 0, y: 0, size: Math.min(H, W) }, S = RECOGNIZER_INPUT_SIZE;
  const px = img.add(1).mul(127.5).maximum(0).minimum(255);
  const cropped = px.narrow(2, r.y, r.size).narrow(3, r.x, r.size);
  const R = constant(resizeMatrix(S, r.size), [S, r.size]);
  return R.matmul(cropped as never).matmul(R.mT() as never) as Tensor;
}

export interface LightningOptions {
  unet: UNet2DConditionModel;
  idAttention: IdAttention;
  schedule: EulerSchedule;
  /** [B, 4, h, w] unit Gaussian (scaled by init_noise_sigma inside). */
  noise: Tensor;
  context: Tensor;
  pooled: Tensor;
  timeIds: Tensor;
  idTokens: Tensor;
  mode?: IdAttentionMode;
  idScale?: number | Tensor;
  /** How many of the last steps carry gradients on the tid path (default: all). */
  gradSteps?: number;
  /** Checkpoint segments on the tid path's gradient steps (default: none). */
  checkpoint?: LightningCheckpoint;
}

/** Which checkpoint segments the Lightning branch marks on the steps that carry gradients: each whole UNet call
 * (`step`), or each resnet block and transformer layer inside it (`layer`); `when` as `checkpoint(fn)`'s
 * ('always': recomputed in backward; 'budget': candidates the planner recomputes only to meet a budget). The ID
 * attention records made inside a segment are its outputs (kept for the alignment loss). Gradients are bitwise
 * the same with or without them. */
export interface LightningCheckpoint { unit: 'step' | 'layer'; when?: 'always' | 'budget' }

export interface LightningResult {
  latentsT: Tensor;
  latentsTid: Tensor;
  /** Per step, per cross-attention layer. */
  recordsT: RecordedAttention[][];
  recordsTid: RecordedAttention[][];
  /** Per step and layer, the alignment terms already computed inside a checkpoint segment of the tid path
   * (its outputs instead of the records, which are then recomputed in backward, not kept). */
  termsTid: (Tensor[] | undefined)[][];
}

/** Both paths of the Lightning T2I branch: the whole 4-step loop twice, one graph. */
export function lightningBranch(o: LightningOptions): LightningResult {
  const steps = o.schedule.timesteps.length, cut = steps - (o.gradSteps ?? steps);
  const recordsT: RecordedAttention[][] = [], recordsTid: RecordedAttention[][] = [], termsTid: (Tensor[] | undefined)[][] = [];
  const path = (withId: boolean, rec: RecordedAttention[][]) => eulerSample((x, t, step) => {
    const r: RecordedAttention[] = [], terms: (Tensor[] | undefined)[] = [];
    rec.push(r);
    if (withId) termsTid.push(terms);
    const cp = withId && step >= cut ? o.checkpoint : undefined;
    // A segment's outputs: its result and the alignment terms of the layers it recorded (computed inside it
    // against the text-only path's records, built before), so the tid records need not be kept.
    const seg = (body: () => Tensor, inputs: readonly Tensor[]): Tensor => {
      const before = r.length;
      const inner = () => {
        const h = body();
        for (let i = before; i < r.length; i++) terms[i] = alignmentTerms(recordsT[step][i], r[i]);
        return h;
      };
      return segment(inner, (h) => [h, ...r.slice(before).flatMap((_a, j) => terms[before + j]!)], { when: cp!.when ?? 'always', inputs });
    };
    const unet = () => o.unet.forward({
      sample: x, timestep: full([1], t), encoderHiddenStates: o.context, textEmbeds: o.pooled, timeIds: o.timeIds,
      hooks: {
        crossAttention: o.idAttention.hook({ idTokens: withId ? o.idTokens : undefined, mode: o.mode, idScale: o.idScale, record: r }),
        ...(cp?.unit === 'layer' ? { unit: seg } : {}),
      },
    });
    const eps = cp?.unit === 'step' ? seg(unet, [x]) : unet();
    return withId && step < cut ? eps.stopGradient() : eps;
  }, o.noise, o.schedule).latents;
  const latentsT = path(false, recordsT), latentsTid = path(true, recordsTid);
  return { latentsT, latentsTid, recordsT, recordsTid, termsTid };
}

/** L_align over every step and layer of a Lightning branch. */
export function lightningAlignment(r: LightningResult, checkpoint?: LightningCheckpoint): { sem: Tensor; layout: Tensor } {
  const done = r.termsTid.flatMap((terms, step) => r.recordsTid[step].map((_a, i) => terms[i]));
  return alignmentLosses(r.recordsT.flat(), r.recordsTid.flat(), checkpoint, done);
}

/** L_id of the tid path: decode, take the face region, φ, compare with the reference embedding [B, 128];
 * `checkpoint`: the decoder's blocks are segments. */
export function lightningIdLoss(latents: Tensor, vae: VaeDecoder, refEmbedding: Tensor, recognizerParams?: FrozenParams, region?: FaceRegion, checkpoint?: LightningCheckpoint): { loss: Tensor; image: Tensor } {
  // The decoder at full resolution holds the largest activations of the step: with checkpoints, each of its
  // resnet blocks, upsamplers and its output head is a segment too (at any `unit`).
  const when = checkpoint?.when ?? 'always';
  const image = vae.decode(latents, checkpoint ? { unit: (body, inputs) => segment(body, (h) => [h], { when, inputs }) } : {});
  const emb = faceRecognizerGraph(faceInput(image, region), recognizerParams);
  return { loss: idLoss(refEmbedding, emb), image };
}
