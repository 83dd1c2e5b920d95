/** Two small training steps used by the back-end tests and benches: an MLP, and a conv net with group norm,
 * SiLU, self-attention and AdamW (the building blocks of a UNet). */
import * as k from '../../compiler/index';
import type { GraphSpec } from '../../compiler/index';
import { normalFill } from '../../compiler/ir/philox';
import { UNet2DConditionModel, microUnetConfig, pooledTextDim } from '../../models/unet/index';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

const w = (name: string, shape: readonly number[], std: number, seed: number) => k.param(name, shape, { init: { kind: 'normal', std, seed } });

export function mlpStep(lr = 0.05): { spec: GraphSpec; feeds: Record<string, Float64Array> } {
  const x = k.input('x', [16, 8]), y = k.input('y', [16, 4]);
  const h = k.linear(x, w('l1.w', [32, 8], 0.3, 1), w('l1.b', [32], 0.1, 2)).silu();
  const out = k.linear(h, w('l2.w', [4, 32], 0.3, 3), w('l2.b', [4], 0.1, 4));
  const loss = k.mseLoss(out, y);
  const params = k.trainableParams(loss);
  return {
    spec: { outputs: { loss }, updates: k.adamw(params, k.grad(loss, params), { lr }) },
    feeds: { x: normalFill(16 * 8, 5), y: normalFill(16 * 4, 6).map((v) => M.tanh(v)) },
  };
}

/** `lossScale`: f16-style dynamic loss scaling in the graph (inputs `loss_scale` and `boost`, a factor on the loss
 * that a test raises to inject a gradient overflow; output `grads_finite`; updates guarded). */
export function convNetStep(lr = 0.02, o: { lossScale?: boolean } = {}): { spec: GraphSpec; feeds: Record<string, Float64Array> } {
  const x = k.input('x', [2, 3, 8, 8]), target = k.input('target', [2, 4]);
  let h = k.conv2d(x, w('c1.w', [8, 3, 3, 3], 0.2, 11), w('c1.b', [8], 0.05, 12), { padding: 1 });
  h = k.groupNorm(h, 4, k.param('gn.w', [8], { init: { kind: 'ones' } }), k.param('gn.b', [8])).silu();
  h = k.conv2d(h, w('c2.w', [8, 8, 3, 3], 0.15, 13), w('c2.b', [8], 0.05, 14), { stride: 2, padding: 1 }); // [2,8,4,4]
  const tokens = h.reshape([2, 8, 16]).permute([0, 2, 1]); // [2,16,8]
  const t = k.layerNorm(tokens, k.param('ln.w', [8], { init: { kind: 'ones' } }), k.param('ln.b', [8]));
  const q = k.linear(t, w('q.w', [8, 8], 0.3, 15)), kk = k.linear(t, w('k.w', [8, 8], 0.3, 16)), v = k.linear(t, w('v.w', [8, 8], 0.3, 17));
  const a = k.sdpa(q, kk, v).add(tokens);                 // residual
  const pooled = a.mean(1);                               // [2,8]
  const out = k.linear(pooled, w('head.w', [4, 8], 0.3, 18), w('head.b', [4], 0.05, 19));
  const loss = k.mseLoss(out, target);
  const params = k.trainableParams(loss);
  const feeds = { x: normalFill(2 * 3 * 64, 21), target: normalFill(8, 22).map((v) => 0.5 * v) };
  if (o.lossScale) {
    const boosted = loss.mul(k.input('boost', []));
    const { grads, finite } = k.scaledGrads(boosted, params, k.input('loss_scale', []));
    return { spec: { outputs: { loss, grads_finite: finite }, updates: k.guardUpdates(k.adamw(params, grads, { lr }), finite) }, feeds };
  }
  return {
    spec: { outputs: { loss }, updates: k.adamw(params, k.grad(loss, params), { lr }) },
    feeds,
  };
}

/** A training step of the micro UNet (conv, GroupNorm+SiLU, attention, every GEMM template forward and backward,
 * AdamW in the program), with deterministic feeds. */
export function microUnetStep(lr = 1e-3): { spec: GraphSpec; feeds: Record<string, Float64Array>; params: number } {
  const c = microUnetConfig, S = c.sampleSize, L = 8;
  const unet = new UNet2DConditionModel(c, { seed: 13, trainable: true });
  const inp = { sample: k.input('sample', [1, 4, S, S]), timestep: k.input('t', [1]), encoderHiddenStates: k.input('ctx', [1, L, c.crossAttentionDim]),
    textEmbeds: k.input('pooled', [1, pooledTextDim(c)]), timeIds: k.input('timeIds', [1, 6]) };
  const loss = unet.forward(inp).sub(k.input('target', [1, 4, S, S])).square().mean();
  const params = k.trainableParams(loss);
  const fill = (n: number, seed: number) => Float64Array.from({ length: n }, (_, i) => M.sin(i * 0.37 + seed));
  return {
    spec: { outputs: { loss }, updates: k.adamw(params, k.grad(loss, params), { lr }) },
    feeds: { sample: fill(4 * S * S, 1), t: Float64Array.of(500), ctx: fill(L * c.crossAttentionDim, 2), pooled: fill(pooledTextDim(c), 3),
      timeIds: Float64Array.of(64, 64, 0, 0, 64, 64), target: fill(4 * S * S, 4) },
    params: params.length,
  };
}
