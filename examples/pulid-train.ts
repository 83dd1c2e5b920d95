/** PuLID training, all three stages, as compiled CPU programs.
 *
 *   npx tsx examples/pulid-train.ts                      # tiny default: all 3 stages, embedded face-api photos
 *   npx tsx examples/pulid-train.ts --config micro --steps 20,10,10 --memory-budget 20MB --out runs/micro
 *
 * Flags: --config micro|tiny|sdxl  --steps N | s1,s2,s3  --stage 1|2|3 (run only up to / from that stage: `--stage 2`
 * trains stage 2 only)  --backend cpu|cuda (cuda: nvcc + the driver; needs an NVIDIA GPU)  --memory-budget BYTES|NNMB  --weights DIR (diffusers SDXL folder: unet/, vae/)
 * --data DIR (images + .txt captions)  --out DIR  --resume CKPT  --lr  --accumulation  --seed  --mode plain|ortho|ortho_v2
 * --fusion on|off|lightning-off (off: one kernel per op; lightning-off: only the Lightning program unfused)
 * Each stage is scored on a fixed evaluation set (one draw per face, never trained on) before and after it.
 * Writes <out>/metrics.json, <out>/stage<k>.safetensors (+ last.safetensors), <out>/sample_stage<k>.png (the first
 * face through the compiled 4-step generation with the adapter after stage k; stages 2–3 also write
 * train_image_stage<k>.png, the last training step's Lightning image). */
import path from 'node:path';
import cliProgress from 'cli-progress';
import { compile, parseBytes, type ParamStore } from '../compiler/index';
import { normalFill } from '../compiler/ir/philox';
import { pulidConfigs } from '../models/pulid/config';
import { PulidModel, generateFeeds, generateGraph, type Stage } from '../models/pulid/model';
import { ID_LOSS_PROMPT, type TextConditioner } from '../models/pulid/text';
import { loadDataset, type PulidSample } from '../models/pulid/data';
import { LOSS_KEYS, PulidTrainer, writeImagePng, type StepRecord } from '../models/pulid/trainer';
import { loadSafetensorsInto, materialize } from '../models/weights';
import type { IdAttentionMode } from '../models/pulid/id-attention';
import { prepareRunDir, resumeMetrics, writeMetrics, type TrainingMetrics } from '../models/pulid/runFiles';
import { runCli } from './cli';

function parseArgs(argv: string[]): Record<string, string> {
  const o: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) if (argv[i].startsWith('--')) { const k = argv[i].slice(2); o[k] = argv[i + 1]?.startsWith('--') || argv[i + 1] === undefined ? 'true' : argv[++i]; }
  return o;
}
const bytes = (s: string) => { try { return parseBytes(s); } catch (e) { throw new Error(`--memory-budget: ${(e as Error).message}`); } };
const fmt = (v?: number) => (v === undefined ? '-' : v.toFixed(4));

export async function main(argv = process.argv.slice(2)): Promise<void> {
  const a = parseArgs(argv);
  const backend = a.backend ?? 'cpu';
  if (backend !== 'cpu' && backend !== 'cuda') throw new Error(`--backend ${backend}: cpu or cuda`);
  const config = pulidConfigs[a.config ?? 'tiny'];
  if (!config) throw new Error(`--config: one of ${Object.keys(pulidConfigs).join(', ')}`);
  const defaults: Record<string, [number, number, number]> = { micro: [300, 60, 60], tiny: [300, 60, 60], sdxl: [1, 1, 1] };
  const st = (a.steps ?? '').split(',').filter(Boolean).map(Number);
  const steps: Record<Stage, number> = st.length === 3 ? { 1: st[0], 2: st[1], 3: st[2] } : st.length === 1 ? { 1: st[0], 2: st[0], 3: st[0] } : { 1: defaults[config.name][0], 2: defaults[config.name][1], 3: defaults[config.name][2] };
  const stages: Stage[] = a.stage ? [Number(a.stage) as Stage] : [1, 2, 3];
  const out = a.out ?? path.join('runs', `pulid-${config.name}`);
  for (const f of prepareRunDir(out)) console.log(`  removed ${f} (left by a killed writer)`);
  const seed = Number(a.seed ?? 0);

  console.log(`PuLID ${config.name}: stages ${stages.join(',')}, steps ${stages.map((s) => steps[s]).join(',')}, out ${out}`);
  const { samples, text } = await loadDataset(config, { data: a.data, seed, log: (s) => console.log(`  data: ${s}`) });
  console.log(`  data: ${samples.length} faces (${samples.map((s) => s.name).join(', ')})`);
  const model = new PulidModel(config, { seed });
  let baseWeights: ParamStore | undefined;
  if (a.weights) {
    baseWeights = new Map();
    loadSafetensorsInto(baseWeights, path.join(a.weights, 'unet/diffusion_pytorch_model.safetensors'), model.base, { strict: false, addPrefix: 'unet.' });
    loadSafetensorsInto(baseWeights, path.join(a.weights, 'vae/diffusion_pytorch_model.safetensors'), model.base, { strict: false, addPrefix: 'vae.' });
  }
  const trainer = new PulidTrainer(model, samples, text, {
    steps, seed, lr: Number(a.lr ?? 1e-3), accumulation: Number(a.accumulation ?? 1), memoryBudget: a['memory-budget'] ? bytes(a['memory-budget']) : undefined,
    mode: (a.mode ?? 'plain') as IdAttentionMode, baseWeights, backend, fusion: a.fusion ? { diff: !/^(off|none|lightning-off)$/.test(a.fusion) || a.fusion === 'lightning-off', full: a.fusion === 'on' } : undefined,
  });
  if (a.resume) { trainer.load(a.resume); console.log(`  resumed from ${a.resume}: stage ${trainer.stage}, done ${JSON.stringify(trainer.done)}`); }

  const metricsFile = path.join(out, 'metrics.json');
  let metrics: TrainingMetrics = { config: config.name, steps, programs: {}, history: [], stages: {} };
  if (a.resume) metrics = resumeMetrics(metricsFile, trainer.done, metrics); // keeps history and stage summaries
  const save = () => writeMetrics(metricsFile, metrics);
  let sample: ((w: Map<string, Float32Array>) => ArrayLike<number>) | undefined;

  for (const stage of stages) {
    if (stage < trainer.stage || trainer.done[stage] >= steps[stage]) continue;
    trainer.stage = stage;
    console.log(`\nstage ${stage}: ${stage === 1 ? 'L_diff' : stage === 2 ? 'L_diff + λ_id·L_id' : 'L_diff + λ_id·L_id + L_align'}; compiling the training step…`);
    const c = await trainer.compileStage(stage);
    const mr = c.memory;
    console.log(`  program '${c.kind}': ${c.program.kernels.length} kernels, compiled in ${c.compileSeconds.toFixed(1)} s`);
    console.log(`  memory: naive ${(mr.naiveBytes / 2 ** 20).toFixed(2)} MiB, planned ${(mr.plannedBytes / 2 ** 20).toFixed(2)} MiB, peak live ${(mr.peakLiveBytes / 2 ** 20).toFixed(2)} MiB` +
      ` (weights and optimizer state ${(mr.residentBytes / 2 ** 20).toFixed(2)} MiB; activations naive ${((mr.naiveBytes - mr.residentBytes) / 2 ** 20).toFixed(2)} MiB, planned ${((mr.plannedBytes - mr.residentBytes) / 2 ** 20).toFixed(2)} MiB)` +
      (mr.budget ? `, budget ${(mr.budget / 2 ** 20).toFixed(2)} MiB, ${mr.recomputed.length} values recomputed` : ''));
    metrics.programs[c.kind] = { kernels: c.program.kernels.length, compileSeconds: c.compileSeconds, naiveBytes: mr.naiveBytes, plannedBytes: mr.plannedBytes, peakLiveBytes: mr.peakLiveBytes, residentBytes: mr.residentBytes, budget: mr.budget, recomputed: mr.recomputed.length };
    const evalBefore = await trainer.evaluate(stage);
    const bar = new cliProgress.SingleBar({
      format: 'stage {stage} |{bar}| {value}/{total} | loss {loss} diff {diff} id {id} sem {sem} layout {layout} | {rate} steps/s | ETA {eta_formatted}',
      hideCursor: true, noTTYOutput: true, notTTYSchedule: 5000,
    }, cliProgress.Presets.shades_classic);
    bar.start(steps[stage], trainer.done[stage], { stage, loss: '-', diff: '-', id: '-', sem: '-', layout: '-', rate: '-' });
    const t0 = performance.now(), first = trainer.done[stage];
    let last: Awaited<ReturnType<PulidTrainer['step']>> | undefined;
    while (trainer.done[stage] < steps[stage]) {
      last = await trainer.step();
      const { image: _img, ...rec } = last;
      metrics.history.push(rec);
      const rate = (trainer.done[stage] - first) / ((performance.now() - t0) / 1000);
      bar.update(trainer.done[stage], { loss: fmt(rec.loss), diff: fmt(rec.l_diff), id: fmt(rec.l_id), sem: fmt(rec.l_sem), layout: fmt(rec.l_layout), rate: rate.toFixed(2) });
    }
    bar.stop();
    const hist = metrics.history.filter((h) => h.stage === stage && !h.skipped);
    const mean = (k: keyof StepRecord, xs: StepRecord[]) => { const v = xs.map((h) => h[k] as number).filter((x) => x !== undefined); return v.length ? v.reduce((p, q) => p + q, 0) / v.length : undefined; };
    const n = Math.max(1, Math.floor(hist.length / 3)), head = hist.slice(0, n), tail = hist.slice(-n);
    const summary: Record<string, unknown> = { steps: hist.length, msPerStep: mean('ms', hist.slice(1)) ?? mean('ms', hist) };
    for (const k of LOSS_KEYS) summary[k] = { first: mean(k, head), last: mean(k, tail) };
    const evalAfter = await trainer.evaluate(stage);
    summary.eval = { before: evalBefore, after: evalAfter };
    metrics.stages[String(stage)] = summary;
    console.log(`  stage ${stage} done: ${JSON.stringify(summary)}`);
    console.log(`  fixed evaluation set (${samples.length} draws): ` + Object.keys(evalBefore).map((k) => `${k} ${fmt(evalBefore[k])} → ${fmt(evalAfter[k])}`).join(', '));
    save(); // metrics first: a kill before the checkpoint leaves metrics ahead of it, which resumeMetrics trims
    trainer.save(path.join(out, `stage${stage}.safetensors`));
    trainer.save(path.join(out, 'last.safetensors'));
    if (last?.image) writeImagePng(path.join(out, `train_image_stage${stage}.png`), last.image, model.imageSize);
    sample ??= await sampler(model, samples[0], text, baseWeights, backend as 'cpu' | 'cuda', seed);
    writeImagePng(path.join(out, `sample_stage${stage}.png`), sample(trainer.snapshot()), model.imageSize);
    save();
  }
  save();
  console.log(`\nwrote ${metricsFile}, checkpoints and samples in ${out}`);
}

/** The compiled generation program (one reference face, the ID-loss prompt, fixed noise): the trained adapter's
 * weights in, an image [1, 3, H, W] out. */
async function sampler(model: PulidModel, face: PulidSample, text: TextConditioner, base: ParamStore | undefined, backend: 'cpu' | 'cuda', seed: number) {
  const prog = await compile({ outputs: { image: generateGraph(model, { references: 1 }).image } }, { backend });
  const frozen = materialize(materialize(new Map(base ?? []), model.base), model.trainable);
  const names = new Set(prog.paramNames());
  for (const n of names) { const v = frozen.get(n); if (v) prog.setParam(n, v); }
  const feeds = generateFeeds(model, [face.id], text.encode(ID_LOSS_PROMPT), normalFill(4 * model.latentSize ** 2, seed + 404), model.config.idScale);
  return (w: Map<string, Float32Array>) => {
    for (const [k, v] of w) if (names.has(k)) prog.setParam(k, v);
    return prog.run(feeds).image;
  };
}

if (import.meta.url === `file://${process.argv[1]}`) await runCli(() => main());
