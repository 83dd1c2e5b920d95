/** The pipeline API on the micro PuLID config and the tiny text-to-image base: PNG bytes and typed arrays out,
 * compiled programs kept across calls, bad values and a photo without a face rejected before any sampling. */
import { describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import { decodeImage } from '../../models/io/image';
import { chwToImage } from '../../models/io/chwImage';
import { PulidPipeline } from '../../models/pulid/pipeline';
import { NoFaceError } from '../../models/pulid/condition';
import { TextToImagePipeline } from '../../models/pipelines/text-to-image';
import { PipelineOptionError } from '../../models/pipelines/options';
import { FaceEmbedPipeline } from '../../models/face/pipeline';

const photo = (i: number) => `node_modules/@vladmandic/face-api/demo/sample${i}.jpg`;
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i])); return m; };

describe('PulidPipeline (micro)', () => {
  it('generates PNG + CHW, reuses its compiled program across calls, and rejects bad input before sampling', async () => {
    const pipe = await PulidPipeline.load({ config: 'micro' });
    const progress: string[] = [];
    const a = await pipe.generate({ prompt: 'a watercolor portrait', photos: [photo(2)], idScale: 0, mode: 'fidelity', onProgress: (_d, _t, l) => progress.push(l) });
    expect(pipe.compiledPrograms).toBe(1);
    expect(progress).toEqual(['face 1/1', 'text encoders', 'compiling (cpu)', 'sampling 4 steps (euler) + decode', 'done']);
    expect([a.width, a.height, a.chw.length, a.mode, a.numZero, a.sampler, a.steps]).toEqual([64, 64, 3 * 64 * 64, 'ortho_v2', 8, 'euler', 4]);
    expect(a.faces).toHaveLength(1);
    expect(a.faces[0].descriptorNorm).toBeGreaterThan(0.5);
    // The PNG is the CHW output quantized.
    expect(Array.from(decodeImage(a.png).data)).toEqual(Array.from(chwToImage(a.chw, 64).data));

    // Same program (id_scale is an input): nothing new compiled; a large ID scale changes the image.
    const b = await pipe.generate({ prompt: 'a watercolor portrait', photos: [new Uint8Array(fs.readFileSync(photo(2)))], idScale: 200, ortho: 'v2', numZero: 8 });
    expect(pipe.compiledPrograms).toBe(1);
    expect(maxDiff(a.chw, b.chw)).toBeGreaterThan(0.05);
    const again = await pipe.generate({ prompt: 'a watercolor portrait', photos: [photo(2)], idScale: 0, mode: 'fidelity' });
    expect(maxDiff(a.chw, again.chw)).toBe(0);

    for (const [opts, option] of [[{ steps: 0 }, 'steps'], [{ idScale: Number.NaN }, 'idScale'], [{ seed: -1 }, 'seed'], [{ width: 128 }, 'width'], [{ cfg: 1e9 }, 'cfg'], [{ photos: [] }, 'photos'],
      [{ numZero: 81 }, 'numZero'], [{ numZero: 1.5 }, 'numZero'], [{ ortho: 'v3' }, 'ortho'], [{ sampler: 'ddim' }, 'sampler'], [{ idMix: 'yes' }, 'idMix'], [{ mode: 'x' }, 'mode']] as const) {
      const e = await pipe.generate({ prompt: 'x', photos: [photo(2)], ...(opts as object) }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(PipelineOptionError);
      expect((e as PipelineOptionError).option).toBe(option);
    }
    const blank = { width: 160, height: 160, channels: 3 as const, data: new Uint8Array(160 * 160 * 3).fill(128) };
    await expect(pipe.generate({ prompt: 'x', photos: [blank] })).rejects.toThrow(NoFaceError);
    expect(pipe.compiledPrograms).toBe(1);
  }, 600_000);
});

describe('PulidPipeline options (no sampling)', () => {
  it('the app presets set ortho and NUM_ZERO; explicit ortho / numZero override them', async () => {
    const pipe = await PulidPipeline.load({ config: 'micro' });
    const r = (o: object) => { const x = pipe.resolve({ photos: [photo(2)], ...o }); return [x.attention, x.numZero, x.idMix, x.sampler]; };
    expect(r({})).toEqual(['plain', 0, false, 'euler']);
    expect(r({ mode: 'fidelity' })).toEqual(['ortho_v2', 8, false, 'euler']);
    expect(r({ mode: 'style' })).toEqual(['ortho', 16, false, 'euler']);
    expect(r({ mode: 'style', ortho: 'off', numZero: 20, idMix: true, sampler: 'dpmpp-sde-karras' })).toEqual(['plain', 20, true, 'dpmpp-sde-karras']);
    expect(r({ mode: 'ortho_v2', numZero: 0 })).toEqual(['ortho_v2', 0, false, 'euler']);
    expect(pipe.compiledPrograms).toBe(0);
  });
});

describe('TextToImagePipeline (tiny) and FaceEmbedPipeline', () => {
  it('text to image: three programs prepared once; the seed decides the image', async () => {
    const pipe = await TextToImagePipeline.load();
    const a = await pipe.generate({ prompt: 'a red fox', seed: 7 });
    expect(pipe.preparedPrograms).toBe(3);
    const b = await pipe.generate({ prompt: 'a red fox', seed: 7 }), c = await pipe.generate({ prompt: 'a red fox', seed: 8, steps: 2 });
    expect(pipe.preparedPrograms).toBe(3);
    expect([a.width, a.height]).toEqual([128, 128]);
    expect(maxDiff(a.chw, b.chw)).toBe(0);
    expect(maxDiff(a.chw, c.chw)).toBeGreaterThan(0.01);
    expect(decodeImage(a.png).width).toBe(128);
    await expect(pipe.generate({ prompt: 'x', steps: 1.5 })).rejects.toThrow(PipelineOptionError);
    await expect(pipe.generate({ prompt: 'x', width: 100, height: 100 })).rejects.toThrow(/multiple of 8/);
  }, 600_000);

  it('face embedder: one face with a 128-d descriptor from a path or from bytes', async () => {
    const pipe = await FaceEmbedPipeline.load();
    const fromPath = pipe.embed(photo(1)).faces;
    expect(fromPath.length).toBeGreaterThanOrEqual(1);
    expect(fromPath[0].descriptor).toHaveLength(128);
    const fromBytes = pipe.embed(new Uint8Array(fs.readFileSync(photo(1)))).faces;
    expect(maxDiff(fromPath[0].descriptor, fromBytes[0].descriptor)).toBe(0);
  }, 600_000);
});
