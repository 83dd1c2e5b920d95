/** Text → image with the frozen diffusion base, as a pipeline object: two CLIP text encoders, the UNet under an
 * Euler (trailing) schedule, the VAE decoder. Tiny random weights by default (an abstract image: that is
 * expected); `weights` loads a diffusers SDXL folder (unet/, vae/, text_encoder/, text_encoder_2/, tokenizer/,
 * tokenizer_2/) by key.
 *
 *   const pipe = await TextToImagePipeline.load({ backend: 'compiled' });
 *   const { png, chw, width } = await pipe.generate({ prompt: 'a red fox', steps: 4, seed: 7 });
 *
 * Every graph goes through one pluggable `Runner` (compiled CPU programs, or the float64 reference evaluator).
 * Each graph is prepared once and kept: the text encoders, one Euler step per (latent size, guidance) with its
 * sigmas fed as inputs so all steps and all calls share it, the VAE decoder per latent size. */
import path from 'node:path';
import { compile, evaluate, input, type GraphSpec, type ParamStore, type Tensor } from '../../compiler/index';
import { normalFill } from '../../compiler/ir/philox';
import { encodeImagePng } from '../io/chwImage';
import { ClipTextModel, ClipTokenizer, clipBigGTextConfig, clipLTextConfig, tinyClipTextConfig } from '../clip/index';
import { UNet2DConditionModel, sdxlUnetConfig, tinyUnetConfig } from '../unet/index';
import { VaeDecoder, sdxlVaeConfig, tinyVaeConfig } from '../vae/index';
import { cfg, eulerSchedule, sdxlSchedulerConfig } from '../sched/index';
import { ParamRegistry, type AttentionHooks } from '../nn/index';
import { loadSafetensorsInto, materialize } from '../weights';
import { checkGenerateOptions, withDefaults, type GeneratedImage, type ProgressFn } from './options';

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
    prog.loadParams(store, { strict: true });
    return (feeds) => {
      const out = prog.run(feeds);
      return Object.fromEntries(Object.entries(spec.outputs).map(([k, t]) => [k, { data: out[k] as Float32Array, shape: t.shape }]));
    };
  },
};

export interface TextToImageLoadOptions {
  /** A diffusers SDXL folder; omitted: the tiny random-weight base. */
  weights?: string;
  backend?: 'compiled' | 'reference';
  /** Overrides `backend`. */
  runner?: Runner;
}

export interface TextToImageOptions {
  prompt: string;
  /** The unconditional branch's prompt under guidance (default ''). */
  negativePrompt?: string;
  steps?: number;
  /** Classifier-free guidance scale; 1 runs the conditional branch only. */
  cfg?: number;
  seed?: number;
  /** Pixels, a multiple of 8 (default: the UNet's sample size × 8). */
  width?: number;
  height?: number;
  onProgress?: ProgressFn;
  /** UNet attention hooks in the step graph (an IP-Adapter's decoupled attention): `build` is called while the step
   * graph is built, once per branch, and may create `input()`s, which `feeds` supplies at every step; `key` names
   * the variant in the program cache. */
  hooks?: { key: string; build: (branch: 'cond' | 'uncond') => AttentionHooks; feeds: Record<string, ArrayLike<number>> };
}

export class TextToImagePipeline {
  private readonly programs = new Map<string, Promise<Run>>();

  private constructor(
    readonly runner: Runner,
    /** Every model's values by key (an adapter adds its own here before generating). */
    readonly store: ParamStore,
    private readonly tok1: ClipTokenizer,
    private readonly tok2: ClipTokenizer,
    private readonly enc1: ClipTextModel,
    private readonly enc2: ClipTextModel,
    readonly unet: UNet2DConditionModel,
    private readonly vae: VaeDecoder,
  ) {}

  static async load(opts: TextToImageLoadOptions = {}): Promise<TextToImagePipeline> {
    const runner = opts.runner ?? (opts.backend === 'reference' ? referenceRunner : compiledRunner);
    const dir = opts.weights, real = !!dir;
    const w = (p: string) => path.join(dir!, p);
    const store: ParamStore = new Map();
    const tok1 = real ? ClipTokenizer.fromFiles(w('tokenizer/vocab.json'), w('tokenizer/merges.txt')) : ClipTokenizer.builtin({ length: 16 });
    const tok2 = real ? ClipTokenizer.fromFiles(w('tokenizer_2/vocab.json'), w('tokenizer_2/merges.txt'), { padToken: '!' }) : tok1;
    const enc1 = new ClipTextModel(real ? clipLTextConfig : tinyClipTextConfig(tok1.vocabSize, tok1.eotId, null), { seed: 11, prefix: 'text_encoder' });
    const enc2 = new ClipTextModel(real ? clipBigGTextConfig : { ...tinyClipTextConfig(tok2.vocabSize, tok2.eotId, 32), hiddenSize: 16 }, { seed: 12, prefix: 'text_encoder_2' });
    const unet = new UNet2DConditionModel(real ? sdxlUnetConfig : tinyUnetConfig, { seed: 13, prefix: 'unet' });
    const vaeReg = new ParamRegistry({ seed: 14 });
    const vae = new VaeDecoder(vaeReg.scope('vae'), real ? sdxlVaeConfig : tinyVaeConfig);
    if (real) {
      // Each model lives under its folder's name as a key prefix, so all four share one store.
      for (const [sub, file, m, strict] of [['text_encoder', 'model', enc1, false], ['text_encoder_2', 'model', enc2, false], ['unet', 'diffusion_pytorch_model', unet, true],
        ['vae', 'diffusion_pytorch_model', vaeReg, false]] as const) {
        // not strict where the file has parts this program does not run (the VAE encoder, CLIP-L's final norm, position_ids buffers)
        const rep = loadSafetensorsInto(store, w(`${sub}/${file}.safetensors`), m, { strict, addPrefix: `${sub}.` });
        if (rep.missing.length || rep.mismatched.length) throw new Error(`${sub}: missing ${rep.missing.join(', ')} mismatched ${rep.mismatched.map((x) => x.key).join(', ')}`);
      }
    }
    for (const m of [enc1, enc2, unet]) materialize(store, m);
    materialize(store, vaeReg);
    return new TextToImagePipeline(runner, store, tok1, tok2, enc1, enc2, unet, vae);
  }

  /** Each graph is prepared (compiled) once per key and reused by every later call. */
  private program(key: string, build: () => GraphSpec): Promise<Run> {
    let p = this.programs.get(key);
    if (!p) { p = this.runner.prepare(build(), this.store); this.programs.set(key, p); }
    return p;
  }

  /** How many graphs have been prepared (compiled) so far. */
  get preparedPrograms(): number { return this.programs.size; }

  async generate(opts: TextToImageOptions): Promise<GeneratedImage> {
    const S0 = this.unet.config.sampleSize * 8;
    const o = checkGenerateOptions(withDefaults({ steps: 4, cfg: 1, seed: 1, width: S0, height: S0 }, opts));
    if (o.width !== o.height) throw new RangeError(`text-to-image: square images only (width ${o.width}, height ${o.height})`);
    const S = o.width / 8, L = this.tok1.length;
    const report = opts.onProgress ?? (() => undefined);
    const total = o.steps + 2;
    const { enc1, enc2 } = this;
    const a0 = enc1.config.hiddenSize, ctxW = a0 + enc2.config.hiddenSize;

    // 1. text conditioning (the prompt and, with guidance, the negative prompt)
    report(0, total, 'text encoders');
    const runText = await this.program('text', () => {
      const a = enc1.forward(input('ids1', [1, L], 'i32')), b = enc2.forward(input('ids2', [1, L], 'i32'));
      return { outputs: { c1: a.penultimate, c2: b.penultimate, pooled: b.pooled } };
    });
    const text = (p: string) => {
      const r = runText({ ids1: this.tok1.encode(p), ids2: this.tok2.encode(p) });
      const b0 = r.c2.shape[2], ctx = new Float64Array(L * ctxW);
      for (let t = 0; t < L; t++) {
        ctx.set(r.c1.data.subarray(t * a0, (t + 1) * a0), t * ctxW);
        ctx.set(r.c2.data.subarray(t * b0, (t + 1) * b0), t * ctxW + a0);
      }
      return { ctx, pooled: r.pooled.data };
    };
    const cond = text(o.prompt), uncond = o.cfg !== 1 ? text(o.negativePrompt ?? '') : null;
    report(1, total, 'UNet step');

    // 2. one Euler step per run of one graph. The step's sigmas are inputs: cin = 1/sqrt(σ²+1)
    // (scale_model_input) and dt = σ_next − σ.
    const runStep = await this.program(`step:${S}:${o.cfg}${o.hooks ? `:${o.hooks.key}` : ''}`, () => {
      const x = input('latents', [1, 4, S, S]), ctx = input('ctx', [1, L, ctxW]), pooled = input('pooled', [1, cond.pooled.length]);
      const ctxU = input('ctxU', [1, L, ctxW]), pooledU = input('pooledU', [1, cond.pooled.length]);
      const timeIds = input('timeIds', [1, 6]), t = input('t', [1]), cin = input('cin', [1]), dt = input('dt', [1]);
      const eps = (c: Tensor, p: Tensor, branch: 'cond' | 'uncond') =>
        this.unet.forward({ sample: x.mul(cin), timestep: t, encoderHiddenStates: c, textEmbeds: p, timeIds, hooks: o.hooks?.build(branch) });
      const e = o.cfg !== 1 ? cfg(eps(ctxU, pooledU, 'uncond'), eps(ctx, pooled, 'cond'), o.cfg) : eps(ctx, pooled, 'cond');
      return { outputs: { next: e.mul(dt).add(x) } };
    });
    const sched = eulerSchedule(sdxlSchedulerConfig, o.steps);
    const px = S * 8;
    let lat: ArrayLike<number> = normalFill(4 * S * S, o.seed).map((v) => v * sched.initNoiseSigma);
    for (let i = 0; i < sched.timesteps.length; i++) {
      const s = sched.sigmas[i];
      const feeds: Record<string, ArrayLike<number>> = { latents: lat, ctx: cond.ctx, pooled: cond.pooled, t: [sched.timesteps[i]], timeIds: [px, px, 0, 0, px, px],
        cin: [1 / Math.sqrt(s * s + 1)], dt: [sched.sigmas[i + 1] - s] };
      if (uncond) Object.assign(feeds, { ctxU: uncond.ctx, pooledU: uncond.pooled });
      if (o.hooks) Object.assign(feeds, o.hooks.feeds);
      lat = runStep(feeds).next.data;
      report(i + 2, total, i + 1 < sched.timesteps.length ? `step ${i + 1}/${sched.timesteps.length}` : 'VAE decoder');
    }

    // 3. decode
    const runDecode = await this.program(`decode:${S}`, () => ({ outputs: { img: this.vae.decode(input('z', [1, 4, S, S])) } }));
    const img = runDecode({ z: lat }).img;
    report(total, total, 'decoded');
    const [, , H, W] = img.shape;
    return { chw: Float32Array.from(img.data), width: W, height: H, png: encodeImagePng(img.data, W, H), seed: o.seed };
  }
}
