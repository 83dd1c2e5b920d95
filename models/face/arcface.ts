/**
 * ArcFace embeddings from the user's ONNX file (antelopev2 `glintr100.onnx`): the IResNet read off the file
 * (iresnetOnnx.ts), prepared once through an Executor (compiled by default), fed the 5-point aligned 112² face
 * (align.ts). The embedding is insightface's `embedding` (not normalized), 512-d for glintr100: what PuLID's ID
 * encoder takes as `id_ante_embedding`. Face-api's 128-d recognizer stays the embedded default; this is used when
 * an ONNX path is given.
 */
import { input } from '../../compiler/index';
import type { Image } from '../io/image';
import { arcfaceInput } from './align';
import { compiledExecutor, type Executor, type FaceProgram } from './executor';
import { ARCFACE_INPUT_SIZE, iresnetGraph, type IResNetConfig } from './iresnet';
import { loadIResNetOnnx, type IResNetWeights } from './iresnetOnnx';

export interface ArcFaceRecognizer {
  readonly config: IResNetConfig;
  /** The embedding of the face whose 5 points (eyes, nose tip, mouth corners, in image pixels) are given. */
  embed(img: Image, landmarks5: readonly (readonly [number, number])[]): Float64Array;
}

/** Reads the IResNet from `onnxPath` (or takes weights already read) and prepares it (`executor`: compiledExecutor
 * by default). */
export async function loadArcFace(source: string | IResNetWeights, opts: { executor?: Executor; expect?: IResNetConfig } = {}): Promise<ArcFaceRecognizer> {
  const { config, params } = typeof source === 'string' ? loadIResNetOnnx(source, opts.expect) : source;
  const spec = { outputs: { embedding: iresnetGraph(input('image', [1, 3, ARCFACE_INPUT_SIZE, ARCFACE_INPUT_SIZE]), config) } };
  const program: FaceProgram = await (opts.executor ?? compiledExecutor)(spec, params);
  return {
    config,
    embed: (img, landmarks5) => Float64Array.from(program.run({ image: arcfaceInput(img, landmarks5) }).embedding),
  };
}
