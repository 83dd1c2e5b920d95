/** PuLID training, all three stages, as compiled CPU programs. `--help` lists every option with its range and default.
 *
 *   npx tsx examples/pulid-train.ts                      # tiny default: all 3 stages, embedded face-api photos
 *   npx tsx examples/pulid-train.ts --config micro --steps 20,10,10 --budget 20MB --out runs/micro
 *   npx tsx examples/pulid-train.ts --config micro --steps 20,0,0 --precision bf16 --out runs/micro-bf16
 *
 * Each stage is scored on a fixed evaluation set (one draw per face, never trained on) before and after it.
 * Writes <out>/metrics.json, <out>/stage<k>.safetensors (+ last.safetensors), <out>/sample_stage<k>.png (the first
 * face through the compiled 4-step generation with the adapter after stage k; stages 2–3 also write
 * train_image_stage<k>.png, the last training step's Lightning image), loss curves per stage and for the whole run
 * as PNG and SVG (loss_stage<k>, loss_all), a sample grid per stage (samples_stage<k>.png: prompts × faces) and
 * summary.md linking them (models/pulid/report.ts).
 *
 * Data parallel: `mpirun -np N npx tsx examples/pulid-train.ts …` (or srun) trains on N processes with --batch per
 * rank (models/pulid/data-parallel.ts); rank 0 alone prints, writes metrics, samples and checkpoints. A rank that
 * fails ends the job (docs/data-parallel.md). */
import fs from 'node:fs';
import path from 'node:path';
import { compile, type ParamStore } from '../compiler/index';
import { normalFill } from '../compiler/ir/philox';
import { pulidConfigs } from '../models/pulid/config';
import { PulidModel, generateFeeds, generateGraph, type Stage } from '../models/pulid/model';
import { ID_LOSS_PROMPT, STYLE_PROMPTS, type TextConditioner } from '../models/pulid/text';
import { prepareRunDir, resumeMetrics, writeMetrics, type TrainingMetrics } from '../models/pulid/runFiles';
import { writeRunLossPlot, writeRunSummary, writeSampleGrid, writeStageLossPlot, type RunMetrics } from '../models/pulid/report';
import { loadDataset, type PulidSample } from '../models/pulid/data';
import { LOSS_KEYS, PulidTrainer, type StepRecord } from '../models/pulid/trainer';
import { writeImagePng } from '../models/io/chwImage';
import { loadSafetensorsInto, materialize } from '../models/weights';
import { LIMITS } from '../models/pipelines/options';
import { defineCli, isMain, progress, runCli, type Parsed } from '../tools/cli';
import { DataParallelPulidTrainer } from '../models/pulid/data-parallel';
import { communicator, failJob } from '../runtime/collective';

export const cli = defineCli({
  command: 'npx tsx examples/pulid-train.ts',
  summary: 'PuLID training, all three stages, as compiled programs (tiny config and the embedded face-api photos by default).',
  options: {
    config: { type: 'enum', values: Object.keys(pulidConfigs), default: 'tiny', help: 'model size' },
    steps: { type: 'ints', min: 0, max: 1_000_000, lengths: [1, 3], help: 'steps per stage: N (all stages) or s1,s2,s3 [default: 300,60,60; sdxl 1,1,1]' },
    stage: { type: 'int', min: 1, max: 3, help: 'train only this stage [default: 1, 2 and 3]' },
    backend: { type: 'enum', values: ['cpu', 'cuda'], default: 'cpu', help: 'cuda: nvcc + the driver; needs an NVIDIA GPU' },
    budget: { type: 'bytes', min: 1, help: 'arena budget (e.g. 20MB, 20GiB): values, templates included, are recomputed to fit' },
    'memory-budget': { type: 'bytes', min: 1, help: 'the same as --budget (its earlier name)' },
    precision: { type: 'enum', values: ['f32', 'bf16', 'f16'], default: 'f32', help: 'bf16/f16: activations and frozen weights in that type, f32 masters and AdamW state; f16 adds loss scaling (f32 is the fastest on CPU)' },
    weights: { type: 'dir', help: 'diffusers SDXL folder (unet/, vae/)' },
    data: { type: 'dir', help: 'folder of images with .txt captions [default: the face-api demo photos]' },
    out: { type: 'dir', mustExist: false, help: 'output folder [default: runs/pulid-<config>]' },
    resume: { type: 'file', help: 'checkpoint to resume from' },
    lr: { type: 'number', min: 0, max: 1, default: 1e-3, help: 'AdamW learning rate' },
    accumulation: { type: 'int', min: 1, max: 1024, default: 1, help: 'gradient accumulation micro-steps' },
    batch: { type: 'int', min: 1, max: 1024, default: 1, help: 'samples per micro-step (per rank under mpirun: the global batch is ranks × batch)' },
    seed: { type: 'int', ...LIMITS.seed, default: 0, help: 'seed for data order, noise and initial weights' },
    mode: { type: 'enum', values: ['plain', 'ortho', 'ortho_v2'], default: 'plain', help: 'ID attention mode' },
    fusion: { type: 'enum', values: ['on', 'off', 'lightning-off'], help: 'off: one kernel per op; lightning-off: only the Lightning program unfused' },
    'grid-prompts': { type: 'int', min: 0, max: 16, default: 2, help: 'rows of the sample grid written after each stage (0: none)' },
    'grid-faces': { type: 'int', min: 1, max: 16, default: 3, help: 'columns of the sample grid: the first training faces' },
  },
  examples: ['npx tsx examples/pulid-train.ts', 'npx tsx examples/pulid-train.ts --config micro --steps 20,10,10 --budget 20MB --out runs/micro'],
  notes: 'Writes <out>/metrics.json, stage<k>.safetensors, last.safetensors, sample_stage<k>.png, train_image_stage<k>.png (stages 2-3),\n' +
    'loss_stage<k>.png/.svg and loss_all.png/.svg (loss curves with the evaluation points), samples_stage<k>.png (prompt × photo grid),\n' +
    'and summary.md, one page linking them.',
});
const fmt = (v?: number) => (v === undefined ? '-' : v.toFixed(4));

export async function main(a: Parsed<typeof cli.def.options>): Promise<void> {
  const backend = a.backend;
  const config = pulidConfigs[a.config];
  const defaults: Record<string, [number, number, number]> = { micro: [300, 60, 60], tiny: [300, 60, 60], sdxl: [1, 1, 1] };
  const st = a.steps ?? [];
  const steps: Record<Stage, number> = st.length === 3 ? { 1: st[0], 2: st[1], 3: st[2] } : st.length === 1 ? { 1: st[0], 2: st[0], 3: st[0] } : { 1: defaults[config.name][0], 2: defaults[config.name][1], 3: defaults[config.name][2] };
  const stages: Stage[] = a.stage ? [a.stage as Stage] : [1, 2, 3];
  const out = a.out ?? path.join('runs', `pulid-${config.name}`);
  const comm = communicator(), rank0 = comm.rank === 0;
  if (!rank0) console.log = () => undefined;  // rank 0 speaks for the job
  if (comm.size > 1) console.log(`data parallel: ${comm.size} ranks (${comm.backend}), batch ${a.batch} per rank, global batch ${comm.size * a.batch}`);
  if (rank0) for (const f of prepareRunDir(out)) console.log(`  removed ${f} (left by a killed writer)`);
  const seed = a.seed;

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
  const trainer = new (comm.size > 1 ? DataParallelPulidTrainer : PulidTrainer)(model, samples, text, {
    steps, seed, lr: a.lr, accumulation: a.accumulation, batch: a.batch, memoryBudget: a.budget ?? a['memory-budget'],
    mode: a.mode, baseWeights, backend, precision: a.precision, fusion: a.fusion ? { diff: !/^(off|none|lightning-off)$/.test(a.fusion) || a.fusion === 'lightning-off', full: a.fusion === 'on' } : undefined,
  });
  if (a.resume) { trainer.load(a.resume); console.log(`  resumed from ${a.resume}: stage ${trainer.stage}, done ${JSON.stringify(trainer.done)}`); }

  const metricsFile = path.join(out, 'metrics.json');
  let metrics = { config: config.name, steps, programs: {}, history: [], stages: {} } as TrainingMetrics & RunMetrics;
  if (a.resume) metrics = resumeMetrics(metricsFile, trainer.done, metrics) as TrainingMetrics & RunMetrics; // keeps history and stage summaries
  const save = () => { if (rank0) writeMetrics(metricsFile, metrics); };
  let sample: Awaited<ReturnType<typeof sampler>> | undefined;
  // The sample grid: prompts (rows) × the first training faces (columns), the same noise in every cell.
  const gridPrompts = [ID_LOSS_PROMPT, ...STYLE_PROMPTS.filter((p) => p !== ID_LOSS_PROMPT)].slice(0, a['grid-prompts']);
  const gridFaces = samples.slice(0, a['grid-faces']);

  for (const stage of stages) {
    if (stage < trainer.stage || trainer.done[stage] >= steps[stage]) continue;
    trainer.stage = stage;
    console.log(`\nstage ${stage}: ${stage === 1 ? 'L_diff' : stage === 2 ? 'L_diff + λ_id·L_id' : 'L_diff + λ_id·L_id + L_align'}; compiling the training step…`);
    const c = await trainer.compileStage(stage);
    const mr = c.memory;
    console.log(`  program '${c.kind}': ${c.program.kernels.length} kernels, compiled in ${c.compileSeconds.toFixed(1)} s`);
    console.log(`  memory: naive ${(mr.naiveBytes / 2 ** 20).toFixed(2)} MiB, planned ${(mr.plannedBytes / 2 ** 20).toFixed(2)} MiB, peak live ${(mr.peakLiveBytes / 2 ** 20).toFixed(2)} MiB` +
      ` (weights and optimizer state ${(mr.residentBytes / 2 ** 20).toFixed(2)} MiB; activations naive ${((mr.naiveBytes - mr.residentBytes) / 2 ** 20).toFixed(2)} MiB, planned ${((mr.plannedBytes - mr.residentBytes) / 2 ** 20).toFixed(2)} MiB)` +
      (mr.budget ? `, budget ${(mr.budget / 2 ** 20).toFixed(2)} MiB, ${mr.recomputed.length} values recomputed (+${(mr.flops.ratio * 100).toFixed(1)}% FLOPs)` : ''));
    metrics.programs[c.kind] = { kernels: c.program.kernels.length, compileSeconds: c.compileSeconds, naiveBytes: mr.naiveBytes, plannedBytes: mr.plannedBytes, peakLiveBytes: mr.peakLiveBytes, residentBytes: mr.residentBytes, budget: mr.budget, recomputed: mr.recomputed.length, flops: mr.flops, byKind: mr.byKind };
    const evalBefore = await trainer.evaluate(stage);
    const bar = !rank0 ? { update: () => undefined, stop: () => undefined } : progress(`stage ${stage}`, steps[stage], {
      format: `stage ${stage} |{bar}| {value}/{total} | loss {loss} diff {diff} id {id} sem {sem} layout {layout} | {rate} steps/s | ETA {eta_formatted}`,
      start: trainer.done[stage], payload: { loss: '-', diff: '-', id: '-', sem: '-', layout: '-', rate: '-' },
    });
    const t0 = performance.now(), first = trainer.done[stage];
    let last: Awaited<ReturnType<PulidTrainer['step']>> | undefined;
    while (trainer.done[stage] < steps[stage]) {
      last = await trainer.step();
      const { image: _img, ...rec } = last;
      metrics.history.push(rec);
      const rate = (trainer.done[stage] - first) / ((performance.now() - t0) / 1000);
      bar.update(trainer.done[stage], undefined, { loss: fmt(rec.loss), diff: fmt(rec.l_diff), id: fmt(rec.l_id), sem: fmt(rec.l_sem), layout: fmt(rec.l_layout), rate: rate.toFixed(2) });
    }
    bar.stop();
    const hist = metrics.history.filter((h) => h.stage === stage && !h.skipped);
    const mean = (k: keyof StepRecord, xs: StepRecord[]) => { const v = xs.map((h) => h[k] as number).filter((x) => x !== undefined); return v.length ? v.reduce((p, q) => p + q, 0) / v.length : undefined; };
    const n = Math.max(1, Math.floor(hist.length / 3)), head = hist.slice(0, n), tail = hist.slice(-n);
    const summary: Record<string, unknown> = { steps: hist.length, msPerStep: mean('ms', hist.slice(1)) ?? mean('ms', hist) };
    for (const k of LOSS_KEYS) summary[k] = { first: mean(k, head), last: mean(k, tail) };
    const evalAfter = await trainer.evaluate(stage);
    summary.eval = { before: evalBefore, after: evalAfter };
    metrics.stages[String(stage)] = summary as RunMetrics['stages'][string];
    console.log(`  stage ${stage} done: ${JSON.stringify(summary)}`);
    console.log(`  fixed evaluation set (${samples.length} draws): ` + Object.keys(evalBefore).map((k) => `${k} ${fmt(evalBefore[k])} → ${fmt(evalAfter[k])}`).join(', '));
    if (!rank0) continue;  // the rest writes files
    save(); // metrics first: a kill before the checkpoint leaves metrics ahead of it, which resumeMetrics trims
    trainer.save(path.join(out, `stage${stage}.safetensors`));
    trainer.save(path.join(out, 'last.safetensors'));
    if (last?.image) writeImagePng(path.join(out, `train_image_stage${stage}.png`), last.image, model.imageSize);
    sample ??= await sampler(model, text, baseWeights, backend, seed);
    const weights = trainer.snapshot();
    writeImagePng(path.join(out, `sample_stage${stage}.png`), sample(weights, samples[0], ID_LOSS_PROMPT), model.imageSize);
    if (gridPrompts.length && gridFaces.length) {
      const cells = gridPrompts.map((p) => gridFaces.map((face) => ({ chw: sample!(weights, face, p), size: model.imageSize })));
      writeSampleGrid(path.join(out, `samples_stage${stage}.png`), gridPrompts, gridFaces.map((g) => g.name), cells);
    }
    save();
    const plots = [writeStageLossPlot(out, metrics, stage), writeRunLossPlot(out, metrics)].filter(Boolean);
    console.log(`  wrote ${plots.map((p) => `${p}.png/.svg`).join(', ')}${gridPrompts.length ? `, samples_stage${stage}.png (${gridPrompts.length} prompts × ${gridFaces.length} faces)` : ''}, ${path.basename(writeRunSummary(out, metrics))}`);
  }
  save();
  console.log(`\nwrote ${metricsFile}, checkpoints and samples in ${out}`);
}

/** The compiled generation program (one reference face, fixed noise): the trained adapter's weights, a face and a
 * prompt in, an image [1, 3, H, W] out. */
async function sampler(model: PulidModel, text: TextConditioner, base: ParamStore | undefined, backend: 'cpu' | 'cuda', seed: number) {
  const prog = await compile({ outputs: { image: generateGraph(model, { references: 1 }).image } }, { backend });
  const frozen = materialize(materialize(new Map(base ?? []), model.base), model.trainable);
  prog.loadParams(frozen, { strict: false });
  const names = new Set(prog.paramNames());
  const noise = normalFill(4 * model.latentSize ** 2, seed + 404);
  let loaded: Map<string, Float32Array> | undefined;
  return (w: Map<string, Float32Array>, face: PulidSample, prompt: string) => {
    if (loaded !== w) { for (const [k, v] of w) if (names.has(k)) prog.setParam(k, v); loaded = w; }
    return prog.run(generateFeeds(model, [face.id], text.encode(prompt), noise, model.config.idScale)).image;
  };
}

// Under mpirun a failure ends every rank (failJob), so none waits for the failed one.
if (isMain(import.meta.url)) await runCli(cli, (o) => main(o).catch((e) => (communicator().size > 1 ? failJob(e) : Promise.reject(e))));
