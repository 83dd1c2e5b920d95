/** The face embedder with the pipelines' shape (models/pulid/pipeline.ts, models/pipelines/text-to-image.ts):
 *
 *   const pipe = await FaceEmbedPipeline.load({ backend: 'cpu' });
 *   const { faces } = pipe.embed('photo.jpg');          // or PNG/JPEG bytes, or a decoded Image
 *
 * `load` compiles (or loads from the kernel cache) the three networks once; every later call reuses them. */
import { decodeImage, type Image } from '../io/image';
import { BACKENDS, createFaceEmbedder, executorFor, type Backend, type EmbeddedFace, type FaceEmbedder } from './embedder';

export type FacePhoto = string | Uint8Array | Image<Uint8Array | Float32Array>;

export interface FaceEmbedLoadOptions {
  backend?: Backend;
  /** Inputs are already aligned face crops: only the recognizer is prepared. */
  aligned?: boolean;
  /** Landmarks and descriptors for at most this many faces, largest first. */
  maxFaces?: number;
}

export class FaceEmbedPipeline {
  private constructor(readonly embedder: FaceEmbedder, readonly backend: Backend, readonly aligned: boolean) {}

  static async load(opts: FaceEmbedLoadOptions = {}): Promise<FaceEmbedPipeline> {
    const backend = opts.backend ?? 'cpu';
    if (!BACKENDS.includes(backend)) throw new RangeError(`face embedder: backend one of ${BACKENDS.join(', ')}, not '${backend}'`);
    const embedder = await createFaceEmbedder({ evaluate: executorFor(backend), networks: opts.aligned ? ['recognizer'] : undefined, maxFaces: opts.maxFaces });
    return new FaceEmbedPipeline(embedder, backend, !!opts.aligned);
  }

  private static image(photo: FacePhoto): Image<Uint8Array | Float32Array> {
    return typeof photo === 'string' || photo instanceof Uint8Array ? decodeImage(photo) : photo;
  }

  /** Every face, largest first: box, score, 68 + 5 landmarks, aligned box, 128-d descriptor. */
  embed(photo: FacePhoto): { faces: EmbeddedFace[] } { return this.embedder.embed(FaceEmbedPipeline.image(photo)); }
  /** The descriptor of a photo that already is an aligned face crop. */
  embedAligned(photo: FacePhoto): { descriptor: number[] } { return this.embedder.embedAligned(FaceEmbedPipeline.image(photo)); }
}
