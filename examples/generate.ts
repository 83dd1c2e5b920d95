/** Text → PNG with the frozen diffusion base: two CLIP text encoders, the UNet under a 4-step Euler
 * (trailing) schedule, the VAE decoder. Tiny random weights by default (an abstract image: that is expected);
 * `--weights DIR` loads a diffusers SDXL folder (unet/, vae/, text_encoder/, text_encoder_2/, tokenizer/,
 * tokenizer_2/) by key. Every graph runs through one pluggable `run` function: the float64 reference
 * evaluator now, the compiled program later.
 *
 *   npx tsx examples/generate.ts "a red fox in the snow" --out fox.png --seed 7 --steps 4 [--guidance 1.2] [--weights DIR]
 */
import path from 'node:path';
import cliProgress from 'cli-progress';
import { evaluate, input, type GraphSpec, type ParamStore, type Tensor } from '../compiler/index';
import { normalFill } from '../compiler/ir/philox';
import type { NDArray } from '../compiler/reference/ndarray';
import { writePng } from '../models/io/image';
import { ClipTextModel, ClipTokenizer, clipBigGTextConfig, clipLTextConfig, tinyClipTextConfig } from '../models/clip/index';
import { UNet2DConditionModel, sdxlUnetConfig, tinyUnetConfig } from '../models/unet/index';
import { VaeDecoder, sdxlVaeConfig, tinyVaeConfig } from '../models/vae/index';
import { cfg, eulerSchedule, scaleModelInput, eulerStep, sdxlSchedulerConfig } from '../models/sched/index';
import { ParamRegistry } from '../models/nn/index';
import { loadSafetensorsInto, materialize } from '../models/weights';

/** How a graph is executed: swap this for the compiled back end. */
export type Runner = (spec: GraphSpec, feeds: Record<string, ArrayLike<number>>, store: ParamStore) => Record<string, NDArray>;
export const referenceRunner: Runner = (spec, feeds, store) => evaluate(spec, feeds, store).outputs;

function args(argv: string[]) {
  const o: Record<string, string> = {}, rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) o[argv[i].slice(2)] = argv[++i];
    else rest.push(argv[i]);
  }
  return { prompt: rest.join(' ') || 'a lighthouse on a cliff at dusk', out: o.out ?? 'out.png', seed: Number(o.seed ?? 1), steps: Number(o.steps ?? 4),
    guidance: Number(o.guidance ?? 1), weights: o.weights };
}

export async function generate(opts: ReturnType<typeof args>, run: Runner = referenceRunner): Promise<void> {
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
  const bar = new cliProgress.SingleBar({ format: 'generate |{bar}| {value}/{total} {stage}' }, cliProgress.Presets.shades_classic);
  bar.start(opts.steps + 2, 0, { stage: 'text encoders' });

  // 1. text conditioning (cond and, with guidance, the empty prompt)
  const L = tok1.length, S = unet.config.sampleSize;
  const ids1 = input('ids1', [1, L], 'i32'), ids2 = input('ids2', [1, L], 'i32');
  const a = enc1.forward(ids1), b = enc2.forward(ids2);
  const ctxW = enc1.config.hiddenSize + enc2.config.hiddenSize;
  const text = (p: string) => {
    const r = run({ outputs: { c1: a.penultimate, c2: b.penultimate, pooled: b.pooled } }, { ids1: tok1.encode(p), ids2: tok2.encode(p) }, store);
    const ctx = new Float64Array(L * ctxW);
    for (let t = 0; t < L; t++) {
      ctx.set(r.c1.data.subarray(t * a.penultimate.shape[2], (t + 1) * a.penultimate.shape[2]), t * ctxW);
      ctx.set(r.c2.data.subarray(t * b.penultimate.shape[2], (t + 1) * b.penultimate.shape[2]), t * ctxW + a.penultimate.shape[2]);
    }
    return { ctx, pooled: r.pooled.data };
  };
  const cond = text(opts.prompt), uncond = opts.guidance !== 1 ? text('') : null;
  bar.increment(1, { stage: 'denoising' });

  // 2. one Euler step per graph (the training path builds all steps as one graph; here a step per run shows progress)
  const x = input('latents', [1, 4, S, S]), ctx = input('ctx', [1, L, ctxW]), pooled = input('pooled', [1, b.pooled.shape[1]]);
  const ctxU = input('ctxU', [1, L, ctxW]), pooledU = input('pooledU', [1, b.pooled.shape[1]]);
  const px = S * 8, timeIds = input('timeIds', [1, 6]);
  const stepGraph = (i: number): Tensor => {
    const s = sched.sigmas[i], t = input('t', [1]);
    const eps = (c: Tensor, p: Tensor) => unet.forward({ sample: scaleModelInput(x, s), timestep: t, encoderHiddenStates: c, textEmbeds: p, timeIds });
    const e = uncond ? cfg(eps(ctxU, pooledU), eps(ctx, pooled), opts.guidance) : eps(ctx, pooled);
    return eulerStep(x, e, s, sched.sigmas[i + 1]);
  };
  let lat: Float64Array = normalFill(4 * S * S, opts.seed).map((v) => v * sched.initNoiseSigma);
  for (let i = 0; i < sched.timesteps.length; i++) {
    const feeds: Record<string, ArrayLike<number>> = { latents: lat, ctx: cond.ctx, pooled: cond.pooled, t: [sched.timesteps[i]], timeIds: [px, px, 0, 0, px, px] };
    if (uncond) Object.assign(feeds, { ctxU: uncond.ctx, pooledU: uncond.pooled });
    lat = run({ outputs: { next: stepGraph(i) } }, feeds, store).next.data;
    bar.increment(1, { stage: `step ${i + 1}/${sched.timesteps.length} (t=${sched.timesteps[i]})` });
  }

  // 3. decode
  const img = run({ outputs: { img: vae.decode(input('z', [1, 4, S, S])) } }, { z: lat }, store).img;
  bar.increment(1, { stage: 'decoded' });
  bar.stop();
  const [, , H, W] = img.shape;
  const rgb = new Uint8Array(H * W * 3);
  for (let c = 0; c < 3; c++) for (let p = 0; p < H * W; p++) rgb[p * 3 + c] = Math.round(Math.min(1, Math.max(0, (img.data[c * H * W + p] + 1) / 2)) * 255);
  writePng(opts.out, { width: W, height: H, channels: 3, data: rgb });
  console.log(`wrote ${opts.out} (${W}×${H}) for "${opts.prompt}", seed ${opts.seed}, ${opts.steps} steps`);
}

if (import.meta.url === `file://${process.argv[1]}`) await generate(args(process.argv.slice(2)));
