/** Training data: a folder of images with a caption `.txt` beside each (`photo.jpg` + `photo.txt`), or by default
 * the six face-api sample photos (node_modules/@vladmandic/face-api/demo/sample1..6.jpg). Each photo goes through
 * the face embedder once (largest face, aligned crop, landmarks, descriptor); those results are cached under
 * `<cacheDir>/faces/` (runs/.cache by default, not in git) so later runs skip detection. Per config, the crop is
 * resized to the training resolution, VAE-encoded (frozen), its caption encoded (frozen text encoders), and its ID
 * features computed (frozen CLIP vision tower). */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { evaluate, input } from '../../compiler/index';
import { decodeImage, ImageDecodeError, resizeBilinear, writePng, type Image } from '../io/image';
import { removeStaleTemps, writeJsonAtomic } from '../io/atomicWrite';
import { arr, num, obj, parseJson, SchemaError, str, type Infer, type Schema } from '../io/schema';
import { ParamRegistry } from '../nn/index';
import { VaeEncoder } from '../vae/index';
import { materialize } from '../weights';
import type { PulidConfig } from './config';
import { alignFace, compiledFaceEmbedder, FaceConditioner, type AlignedFace, type IdFeatureValues } from './condition';
import { TextConditioner, type TextConditioning } from './text';

export interface PulidSample {
  name: string;
  caption: string;
  /** The aligned face crop at the training resolution. */
  image: Image;
  latents: Float64Array;
  text: TextConditioning;
  id: IdFeatureValues;
}

export function sampleImageDir(): string {
  const req = createRequire(import.meta.url);
  return path.join(path.dirname(req.resolve('@vladmandic/face-api/package.json')), 'demo');
}

const EMBEDDED_CAPTIONS = ['a photo of a smiling person', 'a portrait photo of a person', 'a close-up photo of a face',
  'a photo of a person outdoors', 'a portrait of a person, soft light', 'a photo of a person looking at the camera'];

/** The photos and captions of a folder, or of the embedded default set. */
export function listPhotos(dir?: string): { name: string; file: string; caption: string }[] {
  if (!dir) {
    const demo = sampleImageDir();
    return [1, 2, 3, 4, 5, 6].map((i) => ({ name: `sample${i}`, file: path.join(demo, `sample${i}.jpg`), caption: EMBEDDED_CAPTIONS[i - 1] }));
  }
  return fs.readdirSync(dir).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort().map((f) => {
    const base = f.replace(/\.[^.]+$/, ''), txt = path.join(dir, `${base}.txt`);
    return { name: base, file: path.join(dir, f), caption: fs.existsSync(txt) ? fs.readFileSync(txt, 'utf8').trim() : 'a photo of a person' };
  });
}

const faceCacheSchema = obj({
  stamp: str,
  landmarks: arr(arr(num(), { min: 2, max: 2 }) as Schema<[number, number]>, { min: 68, max: 68 }),
  descriptor: arr(num(), { min: 128, max: 128 }),
});

/** A cache entry (`<name>.json` + `<name>.png`) for `stamp`, or why it cannot be used. */
export function readFaceCache(png: string, meta: string, stamp: string): AlignedFace | string {
  if (!fs.existsSync(png) || !fs.existsSync(meta)) return 'not cached';
  let m: Infer<typeof faceCacheSchema>;
  try {
    m = parseJson(fs.readFileSync(meta, 'utf8'), faceCacheSchema);
  } catch (err) {
    if (!(err instanceof SchemaError)) throw err;
    return `${meta} is not a face cache entry (${err.message})`;
  }
  if (m.stamp !== stamp) return 'photo changed';
  try {
    return { crop: decodeImage(png), landmarks: m.landmarks, descriptor: m.descriptor };
  } catch (err) {
    if (!(err instanceof ImageDecodeError)) throw err;
    return err.message;
  }
}

/** Aligned faces of the photos, cached as `<cache>/faces/<name>.png` + `.json` (both written atomically; an entry
 * that does not validate — truncated, not JSON, wrong fields, unreadable PNG — is reported and recomputed). */
export async function alignedFaces(photos: { name: string; file: string }[], cacheDir: string, log: (s: string) => void = () => {}): Promise<Map<string, AlignedFace>> {
  const dir = path.join(cacheDir, 'faces');
  fs.mkdirSync(dir, { recursive: true });
  for (const f of removeStaleTemps(dir)) log(`removed ${f} (left by a killed writer)`);
  const out = new Map<string, AlignedFace>();
  let embedder: Awaited<ReturnType<typeof compiledFaceEmbedder>> | undefined;
  for (const p of photos) {
    const png = path.join(dir, `${p.name}.png`), meta = path.join(dir, `${p.name}.json`);
    let st: fs.Stats;
    try {
      st = fs.statSync(p.file);
    } catch (err) {
      throw new ImageDecodeError(p.file, `cannot read file (${(err as NodeJS.ErrnoException).code ?? err})`, { cause: err });
    }
    const stamp = `${st.size}:${st.mtimeMs}`;
    const cached = readFaceCache(png, meta, stamp);
    if (typeof cached !== 'string') { out.set(p.name, cached); continue; }
    if (cached !== 'not cached' && cached !== 'photo changed') log(`face cache: ${cached}; recomputing`);
    if (!embedder) { log('compiling the face networks (once; cached afterwards)'); embedder = await compiledFaceEmbedder(); }
    log(`detecting and aligning ${p.name}`);
    const f = alignFace(embedder, p.file);
    writePng(png, f.crop);
    writeJsonAtomic(meta, { stamp, landmarks: f.landmarks, descriptor: f.descriptor });
    out.set(p.name, f);
  }
  return out;
}

/** Image → CHW in [-1, 1]. */
export function toUnitCHW(img: Image, size: number): Float64Array {
  const r = resizeBilinear(img, size, size), out = new Float64Array(3 * size * size);
  for (let c = 0; c < 3; c++) for (let p = 0; p < size * size; p++) out[c * size * size + p] = r.data[p * r.channels + c] / 127.5 - 1;
  return out;
}

export interface DatasetOptions { data?: string; cacheDir?: string; seed?: number; log?: (s: string) => void; text?: TextConditioner; face?: FaceConditioner }

export async function loadDataset(config: PulidConfig, o: DatasetOptions = {}): Promise<{ samples: PulidSample[]; text: TextConditioner; face: FaceConditioner }> {
  const photos = listPhotos(o.data);
  if (!photos.length) throw new Error(`data: no images in ${o.data}`);
  const faces = await alignedFaces(photos, o.cacheDir ?? 'runs/.cache', o.log);
  const text = o.text ?? new TextConditioner(config, { seed: o.seed });
  const face = o.face ?? new FaceConditioner(config, { seed: o.seed });
  const size = config.unet.sampleSize * 8;
  const reg = new ParamRegistry({ seed: (o.seed ?? 0) + 13 });
  const enc = new VaeEncoder(reg.scope('vae'), config.vae);
  const x = input('image', [1, 3, size, size]);
  const spec = { outputs: { z: enc.encode(x) } };
  const store = materialize(new Map(), reg);
  const samples = photos.map((p) => {
    const f = faces.get(p.name)!;
    const image = resizeBilinear(f.crop, size, size);
    const latents = evaluate(spec, { image: toUnitCHW(image, size) }, store).outputs.z.data;
    return { name: p.name, caption: p.caption, image, latents, text: text.encode(p.caption), id: face.features(f) };
  });
  return { samples, text, face };
}
