/** The face condition: photo → face embedder (SSD detection, 68 landmarks, dlib-style alignment; models/face) →
 * the recognizer's 128-d descriptor, plus a CLIP-vision view of the aligned face → the ID encoder's inputs.
 *
 * Face parsing: PuLID parses the 512² aligned face with facexlib's BiSeNet, paints background, cloth, hat, ears, neck
 * white and turns the rest gray. With the user's parsing weights (`FaceModels.parser`, models/face/parsing.ts)
 * that is what happens here. Without them (the embedded default: no parsing net ships offline) the stand-in is the
 * convex hull of the 68 landmarks (jaw line 0–16 and brows 17–26 bound it): inside the hull the pixels become gray
 * (ITU-R 601 luma), outside white. The hull cuts the forehead above the brows, which a parse keeps; for a tiny random
 * CLIP tower that difference does not matter.
 *
 * ID embedding: face-api's 128-d descriptor by default; with the user's antelopev2 ONNX (`FaceModels.arcface`,
 * models/face/arcface.ts) the IResNet's 512-d embedding of the 5-point aligned face, as PuLID's insightface does. */
import { compile, evaluate, input, type GraphSpec, type ParamStore } from '../../compiler/index';
import { crop, decodeImage, resizeBilinear, type Image } from '../io/image';
import { ClipVisionModel, EvaVisionModel, isEvaVisionConfig, loadEvaVisionWeights } from '../clip/index';
import { createFaceEmbedder, faceNetSpec, type EmbeddedFace, type FaceEmbedder } from '../face/embedder';
import { checkParams, loadFaceApiParams } from '../face/weights';
import { alignFfhq512 } from '../face/align';
import type { ArcFaceRecognizer } from '../face/arcface';
import type { FaceParser } from '../face/parsing';
import { loadWeightsInto, materialize } from '../weights';
import type { PulidConfig } from './config';

/** CLIP's image normalization. */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

type Pt = readonly [number, number];

/** Convex hull (Andrew's monotone chain), counter-clockwise. */
export function convexHull(points: readonly Pt[]): Pt[] {
  const p = [...points].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (p.length < 3) return p;
  const cross = (o: Pt, a: Pt, b: Pt) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower: Pt[] = [], upper: Pt[] = [];
  for (const q of p) { while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], q) <= 0) lower.pop(); lower.push(q); }
  for (const q of [...p].reverse()) { while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], q) <= 0) upper.pop(); upper.push(q); }
  return [...lower.slice(0, -1), ...upper.slice(0, -1)];
}

const insideHull = (hull: readonly Pt[], x: number, y: number): boolean => {
  for (let i = 0; i < hull.length; i++) {
    const a = hull[i], b = hull[(i + 1) % hull.length];
    if ((b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]) < 0) return false;
  }
  return hull.length >= 3;
};

/** The CLIP view of a face crop: gray face inside the landmark hull, white elsewhere (landmarks in crop pixels). */
export function clipFaceView(face: Image, landmarks: readonly Pt[]): Image {
  const hull = convexHull(landmarks), out = new Uint8Array(face.width * face.height * 3);
  for (let y = 0; y < face.height; y++) for (let x = 0; x < face.width; x++) {
    const i = (y * face.width + x) * face.channels, o = (y * face.width + x) * 3;
    const g = insideHull(hull, x + 0.5, y + 0.5) ? Math.round(0.299 * face.data[i] + 0.587 * face.data[i + 1] + 0.114 * face.data[i + 2]) : 255;
    out[o] = out[o + 1] = out[o + 2] = g;
  }
  return { width: face.width, height: face.height, channels: 3, data: out };
}

/** HWC uint8 → CHW float, CLIP-normalized, resized to S×S. */
export function clipPixels(img: Image, size: number): Float64Array {
  const r = resizeBilinear(img, size, size), out = new Float64Array(3 * size * size);
  for (let c = 0; c < 3; c++) for (let p = 0; p < size * size; p++) out[c * size * size + p] = (r.data[p * r.channels + c] / 255 - CLIP_MEAN[c]) / CLIP_STD[c];
  return out;
}

/** What the ID encoder takes for one reference photo (host arrays), plus the aligned face crop. */
export interface IdFeatureValues {
  idCond: Float64Array;
  vit: Float64Array[];
  /** φ(C_id): the recognizer descriptor [128]. */
  descriptor: Float64Array;
}

export interface AlignedFace {
  crop: Image;
  landmarks: Pt[];
  descriptor: number[];
  /** The parsed white/gray 512² face (only with a face parser); the landmark-hull view of `crop` otherwise. */
  featuresImage?: Image;
}

/** Optional user-supplied face networks: the antelopev2 IResNet (ONNX) and facexlib's BiSeNet (.pth). */
export interface FaceModels {
  arcface?: ArcFaceRecognizer;
  parser?: FaceParser;
}

/** Face networks compiled natively (the SSD takes minutes on the reference evaluator), wrapped as an Executor. */
type Feeds = Readonly<Record<string, ArrayLike<number>>>;
interface FaceProgram { run(feeds: Feeds): Record<string, ArrayLike<number>> }

export async function compiledFaceEmbedder(): Promise<FaceEmbedder> {
  const progs = new Map<string, FaceProgram>();
  const nets = [['detector', 'ssd_mobilenetv1_model'], ['landmarks', 'face_landmark_68_model'], ['recognizer', 'face_recognition_model']] as const;
  for (const [net, model] of nets) {
    const { spec, params } = faceNetSpec(net);
    const prog = await compile(spec);
    const store = loadFaceApiParams(model);
    checkParams(store, params.declared, model);
    prog.loadParams(store, { strict: false });
    progs.set(Object.keys(spec.outputs).sort().join(','), { run: (feeds: Feeds) => prog.run(feeds) });
  }
  // models/face's Executor: (spec, params) → program (sync here; the face pipeline also accepts async ones).
  const executor = (spec: GraphSpec, _params: ParamStore): FaceProgram => progs.get(Object.keys(spec.outputs).sort().join(','))!;
  return await createFaceEmbedder({ evaluate: executor, maxFaces: 1 });
}

/** A reference photo in which the face detector found no face. */
export class NoFaceError extends Error {
  constructor(readonly source: string) {
    super(`${source}: no face found (the detector needs one frontal face, roughly 80 pixels or larger)`);
    this.name = 'NoFaceError';
  }
}

/** The largest face of a photo, aligned (dlib box) and cropped, with its landmarks in crop pixels. */
export function alignFace(embedder: FaceEmbedder, photo: Image | string, name = typeof photo === 'string' ? photo : 'the photo', models: FaceModels = {}): AlignedFace {
  const img = typeof photo === 'string' ? decodeImage(photo) : photo;
  const f: EmbeddedFace | undefined = embedder.embed(img).faces[0];
  if (!f) throw new NoFaceError(name);
  const [x, y, w, h] = f.alignedBox.map((v) => Math.round(v));
  const x0 = Math.max(0, x), y0 = Math.max(0, y), w0 = Math.min(img.width - x0, w - (x0 - x)), h0 = Math.min(img.height - y0, h - (y0 - y));
  const descriptor = models.arcface ? [...models.arcface.embed(img, f.landmarks5)] : f.descriptor;
  const featuresImage = models.parser ? models.parser.featuresImage(alignFfhq512(img, f.landmarks5)) : undefined;
  return { crop: crop(img, x0, y0, w0, h0), landmarks: f.landmarks.map(([px, py]) => [px - x0, py - y0] as Pt), descriptor, featuresImage };
}

/** The frozen CLIP vision tower of a config and a function from an aligned face to the ID encoder's inputs. */
export class FaceConditioner {
  /** OpenAI-CLIP ViT or EVA02-CLIP, as the config says. */
  readonly vision: ClipVisionModel | EvaVisionModel;
  private store: ParamStore = new Map();
  /** `visionWeights`: the vision tower's checkpoint (EVA02-CLIP: `visual.*` of the CLIP checkpoint, checked whole
   * before loading; OpenAI CLIP: transformers' CLIPVisionModelWithProjection keys). */
  constructor(readonly config: PulidConfig, opts: { seed?: number; store?: ParamStore; visionWeights?: string } = {}) {
    const seed = (opts.seed ?? 0) + 19;
    this.vision = isEvaVisionConfig(config.vision) ? new EvaVisionModel(config.vision, { seed }) : new ClipVisionModel(config.vision, { seed });
    this.store = opts.store ?? new Map();
    if (opts.visionWeights) {
      if (this.vision instanceof EvaVisionModel) loadEvaVisionWeights(this.store, opts.visionWeights, this.vision);
      else loadWeightsInto(this.store, opts.visionWeights, this.vision.registry);
    }
    materialize(this.store, this.vision.registry);
  }
  features(face: AlignedFace): IdFeatureValues {
    const v = this.config.vision, e = this.config.idEncoder;
    const pixels = input('pixels', [1, 3, v.imageSize, v.imageSize]);
    const out = this.vision.forward(pixels, { hiddenStates: this.config.vitHiddenLayers, normalize: true });
    const spec: GraphSpec = { outputs: { embeds: out.imageEmbeds, ...Object.fromEntries(out.hidden.map((h, i) => [`vit_${i}`, h])) } };
    const r = evaluate(spec, { pixels: clipPixels(face.featuresImage ?? clipFaceView(face.crop, face.landmarks), v.imageSize) }, this.store).outputs;
    const desc = Float64Array.from(face.descriptor.slice(0, e.faceDim));
    const idCond = new Float64Array(e.faceDim + e.clipEmbedDim);
    idCond.set(desc, 0);
    idCond.set(r.embeds.data, e.faceDim);
    return { idCond, vit: out.hidden.map((_h, i) => r[`vit_${i}`].data), descriptor: Float64Array.from(face.descriptor) };
  }
}
