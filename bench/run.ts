/**
 * CPU kernel microbenchmarks (issue 4): each case is built with Kiln's DSL, compiled, and timed with the
 * `benchmark` package beside TensorFlow.js's wasm backend on the same shapes, in the same process.
 *
 *   npx tsx bench/run.ts                 table on stdout, results saved to bench/results/cpu-<date>.json
 *   npx tsx bench/run.ts --json          the JSON on stdout (progress on stderr)
 *   options: --only matmul,conv,...  --quick (fewer samples)  --no-tfjs  --no-save
 *
 * What is timed:
 *   Kiln    `kiln_run` on the program's arena (every kernel of the program once, inputs already resident):
 *           no host copies in or out, no JS beyond one addon call.
 *   tfjs    the op(s) on tensors already in the wasm heap, result disposed unread (the wasm backend runs
 *           synchronously, so the op has finished when the call returns); no data() / dataSync() copy.
 * Both use each library's native layout for conv (Kiln NCHW/OIHW, tfjs NHWC/HWIO); attention in tfjs is
 * matMul → scale → softmax → matMul (tfjs has no fused attention op). Each case is also checked once:
 * max |Kiln − tfjs| / max |tfjs| over the output.
 *
 * Rates: GFLOP/s = (2·M·N·K for matmul, 2·N·O·Ho·Wo·C·KH·KW for conv, 4·B·Lq·Lk·d for attention) / time;
 * GB/s = (input + output bytes, each touched once) / time. Peaks come from bench/peak.cpp (FMA peak with all
 * OpenMP threads, measured like bench/kernels/gemm-peak.cpp; copy bandwidth counted read + write).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Benchmark from 'benchmark';
import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths, getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { compile, conv2d, groupNorm, input, sdpa, softmax, type CpuProgram, type Tensor } from '../compiler/index';
import { defineCli, exitUsage, parseOrExit, runCli } from '../tools/cli';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const CASE_KINDS = ['matmul', 'conv', 'attention', 'groupnorm', 'softmax'];
const cli = defineCli({
  command: 'npx tsx bench/run.ts',
  summary: 'CPU kernel microbenchmarks: Kiln beside TensorFlow.js wasm on the same shapes, results saved to bench/results/cpu-<date>.json.',
  options: {
    json: { type: 'flag', help: 'print the JSON report on stdout (progress on stderr)' },
    only: { type: 'string', help: `comma-separated case prefixes (${CASE_KINDS.join(', ')})` },
    quick: { type: 'flag', help: 'fewer samples' },
    'no-tfjs': { type: 'flag', help: 'Kiln only' },
    'no-save': { type: 'flag', help: 'do not write bench/results/' },
  },
  examples: ['npx tsx bench/run.ts --only matmul,conv --quick', 'npx tsx bench/run.ts --json --no-save'],
});
const { values: opts } = parseOrExit(cli);
const JSON_OUT = opts.json, QUICK = opts.quick, NO_TFJS = opts['no-tfjs'], NO_SAVE = opts['no-save'];
const ONLY = opts.only?.split(',');
for (const o of ONLY ?? []) if (!CASE_KINDS.some((k) => k.startsWith(o) || o.startsWith(k))) exitUsage(cli, `--only: no case starts with '${o}' (${CASE_KINDS.join(', ')})`);
const log = (s: string) => process.stderr.write(s + '\n');
// libgomp's default wait policy spins at barriers; on a shared 2-core machine a spinning thread whose peer was
// descheduled waits a whole time slice per barrier (conv 32ch 64²: 244 ms spinning vs 20 ms passive). Set before
// the first kernel library loads libgomp; an explicit OMP_WAIT_POLICY in the environment wins.
process.env.OMP_WAIT_POLICY ??= 'passive';

interface Case {
  name: string;
  shape: string;
  kind: 'flop' | 'bytes';
  work: number;                                      // flops or bytes
  kiln: () => { outputs: Record<string, Tensor> };
  feeds: Record<string, Float32Array>;
  /** tfjs: builds its inputs from the same feeds (its layout), returns the op and the output in Kiln's layout. */
  tfjs: (f: Record<string, Float32Array>) => { op: () => tf.Tensor; toKiln: (y: tf.Tensor) => tf.Tensor; inputs: tf.Tensor[] };
}

const rand = (n: number, seed: number) => {
  let s = seed >>> 0 || 1;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; a[i] = ((s >>> 0) / 4294967296 - 0.5) * 2; }
  return a;
};

function matmulCase(n: number): Case {
  return {
    name: `matmul ${n}³`, shape: `[${n},${n}]·[${n},${n}]`, kind: 'flop', work: 2 * n ** 3,
    kiln: () => { const a = input('a', [n, n]), b = input('b', [n, n]); return { outputs: { y: a.matmul(b as never) } }; },
    feeds: { a: rand(n * n, 1), b: rand(n * n, 2) },
    tfjs: (f) => { const a = tf.tensor2d(f.a, [n, n]), b = tf.tensor2d(f.b, [n, n]); return { op: () => tf.matMul(a, b), toKiln: (y) => y, inputs: [a, b] }; },
  };
}

function convCase(label: string, N: number, C: number, O: number, H: number, W: number): Case {
  return {
    name: `conv3x3 ${label}`, shape: `x[${N},${C},${H},${W}] w[${O},${C},3,3] pad 1`, kind: 'flop', work: 2 * N * O * H * W * C * 9,
    kiln: () => { const x = input('x', [N, C, H, W]), w = input('w', [O, C, 3, 3]); return { outputs: { y: conv2d(x, w, undefined, { padding: 1 }) } }; },
    feeds: { x: rand(N * C * H * W, 3), w: rand(O * C * 9, 4).map((v) => v * 0.05) },
    tfjs: (f) => {
      const x = tf.tidy(() => tf.transpose(tf.tensor4d(f.x, [N, C, H, W]), [0, 2, 3, 1])) as tf.Tensor4D;
      const w = tf.tidy(() => tf.transpose(tf.tensor4d(f.w, [O, C, 3, 3]), [2, 3, 1, 0])) as tf.Tensor4D;
      return { op: () => tf.conv2d(x, w, 1, 'same'), toKiln: (y) => tf.transpose(y, [0, 3, 1, 2]), inputs: [x, w] };
    },
  };
}

function attnCase(label: string, B: number, Lq: number, Lk: number, d: number): Case {
  const scale = 1 / Math.sqrt(d);
  return {
    name: `attention ${label}`, shape: `q[${B},${Lq},${d}] kv[${B},${Lk},${d}]`, kind: 'flop', work: 4 * B * Lq * Lk * d,
    kiln: () => { const q = input('q', [B, Lq, d]), k = input('k', [B, Lk, d]), v = input('v', [B, Lk, d]); return { outputs: { y: sdpa(q, k, v, { scale }) } }; },
    feeds: { q: rand(B * Lq * d, 5), k: rand(B * Lk * d, 6), v: rand(B * Lk * d, 7) },
    tfjs: (f) => {
      const q = tf.tensor3d(f.q, [B, Lq, d]), k = tf.tensor3d(f.k, [B, Lk, d]), v = tf.tensor3d(f.v, [B, Lk, d]);
      return { op: () => tf.tidy(() => tf.matMul(tf.softmax(tf.mul(tf.matMul(q, k, false, true), scale)), v)), toKiln: (y) => y, inputs: [q, k, v] };
    },
  };
}

function gnCase(N: number, C: number, H: number, W: number, G: number): Case {
  const n = N * C * H * W;
  return {
    name: 'groupnorm+silu', shape: `[${N},${C},${H},${W}] ${G} groups`, kind: 'bytes', work: 2 * 4 * n,
    kiln: () => {
      const x = input('x', [N, C, H, W]), g = input('gamma', [C]), b = input('beta', [C]);
      return { outputs: { y: groupNorm(x, G, g, b).silu() } };
    },
    feeds: { x: rand(n, 8), gamma: rand(C, 9).map((v) => 1 + 0.1 * v), beta: rand(C, 10).map((v) => 0.1 * v) },
    tfjs: (f) => {
      const x = tf.tensor4d(f.x, [N, C, H, W]), g = tf.tensor3d(f.gamma, [C, 1, 1]), b = tf.tensor3d(f.beta, [C, 1, 1]);
      const op = () => tf.tidy(() => {
        const r = tf.reshape(x, [N, G, -1]);
        const { mean, variance } = tf.moments(r, 2, true);
        const y = tf.add(tf.mul(tf.reshape(tf.mul(tf.sub(r, mean), tf.rsqrt(tf.add(variance, 1e-5))), [N, C, H, W]), g), b);
        return tf.mul(y, tf.sigmoid(y));
      });
      return { op, toKiln: (y) => y, inputs: [x, g, b] };
    },
  };
}

function softmaxCase(R: number, L: number): Case {
  return {
    name: 'softmax', shape: `[${R},${L}] rows`, kind: 'bytes', work: 2 * 4 * R * L,
    kiln: () => { const x = input('x', [R, L]); return { outputs: { y: softmax(x) } }; },
    feeds: { x: rand(R * L, 11).map((v) => v * 4) },
    tfjs: (f) => { const x = tf.tensor2d(f.x, [R, L]); return { op: () => tf.softmax(x), toKiln: (y) => y, inputs: [x] }; },
  };
}

const CASES: Case[] = [
  matmulCase(1024), matmulCase(512),
  convCase('64ch 56²', 1, 64, 64, 56, 56), convCase('32ch 64² (UNet)', 1, 32, 32, 64, 64),
  attnCase('self 8×1024²×64', 8, 1024, 1024, 64), attnCase('cross 8×1024×77×64', 8, 1024, 77, 64),
  gnCase(1, 320, 64, 64, 32), softmaxCase(4096, 1024),
].filter((c) => !ONLY || ONLY.some((o) => c.name.startsWith(o)));

interface Timing { medianMs: number; minMs: number; rmePct: number; samples: number }

function time(name: string, fn: () => void): Timing {
  fn(); // warm-up: first-touch pages, thread pools
  const b = new Benchmark(name, fn, { minSamples: QUICK ? 3 : 8, maxTime: QUICK ? 0.5 : 2, initCount: 1 });
  b.run();
  if (b.error) throw b.error;
  const s = [...b.stats.sample].sort((x, y) => x - y);
  return { medianMs: s[s.length >> 1] * 1e3, minMs: s[0] * 1e3, rmePct: b.stats.rme, samples: s.length };
}

function machinePeaks(): { threads: number; fmaGflops: number; fmaGflops1: number; copyGBs: number; source: string } {
  const exe = path.join(os.tmpdir(), 'kiln-bench-peak');
  try {
    execFileSync('g++', ['-O3', '-march=native', '-fopenmp', '-std=c++17', path.join(here, 'peak.cpp'), '-o', exe]);
    return { ...JSON.parse(execFileSync(exe, { encoding: 'utf8' })), source: 'bench/peak.cpp' };
  } catch (e) {
    log(`peak probe failed (${(e as Error).message.split('\n')[0]}); using kernels/README.md's 80.3 GFLOP/s and 20 GB/s`);
    return { threads: os.cpus().length, fmaGflops: 80.3, fmaGflops1: 40.1, copyGBs: 20, source: 'assumed' };
  }
}

async function main() {
  const load0 = os.loadavg();
  const peak = machinePeaks();
  log(`peak: ${peak.fmaGflops} GFLOP/s FMA (${peak.threads} threads; ${peak.fmaGflops1} on 1), copy ${peak.copyGBs} GB/s`);
  let tfjsInfo = { variant: 'not run', threads: 0 };
  if (!NO_TFJS) {
    await import('@tensorflow/tfjs-backend-wasm');
    setWasmPaths(path.join(root, 'node_modules/@tensorflow/tfjs-backend-wasm/dist') + '/');
    if (!(await tf.setBackend('wasm'))) throw new Error('tfjs wasm backend did not initialise');
    await tf.ready();
    const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT'), mt = tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT');
    tfjsInfo = { variant: mt && simd ? 'threaded-simd' : simd ? 'simd' : 'plain', threads: getThreadsCount() };
    log(`tfjs-wasm ${tf.version_core}: ${tfjsInfo.variant}, ${tfjsInfo.threads} thread(s) (the threaded build needs Web Workers and does not load in Node)`);
  }

  const results = [];
  for (const c of CASES) {
    const t0 = performance.now();
    const prog: CpuProgram = await compile(c.kiln());
    const compileMs = performance.now() - t0;
    const ky = prog.run(c.feeds).y as Float32Array;
    const kiln = time(`kiln ${c.name}`, () => prog.parts.lib.call('kiln_run', prog.arena));
    const rate = (ms: number) => c.work / (ms / 1e3) / 1e9;
    const peakRate = c.kind === 'flop' ? peak.fmaGflops : peak.copyGBs;
    const row: Record<string, unknown> = {
      name: c.name, shape: c.shape, unit: c.kind === 'flop' ? 'GFLOP/s' : 'GB/s', work: c.work,
      kiln: { ...kiln, rate: rate(kiln.medianMs), bestRate: rate(kiln.minMs), pctPeak: (100 * rate(kiln.medianMs)) / peakRate,
        kernels: prog.kernels.length, kernelNames: prog.kernels.map((k) => k.name), compileMs },
    };
    if (!NO_TFJS) {
      const t = c.tfjs(c.feeds);
      const ty = tf.tidy(() => t.toKiln(t.op()));
      const td = ty.dataSync() as Float32Array;
      let maxDiff = 0, maxRef = 0;
      for (let i = 0; i < td.length; i++) { maxDiff = Math.max(maxDiff, Math.abs(td[i] - ky[i])); maxRef = Math.max(maxRef, Math.abs(td[i])); }
      ty.dispose();
      const tj = time(`tfjs ${c.name}`, () => t.op().dispose());
      t.inputs.forEach((x) => x.dispose());
      row.tfjs = { ...tj, rate: rate(tj.medianMs), pctPeak: (100 * rate(tj.medianMs)) / peakRate };
      row.speedup = tj.medianMs / kiln.medianMs;
      row.relErr = maxDiff / maxRef;
    }
    results.push(row);
    log(`${c.name}: kiln ${kiln.medianMs.toFixed(2)} ms${row.tfjs ? `, tfjs ${(row.tfjs as Timing).medianMs.toFixed(2)} ms` : ''}`);
  }

  const cpu = os.cpus();
  const report = {
    date: new Date().toISOString(),
    machine: { cpu: cpu[0]?.model, logicalCores: cpu.length, memGiB: +(os.totalmem() / 2 ** 30).toFixed(1), node: process.version,
      ompThreads: process.env.OMP_NUM_THREADS ?? `default (${peak.threads})`, ompWaitPolicy: process.env.OMP_WAIT_POLICY, loadavgBefore: load0, loadavgAfter: os.loadavg() },
    peak, tfjs: { version: tf.version_core, ...tfjsInfo },
    timing: 'median (and min) of benchmark.js samples; Kiln: kiln_run on the resident arena; tfjs: op on resident tensors, output disposed unread',
    results,
  };
  if (!NO_SAVE) {
    const dir = path.join(here, 'results');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `cpu-${report.date.slice(0, 10)}.json`);
    writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
    log(`saved ${path.relative(root, file)}`);
  }
  if (JSON_OUT) { console.log(JSON.stringify(report, null, 2)); return; }
  console.log(table(report));
}

type Row = { name: string; shape: string; unit: string; kiln: Timing & { rate: number; pctPeak: number; kernels: number }; tfjs?: Timing & { rate: number }; speedup?: number; relErr?: number };
function table(r: { results: unknown[]; peak: { fmaGflops: number; copyGBs: number }; machine: { loadavgBefore: number[] } }): string {
  const f = (x: number, d = 1) => x.toFixed(d);
  const lines = [
    `| case | shape | Kiln ms (min) | Kiln rate | % of peak | tfjs-wasm ms | tfjs rate | Kiln speed-up | kernels | rel. err |`,
    `| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |`,
  ];
  for (const x of r.results as Row[]) {
    lines.push(`| ${x.name} | ${x.shape} | ${f(x.kiln.medianMs, 2)} (${f(x.kiln.minMs, 2)}) | ${f(x.kiln.rate)} ${x.unit} | ${f(x.kiln.pctPeak)}% | ` +
      (x.tfjs ? `${f(x.tfjs.medianMs, 2)} | ${f(x.tfjs.rate)} ${x.unit} | ${f(x.speedup!, 2)}× | ` : '– | – | – | ') + `${x.kiln.kernels} | ${x.relErr?.toExponential(1) ?? '–'} |`);
  }
  lines.push('', `peak: ${r.peak.fmaGflops} GFLOP/s FMA, ${r.peak.copyGBs} GB/s copy; load average before: ${r.machine.loadavgBefore.map((v) => v.toFixed(2)).join(' ')}`);
  return lines.join('\n');
}

await runCli(cli, main);
