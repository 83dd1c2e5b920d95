/**
 * The PuLID training step through the compiler without running it: schedule (fusion + lowering), memory plan
 * (optionally under a budget, with rematerialization) and the C++ source, for any config, e.g. the SDXL-size step
 * that does not fit this machine.
 *
 *   npx tsx bench/pulid-plan.ts --config sdxl --stage 2 --budget 64GiB [--compile cpp,cuda] [--json bench/results/x.json]
 *
 * --compile also builds the generated program: `cpp` with g++ (a shared object, not loaded), `cuda` with nvcc
 * for sm_90a (a cubin; no GPU needed). Both go to the kernel cache.
 * --stage 1: the L_diff program; 2 (or 3): the Lightning program of stages 2 and 3. Prints kernels (fused and
 * unfused), distinct kernel functions in the generated C++, naive / planned / resident / budget bytes and times.
 */
import fs from 'node:fs';
import { lowerProgram } from '../compiler/compile';
import { renderProgramCppParts } from '../compiler/render/cpp';
import { renderProgramCuda } from '../compiler/render/cuda';
import { buildCpp } from '../runtime/cpu';
import { compileCuda } from '../runtime/cuda';
import { linkKernelLibrary } from '../runtime/kernel-lib';
import { residentBytes } from '../compiler/schedule/memory';
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
    compile: { type: 'string', help: 'also build the program: cpp (g++), cuda (nvcc, sm_90a), or cpp,cuda' },
    json: { type: 'file', mustExist: false, help: 'also write the result as JSON to this file' },
  },
  examples: ['npx tsx bench/pulid-plan.ts --config sdxl --stage 2 --budget 64GiB', 'npx tsx bench/pulid-plan.ts --config micro --stage 1 --compile cpp'],
});

export async function main(o: Parsed<typeof cli.def.options>): Promise<void> {
  const config = pulidConfigs[o.config];
  const stage = o.stage as Stage;
  const budget = o.budget;
  const builds = (o.compile ?? '').split(',').filter(Boolean);
  for (const b of builds) if (b !== 'cpp' && b !== 'cuda') throw new UsageError(`--compile: cpp, cuda or cpp,cuda, not '${o.compile}'`);
  const GiB = (b: number) => +(b / 2 ** 30).toFixed(3);

  let t = performance.now();
  const lap = () => { const n = performance.now(), s = (n - t) / 1000; t = n; return +s.toFixed(1); };
  const model = new PulidModel(config, { seed: 0 });
  const g = trainStepGraph(model, { stage, batch: 1, accumulation: 1 });
  const graphSeconds = lap();
  console.error(`${config.name} stage ${stage}: graph built in ${graphSeconds} s; scheduling and planning…`);
  const low = lowerProgram({ outputs: g.outputs, updates: g.updates }, { budget });
  const lowerSeconds = lap();
  const { source, functions } = renderProgramCppParts(low.kernels, low.info);
  const renderSeconds = lap();
  const p = low.plan, resident = residentBytes(p);
  const compiled: Record<string, unknown> = {};
  if (builds.includes('cpp')) {
    console.error('g++…');
    const a = await buildCpp(source, { extraFlags: ['-fno-math-errno', '-fno-trapping-math', ...(await linkKernelLibrary())] });
    compiled.cpp = { seconds: lap(), cacheHit: a.cacheHit, artifact: a.artifactPath };
  }
  if (builds.includes('cuda')) {
    const cu = renderProgramCuda(low.kernels, low.info, Math.ceil(p.arenaBytes / 256) * 256);
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
    seconds: { graph: graphSeconds, scheduleAndPlan: lowerSeconds, renderCpp: renderSeconds }, compiled,
  };
  console.log(JSON.stringify(result, null, 1));
  if (o.json) fs.writeFileSync(o.json, JSON.stringify(result, null, 1) + '\n');
}

if (isMain(import.meta.url)) await runCli(cli, (o) => main(o));
