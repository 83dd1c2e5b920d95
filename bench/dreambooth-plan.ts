/**
 * The DreamBooth training step through the compiler without running it: schedule (fusion + lowering) and memory
 * plan, optionally under a budget (rematerialization), for any config — the SDXL full fine-tune (2.57 B trainable
 * values, AdamW state for each) is the planner's hardest case and does not fit this machine.
 *
 *   npx tsx bench/dreambooth-plan.ts --config sdxl --mode full --budget 80GiB [--json bench/results/x.json]
 *
 * Prints kernels (fused and unfused), naive / planned / resident / budget bytes, what was recomputed, and times.
 */
import { writeJsonAtomic } from '../models/io/atomicWrite';
import { lowerProgram } from '../compiler/compile';
import { residentBytes } from '../compiler/schedule/memory';
import { DreamBoothBase, dreamboothConfigs } from '../models/dreambooth/base';
import { trainStepGraph } from '../models/dreambooth/trainer';
import { attachLora, ATTENTION_TARGETS } from '../models/nn/lora';
import { defineCli, isMain, runCli, type Parsed } from '../tools/cli';

export const cli = defineCli({
  command: 'npx tsx bench/dreambooth-plan.ts',
  summary: 'The DreamBooth training step (LoRA or full UNet) through the compiler without running it: schedule and memory plan, optionally under a budget.',
  options: {
    config: { type: 'enum', values: ['micro', 'tiny', 'sdxl'], default: 'sdxl', help: 'model size' },
    mode: { type: 'enum', values: ['full', 'lora'], default: 'full', help: 'every UNet weight trainable, or a LoRA on the attention projections' },
    rank: { type: 'int', min: 1, max: 1024, default: 4, help: 'LoRA rank (--mode lora)' },
    batch: { type: 'int', min: 1, max: 64, default: 1, help: 'images per half (instance, class)' },
    budget: { type: 'bytes', min: 1, help: 'arena budget (e.g. 80GiB); values are recomputed to fit' },
    json: { type: 'file', mustExist: false, help: 'also write the result as JSON to this file' },
  },
  examples: ['npx tsx bench/dreambooth-plan.ts --config sdxl --mode full --budget 80GiB', 'npx tsx bench/dreambooth-plan.ts --config tiny --mode lora'],
});

export async function main(o: Parsed<typeof cli.def.options>): Promise<void> {
  const config = dreamboothConfigs[o.config];
  const GiB = (b: number) => +(b / 2 ** 30).toFixed(3);
  let t = performance.now();
  const lap = () => { const n = performance.now(), s = (n - t) / 1000; t = n; return +s.toFixed(1); };
  const base = new DreamBoothBase(config, { trainable: o.mode === 'full', values: false });
  const adapter = o.mode === 'lora' ? attachLora(base.unet, { targets: ATTENTION_TARGETS, rank: o.rank, stripPrefix: 'unet.' }) : undefined;
  const g = trainStepGraph(base, adapter, { mode: o.mode, batch: o.batch, instancePrompt: '', classPrompt: '' });
  const trainable = g.params.reduce((n, p) => n + p.size, 0);
  const graphSeconds = lap();
  console.error(`${config.name} ${o.mode}: ${trainable.toLocaleString('en')} trainable values; graph built in ${graphSeconds} s; scheduling and planning…`);
  const low = lowerProgram({ outputs: g.outputs, updates: g.updates }, { budget: o.budget });
  const p = low.plan;
  const result = {
    config: config.name, mode: o.mode, rank: o.mode === 'lora' ? o.rank : undefined, batch: 2 * o.batch, latent: config.unet.sampleSize, trainableValues: trainable,
    date: new Date().toISOString().slice(0, 10), kernels: low.kernels.length, unfusedKernels: low.unfusedKernels,
    naiveGiB: GiB(p.naiveBytes), plannedGiB: GiB(p.arenaBytes), peakLiveGiB: GiB(p.peakLiveBytes), residentGiB: GiB(residentBytes(p)),
    budgetGiB: o.budget === undefined ? null : GiB(o.budget), recomputed: p.recomputed.length, recomputedGiB: GiB(p.recomputed.reduce((s, r) => s + r.bytes, 0)),
    seconds: { graph: graphSeconds, scheduleAndPlan: lap() },
  };
  console.log(JSON.stringify(result, null, 1));
  if (o.json) writeJsonAtomic(o.json, result, 1);
}

if (isMain(import.meta.url)) await runCli(cli, (o) => main(o));
