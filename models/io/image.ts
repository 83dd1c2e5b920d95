/**
 * Image files in and out: PNG (pngjs) and JPEG (jpeg-js) decoding to 8-bit RGB, PNG encoding.
 * Pixel operations (float conversion, resize, crop, padding) live in imageOps.ts and are re-exported here.
 *
 * Decoding notes: the format is detected from the magic bytes, not the file name. PNG alpha is dropped
 * without compositing and 16-bit PNG channels are scaled to 8 bits (pngjs); grey PNGs become R=G=B.
 * JPEG EXIF orientation is ignored (pixels come out in stored order). jpeg-js is a pure-JS decoder whose
 * IDCT and chroma upsampling may differ by a few levels from libjpeg-turbo (tfjs-node, browsers).
 */
import fs from 'node:fs';
import pngjs from 'pngjs';
import jpeg from 'jpeg-js';
import { writeAll, writeFileAtomic } from './atomicWrite';
import type { Image } from './imageOps';

export * from './imageOps';

export class ImageDecodeError extends Error {
  constructor(
    readonly source: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${source}: ${detail}`, options);
    this.name = new.target.name;
  }
}
/** The file ends before its header, its image data or its end marker (PNG IEND, JPEG EOI). */
export class ImageTruncatedError extends ImageDecodeError {}
/** Declared width or height is zero, or the decoded image would exceed `maxPixels`, or is more than the file's
 * bytes can encode (checked from the header, before anything is allocated; a file that also lacks its end marker
 * is reported as truncated instead). */
export class ImageDimensionsError extends ImageDecodeError {}

/** Default bound on decoded pixels: 64 Mpx (8192 × 8192; 192 MB as RGB). */
export const MAX_IMAGE_PIXELS = 2 ** 26;

export interface DecodeOptions {
  /** Refuse images with more pixels than this (default MAX_IMAGE_PIXELS). */
  maxPixels?: number;
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG_MAGIC = [0xff, 0xd8, 0xff];
/** deflate's best case: 258 bytes from about 2 bits, so at most ~1032 output bytes per input byte. */
const DEFLATE_MAX_RATIO = 1032;
/** Sequential Huffman JPEG: every 8×8 block of every component costs ≥ 2 bits (1-bit DC and EOB codes), so one
 * byte of scan data holds at most 4 blocks = 256 pixels of one component. */
const JPEG_SEQUENTIAL_MAX_PX_PER_BYTE = 256;

function startsWith(bytes: Uint8Array, magic: number[]): boolean {
  return bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
}

/** Decodes a PNG or JPEG file (or its bytes) to an 8-bit RGB image, HWC interleaved. The header's size is
 * checked against `maxPixels` and against what the file's bytes can hold before the decoder allocates anything. */
export function decodeImage(pathOrBuffer: string | Uint8Array, opts: DecodeOptions = {}): Image {
  const source = typeof pathOrBuffer === 'string' ? pathOrBuffer : '<buffer>';
  let bytes: Buffer;
  if (typeof pathOrBuffer === 'string') {
    try {
      bytes = fs.readFileSync(pathOrBuffer);
    } catch (err) {
      throw new ImageDecodeError(source, `cannot read file (${(err as NodeJS.ErrnoException).code ?? err})`, { cause: err });
    }
  } else {
    bytes = Buffer.from(pathOrBuffer.buffer, pathOrBuffer.byteOffset, pathOrBuffer.byteLength);
  }
  const maxPixels = opts.maxPixels ?? MAX_IMAGE_PIXELS;
  if (startsWith(bytes, PNG_MAGIC)) {
    checkPngHeader(source, bytes, maxPixels);
    return decodeWith(source, 'PNG', () => pngToRgb(bytes), () => !pngHasEnd(bytes));
  }
  if (startsWith(bytes, JPEG_MAGIC)) {
    const sof = jpegFrame(source, bytes);
    checkDims(source, 'JPEG', sof.width, sof.height, maxPixels);
    if (sof.sequential && sof.width * sof.height > (bytes.length - sof.scanStart) * JPEG_SEQUENTIAL_MAX_PX_PER_BYTE) {
      const Err = jpegHasEnd(bytes) ? ImageDimensionsError : ImageTruncatedError;
      throw new Err(source, `JPEG header declares ${sof.width}×${sof.height}, more than the ${bytes.length - sof.scanStart} bytes after it can encode (truncated or corrupt)`);
    }
    return decodeWith(source, 'JPEG', () => jpegToRgb(bytes, maxPixels), () => !jpegHasEnd(bytes));
  }
  throw new ImageDecodeError(source, bytes.length < 8 ? `${bytes.length} bytes: too short for an image` : 'not a PNG or JPEG image (unrecognised magic bytes)');
}

function checkDims(source: string, format: string, width: number, height: number, maxPixels: number): void {
  if (!(width >= 1 && height >= 1)) throw new ImageDimensionsError(source, `${format} header declares ${width}×${height}: width and height must be at least 1`);
  if (width * height > maxPixels) throw new ImageDimensionsError(source, `${format} header declares ${width}×${height} = ${width * height} pixels, above the limit of ${maxPixels}`);
}

/** PNG: the IHDR chunk (must come first) gives width, height, bit depth and colour type. */
function checkPngHeader(source: string, bytes: Buffer, maxPixels: number): void {
  if (bytes.length < 33) throw new ImageTruncatedError(source, `PNG of ${bytes.length} bytes ends inside its IHDR header (33 bytes)`);
  if (bytes.readUInt32BE(8) !== 13 || bytes.toString('latin1', 12, 16) !== 'IHDR') throw new ImageDecodeError(source, 'corrupt PNG (first chunk is not a 13-byte IHDR)');
  const width = bytes.readUInt32BE(16), height = bytes.readUInt32BE(20), depth = bytes[24]!, colorType = bytes[25]!;
  const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[colorType];
  if (channels === undefined || ![1, 2, 4, 8, 16].includes(depth)) throw new ImageDecodeError(source, `corrupt PNG (colour type ${colorType}, bit depth ${depth})`);
  checkDims(source, 'PNG', width, height, maxPixels);
  const raw = height * (1 + Math.ceil((width * channels * depth) / 8));
  if (raw > bytes.length * DEFLATE_MAX_RATIO) {
    const Err = pngHasEnd(bytes) ? ImageDimensionsError : ImageTruncatedError;
    throw new Err(source, `PNG header declares ${width}×${height} (${raw} bytes of image data), more than ${bytes.length} compressed bytes can hold (truncated or corrupt)`);
  }
}

/** A complete PNG ends with its IEND chunk (12 bytes). */
const pngHasEnd = (b: Buffer): boolean => b.length >= 12 && b.toString('latin1', b.length - 8, b.length - 4) === 'IEND';

/** A complete JPEG has an EOI marker after its scan (trailing bytes after it are tolerated). */
const jpegHasEnd = (b: Buffer): boolean => b.lastIndexOf(Buffer.from([0xff, 0xd9])) > 2;

/** JPEG: walk the marker segments to the first start-of-frame (SOFn) for the size, and to the first scan. */
function jpegFrame(source: string, b: Buffer): { width: number; height: number; sequential: boolean; scanStart: number } {
  let pos = 2;
  let frame: { width: number; height: number; sequential: boolean } | undefined;
  for (;;) {
    while (pos < b.length && b[pos] === 0xff && b[pos + 1] === 0xff) pos++; // fill bytes
    if (pos + 4 > b.length) throw new ImageTruncatedError(source, `JPEG ends inside its headers (at byte ${pos} of ${b.length}${frame ? '' : ', before the frame header'})`);
    if (b[pos] !== 0xff) throw new ImageDecodeError(source, `corrupt JPEG (expected a marker at byte ${pos})`);
    const marker = b[pos + 1]!;
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { pos += 2; continue; }
    const len = b.readUInt16BE(pos + 2);
    if (len < 2) throw new ImageDecodeError(source, `corrupt JPEG (segment length ${len} at byte ${pos})`);
    if (pos + 2 + len > b.length) throw new ImageTruncatedError(source, `JPEG ends inside a header segment (marker 0x${marker.toString(16)} at byte ${pos} needs ${len} bytes)`);
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isSof && !frame) {
      if (len < 8) throw new ImageDecodeError(source, `corrupt JPEG (frame header of ${len} bytes)`);
      frame = { height: b.readUInt16BE(pos + 5), width: b.readUInt16BE(pos + 7), sequential: marker === 0xc0 || marker === 0xc1 };
    }
    if (marker === 0xda) {
      if (!frame) throw new ImageDecodeError(source, 'corrupt JPEG (scan before any frame header)');
      return { ...frame, scanStart: pos + 2 + len };
    }
    if (marker === 0xd9) throw new ImageTruncatedError(source, 'JPEG ends (EOI) before any scan');
    pos += 2 + len;
  }
}

function decodeWith(source: string, format: string, f: () => Image, truncated: () => boolean): Image {
  try {
    return f();
  } catch (err) {
    const Err = truncated() ? ImageTruncatedError : ImageDecodeError;
    throw new Err(source, `${Err === ImageTruncatedError ? 'truncated' : 'corrupt'} ${format} (${(err as Error).message ?? err})`, { cause: err });
  }
}

function pngToRgb(bytes: Buffer): Image {
  const png = pngjs.PNG.sync.read(bytes);
  const { width, height } = png;
  const rgba = png.data;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < data.length; i += 3, j += 4) {
    data[i] = rgba[j]!;
    data[i + 1] = rgba[j + 1]!;
    data[i + 2] = rgba[j + 2]!;
  }
  return { width, height, channels: 3, data };
}

function jpegToRgb(bytes: Buffer, maxPixels: number): Image {
  const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, maxResolutionInMP: maxPixels / 1e6, maxMemoryUsageInMB: Math.ceil((maxPixels * 8) / 2 ** 20) + 64 });
  const data = img.data;
  if (data.length !== img.width * img.height * 3) throw new Error(`decoder returned ${data.length} bytes for ${img.width}x${img.height} RGB`);
  return { width: img.width, height: img.height, channels: 3, data };
}

/** Encodes an 8-bit RGB (3 channels) or RGBA (4 channels) image as PNG. */
export function encodePng(img: Image): Buffer {
  const { width, height, channels, data } = img;
  if (channels !== 3 && channels !== 4) throw new RangeError(`encodePng: ${channels} channels; only 3 (RGB) or 4 (RGBA)`);
  if (data.length !== width * height * channels) {
    throw new RangeError(`encodePng: ${data.length} bytes for ${width}x${height}x${channels}`);
  }
  const png = new pngjs.PNG({ width, height, colorType: channels === 3 ? 2 : 6, inputColorType: channels === 3 ? 2 : 6, inputHasAlpha: channels === 4 });
  png.data = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return pngjs.PNG.sync.write(png, { colorType: channels === 3 ? 2 : 6, inputColorType: channels === 3 ? 2 : 6, inputHasAlpha: channels === 4 });
}

/** Writes `img` as a PNG file atomically (temp file, fsync, rename). */
export function writePng(path: string, img: Image): void {
  const bytes = encodePng(img);
  writeFileAtomic(path, (fd) => writeAll(fd, bytes));
}
