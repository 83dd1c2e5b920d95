import { adamw, compile, grad, input, trainableParams } from './compiler/index';
import { UNet2DConditionModel, microUnetConfig, pooledTextDim } from './models/unet/index';
const fill = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed));
const c = microUnetConfig, S = c.sampleSize, L = 8;
const unet = new UNet2DConditionModel(c, { seed: 13, trainable: true });
const inp = { sample: input('sample', [1, 4, S, S]), timestep: input('t', [1]), encoderHiddenStates: input('ctx', [1, L, c.crossAttentionDim]), textEmbeds: input('pooled', [1, pooledTextDim(c)]), timeIds: input('timeIds', [1, 6]) };
const loss = unet.forward(inp).sub(input('target', [1, 4, S, S])).square().mean();
const params = trainableParams(loss);
const spec = { outputs: { loss }, updates: adamw(params, grad(loss, params), { lr: 1e-3 }) };
const feeds = { sample: fill(4 * S * S, 1), t: Float32Array.of(500), ctx: fill(L * c.crossAttentionDim, 2), pooled: fill(pooledTextDim(c), 3), timeIds: Float32Array.of(64, 64, 0, 0, 64, 64), target: fill(4 * S * S, 4) };
const checks = process.argv[2] === 'checked';
const emu = await compile(spec, { backend: 'cuda-emu', checks });
emu.run(feeds);
const p = emu as any;
const times = new Map<string, number>();
const t0 = performance.now();
for (const { fn, l, bufs } of p.fns) {
  const t = performance.now();
  if (bufs.length) p.device.annotateNextLaunch(bufs);
  p.device.launch(fn, l.grid, l.block, l.smem, [p.base, ...(l.args ?? [])]);
  const k = l.kernel.replace(/_\d+$/, '').replace(/\d+/g, '#');
  const kind = `${l.grid.join('x')} smem${l.smem} ${l.kernel.slice(0, 40)}`;
  times.set(kind, (times.get(kind) ?? 0) + performance.now() - t);
}
console.log('total', performance.now() - t0, 'launches', p.fns.length);
console.log([...times].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([k, v]) => `${v.toFixed(0)} ms ${k}`).join('\n'));
