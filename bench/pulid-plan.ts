/**
 * The PuLID training step through the compiler without running it: schedule (fusion + lowering), memory plan
 * (optionally under a budget, with rematerialization) and the C++ source, for any config, e.g. the SDXL-size step
 * that does not fit this machine.
 *
 *   npx tsx bench/pulid-plan.ts --config sdxl --stage 2 --budget 64GiB [--resolution 768] [--precision bf16] [--floor]
 *     [--compile cpp,cuda] [--json bench/results/x.json]
 *
 * --compile also builds the generated program: `cpp` with g++ (a shared object, not loaded), `cuda` with nvcc
 * for sm_90a (a cubin; no GPU needed). Both go to the kernel cache.
 * --stage 1: the L_diff program; 2 (or 3): the Lightning program of stages 2 and 3. Prints kernels (fused and
 * unfused), distinct kernel functions in the generated C++, naive / planned / resident / budget bytes and times,
 * bytes by kind (frozen weights, trainable parameters, optimizer state; activations, gradients and workspace at
 * the peak), FLOPs without recompute and the recompute added, and with --floor the floor (one more planning run).
 * --checkpoint: which checkpoint segments the step is built with (models/pulid/losses.ts LightningCheckpoint):
 * `layer` / `step` candidates the planner recomputes only as far as --budget needs, `layer-always` /
 * `step-always` recomputed anyway, `none`; `auto` (default) = layer with a budget, none without. The JSON gives
 * the segments chosen (`segments`) and the plan with every candidate recomputed (`allSegments`).
 * --precision is passed to the compiler (its precision pass); where the compiler made no 16-bit buffers of it,
 * the 16-bit figures are estimated instead by planning the same schedule with 2-byte frozen weights, activations
 * and gradients (trainable parameters and optimizer state stay f32), and the JSON says so (`precision.source`).
 */
import { writeJsonAtomic } from '../models/io/atomicWrite';
import { lowerProgram } from '../compiler/compile';
import { renderProgramCppParts } from '../compiler/render/cpp';
import { renderProgramCuda } from '../compiler/render/cuda';
import { buildCpp } from '../runtime/cpu';
import { compileCuda } from '../runtime/cuda';
import { linkKernelLibrary } from '../runtime/kernel-lib';
import { bytesByKind, memoryFloor, planMemory, residentBytes, type BytesByKind } from '../compiler/schedule/memory';
import type { CompileOptions } from '../compiler/compile';
import { MemoryBudgetError, type MemoryPlan, type PlanInput } from '../compiler/schedule/plan-types';
import { pulidConfigs } from '../models/pulid/config';
import { PulidModel, trainStepGraph, type Stage } from '../models/pulid/model';
import { defineCli, isMain, runCli, UsageError, type Parsed } from '../tools/cli';

export const cli = defineCli({
  command: 'npx tsx bench/pulid-plan.ts',
  summary: 'The PuLID training step through the compiler without running it: schedule, memory plan (optionally under a budget) and C++ source size.',
  options: {
    config: { type: 'enum', values: Object.keys(pulidConfigs), default: 'sdxl', help: 'model size' },
    stage: { type: 'int', min: 1, max: 3, default: 2, help: '1: the L_diff program; 2 or 3: the Lightning program' },
    budget: { type: 'bytes', min: 1, help: 'arena budget (e.g. 64GiB); values are recomputed to fit' },
    resolution: { type: 'int', min: 64, max: 4096, help: 'image size in pixels (latents are 1/8) [default: the config\'s]' },
    precision: { type: 'enum', values: ['f32', 'bf16', 'f16'], help: 'passed to the compiler; 16-bit figures estimated where it has no precision pass (docs/memory-planning.md)' },
    checkpoint: { type: 'enum', values: ['auto', 'none', 'layer', 'step', 'layer-always', 'step-always'], default: 'auto', help: "checkpoint segments: layer/step candidates the planner recomputes only under --budget, '-always' recomputed anyway, none; auto = layer with --budget, none without" },
    floor: { type: 'flag', help: 'also find the floor: the smallest arena the planner can reach (one more planning run)' },
    compile: { type: 'string', help: 'also build the program: cpp (g++), cuda (nvcc, sm_90a), or cpp,cuda' },
    json: { type: 'file', mustExist: false, help: 'also write the result as JSON to this file' },
  },
  examples: ['npx tsx bench/pulid-plan.ts --config sdxl --stage 2 --budget 64GiB', 'npx tsx bench/pulid-plan.ts --config micro --stage 1 --compile cpp'],
});

export async function main(o: Parsed<typeof cli.def.options>): Promise<void> {
  const base = pulidConfigs[o.config];
  if (o.resolution !== undefined && o.resolution % 8 !== 0) throw new UsageError(`--resolution: a multiple of 8 pixels, not ${o.resolution}`);
  const config = o.resolution === undefined ? base : { ...base, unet: { ...base.unet, sampleSize: o.resolution / 8 } };
  const stage = o.stage as Stage;
  const budget = o.budget;
  const builds = (o.compile ?? '').split(',').filter(Boolean);
  for (const b of builds) if (b !== 'cpp' && b !== 'cuda') throw new UsageError(`--compile: cpp, cuda or cpp,cuda, not '${o.compile}'`);

  let t = performance.now();
  const lap = () => { const n = performance.now(), s = (n - t) / 1000; t = n; return +s.toFixed(1); };
  const model = new PulidModel(config, { seed: 0 });
  const cpName = o.checkpoint === 'auto' ? (budget === undefined ? 'none' : 'layer') : o.checkpoint;
  const checkpoint = cpName === 'none' ? false : { unit: cpName.startsWith('step') ? 'step' as const : 'layer' as const, when: cpName.endsWith('-always') ? 'always' as const : 'budget' as const };
  const g = trainStepGraph(model, { stage, batch: 1, accumulation: 1, checkpoint });
  const graphSeconds = lap();
  console.error(`${config.name} stage ${stage}: graph built in ${graphSeconds} s; scheduling and planning…`);
  const precision = o.precision ?? 'f32';
  // The precision pass, where the compiler has one (a compiler without it ignores the option and its buffers
  // stay 32-bit, which is checked below: the 16-bit figures are then estimated).
  const opts = { budget, ...(o.precision ? { precision: o.precision } : {}) } as CompileOptions;
  const low = lowerProgram({ outputs: g.outputs, updates: g.updates }, precision === 'f32' ? opts : { ...opts, budget: undefined });
  const lowerSeconds = lap();
  const sixteen = [...low.info.values()].some((b) => b.dtype === 'bf16' || b.dtype === 'f16');
  const estimated = precision !== 'f32' && !sixteen;
  const planInput: Omit<PlanInput, 'budget'> = estimated ? halved(low.planInput) : low.planInput;
  // Without the budget, for comparison (one cheap plan: no recompute search).
  const unbudgeted = budget === undefined ? undefined : planMemory({ ...planInput });
  if (unbudgeted && o.json) writeJsonAtomic(o.json, { config: config.name, stage, resolution: config.unet.sampleSize * 8, precision, estimated, budgetGiB: GiB(budget!), plan: 'pending', unbudgeted: summaryOf(unbudgeted), f32: summaryOf(low.plan) }, 1);
  let p: MemoryPlan = low.plan;
  if (precision !== 'f32') {
    console.error(`${precision}${estimated ? ' (estimated)' : ''}: planning${budget === undefined ? '' : ' under the budget'}…`);
    try {
      p = planMemory({ ...planInput, budget });
    } catch (e) {
      // A budget below the floor: the CLI still reports what it found (the JSON gets the error's paragraph).
      if (!(e instanceof MemoryBudgetError) || !o.json) throw e;
      writeJsonAtomic(o.json, { config: config.name, stage, resolution: config.unet.sampleSize * 8, precision, estimated, budgetGiB: GiB(budget!), floorGiB: GiB(e.floorBytes), error: e.message, unbudgeted: summaryOf(planMemory({ ...planInput })), f32: summaryOf(low.plan) }, 1);
      throw e;
    }
  }
  const planSeconds = lap();
  // Every candidate segment recomputed, no kernel-level recompute: the segment policy's floor (one cheap plan).
  const allSegments = planInput.optionalSegments?.length ? summaryOf(planMemory({ ...planInput, optionalSegments: [] })) : null;
  const allSegmentsSeconds = lap();

  const partial = { config: config.name, stage, resolution: config.unet.sampleSize * 8, precision, estimated, budgetGiB: budget === undefined ? null : GiB(budget), plan: summaryOf(p), unbudgeted: summaryOf(unbudgeted ?? p), f32: summaryOf(low.plan) };
  // Deep plans are slow: the figures so far are written before the floor is searched.
  if (o.json) writeJsonAtomic(o.json, { ...partial, floorGiB: o.floor ? 'pending' : null }, 1);
  let floorBytes: number | undefined, f32FloorBytes: number | undefined;
  if (o.floor) {
    console.error(`floor (${JSON.stringify(partial.plan)})…`);
    floorBytes = memoryFloor(planInput);
    if (precision !== 'f32') {
      if (o.json) writeJsonAtomic(o.json, { ...partial, floorGiB: GiB(floorBytes), f32FloorGiB: 'pending' }, 1);
      console.error(`f32 floor…`);
      f32FloorBytes = memoryFloor(low.planInput);
    }
  }
  const floorSeconds = lap();
  const { source, functions } = renderProgramCppParts(low.kernels, low.info);
  const renderSeconds = lap();
  const resident = residentBytes(p);
  const compiled: Record<string, unknown> = {};
  if (builds.includes('cpp')) {
    console.error('g++…');
    const a = await buildCpp(source, { extraFlags: ['-fno-math-errno', '-fno-trapping-math', ...(await linkKernelLibrary())] });
    compiled.cpp = { seconds: lap(), cacheHit: a.cacheHit, artifact: a.artifactPath };
  }
  if (builds.includes('cuda')) {
    const cu = renderProgramCuda(low.kernels, low.info, Math.ceil(low.plan.arenaBytes / 256) * 256);
    console.error(`nvcc (${(cu.source.length / 1e6).toFixed(1)} MB, ${cu.distinct} distinct kernels)…`);
    lap();
    const c = await compileCuda(cu.source);
    compiled.cuda = { seconds: lap(), launches: cu.launches.length, distinctKernels: cu.distinct, cubin: c.artifactPath, cacheHit: c.cacheHit };
  }
  const result = {
    config: config.name, stage, program: stage === 1 ? 'diff' : 'full', date: new Date().toISOString().slice(0, 10),
    kernels: low.kernels.length, unfusedKernels: low.unfusedKernels, cppFunctions: functions,
    cppSourceMB: +(source.length / 1e6).toFixed(1),
    naiveGiB: GiB(p.naiveBytes), plannedGiB: GiB(p.arenaBytes), peakLiveGiB: GiB(p.peakLiveBytes), residentGiB: GiB(resident),
    budgetGiB: budget === undefined ? null : GiB(budget), recomputed: p.recomputed.length, recomputedGiB: GiB(p.recomputed.reduce((s, r) => s + r.bytes, 0)),
    floorGiB: floorBytes === undefined ? null : GiB(floorBytes),
    ...(precision !== 'f32' ? { f32FloorGiB: f32FloorBytes === undefined ? null : GiB(f32FloorBytes) } : {}),
    resolution: config.unet.sampleSize * 8,
    checkpoint: cpName, segments: p.segments ?? null, allSegments,
    precision: {
      requested: precision,
      source: precision === 'f32' ? 'f32 (no precision pass)' : estimated ? 'estimated: the f32 schedule planned with 2-byte frozen weights, activations and gradients (trainable parameters and optimizer state f32); the compiler made no 16-bit buffers' : 'the compiler\'s precision pass',
    },
    bytesByKindGiB: partial.plan.bytesByKindGiB, flops: partial.plan.flops,
    unbudgeted: partial.unbudgeted, ...(precision !== 'f32' ? { f32: partial.f32 } : {}),
    seconds: { graph: graphSeconds, scheduleAndPlan: lowerSeconds, plan: planSeconds, allSegments: allSegmentsSeconds, floor: floorSeconds, renderCpp: renderSeconds }, compiled,
  };
  console.log(JSON.stringify(result, null, 1));
  if (o.json) writeJsonAtomic(o.json, result, 1);
}

const GiB = (b: number) => +(b / 2 ** 30).toFixed(3);

/** The figures of one plan for the JSON. */
function summaryOf(q: MemoryPlan) {
  return {
    plannedGiB: GiB(q.arenaBytes), peakLiveGiB: GiB(q.peakLiveBytes), recomputed: q.recomputed.length,
    updatesInPlace: q.commits.length, updatesStaged: q.steps.filter((s) => s.copies).reduce((n, s) => n + s.writes.length, 0), delayedUpdates: q.delayedUpdates,
    bytesByKindGiB: Object.fromEntries(Object.entries(bytesByKind(q)).map(([k, v]) => [k, k === 'peakAt' ? v : GiB(v)])) as Record<keyof BytesByKind, number>,
    flops: { forwardBackward: q.flops.base, recompute: q.flops.recompute, ratio: +(q.flops.base > 0 ? q.flops.recompute / q.flops.base : 0).toFixed(4) },
  };
}

/** The schedule with 2-byte frozen weights, activations and gradients: what a bf16/f16 precision policy stores
 * in 16 bits (trainable parameters, optimizer state, inputs and outputs stay as they are). An estimate only. */
function halved(input: Omit<PlanInput, 'budget'>): Omit<PlanInput, 'budget'> {
  const half = new Set(['frozen', 'activation', 'gradient']);
  return { ...input, buffers: input.buffers.map((b) => (b.role && half.has(b.role) && b.bytes >= 4 ? { ...b, bytes: Math.ceil(b.bytes / 2) } : b)) };
}

if (isMain(import.meta.url)) await runCli(cli, (o) => main(o));
