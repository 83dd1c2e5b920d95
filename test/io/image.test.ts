import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import jpeg from 'jpeg-js';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  clipBox,
  crop,
  decodeImage,
  encodePng,
  faceApiNetInput,
  fromFloatCHW,
  ImageDecodeError,
  ImageDimensionsError,
  ImageTruncatedError,
  padToSquare,
  resizeBilinear,
  toFloatCHW,
  toFloatImage,
  writePng,
  type Image,
} from '../../models/io/image';

const demo = path.resolve('node_modules/@vladmandic/face-api/demo');
let dir: string;
beforeAll(async () => {
  tf.env().set('IS_TEST', true);
  await tf.setBackend('cpu');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-image-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Deterministic pseudo-random pixels. */
function randomImage(width: number, height: number, channels = 3, seed = 1): Image {
  let s = seed;
  const data = new Uint8Array(width * height * channels);
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = s >>> 24;
  }
  return { width, height, channels, data };
}

/** Offset of a JPEG's first SOFn marker (height at +5, width at +7). */
function jpegSof(bytes: Buffer): { offset: number } {
  let i = 2;
  while (i < bytes.length) {
    const marker = bytes[i + 1]!;
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) return { offset: i };
    i += 2 + bytes.readUInt16BE(i + 2);
  }
  throw new Error('no SOF');
}

/** Width and height from a JPEG's SOFn segment, read independently of any decoder. */
function jpegSize(bytes: Buffer): [number, number] {
  let i = 2;
  while (i < bytes.length) {
    const marker = bytes[i + 1]!;
    const len = bytes.readUInt16BE(i + 2);
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return [bytes.readUInt16BE(i + 7), bytes.readUInt16BE(i + 5)];
    }
    i += 2 + len;
  }
  throw new Error('no SOF');
}

describe('decode / encode', () => {
  it('decodes the face-api demo JPEGs to RGB with the SOF dimensions', () => {
    for (const name of ['sample1.jpg', 'sample2.jpg']) {
      const file = path.join(demo, name);
      const img = decodeImage(file);
      const [w, h] = jpegSize(fs.readFileSync(file));
      expect([img.width, img.height, img.channels]).toEqual([w, h, 3]);
      expect(img.data.length).toBe(w * h * 3);
      const fromBuffer = decodeImage(fs.readFileSync(file));
      expect(Buffer.from(fromBuffer.data).equals(Buffer.from(img.data))).toBe(true);
    }
  });

  it('PNG round trip is exact (RGB), RGBA drops alpha', () => {
    const img = randomImage(31, 17);
    const back = decodeImage(encodePng(img));
    expect([back.width, back.height, back.channels]).toEqual([31, 17, 3]);
    expect(Buffer.from(back.data).equals(Buffer.from(img.data))).toBe(true);
    const rgba = randomImage(5, 4, 4, 7);
    const rgb = decodeImage(encodePng(rgba));
    expect(Array.from(rgb.data)).toEqual(Array.from(rgba.data).filter((_, i) => i % 4 !== 3));
  });

  it('writePng is atomic and leaves no temp file', () => {
    const p = path.join(dir, 'out.png');
    const img = randomImage(8, 8, 3, 3);
    writePng(p, img);
    expect(Buffer.from(decodeImage(p).data).equals(Buffer.from(img.data))).toBe(true);
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('unreadable or non-image input raises ImageDecodeError naming the path', () => {
    const text = path.join(dir, 'notes.png');
    fs.writeFileSync(text, 'hello, not an image');
    expect(() => decodeImage(text)).toThrow(ImageDecodeError);
    expect(() => decodeImage(text)).toThrow(text);
    const missing = path.join(dir, 'missing.jpg');
    expect(() => decodeImage(missing)).toThrow(missing);
    const corrupt = path.join(dir, 'corrupt.png');
    fs.writeFileSync(corrupt, Buffer.concat([encodePng(randomImage(4, 4)).subarray(0, 40)]));
    expect(() => decodeImage(corrupt)).toThrow(/corrupt\.png: truncated PNG/);
    expect(() => decodeImage(corrupt)).toThrow(ImageTruncatedError);
    const badJpeg = path.join(dir, 'bad.jpg');
    fs.writeFileSync(badJpeg, Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 2, 1, 2, 3]));
    expect(() => decodeImage(badJpeg)).toThrow(ImageDecodeError);
  });

  /** A PNG whose IHDR says `w`×`h` (CRC fixed up), with the real image data of a 4×4 image after it. */
  function pngDeclaring(w: number, h: number): Buffer {
    const b = Buffer.from(encodePng(randomImage(4, 4)));
    b.writeUInt32BE(w, 16);
    b.writeUInt32BE(h, 20);
    b.writeUInt32BE(crc32(b.subarray(12, 29)), 29);
    return b;
  }

  it('declared sizes are bounded before allocation: 16384×16384 in ~100 bytes, 0 wide, above maxPixels', () => {
    const huge = pngDeclaring(16384, 16384);
    expect(huge.length).toBeLessThan(200);
    const t0 = performance.now();
    expect(() => decodeImage(huge)).toThrow(ImageDimensionsError);
    expect(() => decodeImage(huge)).toThrow(/declares 16384×16384 = 268435456 pixels, above the limit of 67108864/);
    expect(() => decodeImage(pngDeclaring(4096, 4096))).toThrow(/declares 4096×4096 \(50335744 bytes of image data\), more than \d+ compressed bytes can hold/);
    expect(() => decodeImage(pngDeclaring(4096, 4096))).toThrow(ImageDimensionsError);
    expect(performance.now() - t0).toBeLessThan(100);
    expect(() => decodeImage(pngDeclaring(0, 4))).toThrow(/declares 0×4: width and height must be at least 1/);
    expect(() => decodeImage(pngDeclaring(4, 0))).toThrow(ImageDimensionsError);
    expect(decodeImage(pngDeclaring(4, 4)).width).toBe(4);
    expect(() => decodeImage(encodePng(randomImage(8, 8)), { maxPixels: 63 })).toThrow(/8×8 = 64 pixels, above the limit of 63/);
    // JPEG: the frame header's size against the limit and against the bytes of a sequential scan.
    const jpg = fs.readFileSync(path.join(demo, 'sample1.jpg'));
    const sof = jpegSof(jpg);
    const big = Buffer.from(jpg);
    big.writeUInt16BE(65535, sof.offset + 5);
    big.writeUInt16BE(65535, sof.offset + 7);
    expect(() => decodeImage(big)).toThrow(/JPEG header declares 65535×65535 = \d+ pixels, above the limit/);
    const zero = Buffer.from(jpg);
    zero.writeUInt16BE(0, sof.offset + 7);
    expect(() => decodeImage(zero)).toThrow(ImageDimensionsError);
  });

  it('every truncation of a PNG and a JPEG is a named error (ImageTruncatedError past the signature)', () => {
    const png = encodePng(randomImage(9, 7));
    const rgba = randomImage(24, 16, 4);
    const jpg = Buffer.from(jpeg.encode({ width: 24, height: 16, data: rgba.data }, 90).data);
    expect(decodeImage(jpg).width).toBe(24);
    for (const [name, b] of [['png', png], ['jpeg', jpg]] as const) {
      for (let n = 0; n < b.length - 2; n++) {
        let err: unknown;
        try { decodeImage(b.subarray(0, n)); } catch (e) { err = e; }
        if (!(err instanceof ImageDecodeError)) throw new Error(`${name} cut at ${n} of ${b.length}: ${err === undefined ? 'decoded silently' : String(err)}`);
        if (n >= 8) expect([name, n, err.name]).toEqual([name, n, 'ImageTruncatedError']);
      }
    }
  });
});

describe('pixel ops', () => {
  it('toFloatCHW is planar and fromFloatCHW inverts it', () => {
    const img = randomImage(3, 2);
    const norm = { scale: 1 / 255, mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] };
    const chw = toFloatCHW(img, norm);
    expect(chw[1 * 6 + 4]).toBeCloseTo((img.data[4 * 3 + 1]! / 255 - 0.4) / 0.25, 6);
    expect(Buffer.from(fromFloatCHW(chw, 3, 2, norm).data).equals(Buffer.from(img.data))).toBe(true);
    expect(Array.from(fromFloatCHW(new Float32Array([-1, 2, NaN]), 3, 1, { scale: 1 / 255 }).data)).toEqual([0, 255, 0]);
  });

  it('crop and clipBox follow face-api (clip at borders, floor)', () => {
    const img = randomImage(6, 5);
    const c = crop(img, 2, 1, 3, 2);
    expect(Array.from(c.data.subarray(0, 3))).toEqual(Array.from(img.data.subarray((1 * 6 + 2) * 3, (1 * 6 + 2) * 3 + 3)));
    expect(() => crop(img, 4, 0, 3, 1)).toThrow(RangeError);
    expect(clipBox({ x: -2.5, y: 1.7, width: 10, height: 2 }, 6, 5)).toEqual({ x: 0, y: 1, width: 6, height: 2 });
  });
});

describe('resizeBilinear and face-api pre-processing vs tfjs-core (cpu)', () => {
  const cases: [number, number, number, number, boolean, boolean][] = [
    [37, 23, 50, 17, false, false],
    [37, 23, 16, 16, false, false],
    [10, 10, 150, 150, false, false],
    [37, 23, 50, 17, true, false],
    [37, 23, 19, 29, false, true],
    [5, 7, 1, 1, true, false],
  ];
  it.each(cases)('%ix%i → %ix%i alignCorners=%s halfPixelCenters=%s', (w, h, nw, nh, alignCorners, halfPixelCenters) => {
    const img = toFloatImage(randomImage(w, h, 3, w * h));
    const want = tf.tidy(() =>
      tf.image.resizeBilinear(tf.tensor3d(img.data, [h, w, 3]), [nh, nw], alignCorners, halfPixelCenters).dataSync() as Float32Array,
    );
    const got = resizeBilinear(img, nw, nh, { alignCorners, halfPixelCenters });
    expect([got.width, got.height]).toEqual([nw, nh]);
    let maxDiff = 0;
    for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(want[i]! - got.data[i]!));
    expect(maxDiff).toBe(0); // within 1e-4 was the bar; the tfjs kernel is mirrored line for line, so it is exact
    const u8 = resizeBilinear(randomImage(w, h, 3, w * h), nw, nh, { alignCorners, halfPixelCenters });
    expect(Array.from(u8.data)).toEqual(Array.from(want, Math.round));
  });

  /** face-api src/ops/padToSquare.ts, verbatim in tfjs ops. */
  function faceApiPadToSquare(t: tf.Tensor4D, isCenterImage: boolean): tf.Tensor4D {
    const [height, width] = t.shape.slice(1) as [number, number];
    if (height === width) return t;
    const dimDiff = Math.abs(height - width);
    const paddingAmount = Math.round(dimDiff * (isCenterImage ? 0.5 : 1));
    const paddingAxis = height > width ? 2 : 1;
    const pad = (n: number) => {
      const shape = t.shape.slice();
      shape[paddingAxis] = n;
      return tf.fill(shape, 0, 'float32');
    };
    const append = pad(paddingAmount);
    const remaining = dimDiff - (append.shape[paddingAxis] as number);
    const prepend = isCenterImage && remaining ? pad(remaining) : null;
    return tf.concat([prepend, t, append].filter((x): x is tf.Tensor => x !== null), paddingAxis) as tf.Tensor4D;
  }

  it.each([
    [9, 4, false],
    [9, 4, true],
    [4, 9, true],
    [6, 9, true],
    [7, 7, true],
  ])('padToSquare %ix%i center=%s matches face-api', (w, h, center) => {
    const img = toFloatImage(randomImage(w, h, 3, 5));
    const want = tf.tidy(() => faceApiPadToSquare(tf.tensor4d(img.data, [1, h, w, 3]), center).dataSync() as Float32Array);
    const got = padToSquare(img, center);
    expect(got.width).toBe(Math.max(w, h));
    expect(Array.from(got.data)).toEqual(Array.from(want));
  });

  it('faceApiNetInput = toBatchTensor(inputSize) on a real photo crop', () => {
    const photo = crop(decodeImage(path.join(demo, 'sample1.jpg')), 10, 20, 90, 61);
    const got = faceApiNetInput(photo, 112);
    const want = tf.tidy(() => {
      const t = faceApiPadToSquare(tf.tensor4d(Float32Array.from(photo.data), [1, 61, 90, 3]), true);
      return tf.image.resizeBilinear(t, [112, 112], false, false).dataSync() as Float32Array;
    });
    let maxDiff = 0;
    for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(want[i]! - got.data[i]!));
    expect(maxDiff).toBe(0); // within 1e-4 was the bar; the tfjs kernel is mirrored line for line, so it is exact
  });
});
