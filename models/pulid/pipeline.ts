/** PuLID generation as a pipeline object, in the spirit of diffusers:
 *
 *   const pipe = await PulidPipeline.load({ config: 'tiny', ckpt: 'runs/pulid-tiny/last.safetensors' });
 *   const { png, chw } = await pipe.generate({ prompt: 'a watercolor portrait', photos: ['face.jpg'], idScale: 0.8 });
 *
 * `load` builds the model and loads weights (a diffusers SDXL folder, an ID-adapter checkpoint from
 * pulid-train); the face embedder (three compiled networks) and each generation program (one per number of
 * photos, mode, guidance and steps: the whole sampler and the decoder are one graph, `id_scale` is an input) are
 * compiled on first use and kept for every later call. Bad option values are `PipelineOptionError`s, a photo
 * without a face a `NoFaceError`, both before any sampling. */
import path from 'node:path';
import { compile, evaluate, type ParamStore } from '../../compiler/index';
import { normalFill } from '../../compiler/ir/philox';
import { decodeImage, ImageDecodeError, type Image } from '../io/image';
import { encodeImagePng } from '../io/chwImage';
import { readAdapterWeights } from './checkpoint';
import { loadSafetensorsInto, loadWeightsInto, materialize } from '../weights';
import type { FaceEmbedder } from '../face/embedder';
import { checkGenerateOptions, checkNumber, LIMITS, PipelineOptionError, withDefaults, type GeneratedImage, type ProgressFn } from '../pipelines/options';
import { pulidConfigs, type PulidConfig } from './config';
import { PulidModel, generateFeeds, generateGraph, type GenerateGraphOptions } from './model';
import { brownianNoise, SAMPLERS, type NoiseQuery, type SamplerName } from '../sched/index';
import { alignFace, compiledFaceEmbedder, FaceConditioner, type FaceModels, type IdFeatureValues } from './condition';
import { loadArcFace } from '../face/arcface';
import { loadIResNetOnnx, type IResNetWeights } from '../face/iresnetOnnx';
import { loadBiSeNetParams, loadFaceParser } from '../face/parsing';
import { TextConditioner } from './text';
import type { IdAttentionMode } from './id-attention';

export type PulidBackend = 'cpu' | 'cuda' | 'reference';
/** The ID attention modes, plus the v1 app's presets (app.py): fidelity = ortho v2 with 8 zero tokens, style
 * ("extremely style") = ortho v1 with 16 zero tokens. */
export const PULID_MODES = ['plain', 'ortho', 'ortho_v2', 'fidelity', 'style'] as const;
export type PulidMode = (typeof PULID_MODES)[number];
/** The v1.1 app's names for the ID attention modes (off = plain, v1 = ortho, v2 = ortho_v2). */
export const PULID_ORTHO = ['off', 'v1', 'v2'] as const;
export type PulidOrtho = (typeof PULID_ORTHO)[number];
/** The app presets and the plain modes as (ortho, numZero); an explicit `ortho` / `numZero` overrides them. */
export const PULID_PRESETS: Record<PulidMode, { ortho: PulidOrtho; numZero: number }> = {
  plain: { ortho: 'off', numZero: 0 }, ortho: { ortho: 'v1', numZero: 0 }, ortho_v2: { ortho: 'v2', numZero: 0 },
  fidelity: { ortho: 'v2', numZero: 8 }, style: { ortho: 'v1', numZero: 16 },
};
const ORTHO_MODE: Record<PulidOrtho, IdAttentionMode> = { off: 'plain', v1: 'ortho', v2: 'ortho_v2' };
/** The most sampler steps a generation program takes (all steps are unrolled into one graph). */
export const PULID_MAX_STEPS = 50;
/** NUM_ZERO's range (the v1.1 app's slider: 0..80). */
export const PULID_MAX_NUM_ZERO = 80;
/** Reference photos per generation (the apps: 1 + 3 auxiliary). */
export const PULID_MAX_PHOTOS = 4;

export interface PulidLoadOptions {
  /** A config name (micro, tiny, sdxl) or a config. Default tiny. */
  config?: string | PulidConfig;
  /** Diffusers SDXL folder (unet/, vae/, tokenizer*, text_encoder*). */
  weights?: string;
  /** ID-adapter checkpoint written by pulid-train. */
  ckpt?: string;
  /** A published adapter (pulid_v1.bin — a PyTorch checkpoint, read by the safe reader — or pulid_v1.1.safetensors):
   * its `id_adapter.*` / `id_adapter_attn_layers.*` keys must match the config exactly (WeightLoadError otherwise). */
  adapter?: string;
  /** The vision tower's weights (EVA02-CLIP: the CLIP checkpoint, `visual.*` used; see loadEvaVisionWeights). */
  vision?: string;
  backend?: PulidBackend;
  seed?: number;
  /** antelopev2 `glintr100.onnx`: the ID embedding from this IResNet (512-d) instead of face-api's 128-d descriptor. */
  arcface?: string;
  /** facexlib `parsing_bisenet.pth`: the CLIP view from the BiSeNet parse instead of the landmark-hull stand-in. */
  parsing?: string;
}

/** A reference photo: a file path, encoded PNG/JPEG bytes (optionally with a name for messages), or a decoded RGB image. */
export type PhotoSource = string | Uint8Array | Image | { name: string; bytes: Uint8Array };

export interface PulidGenerateOptions {
  prompt?: string;
  negativePrompt?: string;
  photos: readonly PhotoSource[];
  idScale?: number;
  steps?: number;
  /** Classifier-free guidance scale (1: conditional branch only). */
  cfg?: number;
  seed?: number;
  width?: number;
  height?: number;
  /** ID attention mode or app preset (default plain); `ortho` and `numZero` override what it sets. */
  mode?: PulidMode;
  ortho?: PulidOrtho;
  /** Zero tokens appended to the ID tokens (NUM_ZERO, 0..80): more → weaker ID, more editability. */
  numZero?: number;
  /** Several photos with the v1 encoder: all tokens of the extra photos (true) or their first 5 (false, the app's
   * default). The IDFormer (v1.1) encodes the photos jointly and ignores it. */
  idMix?: boolean;
  /** Default euler (trailing; SDXL-Lightning). */
  sampler?: SamplerName;
  onProgress?: ProgressFn;
}

export interface PulidImage extends GeneratedImage {
  /** Per photo: the recognizer descriptor's norm (a face was found). */
  faces: { descriptorNorm: number }[];
  idScale: number;
  mode: IdAttentionMode;
  numZero: number;
  sampler: SamplerName;
  steps: number;
}

interface Program {
  run(feeds: Record<string, ArrayLike<number>>): ArrayLike<number>;
  sigmas: readonly number[];
  noiseQueries: readonly NoiseQuery[];
}

export class PulidPipeline {
  private embedder?: Promise<FaceEmbedder>;
  private faceModels?: Promise<FaceModels>;
  private faceWeights: { arcface?: IResNetWeights; parsing?: ParamStore } = {};
  private readonly programs = new Map<string, Promise<Program>>();

  private constructor(readonly model: PulidModel, readonly backend: PulidBackend, private readonly store: ParamStore,
    private readonly face: FaceConditioner, private readonly text: TextConditioner) {}

  get config(): PulidConfig { return this.model.config; }
  /** Generation programs compiled so far (the face embedder not counted). */
  get compiledPrograms(): number { return this.programs.size; }

  static async load(opts: PulidLoadOptions = {}): Promise<PulidPipeline> {
    const config = typeof opts.config === 'object' ? opts.config : pulidConfigs[opts.config ?? 'tiny'];
    if (!config) throw new PipelineOptionError('config', `one of ${Object.keys(pulidConfigs).join(', ')}, not '${opts.config}'`);
    const backend = opts.backend ?? 'cpu';
    if (!['cpu', 'cuda', 'reference'].includes(backend)) throw new PipelineOptionError('backend', `cpu, cuda or reference, not '${backend}'`);
    const seed = opts.seed ?? 0;
    const model = new PulidModel(config, { seed });
    const store: ParamStore = new Map();
    if (opts.weights) {
      loadSafetensorsInto(store, path.join(opts.weights, 'unet/diffusion_pytorch_model.safetensors'), model.base, { strict: false, addPrefix: 'unet.' });
      loadSafetensorsInto(store, path.join(opts.weights, 'vae/diffusion_pytorch_model.safetensors'), model.base, { strict: false, addPrefix: 'vae.' });
    }
    if (opts.ckpt && opts.adapter) throw new PipelineOptionError('adapter', 'give either a pulid-train checkpoint (ckpt) or a published adapter, not both');
    if (opts.ckpt) for (const [k, v] of readAdapterWeights(opts.ckpt, config, model.trainable.params)) store.set(k, v);
    if (opts.adapter) loadWeightsInto(store, opts.adapter, model.trainable);
    materialize(materialize(store, model.base), model.trainable);
    const pipe = new PulidPipeline(model, backend, store, new FaceConditioner(config, { seed, visionWeights: opts.vision }), new TextConditioner(config, { weights: opts.weights, seed }));
    // The user's face networks are read and checked now (an ONNX of the wrong width, a parsing checkpoint without a
    // weight fail here, before anything compiles); they compile with the face embedder on first use.
    if (opts.arcface) {
      const arcface = loadIResNetOnnx(opts.arcface);
      if (arcface.config.embedding !== config.idEncoder.faceDim) throw new PipelineOptionError('arcface', `${opts.arcface} gives ${arcface.config.embedding}-d embeddings; the ${config.name} config's ID encoder takes ${config.idEncoder.faceDim}`);
      pipe.faceWeights.arcface = arcface;
    }
    if (opts.parsing) pipe.faceWeights.parsing = loadBiSeNetParams(opts.parsing);
    return pipe;
  }

  /** Photo → ID features (face detection, landmarks, alignment, descriptor, CLIP view). */
  async faceFeatures(photo: PhotoSource, name = typeof photo === 'string' ? photo : 'the photo'): Promise<IdFeatureValues> {
    this.embedder ??= compiledFaceEmbedder();
    this.faceModels ??= this.loadFaceModels();
    if (typeof photo === 'object' && 'bytes' in photo) { name = photo.name; photo = photo.bytes; }
    let img: Image;
    try {
      img = typeof photo === 'string' || photo instanceof Uint8Array ? decodeImage(photo) : photo;
    } catch (e) {
      if (e instanceof ImageDecodeError && typeof photo !== 'string') throw new ImageDecodeError(name, e.message.replace(/^<buffer>: /, ''), { cause: e });
      throw e;
    }
    return this.face.features(alignFace(await this.embedder, img, name, await this.faceModels));
  }

  /** The user's ArcFace and parsing networks, when given (compiled once). */
  private async loadFaceModels(): Promise<FaceModels> {
    const { arcface, parsing } = this.faceWeights;
    return { arcface: arcface && await loadArcFace(arcface), parser: parsing && await loadFaceParser(parsing) };
  }

  private program(g: GenerateGraphOptions): { key: string; fresh: boolean; run: Promise<Program> } {
    const key = JSON.stringify(g);
    let p = this.programs.get(key);
    const fresh = !p;
    if (!p) {
      const graph = generateGraph(this.model, g);
      const spec = { outputs: { image: graph.image } };
      const meta = { sigmas: graph.sigmas, noiseQueries: graph.noiseQueries };
      p = this.backend === 'reference'
        ? Promise.resolve<Program>({ ...meta, run: (f) => evaluate(spec, f, this.store).outputs.image.data })
        : compile(spec, { backend: this.backend }).then((prog) => {
          prog.loadParams(this.store, { strict: false });
          return { ...meta, run: (f: Record<string, ArrayLike<number>>) => prog.run(f).image };
        });
      this.programs.set(key, p);
      p.catch(() => this.programs.delete(key));
    }
    return { key, fresh, run: p };
  }

  /** The options with defaults filled in, every value checked (a PipelineOptionError names the first bad one);
   * `generate` starts with this, and a server can call it to refuse a request before queueing it. */
  resolve(opts: PulidGenerateOptions) {
    const px = this.model.imageSize, c = this.config;
    const g = c.generation;
    const o = checkGenerateOptions(withDefaults({ prompt: 'a portrait photo of a person', steps: g?.steps ?? c.lightningSteps, cfg: g?.cfg ?? 1, seed: 0, width: px, height: px,
      idScale: c.idScale, mode: 'plain' as PulidMode, idMix: false, sampler: g?.sampler ?? ('euler' as SamplerName) }, opts));
    checkNumber('idScale', o.idScale, LIMITS.idScale.min, LIMITS.idScale.max);
    if (!PULID_MODES.includes(o.mode)) throw new PipelineOptionError('mode', `one of ${PULID_MODES.join(', ')}, not '${o.mode}'`);
    // No mode given: the config's defaults (v1.1: ortho v2, NUM_ZERO 20), else plain.
    const preset = opts.mode === undefined && g ? g : PULID_PRESETS[o.mode];
    const ortho = o.ortho ?? preset.ortho, numZero = o.numZero ?? preset.numZero;
    if (!PULID_ORTHO.includes(ortho)) throw new PipelineOptionError('ortho', `one of ${PULID_ORTHO.join(', ')}, not '${ortho}'`);
    if (!Number.isInteger(numZero) || numZero < 0 || numZero > PULID_MAX_NUM_ZERO) throw new PipelineOptionError('numZero', `a whole number in 0..${PULID_MAX_NUM_ZERO}, not ${numZero}`);
    if (typeof o.idMix !== 'boolean') throw new PipelineOptionError('idMix', `true or false, not ${JSON.stringify(o.idMix)}`);
    if (!(SAMPLERS as readonly string[]).includes(o.sampler)) throw new PipelineOptionError('sampler', `one of ${SAMPLERS.join(', ')}, not '${o.sampler}'`);
    if (o.steps > PULID_MAX_STEPS) throw new PipelineOptionError('steps', `${o.steps} is out of range (1..${PULID_MAX_STEPS}: the sampler is one graph)`);
    if (o.width !== px || o.height !== px) throw new PipelineOptionError('width', `the ${c.name} config generates ${px}×${px} images, not ${o.width}×${o.height}`);
    if (!Array.isArray(o.photos) || o.photos.length === 0) throw new PipelineOptionError('photos', 'at least one reference photo');
    if (o.photos.length > PULID_MAX_PHOTOS) throw new PipelineOptionError('photos', `at most ${PULID_MAX_PHOTOS} reference photos, not ${o.photos.length}`);
    return { ...o, attention: ORTHO_MODE[ortho], numZero };
  }

  async generate(opts: PulidGenerateOptions): Promise<PulidImage> {
    const px = this.model.imageSize;
    const o = this.resolve(opts);
    const report = o.onProgress ?? (() => undefined);
    const total = o.photos.length + 3;
    const refs: IdFeatureValues[] = [];
    for (const [i, photo] of o.photos.entries()) {
      report(i, total, `face ${i + 1}/${o.photos.length}`);
      refs.push(await this.faceFeatures(photo, typeof photo === 'string' ? photo : 'name' in photo ? photo.name : `photo ${i + 1}`));
    }
    report(o.photos.length, total, 'text encoders');
    const latentValues = 4 * this.model.latentSize ** 2;
    const feeds = generateFeeds(this.model, refs, this.text.encode(o.prompt), normalFill(latentValues, o.seed), o.idScale);
    if (o.cfg !== 1) { const u = this.text.encode(o.negativePrompt ?? ''); Object.assign(feeds, { uncond_context: u.context, uncond_pooled: u.pooled }); }
    const mode = o.attention;
    // idMix only changes the v1 encoder's multi-photo tokens: keep one program for the other cases.
    const p = this.program({ references: refs.length, idMix: refs.length > 1 && o.idMix, mode, numZero: o.numZero, guidance: o.cfg, steps: o.steps, sampler: o.sampler });
    report(o.photos.length + 1, total, p.fresh ? `compiling (${this.backend})` : 'program cached');
    const prog = await p.run;
    // DPM++ SDE: the sub-step noise from one Brownian path per seed (models/sched/brownian.ts).
    brownianNoise(prog.sigmas, prog.noiseQueries, latentValues, o.seed).forEach((n, k) => { feeds[`sde_noise_${k}`] = n; });
    report(o.photos.length + 2, total, `sampling ${o.steps} steps (${o.sampler}) + decode`);
    const chw = Float32Array.from(prog.run(feeds));
    report(total, total, 'done');
    return { chw, width: px, height: px, png: encodeImagePng(chw, px), seed: o.seed, idScale: o.idScale, mode, numZero: o.numZero, sampler: o.sampler, steps: o.steps,
      faces: refs.map((r) => ({ descriptorNorm: Math.hypot(...r.descriptor) })) };
  }
}
