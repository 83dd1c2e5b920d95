/** The PuLID stage-2 training step (L_diff plus the 4-step Lightning branch with L_align and L_id, back-propagated
 * through) on Kiln's CUDA back end at the memory budget the planner reports (issue 14 Part B e): does the planned arena
 * hold on the device? Lowers the step under `--budget` (bench/pulid-plan.ts's figures: SDXL at 768² in bf16 plans
 * 13.97 GiB under 14 GiB), compiles it with nvcc, uploads parameters from one scaled pattern (unet-step.ts
 * BenchProgram: Program.initialize's host fill would take minutes at this size), feeds random inputs, runs steps and
 * compares the device memory the program uses with the plan. JSON as each piece finishes.
 *
 *   node --import tsx bench/gpu/pulid-step.ts --backend cuda --out DIR                      (on the GPU: sdxl, 768², 14GiB)
 *   npx tsx bench/gpu/pulid-step.ts --backend cuda-emu --config micro --out /tmp/p          (dry run on the emulator) */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { lowerProgram } from '../../compiler/index';
import { renderProgramCuda } from '../../compiler/render/cuda';
import { formatBytes } from '../../compiler/schedule/memory';
import { compileCudaHost, CudaDevice } from '../../runtime/cuda';
import type { CachedArtifact } from '../../runtime/cache';
import { compileCudaEmu, openEmulatedDevice, type CompiledEmuModule } from '../../runtime/cuda-emu';
import { pulidConfigs } from '../../models/pulid/config';
import { PulidModel, trainStepGraph } from '../../models/pulid/model';
import { writeJsonAtomic } from '../../models/io/atomicWrite';
import { defineCli, isMain, runCli, UsageError, type Parsed } from '../../tools/cli';
import { BenchProgram } from './unet-step';
import { fill } from './fill';

export const cli = defineCli({
  command: 'npx tsx bench/gpu/pulid-step.ts',
  summary: 'The PuLID stage-2 training step on the CUDA back end at the planner\'s memory budget: planned vs measured device memory (issue 14 Part B e).',
  options: {
    backend: { type: 'enum', values: ['cuda', 'cuda-emu'], default: 'cuda', help: 'cuda: the GPU; cuda-emu: a dry run on the emulator (use --config micro)' },
    config: { type: 'enum', values: ['sdxl', 'tiny', 'micro'], default: 'sdxl', help: 'PuLID configuration' },
    resolution: { type: 'int', min: 64, max: 4096, help: 'image size in pixels [default: 768 for sdxl, the config\'s otherwise]' },
    budget: { type: 'bytes', min: 1, help: 'arena budget [default: 14GiB for sdxl, none otherwise]' },
    steps: { type: 'int', min: 1, max: 50, default: 3, help: 'timed steps after one warm-up' },
    deadline: { type: 'int', min: 10, max: 3600, default: 280, help: 'seconds from start after which no new step starts' },
    out: { type: 'dir', mustExist: false, default: 'bench/results', help: 'folder for the JSON file' },
  },
  examples: ['node --import tsx bench/gpu/pulid-step.ts --backend cuda --out $OUT', 'npx tsx bench/gpu/pulid-step.ts --backend cuda-emu --config micro --out /tmp/p'],
});

const log = (s: string) => process.stderr.write(`[pulid-step ${(performance.now() / 1e3).toFixed(1)} s] ${s}\n`);
const secs = (t0: number) => +((performance.now() - t0) / 1e3).toFixed(2);

/** Inputs by name: loss weights 1, learning rate 1e-5, noise levels 0.7, timestep 500, micro-conditioning ids at the
 * image size; everything else uniform in [-1, 1) (all the step's inputs are float tensors). */
function feedFor(name: string, n: number, size: number, seed: number): Float32Array {
  if (name === 'lr') return Float32Array.of(1e-5);
  if (name.startsWith('lambda_')) return Float32Array.of(1);
  if (name === 'alpha' || name === 'sigma') return new Float32Array(n).fill(0.7);
  if (name === 'timestep') return new Float32Array(n).fill(500);
  if (name.endsWith('time_ids')) return Float32Array.from({ length: n }, (_, i) => [size, size, 0, 0, size, size][i % 6]);
  return fill(n, seed);
}

async function main(o: Parsed<typeof cli.def.options>): Promise<number> {
  const start = performance.now();
  const backend = o.backend as 'cuda' | 'cuda-emu';
  const base = pulidConfigs[o.config];
  const resolution = o.resolution ?? (o.config === 'sdxl' ? 768 : base.unet.sampleSize * 8);
  if (resolution % 8 !== 0) throw new UsageError(`--resolution: a multiple of 8 pixels, not ${resolution}`);
  const config = { ...base, unet: { ...base.unet, sampleSize: resolution / 8 } };
  const budget = o.budget ?? (o.config === 'sdxl' ? 14 * 2 ** 30 : undefined);
  fs.mkdirSync(o.out, { recursive: true });
  const file = path.join(o.out, `${backend === 'cuda' ? 'gpu' : 'emulator'}-${new Date().toISOString().slice(0, 10)}-pulid-step.json`);
  const r: Record<string, unknown> = { date: new Date().toISOString(), host: os.hostname(), cpu: os.cpus()[0]?.model, backend, config: config.name, stage: 2, resolution, precision: 'bf16', budgetBytes: budget ?? null, status: 'started', notes: [] as string[] };
  const save = (status: string) => { r.status = status; r.elapsedSeconds = secs(start); writeJsonAtomic(file, r, 1); };
  save('started');

  let t = performance.now();
  const model = new PulidModel(config, { seed: 0 });
  const g = trainStepGraph(model, { stage: 2, batch: 1, accumulation: 1, precision: 'bf16', checkpoint: budget === undefined ? false : { unit: 'layer', when: 'budget' } });
  r.graphSeconds = secs(t);
  log(`${config.name} stage 2 at ${resolution}²: graph in ${r.graphSeconds} s; lowering and planning${budget === undefined ? '' : ` under ${formatBytes(budget)}`}…`);
  t = performance.now();
  const low = lowerProgram({ outputs: g.outputs, updates: g.updates }, { budget, precision: g.precision });
  r.lowerSeconds = secs(t);
  t = performance.now();
  const cu = renderProgramCuda(low.kernels, low.info, Math.ceil(low.plan.arenaBytes / 256) * 256);
  r.renderSeconds = secs(t);
  const p = low.plan;
  Object.assign(r, { kernels: low.kernels.length, distinctKernels: cu.distinct, plannedBytes: p.arenaBytes, scratchBytes: cu.scratchBytes, peakLiveBytes: p.peakLiveBytes, naiveBytes: p.naiveBytes, recomputed: p.recomputed.length, flops: p.flops });
  save('lowered');
  log(`lowered in ${r.lowerSeconds} s: ${low.kernels.length} kernels (${cu.distinct} distinct), planned arena ${formatBytes(p.arenaBytes)} (+ ${formatBytes(cu.scratchBytes)} template scratch)`);

  t = performance.now();
  let host: CachedArtifact, cubin: CompiledEmuModule | undefined;
  if (backend === 'cuda') host = await compileCudaHost(cu.distinct > 96 ? cu.units(Math.max(2, os.cpus().length)) : [cu.source]);
  else host = cubin = await compileCudaEmu(cu.source, { kernels: [...new Set(cu.launches.map((l) => l.kernel))] });
  r.nvccSeconds = secs(t);
  save('compiled');
  log(`${backend === 'cuda' ? 'nvcc' : 'g++ (emulator)'}: ${r.nvccSeconds} s`);

  let dev: CudaDevice;
  try { dev = backend === 'cuda' ? CudaDevice.open() : await openEmulatedDevice(); } catch (e) {
    (r.notes as string[]).push(`no GPU: ${(e as Error).message}`);
    save('compiled; no GPU');
    return 0;
  }
  const used = () => { const m = dev.memInfo(); return m.totalBytes - m.freeBytes; };
  if (dev.emulated) (r.notes as string[]).push('emulator: device memory figures are the host\'s RAM, not the program\'s');
  const before = used();
  try {
    t = performance.now();
    const prog = new BenchProgram({ ...low, ...cu, host, cubin }, dev);
    r.initSeconds = secs(t);
    save('initialized');
    const feeds = Object.fromEntries(low.inputs.map((n, i) => [n.attrs.name, feedFor(n.attrs.name, n.shape.reduce((a, b) => a * b, 1), resolution, i + 1)]));
    t = performance.now();
    const first = prog.run(feeds);
    r.warmupMs = +(performance.now() - t).toFixed(1);
    r.losses = [Object.fromEntries(Object.entries(first).filter(([, v]) => v.length === 1).map(([k, v]) => [k, v[0]]))];
    save('warm');
    log(`warm-up step ${r.warmupMs} ms: ${JSON.stringify((r.losses as object[])[0])}`);
    const ms: number[] = [];
    for (let i = 0; i < o.steps; i++) {
      if ((performance.now() - start) / 1e3 + 2 * Math.max(r.warmupMs as number, ...ms) / 1e3 > o.deadline) { (r.notes as string[]).push(`${i} of ${o.steps} timed steps (deadline)`); break; }
      ms.push(+prog.time(1).toFixed(2));
      r.msPerStep = [...ms].sort((a, b) => a - b)[ms.length >> 1];
      r.msAll = ms;
      save('steps');
    }
    const measured = used() - before;
    Object.assign(r, { measuredBytes: measured, measuredOverPlanned: +(measured / (p.arenaBytes + cu.scratchBytes)).toFixed(4) });
    save('done');
    log(`${r.msPerStep ?? '-'} ms per step; device memory used by the program ${formatBytes(measured)} against ${formatBytes(p.arenaBytes + cu.scratchBytes)} planned (arena + scratch): ${r.measuredOverPlanned}`);
    prog.dispose();
  } catch (e) {
    r.error = (e as Error).message.split('\n').slice(0, 8).join('\n');
    save('failed');
    log(`failed: ${r.error}`);
    return 1;
  }
  return 0;
}

if (isMain(import.meta.url)) await runCli(cli, (o) => main(o));
