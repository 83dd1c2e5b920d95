/** Model outputs as pictures: an image tensor [1, 3, H, W] (CHW planes, values in [-1, 1], the VAE decoder's
 * range) → 8-bit RGB, a PNG buffer, or a PNG file (written atomically, its folder created). */
import fs from 'node:fs';
import path from 'node:path';
import { encodePng, writePng } from './image';
import type { Image } from './imageOps';

/** [-1, 1] CHW planes → interleaved 8-bit RGB (clamped, rounded). */
export function chwToImage(chw: ArrayLike<number>, width: number, height = width): Image {
  const n = width * height;
  if (chw.length < 3 * n) throw new RangeError(`chwToImage: ${chw.length} values for 3×${height}×${width}`);
  const rgb = new Uint8Array(n * 3);
  for (let c = 0; c < 3; c++) for (let p = 0; p < n; p++) rgb[p * 3 + c] = Math.round(Math.min(1, Math.max(0, (chw[c * n + p] + 1) / 2)) * 255);
  return { width, height, channels: 3, data: rgb };
}

/** [-1, 1] CHW planes → PNG bytes. */
export const encodeImagePng = (chw: ArrayLike<number>, width: number, height = width): Buffer => encodePng(chwToImage(chw, width, height));

/** [-1, 1] CHW planes → a PNG file. */
export function writeImagePng(file: string, chw: ArrayLike<number>, width: number, height = width): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  writePng(file, chwToImage(chw, width, height));
}
