/** The GPU checks of issue 14 Part B that need Kiln alone, as one command per part so a short device lease can run
 * them under separate time limits (bench/gpu/run.sh). Each part writes its JSON as soon as it is done.
 *
 * - `optable`: every op, forward and VJP, on the chosen CUDA back end against the float64 reference, and (on a GPU)
 *   the same program on the emulator: every output must pass on both and the two must agree.
 * - `train`: micro UNet and micro PuLID stage-1 training steps on CUDA against the compiled C++ result, 3 steps:
 *   losses and the worst parameter.
 *
 * Dry run without a GPU: `--backend cuda-emu` runs everything on the emulator (what CI's tests also do). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compile, evaluate, type CompileOptions, type Program, type Tensor } from '../../compiler/index';
import { microPulidConfig } from '../../models/pulid/config';
import { PulidModel } from '../../models/pulid/model';
import { loadDataset } from '../../models/pulid/data';
import { PulidTrainer } from '../../models/pulid/trainer';
import { writeJsonAtomic } from '../../models/io/atomicWrite';
import { forwardTable, gradTable, opTableBound } from '../../test/support/op-table';
import { microUnetStep } from '../../test/support/nets';
import { relErr } from '../../test/support/lift';
import { defineCli, isMain, runCli, UsageError, type Parsed } from '../../tools/cli';

export const cli = defineCli({
  command: 'npx tsx bench/gpu/check.ts',
  summary: 'GPU bring-up checks (issue 14 Part B): the op table and training steps on the CUDA back end, results as JSON.',
  positionals: { name: 'optable|train ...', help: 'which parts [default: all]' },
  options: {
    backend: { type: 'enum', values: ['cuda', 'cuda-emu'], default: 'cuda', help: 'cuda: the GPU; cuda-emu: a dry run on the emulator' },
    out: { type: 'dir', mustExist: false, default: 'bench/results', help: 'folder for the JSON files' },
    steps: { type: 'int', min: 1, max: 20, default: 3, help: 'training steps compared' },
  },
  examples: ['npx tsx bench/gpu/check.ts optable --backend cuda-emu --out /tmp/gpu', 'npx tsx bench/gpu/check.ts --out $OUT'],
});

const log = (s: string) => process.stderr.write(s + '\n');

/** The op table as one program: every primitive's forward case and every VJP (the suite's op-table cases). */
function opTable(): { outputs: Record<string, Tensor>; feeds: Record<string, ArrayLike<number>> } {
  const f = forwardTable(), g = gradTable();
  return { outputs: { ...f.outputs, ...g.outputs }, feeds: { ...f.feeds, ...g.feeds } };
}

async function partOptable(backend: 'cuda' | 'cuda-emu') {
  const { outputs, feeds } = opTable();
  const want = evaluate({ outputs }, feeds).outputs;
  const runOn = async (opts: CompileOptions) => {
    const t0 = performance.now();
    const prog = await compile({ outputs }, opts);
    const got = prog.run(feeds as never);
    return { got, seconds: (performance.now() - t0) / 1000, kernels: prog.kernels.length };
  };
  const dev = await runOn({ backend });
  const emu = backend === 'cuda' ? await runOn({ backend: 'cuda-emu' }) : undefined;
  const rows = Object.keys(outputs).map((k) => {
    const e = relErr(dev.got[k], want[k].data), ee = emu ? relErr(emu.got[k], want[k].data) : undefined;
    const agree = emu ? relErr(dev.got[k], emu.got[k]) : undefined;
    return { output: k, relErr: e, emulatorRelErr: ee, deviceVsEmulator: agree, pass: e <= opTableBound(k) && (ee === undefined || ee <= opTableBound(k)) };
  });
  const failed = rows.filter((r) => !r.pass);
  log(`optable on ${backend}: ${rows.length - failed.length}/${rows.length} outputs pass${failed.length ? `; failing: ${failed.slice(0, 10).map((r) => r.output).join(', ')}` : ''}`);
  return { backend, outputs: rows.length, failed: failed.length, seconds: dev.seconds, emulatorSeconds: emu?.seconds, kernels: dev.kernels, rows };
}

function worstParam(a: Program, b: Program): { name: string; relErr: number } {
  let worst = { name: '', relErr: 0 };
  for (const name of b.paramNames()) {
    const e = relErr(a.getParam(name), b.getParam(name));
    if (!(e <= worst.relErr)) worst = { name, relErr: e };
  }
  return worst;
}

async function partTrain(backend: 'cuda' | 'cuda-emu', steps: number) {
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
    log(`micro UNet: losses C++ ${lc.join(', ')} / ${backend} ${ld.join(', ')}; worst parameter after one step ${afterOne.name} ${afterOne.relErr}`);
  }
  {
    const data = await loadDataset(microPulidConfig, { seed: 0 });
    const model = new PulidModel(microPulidConfig, { seed: 0 });
    const st = { 1: steps + 1, 2: 0, 3: 0 };
    const cpu = new PulidTrainer(model, data.samples, data.text, { steps: { ...st }, lr: 1e-3 });
    const dev = new PulidTrainer(model, data.samples, data.text, { steps: { ...st }, lr: 1e-3, backend });
    const [pc, pd] = [(await cpu.compileStage(1)).program, (await dev.compileStage(1)).program];
    const feeds = cpu.feeds(1, 0, 0);
    const lc: number[] = [], ld: number[] = [];
    let afterOne = { name: '', relErr: 0 };
    for (let i = 0; i < steps; i++) {
      lc.push(pc.run(feeds).loss[0]);
      ld.push(pd.run(feeds).loss[0]);
      if (i === 0) afterOne = worstParam(pd, pc);
    }
    results.push({ program: 'micro PuLID stage 1 step', kernels: pd.kernels.length, lossesCpp: lc, lossesCuda: ld, worstParamAfterOneStep: afterOne });
    log(`micro PuLID stage 1: losses C++ ${lc.join(', ')} / ${backend} ${ld.join(', ')}; worst parameter after one step ${afterOne.name} ${afterOne.relErr}`);
  }
  return { backend, steps, results };
}

async function main(o: Parsed<typeof cli.def.options>, parts: string[]): Promise<void> {
  for (const p of parts) if (p !== 'optable' && p !== 'train') throw new UsageError(`unknown part '${p}' (optable, train)`);
  const want = (p: string) => parts.length === 0 || parts.includes(p);
  const backend = o.backend as 'cuda' | 'cuda-emu';
  const stamp = new Date().toISOString().slice(0, 10), device = backend === 'cuda' ? 'gpu' : 'emulator';
  fs.mkdirSync(o.out, { recursive: true });
  const write = (part: string, body: object) => {
    const file = path.join(o.out, `${device}-${stamp}-${part}.json`);
    writeJsonAtomic(file, { date: new Date().toISOString(), host: os.hostname(), cpu: os.cpus()[0]?.model, ...body });
    log(`wrote ${file}`);
  };
  if (want('optable')) write('optable', await partOptable(backend));
  if (want('train')) write('train', await partTrain(backend, o.steps));
}

if (isMain(import.meta.url)) await runCli(cli, main);
