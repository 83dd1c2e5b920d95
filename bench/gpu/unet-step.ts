/** One SDXL UNet training step (forward, MSE loss, backward, AdamW; bf16 storage, f32 masters) on Kiln's CUDA back
 * end against the same network in PyTorch eager on the same GPU (issue 14 part e): batch 1, a 128×128 latent, 77
 * context tokens. Written for a short device lease: every piece writes DIR/gpu-<date>-unet.json as soon as it is
 * done (graph, lowering, nvcc, device init, each step, PyTorch), so a timeout still leaves what was measured.
 *
 *   node --import tsx bench/gpu/unet-step.ts --backend cuda --out DIR           (on the GPU)
 *   npx tsx bench/gpu/unet-step.ts --backend cuda-emu --config tiny --out /tmp/u (dry run, no GPU)
 *
 * The program is built here step by step as compile() builds it (compiler/compile.ts: lowerProgram, render, nvcc
 * over one unit per core, CudaProgram) so lowering and nvcc are timed apart. Parameters are uploaded from one
 * shared N(0, 1) pattern scaled to each parameter's init (std or bounds), not by Program.initialize(), whose host
 * fill (Philox normals, ~0.1 µs a value) would take minutes for SDXL's
 * 2.6 B parameters and their AdamW state; the step's time does not depend on the values. PyTorch runs in its own
 * process (bench/gpu/torch_unet_step.py) after Kiln's arena is freed. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { lowerProgram, CudaProgram, type GraphSpec } from '../../compiler/index';
import { unetTrainGraph } from '../unet-train-graph';
import { renderProgramCuda } from '../../compiler/render/cuda';
import { hostArray } from '../../compiler/program';
import { toHalfBits } from '../../compiler/ir/half';
import { numel } from '../../compiler/ir/shape';
import { byteSize } from '../../compiler/ir/dtype';
import type { Node } from '../../compiler/ir/node';
import { compileCudaHost, CudaDevice } from '../../runtime/cuda';
import type { CachedArtifact } from '../../runtime/cache';
import { bytesByKind, residentBytes } from '../../compiler/schedule/memory';
import { compileCudaEmu, openEmulatedDevice, type CompiledEmuModule } from '../../runtime/cuda-emu';
import { pooledTextDim, sdxlUnetConfig, tinyUnetConfig, type UnetConfig } from '../../models/unet/index';
import { writeJsonAtomic } from '../../models/io/atomicWrite';
import { fill } from './fill';
import { defineCli, isMain, runCli, type Parsed } from '../../tools/cli';

export const cli = defineCli({
  command: 'npx tsx bench/gpu/unet-step.ts',
  summary: 'One SDXL UNet bf16 training step on Kiln\'s CUDA back end vs PyTorch eager on the same GPU (issue 14 part e), as JSON.',
  options: {
    backend: { type: 'enum', values: ['cuda', 'cuda-emu'], default: 'cuda', help: 'cuda: the GPU; cuda-emu: a dry run on the emulator (use --config tiny)' },
    config: { type: 'enum', values: ['sdxl', 'tiny'], default: 'sdxl', help: 'sdxlUnetConfig (2.6 B parameters) or tinyUnetConfig' },
    layers: { type: 'ints', lengths: [3], help: 'transformer layers per down block instead of the config\'s (SDXL 1,2,10): a labelled subset' },
    size: { type: 'int', min: 8, max: 256, help: 'latent side [default: 128 for sdxl, the config\'s for tiny]' },
    tokens: { type: 'int', min: 1, max: 1024, default: 77, help: 'context tokens' },
    steps: { type: 'int', min: 1, max: 50, default: 5, help: 'timed steps after one warm-up (fewer if --deadline is near)' },
    deadline: { type: 'int', min: 10, max: 3600, default: 230, help: 'seconds from start: no new Kiln step, and PyTorch gets only what is left' },
    torch: { type: 'enum', values: ['after', 'skip', 'only'], default: 'after', help: 'after: PyTorch eager in a child process once Kiln\'s arena is freed; only: PyTorch alone (file …-unet-torch.json)' },
    'torch-timeout': { type: 'int', min: 5, max: 3600, default: 150, help: 'seconds the PyTorch child may take (also capped by --deadline)' },
    'torch-compile': { type: 'flag', help: 'also torch.compile the PyTorch model (minutes)' },
    'torch-device': { type: 'string', help: 'device for the PyTorch child [default: cuda; cpu with --backend cuda-emu]' },
    python: { type: 'string', default: 'python3', help: 'the Python with torch' },
    'cuda-graph': { type: 'flag', help: 'Kiln: capture the step into a CUDA Graph and replay it' },
    out: { type: 'dir', mustExist: false, default: 'bench/results', help: 'folder for the JSON file' },
  },
  examples: ['node --import tsx bench/gpu/unet-step.ts --backend cuda --out $OUT', 'npx tsx bench/gpu/unet-step.ts --backend cuda-emu --config tiny --python /usr/bin/python3 --out /tmp/unet'],
});

const here = path.dirname(fileURLToPath(import.meta.url));
const log = (s: string) => process.stderr.write(`[unet-step ${(performance.now() / 1e3).toFixed(1)} s] ${s}\n`);
const secs = (t0: number) => +((performance.now() - t0) / 1e3).toFixed(2);
const median = (xs: readonly number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[s.length >> 1] : NaN; };
const LR = 1e-5;
/** Seconds kept for PyTorch when deciding whether another Kiln step fits before --deadline. */
const TORCH_RESERVE_S = 90;

/** A CudaProgram whose parameters are filled from one shared N(0, 1) pattern, scaled to each init (see the header). */
export class BenchProgram extends CudaProgram {
  protected override initialize(): void {
    const params = this.parts.params;
    const big = Math.max(1, ...params.map((p) => numel(p.shape)));
    const u = fill((Math.min(big, 1 << 24) + 4100) & ~1, 7), pool = new Float32Array(u.length);
    for (let i = 0; i < pool.length; i += 2) {  // Box–Muller
      const r = Math.sqrt(-2 * Math.log((u[i] + 1) / 2 + 1e-12)), th = Math.PI * (u[i + 1] + 1);
      pool[i] = r * Math.cos(th); pool[i + 1] = r * Math.sin(th);
    }
    const buf = new Float32Array(big);
    for (const p of params) {
      const n = numel(p.shape), init = p.attrs.init;
      const [mean, scale] = init.kind === 'normal' ? [init.mean ?? 0, init.std] : init.kind === 'uniform' ? [(init.low + init.high) / 2, (init.high - init.low) / Math.sqrt(12)]
        : init.kind === 'constant' ? [init.value, 0] : init.kind === 'ones' ? [1, 0] : [0, 0];
      const a = buf.subarray(0, n), off = scale === 0 ? 0 : (init as { seed?: number }).seed ?? 0;
      if (scale === 0) a.fill(mean);
      else for (let i = 0, j = off % 4096; i < n; i++, j = j + 1 === pool.length ? 0 : j + 1) a[i] = mean + scale * pool[j];
      this.put(p, a);
    }
    for (const c of this.parts.consts) this.put(c, c.attrs.data as ArrayLike<number>);
  }
  private put(n: Node, v: ArrayLike<number>): void {
    const len = numel(n.shape), d = n.dtype;
    if (d === 'f32' && v instanceof Float32Array) { this.write(n, v); return; }
    const a = hostArray(new ArrayBuffer(Math.max(len * byteSize[d], 1)), 0, d, len);
    if (d === 'bf16' || d === 'f16') a.set(toHalfBits(v, d)); else a.set(v);
    this.write(n, a);
  }
}

/** The training step graph (bench/unet-train-graph.ts) and its inputs. */
export function stepGraph(c: UnetConfig, tokens: number) {
  const S = c.sampleSize;
  const { unet, loss, params, updates } = unetTrainGraph(c, tokens, LR);
  const spec: GraphSpec = { outputs: { loss }, updates };
  const feeds: Record<string, Float32Array> = {
    sample: fill(4 * S * S, 1), t: Float32Array.of(500), ctx: fill(tokens * c.crossAttentionDim, 2), pooled: fill(pooledTextDim(c), 3),
    timeIds: Float32Array.of(8 * S, 8 * S, 0, 0, 8 * S, 8 * S), target: fill(4 * S * S, 4),
  };
  return { spec, feeds, params: unet.paramCount(), tensors: params.length };
}

interface TorchResult { ms?: number; [k: string]: unknown }

/** Runs bench/gpu/torch_unet_step.py; resolves with its last JSON line (one per timed step, so a timeout keeps the
 * steps done), and a note when it did not finish. */
function runTorch(python: string, spec: object, timeoutS: number): Promise<{ result?: TorchResult; note?: string; seconds: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let out = '', err = '', done = false;
    const last = () => { const l = out.split('\n').filter((x) => x.startsWith('{') && x.endsWith('}')).pop(); try { return l ? JSON.parse(l) as TorchResult : undefined; } catch { return undefined; } };
    const tail = () => err.trim().split('\n').slice(-3).join(' | ');
    const finish = (note?: string) => { if (!done) { done = true; clearTimeout(timer); resolve({ result: last(), note, seconds: secs(t0) }); } };
    const child = spawn(python, [path.join(here, 'torch_unet_step.py'), '--spec', JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => { child.kill('SIGKILL'); finish(`PyTorch stopped after ${timeoutS} s; its last lines: ${tail()}`); }, timeoutS * 1e3);
    child.stdout.on('data', (b) => { out += b; });
    child.stderr.on('data', (b) => { err += b; process.stderr.write(b); });
    child.on('error', (e) => finish(`${python} did not start: ${e.message}`));
    child.on('close', (code) => finish(code === 0 ? undefined : `torch_unet_step.py exited ${code}: ${tail() || 'no output'}`));
  });
}

type Opts = Parsed<typeof cli.def.options>;
interface Ctx { kiln: Record<string, unknown>; notes: string[]; save: (status?: string) => void; left: () => number }

/** Kiln's side: graph, lowering, nvcc, device init, one warm-up step and the timed steps; each piece saved as it
 * finishes. The arena is freed before returning, whatever happened. */
async function kilnStep(o: Opts, config: UnetConfig, { kiln, notes, save, left }: Ctx): Promise<void> {
  const backend = o.backend as 'cuda' | 'cuda-emu';
  let t = performance.now();
  const { spec, feeds, params, tensors } = stepGraph(config, o.tokens);
  Object.assign(kiln, { params, paramTensors: tensors, graphSeconds: secs(t) });
  log(`graph: ${params.toLocaleString('en')} parameters in ${tensors} tensors, built in ${kiln.graphSeconds} s`);

  t = performance.now();
  const low = lowerProgram(spec, { precision: 'bf16' });
  kiln.lowerSeconds = secs(t);
  t = performance.now();
  const cu = renderProgramCuda(low.kernels, low.info, Math.ceil(low.plan.arenaBytes / 256) * 256);
  kiln.renderSeconds = secs(t);
  const m = low.plan;
  Object.assign(kiln, { kernels: low.kernels.length, unfusedKernels: low.unfusedKernels, distinctKernels: cu.distinct, plannedBytes: m.arenaBytes, scratchBytes: cu.scratchBytes,
    residentBytes: residentBytes(m), peakLiveBytes: m.peakLiveBytes, naiveBytes: m.naiveBytes, byKind: bytesByKind(m), recomputed: m.recomputed.length, flops: m.flops.base, sourceBytes: cu.source.length });
  save('lowered');
  log(`lowered in ${kiln.lowerSeconds} s (render ${kiln.renderSeconds} s): ${low.kernels.length} kernels (${cu.distinct} distinct), arena ${(m.arenaBytes / 2 ** 30).toFixed(2)} GiB`);
  if (backend === 'cuda-emu' && m.arenaBytes > os.totalmem() / 2) {
    notes.push(`the ${(m.arenaBytes / 2 ** 30).toFixed(1)} GiB arena is too big for the emulator on this host: stopped after lowering (use --config tiny)`);
    save('lowered; too big for the emulator');
    return;
  }

  t = performance.now();
  const parts = { ...low, ...cu, graph: o['cuda-graph'] };
  let host: CachedArtifact, cubin: CompiledEmuModule | undefined;
  if (backend === 'cuda') {
    const units = cu.distinct > 96 ? cu.units(Math.max(2, os.cpus().length)) : [cu.source];  // as compile() splits
    host = await compileCudaHost(units);
    Object.assign(kiln, { nvccSeconds: secs(t), nvccUnits: units.length, artifact: host.artifactPath });
  } else {
    host = cubin = await compileCudaEmu(cu.source, { kernels: [...new Set(cu.launches.map((l) => l.kernel))] });
    Object.assign(kiln, { nvccSeconds: secs(t), nvccNote: 'emulator: g++, not nvcc' });
  }
  kiln.compileSeconds = +((kiln.lowerSeconds as number) + (kiln.renderSeconds as number) + (kiln.nvccSeconds as number)).toFixed(2);
  save('compiled');
  log(`${backend === 'cuda' ? 'nvcc' : 'g++ (emulator)'}: ${kiln.nvccSeconds} s`);

  let dev: CudaDevice;
  try { dev = backend === 'cuda' ? CudaDevice.open() : await openEmulatedDevice(); } catch (e) {
    notes.push(`no GPU: ${(e as Error).message}`);
    save('compiled; no GPU');
    log(`no GPU: ${(e as Error).message}`);
    return;
  }
  kiln.device = dev.info.name;
  const used = () => { const mi = dev.memInfo(); return mi.totalBytes - mi.freeBytes; };
  if (dev.emulated) notes.push('emulator: the device memory figures are the host\'s RAM in use, not the program\'s');
  kiln.deviceUsedBeforeBytes = used();
  try {
    t = performance.now();
    const prog = new BenchProgram({ ...parts, host, cubin }, dev);
    Object.assign(kiln, { initSeconds: secs(t), launchMode: prog.launchMode, deviceUsedAfterInitBytes: used() });
    save('initialized');
    log(`arena allocated and parameters uploaded in ${kiln.initSeconds} s`);

    t = performance.now();
    const losses = [prog.run(feeds).loss[0]];
    Object.assign(kiln, { warmupMs: +(performance.now() - t).toFixed(1), losses });
    save('warm');
    log(`warm-up step: ${kiln.warmupMs} ms, loss ${losses[0]}`);
    const eventMs: number[] = [], wallMs: number[] = [];
    Object.assign(kiln, { eventMs, wallMs });
    for (let i = 0; i < o.steps; i++) {
      const slowest = Math.max(...wallMs, kiln.warmupMs as number) / 1e3;
      if (left() < 2 * slowest + (o.torch === 'skip' ? 5 : TORCH_RESERVE_S)) { notes.push(`Kiln: ${i} of ${o.steps} timed steps (deadline${i ? '' : '; only the warm-up step, with its first-run costs, was timed'})`); break; }
      t = performance.now();
      eventMs.push(+prog.time(1).toFixed(2));  // CUDA events around one step (the inputs stay as fed)
      wallMs.push(+(performance.now() - t).toFixed(2));
      Object.assign(kiln, { msPerStep: median(eventMs), wallMsPerStep: median(wallMs) });
      save('kiln steps');
    }
    if (left() > 2 * (Math.max(...wallMs, kiln.warmupMs as number) / 1e3) + 5) losses.push(prog.run(feeds).loss[0]);
    kiln.deviceUsedBytes = used();
    kiln.measuredBytes = (kiln.deviceUsedBytes as number) - (kiln.deviceUsedBeforeBytes as number);
    save('kiln done');
    log(`Kiln: ${kiln.msPerStep ?? '-'} ms per step (median of ${eventMs.length}, events; wall ${kiln.wallMsPerStep ?? '-'} ms); losses ${losses.join(', ')}; device memory used by the program ${((kiln.measuredBytes as number) / 2 ** 30).toFixed(2)} GiB`);
  } finally {
    try { dev.freeArena(); } catch (e) { notes.push(`freeing the arena failed: ${(e as Error).message}`); }  // before PyTorch starts; the context stays
  }
}

async function main(o: Opts): Promise<number> {
  const start = performance.now();
  const left = () => o.deadline - (performance.now() - start) / 1e3;
  const base = o.config === 'sdxl' ? sdxlUnetConfig : tinyUnetConfig;
  const config: UnetConfig = { ...base, sampleSize: o.size ?? (o.config === 'sdxl' ? 128 : base.sampleSize), ...(o.layers ? { transformerLayersPerBlock: o.layers } : {}) };
  const subset = !!o.layers && o.layers.join() !== base.transformerLayersPerBlock.join();
  const label = `${o.config === 'sdxl' ? 'SDXL' : 'tiny'} UNet${subset ? ` SUBSET: transformer layers per block ${o.layers!.join(',')} (full: ${base.transformerLayersPerBlock.join(',')})` : ''}, latent ${config.sampleSize}×${config.sampleSize}, batch 1, ${o.tokens} tokens; forward + MSE + backward + AdamW, bf16 storage, f32 masters`;
  fs.mkdirSync(o.out, { recursive: true });
  const file = path.join(o.out, `${o.backend === 'cuda' ? 'gpu' : 'emulator'}-${new Date().toISOString().slice(0, 10)}-unet${o.torch === 'only' ? '-torch' : ''}.json`);
  const kiln: Record<string, unknown> = {}, notes: string[] = [];
  const report: Record<string, unknown> = {
    date: new Date().toISOString(), host: os.hostname(), cpu: os.cpus()[0]?.model, cores: os.cpus().length, backend: o.backend, label, config, subset,
    tokens: o.tokens, precision: 'bf16', init: 'one N(0, 1) pattern scaled to each init, uploaded (not Program.initialize)', status: 'started', kiln, notes,
  };
  const save = (status?: string) => { if (status) report.status = status; report.elapsedSeconds = secs(start); writeJsonAtomic(file, report, 1); };
  save();
  log(`${label} → ${file}`);
  let failed = false;
  try {
    if (o.torch !== 'only') await kilnStep(o, config, { kiln, notes, save, left });
  } catch (e) {
    failed = true;
    kiln.error = (e as Error).message;
    save('kiln failed');
    log(`Kiln failed: ${(e as Error).message}`);
  }

  if (o.torch === 'skip') { save('done'); return failed ? 1 : 0; }
  const timeout = Math.min(o['torch-timeout'], Math.floor(left()));
  if (timeout < 5) { notes.push('PyTorch not run: deadline reached'); save('done'); return failed ? 1 : 0; }
  log(`PyTorch eager (${o.python}, ${timeout} s limit)…`);
  const r = await runTorch(o.python, { config, tokens: o.tokens, steps: o.steps, lr: LR, device: o['torch-device'] ?? (o.backend === 'cuda' ? 'cuda' : 'cpu'), compile: o['torch-compile'] }, timeout);
  report.torch = { ...r.result, ...(r.note ? { note: r.note } : {}) };
  report.torchSeconds = r.seconds;
  if (r.result?.ms && typeof kiln.msPerStep === 'number') report.torchOverKiln = +(r.result.ms / kiln.msPerStep).toFixed(3);
  save('done');
  log(`PyTorch: ${r.result?.ms ?? '-'} ms per step; torch / Kiln = ${report.torchOverKiln ?? '-'}${r.note ? `; ${r.note}` : ''}`);
  return failed ? 1 : 0;
}

if (isMain(import.meta.url)) await runCli(cli, (o) => main(o));
