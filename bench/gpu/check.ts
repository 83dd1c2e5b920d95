/** The GPU checks of issue 14 Part B that need Kiln alone, as one command per part so a short device lease can run
 * them under separate time limits (bench/gpu/run.sh). Each part writes its JSON as soon as it is done.
 *
 * - `optable`: every op, forward and VJP, on the chosen CUDA back end against the float64 reference, and (on a GPU)
 *   the same program on the emulator: every output must pass on both and the two must agree.
 * - `once`: one run of the micro UNet step and the op table, nothing compared but the table: for compute-sanitizer.
 * - `train`: micro UNet and micro PuLID stage-1 and stage-2 (Lightning branch) training steps on CUDA against the compiled C++ result, 3 steps:
 *   losses and the worst parameter.
 *
 * Dry run without a GPU: `--backend cuda-emu` runs everything on the emulator (what CI's tests also do). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compile, evaluate, CudaProgram, type CompileOptions, type Program, type Tensor } from '../../compiler/index';
import { microPulidConfig } from '../../models/pulid/config';
import { PulidModel } from '../../models/pulid/model';
import { loadDataset } from '../../models/pulid/data';
import { PulidTrainer } from '../../models/pulid/trainer';
import { writeJsonAtomic } from '../../models/io/atomicWrite';
import { forwardTable, gradTable, halfOpTable, opTableBound } from '../../test/support/op-table';
import { microUnetStep } from '../../test/support/nets';
import { relErr } from '../../test/support/lift';
import { defineCli, isMain, runCli, UsageError, type Parsed } from '../../tools/cli';

export const cli = defineCli({
  command: 'npx tsx bench/gpu/check.ts',
  summary: 'GPU bring-up checks (issue 14 Part B): the op table and training steps on the CUDA back end, results as JSON.',
  positionals: { name: 'optable|train|once ...', help: 'which parts [default: optable train]' },
  options: {
    backend: { type: 'enum', values: ['cuda', 'cuda-emu'], default: 'cuda', help: 'cuda: the GPU; cuda-emu: a dry run on the emulator' },
    out: { type: 'dir', mustExist: false, default: 'bench/results', help: 'folder for the JSON files' },
    steps: { type: 'int', min: 1, max: 20, default: 3, help: 'training steps compared' },
    precision: { type: 'enum', values: ['f32', 'bf16'], default: 'f32', help: 'optable: f32, or bf16 storage (inputs and outputs stored bf16, f32 compute)' },
    stages: { type: 'ints', default: [1, 2], help: 'train: the micro PuLID stages compared (stage 2 back-propagates through the 4-step Lightning branch)' },
    launch: { type: 'enum', values: ['host', 'list'], default: 'host', help: 'host: one kiln_run call per run (the default build); list: one driver launch per kernel' },
  },
  examples: ['npx tsx bench/gpu/check.ts optable --backend cuda-emu --out /tmp/gpu', 'npx tsx bench/gpu/check.ts --out $OUT'],
});

const log = (s: string) => process.stderr.write(s + '\n');

/** The op table as one program: every primitive's forward case and every VJP (the suite's op-table cases). */
function opTable(): { outputs: Record<string, Tensor>; feeds: Record<string, ArrayLike<number>> } {
  const f = forwardTable(), g = gradTable();
  return { outputs: { ...f.outputs, ...g.outputs }, feeds: { ...f.feeds, ...g.feeds } };
}

type Launch = 'host' | 'list';

async function partOptable(backend: 'cuda' | 'cuda-emu', precision: 'f32' | 'bf16', launcher: Launch) {
  const t = precision === 'f32' ? undefined : halfOpTable(precision);
  const { outputs, feeds } = t ?? opTable();
  const want = t?.want ?? evaluate({ outputs }, feeds).outputs;
  const bound = (k: string) => (t ? t.bound(k) : opTableBound(k));
  const read = (k: string, raw: ArrayLike<number>) => (t ? t.toF32(k, raw) : raw);
  const base: CompileOptions = t ? { precision: { precision: 'bf16', inputs: 'low' } } : {};
  const runOn = async (opts: CompileOptions) => {
    const t0 = performance.now();
    const prog = await compile({ outputs }, { ...base, ...opts });
    const t1 = performance.now();
    const got = prog.run(feeds as never);
    return { got, compileSeconds: (t1 - t0) / 1000, runSeconds: (performance.now() - t1) / 1000, kernels: prog.kernels.length, launch: (prog as { launchMode?: string }).launchMode };
  };
  const dev = await runOn({ backend, launcher });
  log(`optable ${precision} on ${backend} (${dev.launch} launches): compiled in ${dev.compileSeconds.toFixed(1)} s, ran in ${dev.runSeconds.toFixed(2)} s`);
  const emu = backend === 'cuda' ? await runOn({ backend: 'cuda-emu' }) : undefined;
  const rows = Object.keys(outputs).map((k) => {
    const d = read(k, dev.got[k]), em = emu ? read(k, emu.got[k]) : undefined;
    const e = relErr(d, want[k].data), ee = em ? relErr(em, want[k].data) : undefined;
    const agree = em ? relErr(d, em) : undefined;
    return { output: k, relErr: e, bound: bound(k), emulatorRelErr: ee, deviceVsEmulator: agree, pass: e <= bound(k) && (ee === undefined || ee <= bound(k)) };
  });
  const failed = rows.filter((r) => !r.pass);
  const worstAgree = Math.max(0, ...rows.map((r) => r.deviceVsEmulator ?? 0));
  log(`optable ${precision} on ${backend}: ${rows.length - failed.length}/${rows.length} outputs pass${emu ? `; device vs emulator worst ${worstAgree.toExponential(2)}` : ''}${failed.length ? `; failing: ${failed.slice(0, 12).map((r) => `${r.output} ${r.relErr.toExponential(2)}`).join(', ')}` : ''}`);
  return { backend, precision, launch: dev.launch, outputs: rows.length, failed: failed.length, worstDeviceVsEmulator: worstAgree, compileSeconds: dev.compileSeconds, runSeconds: dev.runSeconds, emulatorSeconds: emu ? emu.compileSeconds + emu.runSeconds : undefined, kernels: dev.kernels, rows };
}

function worstParam(a: Program, b: Program): { name: string; relErr: number } {
  let worst = { name: '', relErr: 0 };
  for (const name of b.paramNames()) {
    const e = relErr(a.getParam(name), b.getParam(name));
    if (!(e <= worst.relErr)) worst = { name, relErr: e };
  }
  return worst;
}

async function partTrain(backend: 'cuda' | 'cuda-emu', steps: number, stages: readonly (1 | 2)[]) {
  const results: Record<string, unknown>[] = [];
  {
    const { spec, feeds } = microUnetStep();
    const cpu = await compile(spec), dev = await compile(spec, { backend });
    const lc: number[] = [], ld: number[] = [], ms: number[] = [];
    let afterOne = { name: '', relErr: 0 };
    for (let i = 0; i < steps; i++) {
      lc.push(cpu.run(feeds).loss[0]);
      const t0 = performance.now();
      ld.push(dev.run(feeds).loss[0]);
      ms.push(performance.now() - t0);
      if (i === 0) afterOne = worstParam(dev, cpu);
    }
    results.push({ program: 'micro UNet training step', kernels: dev.kernels.length, lossesCpp: lc, lossesCuda: ld, worstParamAfterOneStep: afterOne, msPerStep: ms });
    dev.dispose();
    log(`micro UNet: losses C++ ${lc.join(', ')} / ${backend} ${ld.join(', ')}; worst parameter after one step ${afterOne.name} ${afterOne.relErr}`);
  }
  const data = await loadDataset(microPulidConfig, { seed: 0 });
  const model = new PulidModel(microPulidConfig, { seed: 0 });
  for (const stage of stages) {
    const st = { 1: steps + 1, 2: steps + 1, 3: 0 };
    const cpu = new PulidTrainer(model, data.samples, data.text, { steps: { ...st }, lr: 1e-3 });
    const dev = new PulidTrainer(model, data.samples, data.text, { steps: { ...st }, lr: 1e-3, backend });
    const [pc, pd] = [(await cpu.compileStage(stage)).program, (await dev.compileStage(stage)).program];
    const feeds = cpu.feeds(stage, 0, 0);
    const lc: number[] = [], ld: number[] = [];
    let afterOne = { name: '', relErr: 0 };
    for (let i = 0; i < steps; i++) {
      lc.push(pc.run(feeds).loss[0]);
      ld.push(pd.run(feeds).loss[0]);
      if (i === 0) afterOne = worstParam(pd, pc);
    }
    const what = `micro PuLID stage ${stage} step${stage === 2 ? ' (4-step Lightning branch)' : ''}`;
    results.push({ program: what, kernels: pd.kernels.length, lossesCpp: lc, lossesCuda: ld, worstParamAfterOneStep: afterOne });
    log(`${what}: losses C++ ${lc.join(', ')} / ${backend} ${ld.join(', ')}; worst parameter after one step ${afterOne.name} ${afterOne.relErr}`);
    if (pd instanceof CudaProgram) pd.dispose();
  }
  return { backend, steps, results };
}

/** One run each of the micro UNet training step and the f32 op table, for a sanitizer to watch (run.sh). */
async function partOnce(backend: 'cuda' | 'cuda-emu', launcher: Launch) {
  const { spec, feeds } = microUnetStep();
  const step = await compile(spec, { backend, launcher });
  const loss = step.run(feeds).loss[0];
  const t = opTable();
  const table = await compile({ outputs: t.outputs }, { backend, launcher });
  const got = table.run(t.feeds as never);
  const want = evaluate({ outputs: t.outputs }, t.feeds).outputs;
  const failed = Object.keys(t.outputs).filter((k) => !(relErr(got[k], want[k].data) <= opTableBound(k)));
  log(`once on ${backend} (${launcher}): micro UNet loss ${loss} (${step.kernels.length} kernels), op table ${failed.length} of ${Object.keys(t.outputs).length} outputs out of bounds`);
  return { backend, launcher, loss, stepKernels: step.kernels.length, tableKernels: table.kernels.length, failed };
}

async function main(o: Parsed<typeof cli.def.options>, parts: string[]): Promise<void> {
  for (const p of parts) if (p !== 'optable' && p !== 'train' && p !== 'once') throw new UsageError(`unknown part '${p}' (optable, train, once)`);
  const want = (p: string) => (parts.length === 0 && p !== 'once') || parts.includes(p);
  const backend = o.backend as 'cuda' | 'cuda-emu';
  const stamp = new Date().toISOString().slice(0, 10), device = backend === 'cuda' ? 'gpu' : 'emulator';
  fs.mkdirSync(o.out, { recursive: true });
  const write = (part: string, body: object) => {
    const file = path.join(o.out, `${device}-${stamp}-${part}.json`);
    writeJsonAtomic(file, { date: new Date().toISOString(), host: os.hostname(), cpu: os.cpus()[0]?.model, ...body });
    log(`wrote ${file}`);
  };
  if (want('optable')) write(`optable-${o.precision}-${o.launch}`, await partOptable(backend, o.precision as 'f32' | 'bf16', o.launch as Launch));
  if (want('train')) write('train', await partTrain(backend, o.steps, o.stages.map((x) => x as 1 | 2)));
  if (want('once')) write(`once-${o.launch}`, await partOnce(backend, o.launch as Launch));
}

if (isMain(import.meta.url)) await runCli(cli, main);
