/** The diffusion base DreamBooth fine-tunes: two CLIP text encoders, the SDXL-layout UNet (under `unet.`), the VAE
 * (under `vae.`), with deterministic random weights for the small configs (the same seeds as
 * TextToImagePipeline's tiny base, so its images and these agree) or a diffusers SDXL folder. Text conditioning and
 * the VAE encoder run on the float64 evaluator (once per prompt / image); sampling is one compiled program (Euler,
 * trailing, the whole loop and the VAE decode in one graph) whose parameters, LoRA scales included, are set per call,
 * so the same program draws the class images (LoRA scale 0: the base model) and the samples after training. */
import path from 'node:path';
import { compile, evaluate, full, input, type ParamStore, type Program } from '../../compiler/index';
import { ClipTextModel, ClipTokenizer, clipBigGTextConfig, clipLTextConfig, sdxlTextConditioning, tinyClipTextConfig } from '../clip/index';
import { ParamRegistry } from '../nn/index';
import { UNet2DConditionModel, microUnetConfig, pooledTextDim, sdxlUnetConfig, tinyUnetConfig, type UnetConfig } from '../unet/index';
import { VaeDecoder, VaeEncoder, sdxlVaeConfig, tinyVaeConfig, type VaeConfig } from '../vae/index';
import { eulerSample, eulerSchedule, sdxlSchedulerConfig } from '../sched/index';
import { loadSafetensorsInto, materialize } from '../weights';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export interface DreamBoothConfig {
  name: 'micro' | 'tiny' | 'sdxl';
  unet: UnetConfig;
  vae: VaeConfig;
  /** Token length of the prompts. */
  textLength: number;
}

export const dreamboothConfigs: Record<DreamBoothConfig['name'], DreamBoothConfig> = {
  micro: { name: 'micro', unet: microUnetConfig, vae: tinyVaeConfig, textLength: 8 },
  tiny: { name: 'tiny', unet: tinyUnetConfig, vae: tinyVaeConfig, textLength: 16 },
  sdxl: { name: 'sdxl', unet: sdxlUnetConfig, vae: sdxlVaeConfig, textLength: 77 },
};

export interface TextRows { context: Float64Array; pooled: Float64Array }

export class DreamBoothBase {
  readonly registry: ParamRegistry;
  readonly unet: UNet2DConditionModel;
  readonly vaeEncoder: VaeEncoder;
  readonly vaeDecoder: VaeDecoder;
  readonly store: ParamStore = new Map();
  private readonly tok1: ClipTokenizer;
  private readonly tok2: ClipTokenizer;
  private readonly enc1: ClipTextModel;
  private readonly enc2: ClipTextModel;
  private readonly textCache = new Map<string, TextRows>();

  /** `trainable`: the UNet's own weights are trainable parameters (full fine-tune). */
  /** `values: false` builds the modules without allocating their values (to plan a program at SDXL size). */
  constructor(readonly config: DreamBoothConfig, opts: { weights?: string; trainable?: boolean; values?: boolean } = {}) {
    const c = config, w = opts.weights, L = c.textLength;
    this.registry = new ParamRegistry({ seed: 13, trainable: opts.trainable ?? false });
    this.unet = new UNet2DConditionModel(c.unet, { registry: this.registry, prefix: 'unet' });
    const vaeReg = new ParamRegistry({ seed: 14 });
    this.vaeEncoder = new VaeEncoder(vaeReg.scope('vae'), c.vae);
    this.vaeDecoder = new VaeDecoder(vaeReg.scope('vae'), c.vae);
    if (w) {
      this.tok1 = ClipTokenizer.fromFiles(path.join(w, 'tokenizer/vocab.json'), path.join(w, 'tokenizer/merges.txt'), { length: L });
      this.tok2 = ClipTokenizer.fromFiles(path.join(w, 'tokenizer_2/vocab.json'), path.join(w, 'tokenizer_2/merges.txt'), { length: L, padToken: '!' });
      this.enc1 = new ClipTextModel(clipLTextConfig, { prefix: 'text_encoder' });
      this.enc2 = new ClipTextModel(clipBigGTextConfig, { prefix: 'text_encoder_2' });
      for (const [sub, file, m] of [['text_encoder', 'model', this.enc1], ['text_encoder_2', 'model', this.enc2], ['unet', 'diffusion_pytorch_model', this.unet], ['vae', 'diffusion_pytorch_model', vaeReg]] as const) {
        loadSafetensorsInto(this.store, path.join(w, `${sub}/${file}.safetensors`), m, { strict: false, addPrefix: `${sub}.` });
      }
    } else {
      this.tok1 = this.tok2 = ClipTokenizer.builtin({ length: L });
      const ctx = c.unet.crossAttentionDim, half = ctx / 2, base = tinyClipTextConfig(this.tok1.vocabSize, this.tok1.eotId, null);
      this.enc1 = new ClipTextModel({ ...base, hiddenSize: half, intermediateSize: 2 * half, maxPositions: M.max(16, L) }, { seed: 11, prefix: 'text_encoder' });
      this.enc2 = new ClipTextModel({ ...base, hiddenSize: ctx - half, intermediateSize: 2 * (ctx - half), maxPositions: M.max(16, L), projectionDim: pooledTextDim(c.unet) }, { seed: 12, prefix: 'text_encoder_2' });
    }
    if (opts.values === false) return;
    for (const m of [this.enc1, this.enc2, this.unet]) materialize(this.store, m);
    materialize(this.store, vaeReg);
  }

  get latentSize(): number { return this.config.unet.sampleSize; }
  get imageSize(): number { return this.config.unet.sampleSize * 8; }
  get pooledDim(): number { return pooledTextDim(this.config.unet); }
  /** SDXL micro-conditioning for a square training image: original size, crop (0, 0), target size. */
  get timeIds(): number[] { const s = this.imageSize; return [s, s, 0, 0, s, s]; }

  /** Prompt → context [L, ctx] and pooled [pooledDim] (float64 evaluator, cached per prompt). */
  text(prompt: string): TextRows {
    const hit = this.textCache.get(prompt);
    if (hit) return hit;
    const L = this.config.textLength;
    const { context, pooled } = sdxlTextConditioning(this.enc1, this.enc2, input('ids1', [1, L], 'i32'), input('ids2', [1, L], 'i32'));
    const r = evaluate({ outputs: { context, pooled } }, { ids1: this.tok1.encode(prompt), ids2: this.tok2.encode(prompt) }, this.store).outputs;
    const out = { context: r.context.data, pooled: r.pooled.data };
    this.textCache.set(prompt, out);
    return out;
  }

  /** Images [3, S, S] in [-1, 1] → latents (mean of the posterior, scaled), by a compiled encoder program. */
  async encode(images: readonly Float64Array[], backend: 'cpu' | 'cuda' = 'cpu'): Promise<Float64Array[]> {
    if (!images.length) return [];
    const S = this.imageSize, x = input('image', [1, 3, S, S]);
    const prog = await compile({ outputs: { z: this.vaeEncoder.encode(x) } }, { backend });
    prog.loadParams(this.store, { strict: false });
    return images.map((img) => Float64Array.from(prog.run({ image: img }).z!));
  }

  /** The compiled sampler: noise [1, 4, s, s] + one prompt's rows → image [1, 3, S, S]. Compile it after attaching
   * adapters (their parameters then belong to it). */
  async sampler(steps = 4, backend: 'cpu' | 'cuda' = 'cpu'): Promise<Sampler> {
    const s = this.latentSize, c = this.config;
    const noise = input('noise', [1, 4, s, s]), ctx = input('context', [1, c.textLength, c.unet.crossAttentionDim]);
    const pooled = input('pooled', [1, this.pooledDim]), timeIds = input('time_ids', [1, 6]);
    const sched = eulerSchedule(sdxlSchedulerConfig, steps);
    const { latents } = eulerSample((x, t) => this.unet.forward({ sample: x, timestep: full([1], t), encoderHiddenStates: ctx, textEmbeds: pooled, timeIds }), noise, sched);
    const prog = await compile({ outputs: { image: this.vaeDecoder.decode(latents) } }, { backend });
    prog.loadParams(this.store, { strict: false });
    return new Sampler(prog, this);
  }
}

export class Sampler {
  private readonly names: Set<string>;
  constructor(readonly prog: Program, private readonly base: DreamBoothBase) { this.names = new Set(prog.paramNames()); }
  /** Whether the program has this parameter. */
  has(key: string): boolean { return this.names.has(key); }
  /** Sets the parameters the program has (others are ignored). */
  setParams(values: ReadonlyMap<string, ArrayLike<number>>): void { for (const [k, v] of values) if (this.names.has(k)) this.prog.setParam(k, v); }
  /** One image [3, S, S] (about [-1, 1]) for `prompt` from the unit-normal noise `noise`. */
  sample(prompt: string, noise: ArrayLike<number>): Float32Array {
    const t = this.base.text(prompt);
    return this.prog.run({ noise, context: t.context, pooled: t.pooled, time_ids: this.base.timeIds }).image as Float32Array;
  }
}
