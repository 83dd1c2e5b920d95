/** ID-conditioned generation with PuLID: reference photo(s) → face condition → ID tokens → 4-step Lightning sampling
 * with ID attention → VAE decode → PNG.
 *
 *   npx tsx examples/pulid-generate.ts --id node_modules/@vladmandic/face-api/demo/sample2.jpg --prompt "a watercolor portrait"
 *   npx tsx examples/pulid-generate.ts --id a.jpg --id b.jpg --prompt "…" --id-scale 0.8 --mode ortho_v2 --ckpt runs/pulid-tiny/last.safetensors
 *
 * Flags: --id PHOTO (repeatable: tokens concatenated)  --prompt  --id-scale S (default: the config's)  --mode plain|ortho|ortho_v2
 * --config micro|tiny|sdxl (default tiny, as pulid-train)  --ckpt ID-adapter checkpoint (from pulid-train)  --weights DIR (diffusers SDXL)  --seed  --guidance
 * --backend cpu|cuda|reference (cpu: the compiled program, default; cuda: on an NVIDIA GPU; reference: the float64 evaluator)  --out FILE (default pulid.png; with several --id-scale values, one file per scale). */
import path from 'node:path';
import { compile, evaluate, type ParamStore } from '../compiler/index';
import { normalFill } from '../compiler/ir/philox';
import { pulidConfigs } from '../models/pulid/config';
import { PulidModel, generateFeeds, generateGraph } from '../models/pulid/model';
import { alignFace, compiledFaceEmbedder, FaceConditioner } from '../models/pulid/condition';
import { TextConditioner } from '../models/pulid/text';
import { writeImagePng } from '../models/pulid/trainer';
import { readAdapterWeights } from '../models/pulid/checkpoint';
import { loadSafetensorsInto, materialize } from '../models/weights';
import type { IdAttentionMode } from '../models/pulid/id-attention';
import { runCli } from './cli';

function parseArgs(argv: string[]): { o: Record<string, string>; ids: string[]; scales: number[] } {
  const o: Record<string, string> = {}, ids: string[] = [], scales: number[] = [];
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].slice(2), v = argv[++i];
    if (k === 'id') ids.push(v); else if (k === 'id-scale') scales.push(Number(v)); else o[k] = v;
  }
  return { o, ids, scales };
}

export async function main(argv = process.argv.slice(2)): Promise<void> {
  const { o, ids, scales } = parseArgs(argv);
  if (!ids.length) throw new Error('pulid-generate: give at least one --id PHOTO');
  const config = pulidConfigs[o.config ?? 'tiny'];
  const seed = Number(o.seed ?? 0), guidance = Number(o.guidance ?? 1), mode = (o.mode ?? 'plain') as IdAttentionMode;
  const model = new PulidModel(config, { seed: 0 });
  const store: ParamStore = new Map();
  if (o.weights) {
    loadSafetensorsInto(store, path.join(o.weights, 'unet/diffusion_pytorch_model.safetensors'), model.base, { strict: false, addPrefix: 'unet.' });
    loadSafetensorsInto(store, path.join(o.weights, 'vae/diffusion_pytorch_model.safetensors'), model.base, { strict: false, addPrefix: 'vae.' });
  }
  if (o.ckpt) for (const [k, v] of readAdapterWeights(o.ckpt, config, model.trainable.params)) store.set(k, v);
  materialize(materialize(store, model.base), model.trainable);

  console.log(`PuLID ${config.name}: ${ids.length} reference photo(s), mode ${mode}, prompt "${o.prompt ?? ''}"`);
  const embedder = await compiledFaceEmbedder();
  const face = new FaceConditioner(config, { seed: 0 }), text = new TextConditioner(config, { weights: o.weights, seed: 0 });
  const refs = ids.map((file) => {
    const f = face.features(alignFace(embedder, file));
    console.log(`  ${file}: face found, descriptor ‖·‖ = ${Math.hypot(...f.descriptor).toFixed(3)}`);
    return f;
  });
  const px = model.imageSize;
  const feeds = generateFeeds(model, refs, text.encode(o.prompt ?? 'a portrait photo of a person'), normalFill(4 * model.latentSize ** 2, seed), config.idScale);
  if (guidance !== 1) { const u = text.encode(''); Object.assign(feeds, { uncond_context: u.context, uncond_pooled: u.pooled }); }
  const outputs = generateGraph(model, { references: ids.length, mode, guidance });
  let run: (f: Record<string, ArrayLike<number>>) => ArrayLike<number>;
  const backend = o.backend ?? 'cpu';
  if (!['cpu', 'cuda', 'reference'].includes(backend)) throw new Error(`--backend ${backend}: cpu, cuda or reference`);
  if (backend !== 'reference') {
    const prog = await compile({ outputs: { image: outputs.image } }, { backend: backend as 'cpu' | 'cuda' });
    for (const n of prog.paramNames()) { const v = store.get(n); if (v) prog.setParam(n, v); }
    run = (f) => prog.run(f).image;
  } else run = (f) => evaluate({ outputs: { image: outputs.image } }, f, store).outputs.image.data;
  const list = scales.length ? scales : [config.idScale];
  for (const s of list) {
    const t0 = performance.now();
    const img = run({ ...feeds, id_scale: [s] });
    const file = list.length > 1 ? (o.out ?? 'pulid.png').replace(/\.png$/, `_s${s}.png`) : o.out ?? 'pulid.png';
    writeImagePng(file, img, px);
    console.log(`  wrote ${file} (${px}×${px}, id_scale ${s}, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runCli(() => main());
