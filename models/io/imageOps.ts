/**
 * Pixel operations on HWC-interleaved images, written to match face-api's tensor pre-processing exactly
 * (face-api src/ops/padToSquare.ts, src/dom/NetInput.ts toBatchTensor, Box.clipAtImageBorders), so a
 * Kiln face network sees the same input floats face-api's does.
 *
 * Images hold 8-bit (Uint8Array) or float (Float32Array) samples. Operations on a Float32Array image are
 * exact float32 mirrors of the tfjs-cpu kernels; on a Uint8Array image results are rounded to nearest
 * (halves up) — for face-api parity convert with toFloatImage first, as face-api casts to float32 first.
 */
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export type PixelArray = Uint8Array | Float32Array;

export interface Image<D extends PixelArray = Uint8Array> {
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  /** Row-major, channels interleaved: data[(y * width + x) * channels + c]. */
  readonly data: D;
}

function alloc<D extends PixelArray>(like: D, n: number): D {
  return (like instanceof Float32Array ? new Float32Array(n) : new Uint8Array(n)) as D;
}

function checkImage(img: Image<PixelArray>, op: string): void {
  const { width, height, channels, data } = img;
  if (data.length !== width * height * channels) {
    throw new RangeError(`${op}: ${data.length} samples for ${width}x${height}x${channels}`);
  }
}

/** Same pixels as float32 samples (0..255 for a decoded image): face-api's tf.cast(img, 'float32'). */
export function toFloatImage(img: Image<PixelArray>): Image<Float32Array> {
  return { width: img.width, height: img.height, channels: img.channels, data: Float32Array.from(img.data) };
}

export interface Normalization {
  /** Multiplies each sample first (1/255 maps 8-bit samples to [0, 1]). */
  readonly scale: number;
  /** Per channel, subtracted after scaling (in scaled units). */
  readonly mean?: readonly number[];
  /** Per channel, divides after subtracting the mean. */
  readonly std?: readonly number[];
}

/** Planar float tensor [C, H, W] with out = (sample × scale − mean[c]) / std[c]. */
export function toFloatCHW(img: Image<PixelArray>, norm: Normalization): Float32Array {
  checkImage(img, 'toFloatCHW');
  const { width, height, channels: C, data } = img;
  const plane = width * height;
  const out = new Float32Array(C * plane);
  for (let c = 0; c < C; c++) {
    const mean = norm.mean?.[c] ?? 0;
    const std = norm.std?.[c] ?? 1;
    for (let p = 0; p < plane; p++) out[c * plane + p] = (data[p * C + c]! * norm.scale - mean) / std;
  }
  return out;
}

/** Inverse of toFloatCHW back to 8-bit: sample = round((v × std[c] + mean[c]) / scale), clamped to 0..255. */
export function fromFloatCHW(chw: Float32Array, width: number, height: number, norm: Normalization): Image {
  const plane = width * height;
  const C = chw.length / plane;
  if (!Number.isInteger(C) || C < 1) throw new RangeError(`fromFloatCHW: ${chw.length} values is not a whole number of ${width}x${height} planes`);
  const data = new Uint8Array(chw.length);
  for (let c = 0; c < C; c++) {
    const mean = norm.mean?.[c] ?? 0;
    const std = norm.std?.[c] ?? 1;
    for (let p = 0; p < plane; p++) {
      const v = M.round((chw[c * plane + p]! * std + mean) / norm.scale);
      data[p * C + c] = v > 255 ? 255 : v >= 0 ? v : 0; // NaN → 0
    }
  }
  return { width, height, channels: C, data };
}

export interface ResizeOptions {
  /** tf.image.resizeBilinear's alignCorners. Default false (face-api). */
  readonly alignCorners?: boolean;
  /** tf.image.resizeBilinear's halfPixelCenters. Default false (face-api). */
  readonly halfPixelCenters?: boolean;
}

/**
 * Bilinear resize with tf.image.resizeBilinear's conventions, by default alignCorners = false and
 * halfPixelCenters = false as face-api calls it: output pixel (r, c) samples the source at
 * (r × H/newH, c × W/newW) — top-left corners aligned, no half-pixel shift, the last row/column clamped —
 * and blends the four neighbours as top = tl + (tr − tl)·fx, bottom likewise, out = top + (bottom − top)·fy.
 * This is the tfjs cpu kernel line for line, so float32 input gives bit-identical output.
 * With halfPixelCenters = true it is the PyTorch/OpenCV convention (align_corners=False, no antialias).
 */
export function resizeBilinear<D extends PixelArray>(img: Image<D>, newWidth: number, newHeight: number, opts: ResizeOptions = {}): Image<D> {
  checkImage(img, 'resizeBilinear');
  const { width: W, height: H, channels: C, data: src } = img;
  if (!(Number.isInteger(newWidth) && Number.isInteger(newHeight) && newWidth > 0 && newHeight > 0)) {
    throw new RangeError(`resizeBilinear: bad output size ${newWidth}x${newHeight}`);
  }
  const align = opts.alignCorners ?? false;
  const half = opts.halfPixelCenters ?? false;
  const rowRatio = (align && newHeight > 1 ? H - 1 : H) / (align && newHeight > 1 ? newHeight - 1 : newHeight);
  const colRatio = (align && newWidth > 1 ? W - 1 : W) / (align && newWidth > 1 ? newWidth - 1 : newWidth);
  const round = !(src instanceof Float32Array);
  const out = alloc(src, newWidth * newHeight * C);
  let o = 0;
  for (let r = 0; r < newHeight; r++) {
    const fr = half ? rowRatio * (r + 0.5) - 0.5 : rowRatio * r;
    const r0 = M.max(0, M.floor(fr));
    const dy = fr - r0;
    const r1 = M.min(H - 1, M.ceil(fr));
    for (let c = 0; c < newWidth; c++) {
      const fc = half ? colRatio * (c + 0.5) - 0.5 : colRatio * c;
      const c0 = M.max(0, M.floor(fc));
      const dx = fc - c0;
      const c1 = M.min(W - 1, M.ceil(fc));
      const tl = (r0 * W + c0) * C;
      const tr = (r0 * W + c1) * C;
      const bl = (r1 * W + c0) * C;
      const br = (r1 * W + c1) * C;
      for (let d = 0; d < C; d++) {
        const top = src[tl + d]! + (src[tr + d]! - src[tl + d]!) * dx;
        const bottom = src[bl + d]! + (src[br + d]! - src[bl + d]!) * dx;
        const v = top + (bottom - top) * dy;
        out[o++] = round ? M.round(M.fround(v)) : v; // as if resized in float32, then rounded
      }
    }
  }
  return { width: newWidth, height: newHeight, channels: C, data: out };
}

/** The rectangle [x, x + width) × [y, y + height); it must lie inside the image (see clipBox). */
export function crop<D extends PixelArray>(img: Image<D>, x: number, y: number, width: number, height: number): Image<D> {
  checkImage(img, 'crop');
  const ints = [x, y, width, height].every(Number.isInteger);
  if (!ints || x < 0 || y < 0 || width < 1 || height < 1 || x + width > img.width || y + height > img.height) {
    throw new RangeError(`crop: box (${x}, ${y}, ${width}x${height}) is not inside the ${img.width}x${img.height} image`);
  }
  const C = img.channels;
  const out = alloc(img.data, width * height * C);
  for (let r = 0; r < height; r++) {
    const start = ((y + r) * img.width + x) * C;
    out.set(img.data.subarray(start, start + width * C), r * width * C);
  }
  return { width, height, channels: C, data: out };
}

export interface Box {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

/** face-api's Box.clipAtImageBorders: clamp the top-left to 0, the far edges to the image, then floor all four. */
export function clipBox(box: Box, imageWidth: number, imageHeight: number): Box {
  const x = M.max(box.x, 0);
  const y = M.max(box.y, 0);
  const width = M.min(box.x + box.width - x, imageWidth - x);
  const height = M.min(box.y + box.height - y, imageHeight - y);
  return { x: M.floor(x), y: M.floor(y), width: M.floor(width), height: M.floor(height) };
}

/**
 * face-api's padToSquare: zero-pad the shorter side to make width === height. Not centred (the default),
 * all |H − W| rows/columns go after the image (bottom or right). Centred, round(|H − W| / 2) go after and
 * the rest before — so an odd difference puts the extra one after.
 */
export function padToSquare<D extends PixelArray>(img: Image<D>, isCenterImage = false): Image<D> {
  checkImage(img, 'padToSquare');
  const { width: W, height: H, channels: C } = img;
  if (W === H) return img;
  const diff = M.abs(H - W);
  const after = M.round(diff * (isCenterImage ? 0.5 : 1));
  const before = diff - after;
  const S = M.max(W, H);
  const out = alloc(img.data, S * S * C);
  const [dx, dy] = H > W ? [before, 0] : [0, before];
  for (let r = 0; r < H; r++) {
    out.set(img.data.subarray(r * W * C, (r + 1) * W * C), ((r + dy) * S + dx) * C);
  }
  return { width: S, height: S, channels: C, data: out };
}

/**
 * The float input face-api's NetInput.toBatchTensor builds from an image tensor: cast to float32,
 * padToSquare (centred by default, as toBatchTensor's isCenterInputs = true), then resizeBilinear to
 * inputSize × inputSize (alignCorners = false, halfPixelCenters = false) unless already that size.
 * (face-api's canvas path draws with the browser's scaler instead; Kiln mirrors the tensor path.)
 */
export function faceApiNetInput(img: Image<PixelArray>, inputSize: number, isCenterInputs = true): Image<Float32Array> {
  const square = padToSquare(toFloatImage(img), isCenterInputs);
  return square.width === inputSize ? square : resizeBilinear(square, inputSize, inputSize);
}
