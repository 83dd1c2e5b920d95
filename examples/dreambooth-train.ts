/** DreamBooth on the SDXL-layout base: instance photos with a rare-token prompt, class images the base model draws
 * itself (cached), prior preservation, optional Min-SNR, ε or v targets; a LoRA (default) or the whole UNet.
 * `--help` lists every option with its range and default.
 *
 *   npx tsx examples/dreambooth-train.ts                  # tiny base, the six face-api sample photos, LoRA rank 4
 *   npx tsx examples/dreambooth-train.ts --config micro --steps 20 --mode full --snr-gamma 5 --prediction v_prediction
 *
 * Writes <out>/pytorch_lora_weights.safetensors (LoRA; --format diffusers|kohya|peft) or <out>/unet.safetensors
 * (full), <out>/metrics.json (settings, every step's losses, the instance loss on fixed draws before and after),
 * <out>/sample_before.png and sample_after.png (the instance prompt, same noise; the base vs the trained model) and
 * <out>/class_images.png (the first class images). Class images are cached in runs/.cache/dreambooth-class/. */
import fs from 'node:fs';
import path from 'node:path';
import { writeImagePng } from '../models/io/chwImage';
import { writeJsonAtomic } from '../models/io/atomicWrite';
import { DreamBoothBase, dreamboothConfigs } from '../models/dreambooth/base';
import { classImages, classNoise, instanceImages } from '../models/dreambooth/data';
import { attachDreamBoothLora, DreamBoothTrainer } from '../models/dreambooth/trainer';
import { saveLora } from '../models/lora/formats';
import { saveParams } from '../models/weights';
import { LIMITS } from '../models/pipelines/options';
import { defineCli, isMain, runCli, UsageError, type Parsed } from '../tools/cli';

export const cli = defineCli({
  command: 'npx tsx examples/dreambooth-train.ts',
  summary: 'DreamBooth (prior preservation) on the SDXL-layout base: LoRA or full UNet fine-tune, compiled CPU programs (tiny config and the face-api photos by default).',
  options: {
    config: { type: 'enum', values: ['micro', 'tiny'], default: 'tiny', help: 'model size (the SDXL-size full fine-tune is planned by bench/dreambooth-plan.ts)' },
    mode: { type: 'enum', values: ['lora', 'full'], default: 'lora', help: 'train a LoRA on the attention projections, or every UNet weight' },
    steps: { type: 'int', min: 0, max: 1_000_000, default: 60, help: 'optimizer steps' },
    rank: { type: 'int', min: 1, max: 1024, default: 4, help: 'LoRA rank' },
    alpha: { type: 'number', min: 0, max: 1e6, help: 'LoRA alpha [default: the rank]' },
    lr: { type: 'number', min: 0, max: 1, default: 1e-3, help: 'AdamW learning rate' },
    batch: { type: 'int', min: 1, max: 64, default: 1, help: 'images per half (instance, class) per step' },
    'instance-prompt': { type: 'string', default: 'a photo of sks person', help: 'the rare-token prompt of the instance images' },
    'class-prompt': { type: 'string', default: 'a photo of a person', help: 'the class prompt (class images are drawn from it)' },
    'class-images': { type: 'int', min: 1, max: 10_000, default: 6, help: 'class images drawn by the base model (cached)' },
    'prior-weight': { type: 'number', min: 0, max: 1e3, default: 1, help: 'λ, the prior-preservation loss weight (0: no prior preservation, no class images)' },
    'snr-gamma': { type: 'number', min: 0, max: 1e3, help: 'Min-SNR γ (e.g. 5) [default: off]' },
    prediction: { type: 'enum', values: ['epsilon', 'v_prediction'], default: 'epsilon', help: 'training target' },
    format: { type: 'enum', values: ['diffusers', 'kohya', 'peft'], default: 'diffusers', help: 'LoRA file layout' },
    'sample-steps': { type: 'int', min: 1, max: 100, default: 4, help: 'Euler steps of class images and samples' },
    data: { type: 'dir', help: 'folder of instance images [default: the face-api demo photos]' },
    out: { type: 'dir', mustExist: false, help: 'output folder [default: runs/dreambooth-<config>]' },
    cache: { type: 'dir', mustExist: false, default: 'runs/.cache', help: 'cache folder for class images' },
    seed: { type: 'int', ...LIMITS.seed, default: 0, help: 'seed for data order, noise, class images and the LoRA init' },
  },
  examples: ['npx tsx examples/dreambooth-train.ts', 'npx tsx examples/dreambooth-train.ts --config micro --steps 20 --mode full --snr-gamma 5 --prediction v_prediction'],
  notes: 'Writes <out>/pytorch_lora_weights.safetensors (or unet.safetensors with --mode full), metrics.json, sample_before.png, sample_after.png, class_images.png.',
});

export async function main(a: Parsed<typeof cli.def.options>): Promise<void> {
  const config = dreamboothConfigs[a.config];
  const out = a.out ?? path.join('runs', `dreambooth-${config.name}`);
  const prior = a['prior-weight'] > 0;
  if (a.mode === 'full' && a.format !== 'diffusers') throw new UsageError('--format applies to LoRA files (--mode lora)');
  fs.mkdirSync(out, { recursive: true });
  const t0 = performance.now(), secs = () => +((performance.now() - t0) / 1000).toFixed(1);
  const base = new DreamBoothBase(config, { trainable: a.mode === 'full' });
  console.log(`DreamBooth ${config.name}, ${a.mode}${a.mode === 'lora' ? ` rank ${a.rank}` : ''}: ${a.steps} steps, "${a['instance-prompt']}" vs "${a['class-prompt']}", λ ${a['prior-weight']}, ${a.prediction}${a['snr-gamma'] !== undefined ? `, Min-SNR γ ${a['snr-gamma']}` : ''}`);

  // 1. instance images, class images (the base model's own: the LoRA, attached first so that the one compiled
  // sampler has it, at scale 0), latents
  const inst = instanceImages(base.imageSize, a.data);
  console.log(`  instance images: ${inst.map((i) => i.name).join(', ')}`);
  const adapter = a.mode === 'lora' ? attachDreamBoothLora(base, { rank: a.rank, alpha: a.alpha, seed: a.seed }) : undefined;
  let sampler: Awaited<ReturnType<DreamBoothBase['sampler']>> | undefined;
  const getSampler = async () => {
    if (!sampler) {
      sampler = await base.sampler(a['sample-steps']);
      if (adapter) sampler.setParams(new Map([[adapter.scaleKey, adapter.scaleValues(0)]]));
    }
    return sampler;
  };
  let classes: Float64Array[] = [], classInfo = { generated: 0, dir: '' };
  if (prior) {
    const r = await classImages(base, getSampler, { prompt: a['class-prompt'], count: a['class-images'], steps: a['sample-steps'], seed: a.seed, cacheDir: a.cache, log: console.log });
    classes = r.images; classInfo = r;
    console.log(`  class images: ${r.images.length} in ${r.dir} (${r.generated} drawn now, ${r.images.length - r.generated} from the cache) [${secs()} s]`);
    writeImagePng(path.join(out, 'class_images.png'), hconcat(classes.slice(0, 6), base.imageSize), base.imageSize * Math.min(6, classes.length), base.imageSize);
  }
  const instLatents = await base.encode(inst.map((i) => i.chw)), classLatents = await base.encode(classes);
  console.log(`  VAE-encoded ${instLatents.length + classLatents.length} images [${secs()} s]`);

  // 2. train
  const trainer = new DreamBoothTrainer(base, instLatents, classLatents, {
    mode: a.mode, adapter, rank: a.rank, alpha: a.alpha, lr: a.lr, batch: a.batch, seed: a.seed, prior, priorWeight: a['prior-weight'],
    snrGamma: a['snr-gamma'], prediction: a.prediction, instancePrompt: a['instance-prompt'], classPrompt: a['class-prompt'],
  });
  await trainer.init();
  console.log(`  compiled the training step (${trainer.program.explain().split('\n')[0]}) [${secs()} s]`);
  const before = trainer.evaluate();
  const every = Math.max(1, Math.floor(a.steps / 10));
  for (let i = 0; i < a.steps; i++) {
    const r = trainer.step(i);
    if (!Number.isFinite(r.loss)) throw new Error(`step ${i}: the loss is ${r.loss} (try a lower --lr)`);
    if (i % every === 0 || i === a.steps - 1) console.log(`  step ${i}: loss ${r.loss.toFixed(5)} (instance ${r.instance.toFixed(5)}${r.prior !== undefined ? `, prior ${r.prior.toFixed(5)}` : ''})`);
  }
  const after = trainer.evaluate();
  console.log(`  instance loss on fixed draws: ${before.toFixed(5)} → ${after.toFixed(5)} [${secs()} s]`);

  // 3. files
  const store = trainer.store();
  let weightsFile: string;
  if (a.mode === 'lora') {
    weightsFile = path.join(out, 'pytorch_lora_weights.safetensors');
    saveLora(weightsFile, trainer.adapter!, store, base.unet, { format: a.format, prefix: a.format === 'diffusers' ? 'unet.' : undefined });
  } else {
    weightsFile = path.join(out, 'unet.safetensors');
    saveParams(weightsFile, store, base.registry);
  }
  const smp = await getSampler();
  const noise = classNoise(a.seed + 1, 0, base.latentSize);
  if (adapter) smp.setParams(new Map([[adapter.scaleKey, adapter.scaleValues(0)]]));
  else smp.setParams(base.store);
  writeImagePng(path.join(out, 'sample_before.png'), smp.sample(a['instance-prompt'], noise), base.imageSize);
  smp.setParams(trainer.weights());
  if (adapter) smp.setParams(new Map([[adapter.scaleKey, adapter.scaleValues(1)]]));
  if (!smp.has(trainer.weights().keys().next().value!)) throw new Error('dreambooth: the sampler lacks the trained parameters');
  writeImagePng(path.join(out, 'sample_after.png'), smp.sample(a['instance-prompt'], noise), base.imageSize);
  writeJsonAtomic(path.join(out, 'metrics.json'), {
    config: config.name, mode: a.mode, rank: a.mode === 'lora' ? a.rank : undefined, alpha: a.alpha ?? (a.mode === 'lora' ? a.rank : undefined), lr: a.lr, batch: a.batch,
    instancePrompt: a['instance-prompt'], classPrompt: a['class-prompt'], priorWeight: a['prior-weight'], snrGamma: a['snr-gamma'] ?? null, prediction: a.prediction,
    seed: a.seed, instanceImages: inst.map((i) => i.name), classImages: { count: classes.length, generated: classInfo.generated, dir: classInfo.dir },
    trainableValues: trainer.weights().size ? [...trainer.weights().values()].reduce((n, v) => n + v.length, 0) : 0,
    evalInstanceLoss: { before, after }, steps: trainer.history, weights: path.basename(weightsFile), seconds: secs(),
  }, 1);
  console.log(`wrote ${weightsFile}, metrics.json, sample_before.png, sample_after.png${prior ? ', class_images.png' : ''} in ${out} [${secs()} s]`);
}

/** Images [3, S, S] side by side → one CHW image [3, S, k·S]. */
function hconcat(images: readonly Float64Array[], S: number): Float64Array {
  const k = images.length, W = k * S, out = new Float64Array(3 * S * W);
  images.forEach((img, i) => { for (let c = 0; c < 3; c++) for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) out[c * S * W + y * W + i * S + x] = img[c * S * S + y * S + x]!; });
  return out;
}

if (isMain(import.meta.url)) await runCli(cli, (o) => main(o));
