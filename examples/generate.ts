/** Text → PNG with the frozen diffusion base: a thin command line over `TextToImagePipeline`
 * (models/pipelines/text-to-image.ts). Tiny random weights by default (an abstract image: that is expected);
 * `--weights DIR` loads a diffusers SDXL folder. `--help` lists every option with its range and default.
 *
 *   npx tsx examples/generate.ts "a red fox in the snow" --out fox.png --seed 7 --steps 4 [--guidance 1.2] [--weights DIR] [--backend compiled|reference]
 */
import { TextToImagePipeline } from '../models/pipelines/text-to-image';
import { LIMITS } from '../models/pipelines/options';
import { defineCli, isMain, progress, runCli, type Parsed } from '../tools/cli';
import { writeAll, writeFileAtomic } from '../models/io/atomicWrite';

export const cli = defineCli({
  command: 'npx tsx examples/generate.ts',
  summary: 'Text → PNG with the frozen diffusion base (two CLIP text encoders, the UNet under an Euler schedule, the VAE decoder).\n' +
    'Tiny random weights by default: the image is abstract, that is expected.',
  positionals: { name: 'prompt', help: 'the prompt (several words are joined) [default: a lighthouse on a cliff at dusk]' },
  options: {
    out: { type: 'file', mustExist: false, default: 'out.png', help: 'PNG to write' },
    seed: { type: 'int', ...LIMITS.seed, default: 1, help: 'noise seed' },
    steps: { type: 'int', ...LIMITS.steps, default: 4, help: 'Euler steps' },
    guidance: { type: 'number', ...LIMITS.cfg, default: 1, help: 'classifier-free guidance scale (1: off)' },
    'negative-prompt': { type: 'string', default: '', help: 'the unconditional prompt under guidance' },
    weights: { type: 'dir', help: 'diffusers SDXL folder (unet/, vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/)' },
    backend: { type: 'enum', values: ['compiled', 'reference'], default: 'compiled', help: 'compiled CPU programs or the float64 reference evaluator' },
  },
  examples: ['npx tsx examples/generate.ts "a red fox in the snow" --out fox.png --seed 7 --steps 4', 'npx tsx examples/generate.ts --backend reference --out ref.png'],
});
export type GenerateOptions = Parsed<typeof cli.def.options> & { prompt: string };

export async function generate(o: GenerateOptions): Promise<void> {
  const t0 = performance.now();
  const pipe = await TextToImagePipeline.load({ weights: o.weights, backend: o.backend });
  const bar = progress('generate', o.steps + 2);
  const img = await pipe.generate({ prompt: o.prompt, negativePrompt: o['negative-prompt'], steps: o.steps, cfg: o.guidance, seed: o.seed, onProgress: (d, _t, label) => bar.update(d, label) });
  bar.stop();
  writeFileAtomic(o.out, (fd) => writeAll(fd, img.png));
  console.log(`wrote ${o.out} (${img.width}×${img.height}) for "${o.prompt}", seed ${o.seed}, ${o.steps} steps, ${pipe.runner.name}, ${((performance.now() - t0) / 1e3).toFixed(1)} s`);
}

if (isMain(import.meta.url)) await runCli(cli, (o, rest) => generate({ ...o, prompt: rest.join(' ') || 'a lighthouse on a cliff at dusk' }));
