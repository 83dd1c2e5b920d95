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
    this.name = 'ImageDecodeError';
  }
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG_MAGIC = [0xff, 0xd8, 0xff];

function startsWith(bytes: Uint8Array, magic: number[]): boolean {
  return bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
}

/** Decodes a PNG or JPEG file (or its bytes) to an 8-bit RGB image, HWC interleaved. */
export function decodeImage(pathOrBuffer: string | Uint8Array): Image {
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
  if (startsWith(bytes, PNG_MAGIC)) return decodeWith(source, 'PNG', () => pngToRgb(bytes));
  if (startsWith(bytes, JPEG_MAGIC)) return decodeWith(source, 'JPEG', () => jpegToRgb(bytes));
  throw new ImageDecodeError(source, 'not a PNG or JPEG image (unrecognised magic bytes)');
}

function decodeWith(source: string, format: string, f: () => Image): Image {
  try {
    return f();
  } catch (err) {
    throw new ImageDecodeError(source, `corrupt ${format} (${(err as Error).message ?? err})`, { cause: err });
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

function jpegToRgb(bytes: Buffer): Image {
  const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false });
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
