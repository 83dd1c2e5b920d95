import { evaluate, grad, input, type ParamStore, type Tensor } from '../../compiler/index';
import { normalFill } from '../../compiler/ir/philox';
import { UNet2DConditionModel, microUnetConfig, pooledTextDim, sdxlUnetConfig, tinyUnetConfig, type UnetConfig } from '../../models/unet/index';
import { eulerSample, eulerSchedule, sdxlSchedulerConfig } from '../../models/sched/index';
import type { CrossAttentionContext } from '../../models/nn/index';
import { quickStore } from './ref';

const randn = (n: number, seed: number) => normalFill(n, seed);

function inputs(c: UnetConfig, B = 1, Lk = 5) {
  const S = c.sampleSize;
  return {
    sample: input('sample', [B, c.inChannels, S, S]), timestep: input('timestep', [B]),
    encoderHiddenStates: input('ctx', [B, Lk, c.crossAttentionDim]), textEmbeds: input('pooled', [B, pooledTextDim(c)]), timeIds: input('ids', [B, 6]),
  };
}
function feeds(c: UnetConfig, B = 1, Lk = 5): Record<string, Float64Array> {
  const S = c.sampleSize;
  return {
    sample: randn(B * c.inChannels * S * S, 1), timestep: Float64Array.from({ length: B }, () => 499), ctx: randn(B * Lk * c.crossAttentionDim, 2),
    pooled: randn(B * pooledTextDim(c), 3), ids: Float64Array.from({ length: 6 * B }, (_v, i) => [128, 128, 0, 0, 128, 128][i % 6]),
  };
}

describe('SDXL UNet structure', () => {
  test('parameter count is diffusers\' 2,567,463,684 and keys follow diffusers', () => {
    const m = new UNet2DConditionModel(sdxlUnetConfig);
    expect(m.paramCount()).toBe(2_567_463_684);
    expect(m.registry.params.size).toBe(1680);
    const sh = m.registry.shapes();
    expect(sh.get('down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight')).toEqual([640, 640]);
    expect(sh.get('down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_k.weight')).toEqual([1280, 2048]);
    expect(sh.get('mid_block.attentions.0.transformer_blocks.9.ff.net.0.proj.weight')).toEqual([10240, 1280]);
    expect(sh.get('add_embedding.linear_1.weight')).toEqual([1280, 2816]);
    expect(sh.get('up_blocks.0.resnets.2.conv_shortcut.weight')).toEqual([1280, 1920, 1, 1]);
    expect(sh.get('up_blocks.2.resnets.0.conv1.weight')).toEqual([320, 960, 3, 3]);
    expect(sh.get('up_blocks.1.upsamplers.0.conv.weight')).toEqual([640, 640, 3, 3]);
    expect(sh.has('up_blocks.2.attentions.0.norm.weight')).toBe(false);
  });

  test('the SDXL graph builds in seconds and has 70 hooked cross-attention layers', () => {
    const m = new UNet2DConditionModel(sdxlUnetConfig);
    const layers: string[] = [];
    const t0 = Date.now();
    const out = m.forward({ ...inputs(sdxlUnetConfig, 1, 77), hooks: { crossAttention: (c) => { layers.push(c.layer); } } });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(out.shape).toEqual([1, 4, 128, 128]);
    expect(layers.length).toBe(70);
    expect(layers[0]).toBe('down_blocks.1.attentions.0.transformer_blocks.0.attn2');
    expect(layers[layers.length - 1]).toBe('up_blocks.1.attentions.2.transformer_blocks.1.attn2');
  });
});

describe('tiny UNet', () => {
  test('forward: shape and finite, non-trivial output', () => {
    const c = tinyUnetConfig;
    const m = new UNet2DConditionModel(c);
    const out = evaluate({ outputs: { eps: m.forward(inputs(c)) } }, feeds(c), quickStore(m.registry.params)).outputs.eps;
    expect(out.shape).toEqual([1, 4, 16, 16]);
    expect(out.data.every(Number.isFinite)).toBe(true);
    const std = Math.sqrt(out.data.reduce((a, v) => a + v * v, 0) / out.data.length);
    expect(std).toBeGreaterThan(0.01);
  });

  test('determinism: two builds declare the same inits and give identical outputs (micro config, Philox init)', () => {
    const c = { ...microUnetConfig, sampleSize: 4 };
    const outs = [0, 1].map(() => {
      const m = new UNet2DConditionModel(c);
      return evaluate({ outputs: { eps: m.forward(inputs(c)) } }, feeds(c)).outputs.eps;
    });
    expect(outs[0].shape).toEqual([1, 4, 4, 4]);
    expect(Array.from(outs[1].data)).toEqual(Array.from(outs[0].data));
  });
});

/** Central differences on a few elements of one input vs the graph gradient. */
function gradcheck(store: ParamStore, loss: Tensor, wrt: Tensor, name: string, f: Record<string, Float64Array>, elements: number[], h = 1e-4): number {
  const [g] = grad(loss, [wrt]);
  const analytic = evaluate({ outputs: { g } }, f, store).outputs.g.data;
  const x = f[name];
  let diff2 = 0, num2 = 0;
  for (const k of elements) {
    const keep = x[k];
    x[k] = keep + h; const lp = evaluate({ outputs: { loss } }, f, store).outputs.loss.data[0];
    x[k] = keep - h; const lm = evaluate({ outputs: { loss } }, f, store).outputs.loss.data[0];
    x[k] = keep;
    const num = (lp - lm) / (2 * h);
    diff2 += (num - analytic[k]) ** 2; num2 += num * num;
  }
  return Math.sqrt(diff2 / num2);
}

describe('gradients through the UNet (micro config at 4×4 latents, reference evaluator)', () => {
  const c = { ...microUnetConfig, sampleSize: 4 };
  test('one evaluation w.r.t. encoderHiddenStates', () => {
    const m = new UNet2DConditionModel(c);
    const inp = inputs(c);
    const f = feeds(c);
    const loss = m.forward(inp).mul(m.forward(inp)).mean();
    expect(gradcheck(quickStore(m.registry.params), loss, inp.encoderHiddenStates, 'ctx', f, [0, 7, 22], 1e-3)).toBeLessThan(1e-5);
  });

  test('4-step Euler sampler (one graph, 4 UNet calls) w.r.t. encoderHiddenStates, with a hook reading Q', () => {
    const m = new UNet2DConditionModel(c);
    const inp = inputs(c);
    const noise = input('noise', [1, 4, c.sampleSize, c.sampleSize]);
    const qs: CrossAttentionContext[] = [];
    const sched = eulerSchedule(sdxlSchedulerConfig, 4);
    const tIn = (t: number) => inp.timestep.mul(0).add(t);
    const { latents } = eulerSample((x, t) => m.forward({ ...inp, sample: x, timestep: tIn(t), hooks: { crossAttention: (ctx) => { qs.push(ctx); } } }), noise, sched);
    expect(qs.length).toBe(4 * 7); // micro: 2 down + 1 mid + 4 up cross-attention layers, 4 steps
    // loss: latents energy plus a layout-style term on the first layer's queries.
    const loss = latents.mul(0.01).square().mean().add(qs[0].q.square().mean());
    const f = { ...feeds(c), noise: randn(4 * c.sampleSize ** 2, 9) };
    expect(gradcheck(quickStore(m.registry.params), loss, inp.encoderHiddenStates, 'ctx', f, [1, 30], 1e-3)).toBeLessThan(1e-5);
  });
});
