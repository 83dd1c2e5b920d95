/**
 * PuLID's face-features image (pulid/pipeline.py `get_id_embedding`): the 512² aligned face is parsed by facexlib's
 * BiSeNet (bisenet.ts, weights from the user's `parsing_bisenet.pth`), pixels whose label is background, cloth, hat,
 * ears, earring, neck or necklace ([0, 16, 18, 7, 8, 9, 14, 15]; hair, 17, is kept) become white, the others gray
 * (0.299 R + 0.587 G + 0.114 B). The input to the parse is RGB / 255 normalized with ImageNet's mean and std.
 */
import { input, type ParamStore } from '../../compiler/index';
import type { Image } from '../io/image';
import { openTensorFile } from '../io/tensorFile';
import { loadWeightsInto, WeightLoadError } from '../weights';
import { compiledExecutor, type Executor, type FaceProgram } from './executor';
import {
  BISENET_FACEXLIB, bisenetGraph, PARSING_INPUT_SIZE, PARSING_MEAN, PARSING_STD, parseLabels, ParsingParams, upsampleBilinearAlignCorners,
  type BiSeNetConfig,
} from './bisenet';

/** The labels PuLID paints white. */
export const PARSING_BACKGROUND_LABELS: readonly number[] = [0, 16, 18, 7, 8, 9, 14, 15];

export interface FaceParser {
  readonly size: number;
  /** Per-pixel labels of a size×size RGB face. */
  labels(face: Image): Uint8Array;
  /** The white/gray face-features image of a size×size RGB face. */
  featuresImage(face: Image): Image;
}

/** The BiSeNet's parameters from a torch checkpoint (or safetensors) by state-dict key; missing or misshapen
 * weights are a WeightLoadError naming them (the auxiliary heads' weights and `num_batches_tracked` are ignored). */
export function loadBiSeNetParams(file: string, config: BiSeNetConfig = BISENET_FACEXLIB, size = PARSING_INPUT_SIZE): ParamStore {
  const declared = new ParsingParams();
  bisenetGraph(input('shape_check', [1, 3, size, size]), config, declared);
  const store: ParamStore = new Map();
  const f = openTensorFile(file);
  try {
    const report = loadWeightsInto(store, f, declared.tensors, { strict: false });
    if (report.missing.length || report.mismatched.length) throw new WeightLoadError(file, { ...report, unexpected: [] });
  } finally {
    f.close();
  }
  return store;
}

/** Planar, ImageNet-normalized input of the parse from an RGB image. */
export function parsingInput(face: Image): Float64Array {
  const n = face.width * face.height, out = new Float64Array(3 * n);
  for (let c = 0; c < 3; c++) for (let p = 0; p < n; p++) out[c * n + p] = (face.data[p * face.channels + c] / 255 - PARSING_MEAN[c]) / PARSING_STD[c];
  return out;
}

/** White where the label is background, gray elsewhere (gray rounded to a byte). */
export function featuresImage(face: Image, labels: Uint8Array): Image {
  const bg = new Set(PARSING_BACKGROUND_LABELS), out = new Uint8Array(face.width * face.height * 3);
  for (let p = 0; p < face.width * face.height; p++) {
    const i = p * face.channels;
    const g = bg.has(labels[p]) ? 255 : Math.round(0.299 * face.data[i] + 0.587 * face.data[i + 1] + 0.114 * face.data[i + 2]);
    out[3 * p] = out[3 * p + 1] = out[3 * p + 2] = g;
  }
  return { width: face.width, height: face.height, channels: 3, data: out };
}

/** Loads the parsing weights (or takes a store already loaded) and prepares the network once (`executor`: compiled
 * by default). */
export async function loadFaceParser(source: string | ParamStore, opts: { executor?: Executor; config?: BiSeNetConfig; size?: number } = {}): Promise<FaceParser> {
  const config = opts.config ?? BISENET_FACEXLIB, size = opts.size ?? PARSING_INPUT_SIZE;
  const params = typeof source === 'string' ? loadBiSeNetParams(source, config, size) : source;
  const spec = { outputs: { logits: bisenetGraph(input('image', [1, 3, size, size]), config) } };
  const program: FaceProgram = await (opts.executor ?? compiledExecutor)(spec, params);
  const s8 = size / 8;
  const labels = (face: Image) => {
    if (face.width !== size || face.height !== size) throw new Error(`face parser: the face must be ${size}×${size}, got ${face.width}×${face.height}`);
    const logits = program.run({ image: parsingInput(face) }).logits;
    return parseLabels(upsampleBilinearAlignCorners(logits, config.classes, s8, s8, size, size), config.classes, size * size);
  };
  return { size, labels, featuresImage: (face) => featuresImage(face, labels(face)) };
}
