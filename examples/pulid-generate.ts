/** ID-conditioned generation with PuLID, a thin command line over `PulidPipeline` (models/pulid/pipeline.ts):
 * reference photo(s) → face condition → ID tokens → Lightning sampling with ID attention → VAE decode → PNG.
 * `--help` lists every option with its range and default.
 *
 *   npx tsx examples/pulid-generate.ts --id node_modules/@vladmandic/face-api/demo/sample2.jpg --prompt "a watercolor portrait"
 *   npx tsx examples/pulid-generate.ts --id a.jpg --id b.jpg --prompt "…" --id-scale 0.8 --mode ortho_v2 --ckpt runs/pulid-tiny/last.safetensors */
import fs from 'node:fs';
import path from 'node:path';
import { pulidConfigs } from '../models/pulid/config';
import { PULID_MAX_NUM_ZERO, PULID_MAX_STEPS, PULID_MODES, PULID_ORTHO, PulidPipeline } from '../models/pulid/pipeline';
import { SAMPLERS } from '../models/sched/index';
import { LIMITS } from '../models/pipelines/options';
import { defineCli, isMain, progress, runCli, type Parsed } from '../tools/cli';
import { writeAll, writeFileAtomic } from '../models/io/atomicWrite';

const SAMPLE = 'node_modules/@vladmandic/face-api/demo/sample2.jpg';

export const cli = defineCli({
  command: 'npx tsx examples/pulid-generate.ts',
  summary: 'PuLID: an image of the person in the reference photo(s), from a prompt (tiny random weights unless --weights/--ckpt).',
  options: {
    id: { type: 'file', multiple: true, help: `reference photo (up to 4); several: their ID tokens are concatenated (v1: the extra photos' first 5 unless --id-mix) [default: ${SAMPLE}]` },
    'id-mix': { type: 'flag', help: 'v1 encoder, several photos: use all 10 tokens of each extra photo (the v1 app\'s id_mix)' },
    prompt: { type: 'string', default: 'a portrait photo of a person', help: 'the prompt' },
    'negative-prompt': { type: 'string', default: '', help: 'the unconditional prompt under guidance' },
    'id-scale': { type: 'number', ...LIMITS.idScale, multiple: true, help: 'ID attention scale; several: one image each [default: the config\'s]' },
    mode: { type: 'enum', values: PULID_MODES, help: 'ID attention mode or the v1 app\'s preset: fidelity = ortho v2 + 8 zero tokens, style = ortho v1 + 16 [default: plain; v1.1 configs: ortho v2 + 20]' },
    ortho: { type: 'enum', values: PULID_ORTHO, help: 'override the mode\'s orthogonal projection: off (plain), v1, v2' },
    'num-zero': { type: 'int', min: 0, max: PULID_MAX_NUM_ZERO, help: 'override the mode\'s zero ID tokens (NUM_ZERO): more → more editable, less ID' },
    sampler: { type: 'enum', values: SAMPLERS, help: 'euler (trailing), dpmpp-2m (trailing, v1), dpmpp-2m-karras, dpmpp-sde-karras (v1.1; Brownian-path noise from --seed) [default: euler; v1.1 configs: dpmpp-sde-karras]' },
    config: { type: 'enum', values: Object.keys(pulidConfigs), default: 'tiny', help: 'model size' },
    ckpt: { type: 'file', help: 'ID-adapter checkpoint (from pulid-train)' },
    adapter: { type: 'file', help: 'a published PuLID adapter: pulid_v1.bin (with --config sdxl) or pulid_v1.1.safetensors (--config sdxl-v1.1)' },
    vision: { type: 'file', help: 'vision-tower weights: the EVA02-CLIP-L-14-336 checkpoint (visual.* keys; .pt or .safetensors)' },
    weights: { type: 'dir', help: 'diffusers SDXL folder (unet/, vae/, tokenizer*/, text_encoder*/)' },
    arcface: { type: 'file', help: 'antelopev2 glintr100.onnx: the 512-d ArcFace ID embedding instead of face-api\'s (sdxl config)' },
    parsing: { type: 'file', help: 'facexlib parsing_bisenet.pth: BiSeNet face parsing for the CLIP view instead of the landmark hull' },
    seed: { type: 'int', ...LIMITS.seed, default: 0, help: 'noise seed' },
    steps: { type: 'int', min: 1, max: PULID_MAX_STEPS, help: 'sampler steps [default: the config\'s Lightning steps]' },
    guidance: { type: 'number', ...LIMITS.cfg, help: 'classifier-free guidance scale (1: off); the unconditional branch gets the negative prompt and the ID encoder run on zeros [default: 1; v1.1 configs: 2]' },
    backend: { type: 'enum', values: ['cpu', 'cuda', 'reference'], default: 'cpu', help: 'cpu: the compiled program; cuda: an NVIDIA GPU; reference: the float64 evaluator' },
    out: { type: 'file', mustExist: false, default: 'pulid.png', help: 'PNG to write (with several --id-scale values: one file per scale, _s<scale> appended)' },
  },
  examples: [`npx tsx examples/pulid-generate.ts --id ${SAMPLE} --prompt "a watercolor portrait"`,
    'npx tsx examples/pulid-generate.ts --id a.jpg --id b.jpg --id-scale 1 --id-scale 3 --mode ortho_v2 --ckpt runs/pulid-tiny/last.safetensors',
    'npx tsx examples/pulid-generate.ts --id a.jpg --mode style --num-zero 20 --sampler dpmpp-sde-karras --steps 5 --guidance 2 --negative-prompt "blurry"'],
});

export async function main(o: Parsed<typeof cli.def.options>): Promise<void> {
  const photos = o.id.length ? o.id : [SAMPLE];
  const pipe = await PulidPipeline.load({ config: o.config, weights: o.weights, ckpt: o.ckpt, adapter: o.adapter, vision: o.vision, backend: o.backend, arcface: o.arcface, parsing: o.parsing });
  console.log(`PuLID ${pipe.config.name}: ${photos.length} reference photo(s), prompt "${o.prompt}"`);
  const scales = o['id-scale'].length ? o['id-scale'] : [pipe.config.idScale];
  for (const s of scales) {
    const t0 = performance.now();
    const bar = progress(`id_scale ${s}`, photos.length + 3);
    const img = await pipe.generate({ prompt: o.prompt, negativePrompt: o['negative-prompt'], photos, idScale: s, steps: o.steps, cfg: o.guidance, seed: o.seed, mode: o.mode,
      ortho: o.ortho, numZero: o['num-zero'], idMix: o['id-mix'], sampler: o.sampler,
      onProgress: (d, _t, label) => bar.update(d, label) });
    bar.stop();
    const file = scales.length > 1 ? o.out.replace(/(\.png)?$/, `_s${s}.png`) : o.out;
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    writeFileAtomic(file, (fd) => writeAll(fd, img.png));
    img.faces.forEach((f, i) => console.log(`  ${photos[i]}: face found, descriptor ‖·‖ = ${f.descriptorNorm.toFixed(3)}`));
    console.log(`  wrote ${file} (${img.width}×${img.height}, id_scale ${s}, ${img.mode}, num_zero ${img.numZero}, ${img.sampler} × ${img.steps}, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
}

if (isMain(import.meta.url)) await runCli(cli, (o) => main(o));
