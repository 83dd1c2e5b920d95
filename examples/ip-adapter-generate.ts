/** Text + image (or face) prompt → PNG with an IP-Adapter (models/ip-adapter) on the text-to-image pipeline. Tiny
 * random weights by default (an abstract image: that is expected); `--weights DIR` loads a diffusers SDXL folder and
 * `--adapter FILE` an official IP-Adapter checkpoint (a checkpoint for another UNet width is refused by name).
 *
 *   npx tsx examples/ip-adapter-generate.ts "a portrait, oil painting" --kind faceid --face photo.jpg --out ip.png
 *
 * The face embedding is an input, not a dependency: by default Kiln's own face networks (face-api's recognizer,
 * 128-d) embed the largest face of `--face`, which suits adapters trained by Kiln on that space; the official FaceID
 * checkpoints expect insightface buffalo_l's 512-d normed_embedding, which `--face-embeds FILE.json` supplies
 * (docs/ip-adapter.md lists the space each checkpoint expects). plain / plus / faceid-plus take a CLIP-vision input:
 * `--image` through a tiny random CLIP vision tower (the real ViT-H / bigG need their weights, see the docs).
 * A FaceID / FaceID-Plus checkpoint's LoRA (rank 128 on every attention projection) is applied to the UNet by
 * loadIpAdapter, scaled by `--lora-scale` (the reference's lora_scale, default 1).
 */
import fs from 'node:fs';
import { evaluate, input, type Tensor } from '../compiler/index';
import { ClipVisionModel, tinyClipVisionConfig } from '../models/clip/index';
import { FaceEmbedPipeline } from '../models/face/pipeline';
import { decodeImage, resizeBilinear, toFloatCHW } from '../models/io/image';
import {
  IP_ADAPTER_KINDS, IpAdapter, instantStyle, loadIpAdapter, penultimateHidden, sdxlIpAdapterConfigs, type IpAdapterConfig, type IpAdapterInputs, type IpAdapterKind,
} from '../models/ip-adapter/index';
import { LIMITS } from '../models/pipelines/options';
import { TextToImagePipeline } from '../models/pipelines/text-to-image';
import { materialize } from '../models/weights';
import { defineCli, isMain, progress, runCli, UsageError, type Parsed } from '../tools/cli';
import { writeAll, writeFileAtomic } from '../models/io/atomicWrite';

const SAMPLE = 'node_modules/@vladmandic/face-api/demo/sample1.jpg';
const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073], CLIP_STD = [0.26862954, 0.26130258, 0.27577711];

export const cli = defineCli({
  command: 'npx tsx examples/ip-adapter-generate.ts',
  summary: 'Text + image/face prompt → PNG with an IP-Adapter (plain, plus, faceid, faceid-plus, portrait) on the SDXL pipeline.\n' +
    'Tiny random weights by default: the image is abstract, that is expected.',
  positionals: { name: 'prompt', help: 'the prompt (several words are joined) [default: a portrait photo, studio light]' },
  options: {
    kind: { type: 'enum', values: IP_ADAPTER_KINDS, default: 'faceid', help: 'which IP-Adapter' },
    face: { type: 'file', default: SAMPLE, help: 'photo whose faces Kiln\'s face networks embed (faceid, faceid-plus, portrait)' },
    'face-embeds': { type: 'file', help: 'JSON: one embedding (number[]) or, for portrait, several (number[][]), e.g. insightface buffalo_l normed_embedding for the official checkpoints' },
    image: { type: 'file', default: SAMPLE, help: 'image prompt for the CLIP vision input (plain, plus, faceid-plus)' },
    adapter: { type: 'file', help: 'IP-Adapter checkpoint (.safetensors or .bin) for the SDXL UNet of --weights' },
    weights: { type: 'dir', help: 'diffusers SDXL folder (see examples/generate.ts)' },
    scale: { type: 'number', min: 0, max: 4, default: 1, help: 'IP scale' },
    'lora-scale': { type: 'number', min: 0, max: 4, default: 1, help: 'FaceID / FaceID-Plus: the scale of the checkpoint\'s LoRA (the reference\'s lora_scale; 0 turns it off)' },
    style: { type: 'enum', values: ['all', 'style', 'style+layout'], default: 'all', help: 'which blocks take the image prompt (InstantStyle)' },
    's-scale': { type: 'number', min: 0, max: 4, default: 1, help: 'faceid-plus V2 shortcut scale' },
    v1: { type: 'flag', help: 'faceid-plus V1 (no shortcut; V2 checkpoints use it)' },
    out: { type: 'file', mustExist: false, default: 'ip-adapter.png', help: 'PNG to write' },
    seed: { type: 'int', ...LIMITS.seed, default: 1, help: 'noise seed' },
    steps: { type: 'int', ...LIMITS.steps, default: 4, help: 'Euler steps' },
    guidance: { type: 'number', ...LIMITS.cfg, default: 1, help: 'classifier-free guidance (> 1 adds the unconditional image tokens)' },
    backend: { type: 'enum', values: ['compiled', 'reference'], default: 'compiled', help: 'compiled CPU programs or the float64 reference evaluator' },
  },
  examples: ['npx tsx examples/ip-adapter-generate.ts --kind faceid --face photo.jpg', 'npx tsx examples/ip-adapter-generate.ts "a cat" --kind plus --image cat.png --style style'],
});
export type IpGenerateOptions = Parsed<typeof cli.def.options> & { prompt: string };

const l2 = (v: readonly number[]) => { const n = Math.hypot(...v) || 1; return v.map((x) => x / n); };

/** Face embeddings: from the JSON file, or Kiln's face networks on the photo (largest faces first, L2-normalized). */
async function faceEmbeddings(o: IpGenerateOptions, count: number): Promise<number[][]> {
  if (o['face-embeds']) {
    const v = JSON.parse(fs.readFileSync(o['face-embeds'], 'utf8')) as number[] | number[][];
    const list = Array.isArray(v[0]) ? (v as number[][]) : [v as number[]];
    if (!list.length || list.some((e) => !Array.isArray(e) || e.some((x) => typeof x !== 'number'))) throw new UsageError(`--face-embeds ${o['face-embeds']}: expected a JSON number[] or number[][]`);
    return list;
  }
  process.env.OMP_WAIT_POLICY ??= 'passive';
  const pipe = await FaceEmbedPipeline.load({ backend: o.backend === 'reference' ? 'reference' : 'cpu', maxFaces: count });
  const { faces } = pipe.embed(o.face);
  if (!faces.length) throw new UsageError(`--face ${o.face}: no face found`);
  return faces.slice(0, count).map((f) => l2(f.descriptor));
}

export async function ipAdapterGenerate(o: IpGenerateOptions): Promise<{ tokens: number; width: number }> {
  const t0 = performance.now();
  if (o.adapter && !o.weights) throw new UsageError('--adapter needs --weights (an official checkpoint fits the SDXL UNet only)');
  const pipe = await TextToImagePipeline.load({ weights: o.weights, backend: o.backend });
  const kind = o.kind as IpAdapterKind;
  const needFace = kind === 'faceid' || kind === 'faceid-plus' || kind === 'portrait', needClip = kind === 'plain' || kind === 'plus' || kind === 'faceid-plus';
  const faces = needFace ? await faceEmbeddings(o, kind === 'portrait' ? 5 : 1) : [];
  const clip = new ClipVisionModel(tinyClipVisionConfig, { seed: 31 });
  const preset = { plain: sdxlIpAdapterConfigs.plain, plus: sdxlIpAdapterConfigs.plus, faceid: sdxlIpAdapterConfigs.faceid, 'faceid-plus': sdxlIpAdapterConfigs.faceidPlus, portrait: sdxlIpAdapterConfigs.portrait }[kind];
  const c = clip.config;
  const cfg: IpAdapterConfig = o.adapter ? preset : {
    ...preset, imageEmbedDim: c.projectionDim, faceDim: faces[0]?.length, clipHiddenDim: c.hiddenSize, headDim: 8, faces: faces.length || undefined, tokens: kind === 'plus' ? 4 : preset.tokens,
    resampler: kind === 'plus' ? { dim: 16, depth: 2, headDim: 8, heads: 2, queries: 4, embeddingDim: c.hiddenSize, ffMult: 4 } : undefined,
  };
  const adapter = new IpAdapter(cfg, pipe.unet, { seed: 21 });
  if (o.adapter) {
    // FaceID / FaceID-Plus: the checkpoint's LoRA goes onto the UNet's attention here, before the step graph is built
    const r = loadIpAdapter(pipe.store, o.adapter, adapter, { lora: { scale: o['lora-scale'] } });
    if (r.loraAdapter) console.log(`FaceID LoRA: ${r.loraAdapter.layers.size} attention projections, rank ${r.lora[0].rank}, lora_scale ${o['lora-scale']}`);
  } else materialize(pipe.store, adapter.registry);
  materialize(pipe.store, clip.registry);

  // the image tokens (and, under guidance, the unconditional ones), computed once
  const feeds: Record<string, ArrayLike<number>> = {};
  const ii: IpAdapterInputs = { shortcut: !o.v1, sScale: o['s-scale'] };
  if (needFace) {
    const F = faces[0].length;
    if (faces.some((f) => f.length !== F)) throw new UsageError('face embeddings of different sizes');
    ii.faceEmbeds = input('face', kind === 'portrait' ? [1, faces.length, F] : [1, F]);
    feeds.face = faces.flat();
  }
  let pixels: Tensor | undefined;
  if (needClip) {
    const S = c.imageSize, img = resizeBilinear(decodeImage(o.image), S, S);
    feeds.pixels = toFloatCHW(img, { scale: 1 / 255, mean: CLIP_MEAN, std: CLIP_STD });
    pixels = input('pixels', [1, 3, S, S]);
    if (kind === 'plain') ii.imageEmbeds = clip.forward(pixels).imageEmbeds;
    else ii.clipHidden = penultimateHidden(clip, pixels);
  }
  const outputs: Record<string, Tensor> = { cond: adapter.imageTokens(ii) };
  if (o.guidance !== 1) outputs.uncond = adapter.unconditionalTokens(1, { clip, shortcut: !o.v1, sScale: o['s-scale'] });
  const tok = evaluate({ outputs }, feeds, pipe.store).outputs;
  const T = tok.cond.shape[1], C = tok.cond.shape[2];
  const scale = o.style === 'all' ? o.scale : instantStyle(o.style as 'style' | 'style+layout', o.scale);

  const bar = progress('ip-adapter', o.steps + 2);
  const img = await pipe.generate({
    prompt: o.prompt, steps: o.steps, cfg: o.guidance, seed: o.seed, onProgress: (d, _t, label) => bar.update(d, label),
    hooks: {
      key: `ip:${kind}:${T}:${o.style}:${o.scale}${adapter.lora ? `:lora${o['lora-scale']}` : ''}`,
      build: (branch) => ({ crossAttention: adapter.hook(input(branch === 'cond' ? 'ip_tokens' : 'ip_tokens_u', [1, T, C]), { scale }) }),
      feeds: { ip_tokens: tok.cond.data, ...(tok.uncond ? { ip_tokens_u: tok.uncond.data } : {}) },
    },
  });
  bar.stop();
  writeFileAtomic(o.out, (fd) => writeAll(fd, img.png));
  console.log(`wrote ${o.out} (${img.width}×${img.height}) for "${o.prompt}" with IP-Adapter ${kind} (${T} tokens${needFace ? `, ${faces.length} face embedding(s) of ${faces[0].length}` : ''}), seed ${o.seed}, ${o.steps} steps, ${pipe.runner.name}, ${((performance.now() - t0) / 1e3).toFixed(1)} s`);
  return { tokens: T, width: img.width };
}

if (isMain(import.meta.url)) await runCli(cli, async (o, rest) => { await ipAdapterGenerate({ ...o, prompt: rest.join(' ') || 'a portrait photo, studio light' }); });
