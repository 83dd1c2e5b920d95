/** Text → PNG with the frozen diffusion base: two CLIP text encoders, the UNet under a 4-step Euler
 * (trailing) schedule, the VAE decoder. Tiny random weights by default (an abstract image: that is expected);
 * `--weights DIR` loads a diffusers SDXL folder (unet/, vae/, text_encoder/, text_encoder_2/, tokenizer/,
 * tokenizer_2/) by key. Every graph goes through one pluggable `Runner`: the compiled CPU back end by default
 * (each graph compiled once: the text encoders, one Euler step with its sigmas fed as inputs so all steps share
 * it, the VAE decoder), or the float64 reference evaluator with `--backend reference`.
 *
 *   npx tsx examples/generate.ts "a red fox in the snow" --out fox.png --seed 7 --steps 4 [--guidance 1.2] [--weights DIR] [--backend compiled|reference]
 */
import path from 'node:path';
import cliProgress from 'cli-progress';
import { compile, evaluate, input, type GraphSpec, type ParamStore, type Tensor } from '../compiler/index';
import { normalFill } from '../compiler/ir/philox';
import { writePng } from '../models/io/image';
import { ClipTextModel, ClipTokenizer, clipBigGTextConfig, clipLTextConfig, tinyClipTextConfig } from '../models/clip/index';
import { UNet2DConditionModel, sdxlUnetConfig, tinyUnetConfig } from '../models/unet/index';
import { VaeDecoder, sdxlVaeConfig, tinyVaeConfig } from '../models/vae/index';
import { cfg, eulerSchedule, sdxlSchedulerConfig } from '../models/sched/index';
import { ParamRegistry } from '../models/nn/index';
import { loadSafetensorsInto, materialize } from '../models/weights';

/** An output: its values (f64 from the reference evaluator, f32 from a compiled program) and shape. */
export interface Output { data: Float64Array | Float32Array; shape: readonly number[] }
export type Run = (feeds: Record<string, ArrayLike<number>>) => Record<string, Output>;
/** How graphs are executed: `prepare` once per graph (a compiled back end compiles here), then run it per call. */
export interface Runner { readonly name: string; prepare(spec: GraphSpec, store: ParamStore): Promise<Run> }

export const referenceRunner: Runner = {
  name: 'reference (float64 evaluator)',
  prepare: async (spec, store) => (feeds) => evaluate(spec, feeds, store).outputs,
};

/** The compiled CPU back end: one native program per graph; parameter values are copied in from the store. */
export const compiledRunner: Runner = {
  name: 'compiled (CPU)',
  prepare: async (spec, store) => {
    const prog = await compile(spec);
    for (const name of prog.paramNames()) {
      const v = store.get(name);
      if (!v) throw new Error(`generate: no value for parameter '${name}'`);
      prog.setParam(name, v);
    }
    return (feeds) => {
      const out = prog.run(feeds);
      return Object.fromEntries(Object.entries(spec.outputs).map(([k, t]) => [k, { data: out[k] as Float32Array, shape: t.shape }]));
    };
  },
};

function args(argv: string[]) {
  const o: Record<string, string> = {}, rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) o[argv[i].slice(2)] = argv[++i];
    else rest.push(argv[i]);
  }
  return { prompt: rest.join(' ') || 'a lighthouse on a cliff at dusk', out: o.out ?? 'out.png', seed: Number(o.seed ?? 1), steps: Number(o.steps ?? 4),
    guidance: Number(o.guidance ?? 1), weights: o.weights, backend: o.backend ?? 'compiled' };
}

export async function generate(opts: ReturnType<typeof args>, runner: Runner = opts.backend === 'reference' ? referenceRunner : compiledRunner): Promise<void> {
  if (opts.backend !== 'compiled' && opts.backend !== 'reference') throw new Error(`--backend: 'compiled' or 'reference', not '${opts.backend}'`);
  const t0 = performance.now();
  const real = !!opts.weights;
  const store: ParamStore = new Map();
  const tok1 = real ? ClipTokenizer.fromFiles(path.join(opts.weights!, 'tokenizer/vocab.json'), path.join(opts.weights!, 'tokenizer/merges.txt')) : ClipTokenizer.builtin({ length: 16 });
  const tok2 = real ? ClipTokenizer.fromFiles(path.join(opts.weights!, 'tokenizer_2/vocab.json'), path.join(opts.weights!, 'tokenizer_2/merges.txt'), { padToken: '!' }) : tok1;
  const enc1 = new ClipTextModel(real ? clipLTextConfig : tinyClipTextConfig(tok1.vocabSize, tok1.eotId, null), { seed: 11, prefix: 'text_encoder' });
  const enc2 = new ClipTextModel(real ? clipBigGTextConfig : { ...tinyClipTextConfig(tok2.vocabSize, tok2.eotId, 32), hiddenSize: 16 }, { seed: 12, prefix: 'text_encoder_2' });
  const unet = new UNet2DConditionModel(real ? sdxlUnetConfig : tinyUnetConfig, { seed: 13, prefix: 'unet' });
  const vaeReg = new ParamRegistry({ seed: 14 });
  const vaeCfg = real ? sdxlVaeConfig : tinyVaeConfig;
  const vae = new VaeDecoder(vaeReg.scope('vae'), vaeCfg);
  if (real) {
    const w = (p: string) => path.join(opts.weights!, p);
    // Each model lives under its folder's name as a key prefix, so all four share one store.
    for (const [dir, file, m, strict] of [['text_encoder', 'model', enc1, false], ['text_encoder_2', 'model', enc2, false], ['unet', 'diffusion_pytorch_model', unet, true],
      ['vae', 'diffusion_pytorch_model', vaeReg, false]] as const) {
      // not strict where the file has parts this program does not run (the VAE encoder, CLIP-L's final norm is used, position_ids buffers)
      const rep = loadSafetensorsInto(store, w(`${dir}/${file}.safetensors`), m, { strict, addPrefix: `${dir}.` });
      if (rep.missing.length || rep.mismatched.length) throw new Error(`${dir}: missing ${rep.missing.join(', ')} mismatched ${rep.mismatched.map((x) => x.key).join(', ')}`);
    }
  }
  for (const m of [enc1, enc2, unet]) materialize(store, m);
  materialize(store, vaeReg);

  const sched = eulerSchedule(sdxlSchedulerConfig, opts.steps);
  // The bar counts graph runs (text, each step, decode); the stage names the compile while one is under way.
  const bar = new cliProgress.SingleBar({ format: 'generate |{bar}| {value}/{total} {stage}' }, cliProgress.Presets.shades_classic);
  bar.start(opts.steps + 2, 0, { stage: `text encoders (${runner.name})` });

  // 1. text conditioning (cond and, with guidance, the empty prompt)
  const L = tok1.length, S = unet.config.sampleSize;
  const ids1 = input('ids1', [1, L], 'i32'), ids2 = input('ids2', [1, L], 'i32');
  const a = enc1.forward(ids1), b = enc2.forward(ids2);
  const ctxW = enc1.config.hiddenSize + enc2.config.hiddenSize;
  const runText = await runner.prepare({ outputs: { c1: a.penultimate, c2: b.penultimate, pooled: b.pooled } }, store);
  const text = (p: string) => {
    const r = runText({ ids1: tok1.encode(p), ids2: tok2.encode(p) });
    const ctx = new Float64Array(L * ctxW);
    for (let t = 0; t < L; t++) {
      ctx.set(r.c1.data.subarray(t * a.penultimate.shape[2], (t + 1) * a.penultimate.shape[2]), t * ctxW);
      ctx.set(r.c2.data.subarray(t * b.penultimate.shape[2], (t + 1) * b.penultimate.shape[2]), t * ctxW + a.penultimate.shape[2]);
    }
    return { ctx, pooled: r.pooled.data };
  };
  const cond = text(opts.prompt), uncond = opts.guidance !== 1 ? text('') : null;
  bar.increment(1, { stage: 'compiling the UNet step' });

  // 2. one Euler step per run of one graph (the training path builds all steps as one graph; here a run per step
  // shows progress). The step's sigmas are inputs: cin = 1/sqrt(σ²+1) (scale_model_input) and dt = σ_next − σ.
  const x = input('latents', [1, 4, S, S]), ctx = input('ctx', [1, L, ctxW]), pooled = input('pooled', [1, b.pooled.shape[1]]);
  const ctxU = input('ctxU', [1, L, ctxW]), pooledU = input('pooledU', [1, b.pooled.shape[1]]);
  const px = S * 8, timeIds = input('timeIds', [1, 6]);
  const t = input('t', [1]), cin = input('cin', [1]), dt = input('dt', [1]);
  const eps = (c: Tensor, p: Tensor) => unet.forward({ sample: x.mul(cin), timestep: t, encoderHiddenStates: c, textEmbeds: p, timeIds });
  const e = uncond ? cfg(eps(ctxU, pooledU), eps(ctx, pooled), opts.guidance) : eps(ctx, pooled);
  const runStep = await runner.prepare({ outputs: { next: e.mul(dt).add(x) } }, store);
  let lat: ArrayLike<number> = normalFill(4 * S * S, opts.seed).map((v) => v * sched.initNoiseSigma);
  for (let i = 0; i < sched.timesteps.length; i++) {
    const s = sched.sigmas[i];
    const feeds: Record<string, ArrayLike<number>> = { latents: lat, ctx: cond.ctx, pooled: cond.pooled, t: [sched.timesteps[i]], timeIds: [px, px, 0, 0, px, px],
      cin: [1 / Math.sqrt(s * s + 1)], dt: [sched.sigmas[i + 1] - s] };
    if (uncond) Object.assign(feeds, { ctxU: uncond.ctx, pooledU: uncond.pooled });
    bar.update({ stage: `step ${i + 1}/${sched.timesteps.length} (t=${sched.timesteps[i]})` });
    lat = runStep(feeds).next.data;
    bar.increment(1, { stage: i + 1 < sched.timesteps.length ? `step ${i + 1}/${sched.timesteps.length} done` : 'compiling the VAE decoder' });
  }

  // 3. decode
  const runDecode = await runner.prepare({ outputs: { img: vae.decode(input('z', [1, 4, S, S])) } }, store);
  const img = runDecode({ z: lat }).img;
  bar.increment(1, { stage: 'decoded' });
  bar.stop();
  const [, , H, W] = img.shape;
  const rgb = new Uint8Array(H * W * 3);
  for (let c = 0; c < 3; c++) for (let p = 0; p < H * W; p++) rgb[p * 3 + c] = Math.round(Math.min(1, Math.max(0, (img.data[c * H * W + p] + 1) / 2)) * 255);
  writePng(opts.out, { width: W, height: H, channels: 3, data: rgb });
  console.log(`wrote ${opts.out} (${W}×${H}) for "${opts.prompt}", seed ${opts.seed}, ${opts.steps} steps, ${runner.name}, ${((performance.now() - t0) / 1e3).toFixed(1)} s`);
}

if (import.meta.url === `file://${process.argv[1]}`) await generate(args(process.argv.slice(2)));
