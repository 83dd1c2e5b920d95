/** DreamBooth's two image sets. Instance images: a folder (or the six face-api sample photos), center-cropped to a
 * square and resized to the training resolution. Class images: drawn by the base model itself from the class
 * prompt before training (prior preservation), through Kiln's sampler, and cached as PNGs under
 * `<cacheDir>/dreambooth-class/<key>/` where the key hashes the config, prompt, sampler steps and seed, so a
 * second run (or a longer one) reuses them. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { normalFill } from '../../compiler/ir/philox';
import { crop, decodeImage, encodePng, resizeBilinear, type Image } from '../io/image';
import { chwToImage } from '../io/chwImage';
import { removeStaleTemps, writeFileAtomic, writeAll } from '../io/atomicWrite';
import { listPhotos } from '../pulid/data';
import type { DreamBoothBase, Sampler } from './base';

export interface InstanceImage { name: string; chw: Float64Array }

/** Image → CHW in [-1, 1] at size × size (center square crop, bilinear). */
export function toTrainingCHW(img: Image, size: number): Float64Array {
  const side = Math.min(img.width, img.height);
  const sq = crop(img, Math.floor((img.width - side) / 2), Math.floor((img.height - side) / 2), side, side);
  const r = resizeBilinear(sq, size, size), out = new Float64Array(3 * size * size);
  for (let c = 0; c < 3; c++) for (let p = 0; p < size * size; p++) out[c * size * size + p] = r.data[p * r.channels + c]! / 127.5 - 1;
  return out;
}

export function instanceImages(size: number, dir?: string): InstanceImage[] {
  const photos = listPhotos(dir);
  if (!photos.length) throw new Error(`dreambooth: no images (.jpg, .png) in ${dir}`);
  return photos.map((p) => ({ name: p.name, chw: toTrainingCHW(decodeImage(p.file), size) }));
}

/** The noise of class image i (unit normal, [1, 4, s, s]). */
export const classNoise = (seed: number, i: number, s: number): Float64Array => normalFill(4 * s * s, seed * 7919 + i, 91);

/** `count` class images for `prompt`: read from the cache, the missing ones drawn with `sampler` (LoRA scales must be
 * 0 or no adapter attached) and written there. Returns them as CHW in [-1, 1] and how many were drawn now. */
export async function classImages(base: DreamBoothBase, sampler: () => Promise<Sampler>, o: { prompt: string; count: number; steps: number; seed: number; cacheDir: string; log?: (s: string) => void }): Promise<{ images: Float64Array[]; generated: number; dir: string }> {
  const key = crypto.createHash('sha256').update(JSON.stringify({ unet: base.config.unet, vae: base.config.vae, L: base.config.textLength, prompt: o.prompt, steps: o.steps, seed: o.seed, v: 1 })).digest('hex').slice(0, 16);
  const dir = path.join(o.cacheDir, 'dreambooth-class', key);
  fs.mkdirSync(dir, { recursive: true });
  removeStaleTemps(dir);
  const S = base.imageSize, images: Float64Array[] = [];
  let generated = 0, smp: Sampler | undefined;
  for (let i = 0; i < o.count; i++) {
    const file = path.join(dir, `class_${String(i).padStart(4, '0')}.png`);
    if (fs.existsSync(file)) {
      try { images.push(toTrainingCHW(decodeImage(file), S)); continue; } catch (e) { o.log?.(`class image ${file} unreadable (${(e as Error).message}); drawing it again`); }
    }
    smp ??= await sampler();
    const chw = smp.sample(o.prompt, classNoise(o.seed, i, base.latentSize));
    const png = encodePng(chwToImage(chw, S, S));
    writeFileAtomic(file, (fd) => writeAll(fd, png));
    images.push(toTrainingCHW(decodeImage(file), S));
    generated++;
  }
  return { images, generated, dir };
}
