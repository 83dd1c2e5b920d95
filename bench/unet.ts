/**
 * UNet on the compiled CPU back end (issue 6): compile time, run time, kernel counts before/after fusion and
 * the memory plan, for
 *   tiny        the tiny UNet (tinyUnetConfig, 16×16 latents, batch 1): forward; forward+backward (gradient
 *               w.r.t. the encoder hidden states); one AdamW training step over all its parameters
 *   sdxl-block  down_blocks.1 of the SDXL UNet at real width (CrossAttnDown: 2 × (ResnetBlock2D 320/640→640 +
 *               Transformer2DModel 640 ch, 10 heads, 2 layers, cross-attention 2048) + Downsample2D) on 32×32
 *               latents, batch 1, 77 context tokens: forward; forward+backward w.r.t. the block input
 *
 *   npx tsx bench/unet.ts [tiny] [sdxl-block] [--reps N] [--json] [--layers L (sdxl-block transformer depth)]   (--help: all options)
 *
 * Run time: the median of N `kiln_run` calls on the program's arena (inputs already copied in by one
 * `run`), so no host copies are timed.
 */
import os from 'node:os';
import { adamw, compile, grad, input, trainableParams, type CpuProgram, type Tensor } from '../compiler/index';
import { UNet2DConditionModel, tinyUnetConfig, pooledTextDim } from '../models/unet/index';
import { Downsample2D, ParamRegistry, ResnetBlock2D, Transformer2DModel } from '../models/nn/index';
import { defineCli, isMain, runCli, UsageError, type Parsed } from '../tools/cli';

process.env.OMP_WAIT_POLICY ??= 'passive'; // see bench/run.ts: spinning barriers collapse on a shared machine
export const cli = defineCli({
  command: 'npx tsx bench/unet.ts',
  summary: 'UNet on the compiled CPU back end: compile time, run time, kernel counts before/after fusion and the memory plan.',
  positionals: { name: 'tiny|sdxl-block ...', help: 'which benchmarks [default: both]' },
  options: {
    reps: { type: 'int', min: 1, max: 1000, default: 3, help: 'timed runs (the median is reported)' },
    layers: { type: 'int', min: 1, max: 10, default: 2, help: 'sdxl-block transformer depth' },
    json: { type: 'flag', help: 'print the report as JSON' },
  },
  examples: ['npx tsx bench/unet.ts tiny --reps 5', 'npx tsx bench/unet.ts sdxl-block --layers 1 --json'],
});
let REPS = 3, LAYERS = 2;
const log = (s: string) => process.stderr.write(s + '\n');

const fill = (n: number, seed: number, scale = 1) => {
  let s = seed >>> 0 || 1;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; a[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * scale; }
  return a;
};
const MiB = (b: number) => +(b / 2 ** 20).toFixed(2);

async function measure(label: string, spec: { outputs: Record<string, Tensor>; updates?: never }, feeds: Record<string, Float32Array>) {
  log(`${label}: compiling…`);
  const t0 = performance.now();
  const prog: CpuProgram = await compile(spec as never);
  const compileMs = performance.now() - t0;
  const t1 = performance.now();
  prog.run(feeds);
  const firstRunMs = performance.now() - t1;
  const times: number[] = [];
  for (let r = 0; r < REPS; r++) {
    const t = performance.now();
    prog.parts.lib.call('kiln_run', prog.arena);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const m = prog.memoryReport();
  const byKind: Record<string, number> = {};
  for (const k of prog.kernels) byKind[k.kind] = (byKind[k.kind] ?? 0) + 1;
  // Where the time goes: the slowest kernels, and the time summed over kernels of the same kind (the first two ops
  // of a kernel's name: `sdpa_grad`, `conv2d_bwd`, `mul_mul`…; bench/README.md "Parallel regions" came from this).
  const all = prog.profile(3);
  const prof = [...all].sort((a, b) => b.ms - a.ms).slice(0, 5).map((p) => `${p.name} ${p.ms.toFixed(2)} ms`);
  const kinds = new Map<string, { ms: number; kernels: number }>();
  for (const p of all) {
    const k = p.name.replace(/^k\d+_/, '').split('_').slice(0, 2).join('_');
    const v = kinds.get(k) ?? { ms: 0, kernels: 0 };
    v.ms += p.ms; v.kernels++;
    kinds.set(k, v);
  }
  const byKindMs = [...kinds].sort((a, b) => b[1].ms - a[1].ms).slice(0, 8).map(([k, v]) => `${k} ×${v.kernels} ${v.ms.toFixed(2)} ms`);
  const row = {
    label, compileS: +(compileMs / 1e3).toFixed(1), firstRunMs: +firstRunMs.toFixed(1), runMs: +times[times.length >> 1].toFixed(1), minRunMs: +times[0].toFixed(1),
    kernelsUnfused: prog.parts.unfusedKernels, kernels: prog.kernels.length, byKind,
    naiveMiB: MiB(m.naiveBytes), plannedMiB: MiB(m.plannedBytes), peakLiveMiB: MiB(m.peakLiveBytes), recomputed: m.recomputed.length, inPlace: m.inPlace,
    slowest: prof, timeByKind: byKindMs,
  };
  log(`${label}: compile ${row.compileS} s, run ${row.runMs} ms, ${row.kernelsUnfused} → ${row.kernels} kernels, arena ${row.plannedMiB} MiB (naive ${row.naiveMiB})`);
  return row;
}

async function tiny() {
  const c = tinyUnetConfig, S = c.sampleSize, L = 16;
  const feeds = { sample: fill(4 * S * S, 1), t: Float32Array.of(500), ctx: fill(L * c.crossAttentionDim, 2), pooled: fill(pooledTextDim(c), 3), timeIds: Float32Array.of(128, 128, 0, 0, 128, 128) };
  const inputs = () => ({ sample: input('sample', [1, 4, S, S]), timestep: input('t', [1]), encoderHiddenStates: input('ctx', [1, L, c.crossAttentionDim]),
    textEmbeds: input('pooled', [1, pooledTextDim(c)]), timeIds: input('timeIds', [1, 6]) });
  const rows = [];
  {
    const unet = new UNet2DConditionModel(c, { seed: 13 });
    const inp = inputs();
    const eps = unet.forward(inp);
    rows.push(await measure('tiny UNet forward', { outputs: { eps } }, feeds));
    const loss = eps.square().mean();
    const [dctx] = grad(loss, [inp.encoderHiddenStates]);
    rows.push(await measure('tiny UNet fwd+bwd (d loss / d ctx)', { outputs: { loss, dctx } }, feeds));
  }
  {
    const unet = new UNet2DConditionModel(c, { seed: 13, trainable: true });
    const inp = inputs();
    const loss = unet.forward(inp).sub(input('target', [1, 4, S, S])).square().mean();
    const params = trainableParams(loss);
    const step = { outputs: { loss }, updates: adamw(params, grad(loss, params), { lr: 1e-4 }) };
    rows.push({ ...(await measure(`tiny UNet training step (AdamW, ${params.length} params)`, step as never, { ...feeds, target: fill(4 * S * S, 4) })), params: params.length });
  }
  return rows;
}

async function sdxlBlock() {
  const reg = new ParamRegistry({ seed: 1 });
  const s = reg.scope('down_blocks.1');
  const cin = 320, ch = 640, H = 32, L = 77, ctxDim = 2048, temb = 1280, groups = 32;
  const res = [new ResnetBlock2D(s.child('resnets.0'), { inChannels: cin, outChannels: ch, tembChannels: temb, groups }),
    new ResnetBlock2D(s.child('resnets.1'), { inChannels: ch, outChannels: ch, tembChannels: temb, groups })];
  const attn = [0, 1].map((j) => new Transformer2DModel(s.child(`attentions.${j}`), { channels: ch, heads: 10, headDim: 64, crossDim: ctxDim, layers: LAYERS, groups }));
  const down = new Downsample2D(s.child('downsamplers.0'), ch);
  const x = input('x', [1, cin, H, H]), emb = input('temb', [1, temb]), ctx = input('ctx', [1, L, ctxDim]);
  let h: Tensor = x;
  for (let j = 0; j < 2; j++) h = attn[j].forward(res[j].forward(h, emb), ctx);
  const out = down.forward(h);
  const feeds = { x: fill(cin * H * H, 5), temb: fill(temb, 6), ctx: fill(L * ctxDim, 7) };
  const tag = `SDXL down_blocks.1 (640 ch, ${H}×${H}, ${LAYERS} transformer layers)`;
  const rows = [await measure(`${tag} forward`, { outputs: { out } }, feeds)];
  const loss = out.square().mean();
  const [dx] = grad(loss, [x]);
  rows.push(await measure(`${tag} fwd+bwd (d loss / d x)`, { outputs: { loss, dx } }, feeds));
  return rows;
}

async function main(o: Parsed<typeof cli.def.options>, which: string[]): Promise<void> {
  REPS = o.reps; LAYERS = o.layers;
  for (const w of which) if (w !== 'tiny' && w !== 'sdxl-block') throw new UsageError(`unknown benchmark '${w}' (tiny, sdxl-block)`);
  const want = (w: string) => which.length === 0 || which.includes(w);
  const rows = [...(want('tiny') ? await tiny() : []), ...(want('sdxl-block') ? await sdxlBlock() : [])];
  const report = { date: new Date().toISOString(), cpu: os.cpus()[0]?.model, cores: os.cpus().length, loadavg: os.loadavg(), ompWaitPolicy: process.env.OMP_WAIT_POLICY, rows };
  if (o.json) console.log(JSON.stringify(report, null, 2));
  else {
    console.log('| graph | compile s | run ms (min) | kernels unfused → fused | arena MiB (naive) | peak live MiB | recomputed |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of rows) console.log(`| ${r.label} | ${r.compileS} | ${r.runMs} (${r.minRunMs}) | ${r.kernelsUnfused} → ${r.kernels} | ${r.plannedMiB} (${r.naiveMiB}) | ${r.peakLiveMiB} | ${r.recomputed} |`);
    console.log(`\nload average after: ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}`);
    for (const r of rows) console.log(`${r.label}: slowest kernels: ${r.slowest.join(', ')}; by kind: ${r.timeByKind.join(', ')}`);
  }
}

if (isMain(import.meta.url)) await runCli(cli, main);
