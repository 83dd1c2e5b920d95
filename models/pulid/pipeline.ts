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
import { loadSafetensorsInto, materialize } from '../weights';
import type { FaceEmbedder } from '../face/embedder';
import { checkGenerateOptions, checkNumber, LIMITS, PipelineOptionError, withDefaults, type GeneratedImage, type ProgressFn } from '../pipelines/options';
import { pulidConfigs, type PulidConfig } from './config';
import { PulidModel, generateFeeds, generateGraph } from './model';
import { alignFace, compiledFaceEmbedder, FaceConditioner, type FaceModels, type IdFeatureValues } from './condition';
import { loadArcFace } from '../face/arcface';
import { loadIResNetOnnx, type IResNetWeights } from '../face/iresnetOnnx';
import { loadBiSeNetParams, loadFaceParser } from '../face/parsing';
import { TextConditioner } from './text';
import type { IdAttentionMode } from './id-attention';

export type PulidBackend = 'cpu' | 'cuda' | 'reference';
/** The ID attention modes, plus the reference app's names: fidelity = ortho_v2, style = ortho. */
export const PULID_MODES = ['plain', 'ortho', 'ortho_v2', 'fidelity', 'style'] as const;
export type PulidMode = (typeof PULID_MODES)[number];
/** The most Euler steps a generation program takes (all steps are unrolled into one graph). */
export const PULID_MAX_STEPS = 50;
const modeOf = (m: PulidMode): IdAttentionMode => (m === 'fidelity' ? 'ortho_v2' : m === 'style' ? 'ortho' : m);

export interface PulidLoadOptions {
  /** A config name (micro, tiny, sdxl) or a config. Default tiny. */
  config?: string | PulidConfig;
  /** Diffusers SDXL folder (unet/, vae/, tokenizer*, text_encoder*). */
  weights?: string;
  /** ID-adapter checkpoint written by pulid-train. */
  ckpt?: string;
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
  mode?: PulidMode;
  onProgress?: ProgressFn;
}

export interface PulidImage extends GeneratedImage {
  /** Per photo: the recognizer descriptor's norm (a face was found). */
  faces: { descriptorNorm: number }[];
  idScale: number;
  mode: IdAttentionMode;
  steps: number;
}

type RunImage = (feeds: Record<string, ArrayLike<number>>) => ArrayLike<number>;

export class PulidPipeline {
  private embedder?: Promise<FaceEmbedder>;
  private faceModels?: Promise<FaceModels>;
  private faceWeights: { arcface?: IResNetWeights; parsing?: ParamStore } = {};
  private readonly programs = new Map<string, Promise<RunImage>>();

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
    if (opts.ckpt) for (const [k, v] of readAdapterWeights(opts.ckpt, config, model.trainable.params)) store.set(k, v);
    materialize(materialize(store, model.base), model.trainable);
    const pipe = new PulidPipeline(model, backend, store, new FaceConditioner(config, { seed }), new TextConditioner(config, { weights: opts.weights, seed }));
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

  private program(references: number, mode: IdAttentionMode, guidance: number, steps: number): Promise<RunImage> {
    const key = JSON.stringify([references, mode, guidance, steps]);
    let p = this.programs.get(key);
    if (!p) {
      const spec = { outputs: { image: generateGraph(this.model, { references, mode, guidance, steps }).image } };
      p = this.backend === 'reference'
        ? Promise.resolve<RunImage>((f) => evaluate(spec, f, this.store).outputs.image.data)
        : compile(spec, { backend: this.backend }).then((prog) => { prog.loadParams(this.store, { strict: false }); return (f: Record<string, ArrayLike<number>>) => prog.run(f).image; });
      this.programs.set(key, p);
      p.catch(() => this.programs.delete(key));
    }
    return p;
  }

  /** The options with defaults filled in, every value checked (a PipelineOptionError names the first bad one);
   * `generate` starts with this, and a server can call it to refuse a request before queueing it. */
  resolve(opts: PulidGenerateOptions) {
    const px = this.model.imageSize, c = this.config;
    const o = checkGenerateOptions(withDefaults({ prompt: 'a portrait photo of a person', steps: c.lightningSteps, cfg: 1, seed: 0, width: px, height: px, idScale: c.idScale, mode: 'plain' as PulidMode }, opts));
    checkNumber('idScale', o.idScale, LIMITS.idScale.min, LIMITS.idScale.max);
    if (o.steps > PULID_MAX_STEPS) throw new PipelineOptionError('steps', `${o.steps} is out of range (1..${PULID_MAX_STEPS}: the sampler is one graph)`);
    if (o.width !== px || o.height !== px) throw new PipelineOptionError('width', `the ${c.name} config generates ${px}×${px} images, not ${o.width}×${o.height}`);
    if (!PULID_MODES.includes(o.mode)) throw new PipelineOptionError('mode', `one of ${PULID_MODES.join(', ')}, not '${o.mode}'`);
    if (!Array.isArray(o.photos) || o.photos.length === 0) throw new PipelineOptionError('photos', 'at least one reference photo');
    if (o.photos.length > 4) throw new PipelineOptionError('photos', `at most 4 reference photos, not ${o.photos.length}`);
    return o;
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
    const feeds = generateFeeds(this.model, refs, this.text.encode(o.prompt), normalFill(4 * this.model.latentSize ** 2, o.seed), o.idScale);
    if (o.cfg !== 1) { const u = this.text.encode(o.negativePrompt ?? ''); Object.assign(feeds, { uncond_context: u.context, uncond_pooled: u.pooled }); }
    const mode = modeOf(o.mode);
    const fresh = !this.programs.has(JSON.stringify([refs.length, mode, o.cfg, o.steps]));
    report(o.photos.length + 1, total, fresh ? `compiling (${this.backend})` : 'program cached');
    const run = await this.program(refs.length, mode, o.cfg, o.steps);
    report(o.photos.length + 2, total, `sampling ${o.steps} steps + decode`);
    const chw = Float32Array.from(run(feeds));
    report(total, total, 'done');
    return { chw, width: px, height: px, png: encodeImagePng(chw, px), seed: o.seed, idScale: o.idScale, mode, steps: o.steps,
      faces: refs.map((r) => ({ descriptorNorm: Math.hypot(...r.descriptor) })) };
  }
}
