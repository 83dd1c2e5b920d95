/**
 * The face pipeline face-api runs for `detectAllFaces(img).withFaceLandmarks().withFaceDescriptors()`, on
 * Kiln graphs: SSD detection → per face, landmarks on the detection crop → dlib-style aligned box → descriptor.
 *
 * Each network is built once as a graph with a fixed-size `input('image', …)` and prepared once by an
 * `Executor` (executor.ts) — the compiled CPU back end by default, the float64 reference evaluator as the
 * oracle — then run many times with feeds. Preparing is async (compiling), so `createFaceEmbedder` is too;
 * everything after it is synchronous.
 */
import { input, type GraphSpec, type ParamStore, type Tensor } from '../../compiler/index';
import { clipBox, crop, decodeImage, type Image } from '../io/image';
import { DETECTOR_INPUT_SIZE, detectorInput, faceDetectorGraph, postprocessDetections, type DetectOptions, type Detection } from './detector';
import { alignedFaceBox, faceLandmarkGraph, fivePoints, LANDMARK_INPUT_SIZE, landmarkInput, landmarkPoints, planarNetInput, type Point } from './landmarks';
import { FrozenParams } from './layers';
import { faceRecognizerGraph, RECOGNIZER_INPUT_SIZE } from './recognizer';
import { checkParams, loadFaceApiParams, type FaceApiModel } from './weights';
import { compiledExecutor, type Executor, type FaceProgram } from './executor';

export { BACKENDS, compiledExecutor, cudaExecutor, executorFor, referenceExecutor, type Backend, type Executor, type FaceProgram } from './executor';

export interface EmbeddedFace {
  /** Detection box [x, y, width, height] in image pixels. */
  readonly box: [number, number, number, number];
  readonly score: number;
  /** 68 landmark points (iBUG order) in image pixels. */
  readonly landmarks: Point[];
  /** Eye centres, nose tip, mouth corners (image-left first), for PuLID's alignment. */
  readonly landmarks5: Point[];
  /** The aligned face box [x, y, w, h] the descriptor was computed on. */
  readonly alignedBox: [number, number, number, number];
  readonly descriptor: number[];
}

export interface FaceEmbedderOptions extends DetectOptions {
  /** How graphs run (default: compiledExecutor, the compiled CPU back end; referenceExecutor is the oracle). */
  readonly evaluate?: Executor;
  /** The networks to prepare (default: all three; `['recognizer']` suffices for `describe`/`embedAligned`). */
  readonly networks?: readonly Net[];
  /** face-api's model/ folder (default: the installed package's). */
  readonly modelDir?: string;
  /** Compute landmarks and descriptors for at most this many faces, largest first (default: all). */
  readonly maxFaces?: number;
}

export interface FaceEmbedder {
  /** Detection only: boxes and scores, largest first. */
  detect(image: Image<Uint8Array | Float32Array> | string): Detection[];
  /** Detects faces (largest first) and embeds each. */
  embed(image: Image<Uint8Array | Float32Array> | string): { faces: EmbeddedFace[] };
  /** Landmarks, alignment and descriptor for given detections (e.g. from `detect`), in their order. */
  embedDetections(image: Image<Uint8Array | Float32Array> | string, detections: readonly Detection[]): { faces: EmbeddedFace[] };
  /** Embeds an image that already is an aligned face crop (resized to 150×150 as face-api does). */
  embedAligned(image: Image<Uint8Array | Float32Array> | string): { descriptor: number[] };
  /** The descriptor of a planar [3, 150, 150] 0..255 input. */
  describe(planar: ArrayLike<number>): number[];
}

export type Net = 'detector' | 'landmarks' | 'recognizer';
const MODEL: Record<Net, FaceApiModel> = { detector: 'ssd_mobilenetv1_model', landmarks: 'face_landmark_68_model', recognizer: 'face_recognition_model' };
const SIZE: Record<Net, number> = { detector: DETECTOR_INPUT_SIZE, landmarks: LANDMARK_INPUT_SIZE, recognizer: RECOGNIZER_INPUT_SIZE };

/** Builds one network's graph on `input('image', [1, 3, S, S])`. */
export function faceNetSpec(net: Net): { spec: GraphSpec; params: FrozenParams } {
  const params = new FrozenParams();
  const image = input('image', [1, 3, SIZE[net], SIZE[net]]);
  let outputs: Record<string, Tensor>;
  if (net === 'detector') outputs = faceDetectorGraph(image, params);
  else if (net === 'landmarks') outputs = { landmarks: faceLandmarkGraph(image, params) };
  else outputs = { descriptor: faceRecognizerGraph(image, params) };
  return { spec: { outputs }, params };
}

const asImage = (img: Image<Uint8Array | Float32Array> | string) => (typeof img === 'string' ? decodeImage(img) : img);
type Box4 = [number, number, number, number];

/** Builds, loads and prepares the networks (compiles them on the default back end), then returns the
 * synchronous pipeline. */
export async function createFaceEmbedder(opts: FaceEmbedderOptions = {}): Promise<FaceEmbedder> {
  const executor = opts.evaluate ?? compiledExecutor;
  const networks = opts.networks ?? (['detector', 'landmarks', 'recognizer'] as const);
  let anchors: Float64Array | undefined;
  const prepare = async (net: Net): Promise<[Net, FaceProgram]> => {
    const { spec, params } = faceNetSpec(net);
    const store = loadFaceApiParams(MODEL[net], opts.modelDir);
    checkParams(store, params.declared, MODEL[net]);
    if (net === 'detector') anchors = store.get('Output/extra_dim');
    return [net, await executor(spec, store)];
  };
  const programs = new Map(await Promise.all(networks.map(prepare)));
  const program = (net: Net): FaceProgram => {
    const p = programs.get(net);
    if (!p) throw new Error(`face embedder: the ${net} network was not prepared (networks: ${networks.join(', ')})`);
    return p;
  };
  const describe = (planar: ArrayLike<number>) => Array.from(program('recognizer').run({ image: planar }).descriptor);
  const cropBox = (img: Image<Uint8Array | Float32Array>, box: readonly number[]) => {
    const b = clipBox({ x: box[0]!, y: box[1]!, width: box[2]!, height: box[3]! }, img.width, img.height);
    return b.width > 0 && b.height > 0 ? crop(img, b.x, b.y, b.width, b.height) : null;
  };

  const detect = (img: Image<Uint8Array | Float32Array>): Detection[] => {
    const det = program('detector').run({ image: detectorInput(img) });
    return postprocessDetections(det.boxes, det.scores, anchors!, img.width, img.height, opts)
      .sort((a, b) => b.box[2] * b.box[3] - a.box[2] * a.box[3]);
  };

  const embedDetections = (img: Image<Uint8Array | Float32Array>, found: readonly Detection[]): { faces: EmbeddedFace[] } => {
    const faces: EmbeddedFace[] = [];
    for (const d of found) {
      const face = cropBox(img, d.box);
      if (!face) continue;
      const raw = program('landmarks').run({ image: landmarkInput(face) }).landmarks;
      const landmarks = landmarkPoints(raw, face.width, face.height, d.box[0], d.box[1]);
      const alignedBox = alignedFaceBox(landmarks, face.width, face.height) as Box4;
      const aligned = cropBox(img, alignedBox);
      const descriptor = aligned ? describe(planarNetInput(aligned, RECOGNIZER_INPUT_SIZE)) : new Array<number>(128).fill(0);
      faces.push({ box: d.box, score: d.score, landmarks, landmarks5: fivePoints(landmarks), alignedBox, descriptor });
    }
    return { faces };
  };

  return {
    describe,
    detect: (image) => detect(asImage(image)),
    embedAligned(image) {
      return { descriptor: describe(planarNetInput(asImage(image), RECOGNIZER_INPUT_SIZE)) };
    },
    embed(image) {
      const img = asImage(image);
      return embedDetections(img, detect(img).slice(0, opts.maxFaces ?? Infinity));
    },
    embedDetections: (image, detections) => embedDetections(asImage(image), detections),
  };
}
