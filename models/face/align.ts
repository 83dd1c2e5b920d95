/**
 * insightface's 5-point alignment (python-package/insightface/utils/face_align.py `norm_crop`): the similarity
 * transform (rotation, uniform scale, translation; no reflection) that best maps the five landmarks (eye centres,
 * nose tip, mouth corners) onto the `arcface_dst` template in the least-squares sense, then the face warped to
 * 112×112 (`cv2.warpAffine`, bilinear, border 0).
 *
 * The transform is skimage's `SimilarityTransform.estimate` (Umeyama 1991 with scale). In 2-D it has a closed form:
 * with the demeaned points as complex numbers s_i, d_i, the map d ≈ c·s + t has c = Σ conj(s_i)·d_i / Σ |s_i|²;
 * |c| equals Umeyama's scale (S₁ ± S₂)/σ² in both of its determinant branches, so the two agree (tested against a
 * copy of skimage's `_umeyama` to 1e-12).
 *
 * The warp samples the source at M⁻¹·(x, y) for each output pixel centre (x, y integers, as OpenCV), bilinear, a
 * neighbour outside the image counting as 0. OpenCV quantizes the sample position to 1/32 pixel and its weights to
 * 1/1024 (INTER_TAB_SIZE, INTER_REMAP_COEF_BITS); this warp is exact in float64, so it may differ from OpenCV's by
 * about one grey level.
 */
import type { Image } from '../io/image';

/** insightface's arcface_dst: where the five points land in a 112×112 crop (a float32 array there, so rounded to
 * float32 here too). */
export const ARCFACE_DST: readonly (readonly [number, number])[] = ([
  [38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041],
] as const).map(([x, y]) => [Math.fround(x), Math.fround(y)] as const);

/** A 2×3 affine matrix, row-major: [a, b, tx, c, d, ty] maps (x, y) → (a x + b y + tx, c x + d y + ty). */
export type Affine = readonly [number, number, number, number, number, number];

export class AlignmentError extends Error {
  constructor(detail: string) {
    super(`face alignment: ${detail}`);
    this.name = 'AlignmentError';
  }
}

/** The least-squares similarity transform src → dst (skimage SimilarityTransform.estimate). */
export function similarityTransform(src: readonly (readonly [number, number])[], dst: readonly (readonly [number, number])[]): Affine {
  if (src.length !== dst.length || src.length < 2) throw new AlignmentError(`need matching point lists of at least 2 points, got ${src.length} and ${dst.length}`);
  if (![...src, ...dst].every(([x, y]) => Number.isFinite(x) && Number.isFinite(y))) throw new AlignmentError('a landmark is not a finite number');
  const n = src.length;
  const mean = (ps: readonly (readonly [number, number])[]) => [ps.reduce((a, p) => a + p[0], 0) / n, ps.reduce((a, p) => a + p[1], 0) / n];
  const [sx, sy] = mean(src), [dx, dy] = mean(dst);
  let re = 0, im = 0, norm = 0;
  for (let i = 0; i < n; i++) {
    const ax = src[i][0] - sx, ay = src[i][1] - sy, bx = dst[i][0] - dx, by = dst[i][1] - dy;
    re += ax * bx + ay * by;
    im += ax * by - ay * bx;
    norm += ax * ax + ay * ay;
  }
  if (!(norm > 0)) throw new AlignmentError('the landmarks coincide (no scale can be estimated)');
  const a = re / norm, b = im / norm;
  return [a, -b, dx - (a * sx - b * sy), b, a, dy - (b * sx + a * sy)];
}

/** insightface's estimate_norm for a 112-multiple size: the template scaled by size/112. */
export function arcfaceTransform(landmarks5: readonly (readonly [number, number])[], size = 112): Affine {
  if (landmarks5.length !== 5) throw new AlignmentError(`need 5 landmarks, got ${landmarks5.length}`);
  if (size % 112) throw new AlignmentError(`size ${size} is not a multiple of 112`);
  const r = size / 112;
  return similarityTransform(landmarks5, ARCFACE_DST.map(([x, y]) => [x * r, y * r] as const));
}

/** cv2.warpAffine(img, M, (w, h), INTER_LINEAR, BORDER_CONSTANT `border`) in float64; returns HWC RGB floats 0..255. */
export function warpAffine(img: Image, m: Affine, width: number, height: number, border: readonly [number, number, number] = [0, 0, 0]): Float64Array {
  const [a, b, tx, c, d, ty] = m, det = a * d - b * c;
  if (!(Math.abs(det) > 0) || !Number.isFinite(det)) throw new AlignmentError('the transform is singular');
  // Inverse map: output (x, y) ← source (ia x + ib y + itx, ic x + id y + ity).
  const ia = d / det, ib = -b / det, ic = -c / det, id = a / det;
  const itx = -(ia * tx + ib * ty), ity = -(ic * tx + id * ty);
  const ch = img.channels, out = new Float64Array(width * height * 3);
  const px = (x: number, y: number, k: number) => (x < 0 || y < 0 || x >= img.width || y >= img.height ? border[k] : img.data[(y * img.width + x) * ch + (ch === 1 ? 0 : k)]);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
    const u = ia * x + ib * y + itx, v = ic * x + id * y + ity;
    const x0 = Math.floor(u), y0 = Math.floor(v), fx = u - x0, fy = v - y0;
    for (let k = 0; k < 3; k++) {
      out[(y * width + x) * 3 + k] = (1 - fy) * ((1 - fx) * px(x0, y0, k) + fx * px(x0 + 1, y0, k)) + fy * ((1 - fx) * px(x0, y0 + 1, k) + fx * px(x0 + 1, y0 + 1, k));
    }
  }
  return out;
}

/** The aligned face as the IResNet takes it: [3, size, size] planar RGB, 0..255 (rounded to bytes, as cv2's uint8). */
export function arcfaceInput(img: Image, landmarks5: readonly (readonly [number, number])[], size = 112): Float64Array {
  const hwc = warpAffine(img, arcfaceTransform(landmarks5, size), size, size), out = new Float64Array(3 * size * size);
  for (let p = 0; p < size * size; p++) for (let k = 0; k < 3; k++) out[k * size * size + p] = Math.min(255, Math.max(0, Math.round(hwc[p * 3 + k])));
  return out;
}

/** facexlib's FaceRestoreHelper template: the five points of a 512×512 FFHQ-aligned face. */
export const FFHQ_512_TEMPLATE: readonly (readonly [number, number])[] = [
  [192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935], [201.26117, 371.41043], [313.08905, 371.15118],
];
/** facexlib's border colour for the aligned face (BGR (135, 133, 132) there), in RGB. */
export const FFHQ_BORDER: readonly [number, number, number] = [132, 133, 135];

/** The 512² aligned face PuLID parses (facexlib `align_warp_face`), as an RGB image. facexlib fits the transform with
 * `cv2.estimateAffinePartial2D(..., method=LMEDS)`, a robust fit of the same similarity model; with five consistent
 * points it lands near the least-squares fit used here, not bit for bit. */
export function alignFfhq512(img: Image, landmarks5: readonly (readonly [number, number])[]): Image {
  const m = similarityTransform(landmarks5, FFHQ_512_TEMPLATE);
  const hwc = warpAffine(img, m, 512, 512, FFHQ_BORDER);
  return { width: 512, height: 512, channels: 3, data: Uint8Array.from(hwc, (v) => Math.min(255, Math.max(0, Math.round(v)))) };
}
