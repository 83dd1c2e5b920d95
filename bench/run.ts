/**
 * CPU kernel microbenchmarks (issue 4): each case is built with Kiln's DSL, compiled, and timed with the
 * `benchmark` package beside TensorFlow.js's wasm backend on the same shapes, in the same process.
 *
 *   npx tsx bench/run.ts                 table on stdout, results saved to bench/results/cpu-<date>.json
 *   npx tsx bench/run.ts --json          the JSON on stdout (progress on stderr)
 *   options: --only matmul,conv,...  --quick (fewer samples)  --rounds N  --no-tfjs  --no-save  --isa avx2
 *
 * PyTorch and OpenBLAS (bench/peers) are timed in rounds interleaved with Kiln, case by case (--rounds, default 3),
 * so that a peer and Kiln see the same machine; ratios are the median of the rounds' ratios.
 *
 * `--isa avx2` emulates an AVX2-only CPU on this one (same cores and caches, capped ISA): Kiln runs with
 * KILN_CPU_ISA=avx2 (the GEMM / conv micro-kernels) and builds its programs and kernel library with AVX-512 off
 * (KILN_CXX=bench/cxx-no-avx512.sh: g++ … -mno-avx512f, so the auto-vectorized row kernels, packers and epilogues
 * use ymm too); every peer is capped as well (bench/peers/peers.ts peerEnv: ATen, oneDNN and OpenBLAS at AVX2,
 * checked by bench/peers/isa_probe.py and recorded as `peerIsa`); tfjs-wasm is unchanged (wasm SIMD is 128-bit).
 * Results go to bench/results/cpu-avx2cap-<date>.json.
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
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdirSync } from 'node:fs';
import { writeJsonAtomic } from '../models/io/atomicWrite';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Benchmark from 'benchmark';
import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths, getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { compile, conv2d, groupNorm, input, layerNorm, logSoftmax, sdpa, softmax, type CpuProgram, type Tensor } from '../compiler/index';
import { writeChart } from '../models/io/plot';
import { openblasPeer, peerIsaProbe, relErr, TorchPeer, type PeerCase, type PeerIsa, type PeerTiming } from './peers/peers';
import { unetStep, type UnetStepResult } from './peers/unet-step';
import { defineCli, exitUsage, parseOrExit, runCli } from '../tools/cli';

const here = path.dirname(fileURLToPath(import.meta.url));
/** A path inside the repository as written in the results (no machine's absolute paths); anything else as is. */
const repoRelative = (p: string) => (path.isAbsolute(p) && p.startsWith(path.dirname(here) + path.sep) ? path.relative(path.dirname(here), p) : p);
const root = path.resolve(here, '..');
const CASE_KINDS = ['matmul', 'conv', 'attention', 'groupnorm', 'softmax', 'log-softmax', 'layernorm', 'unet'];
const cli = defineCli({
  command: 'npx tsx bench/run.ts',
  summary: 'CPU kernel microbenchmarks: Kiln beside TensorFlow.js wasm on the same shapes, results saved to bench/results/cpu-<date>.json.',
  options: {
    json: { type: 'flag', help: 'print the JSON report on stdout (progress on stderr)' },
    only: { type: 'string', help: `comma-separated case prefixes (${CASE_KINDS.join(', ')})` },
    quick: { type: 'flag', help: 'fewer samples, one round' },
    rounds: { type: 'int', min: 1, max: 50, help: 'rounds: in each, every case is timed on Kiln, then PyTorch, then OpenBLAS (about 1 s each); ratios are the median over the rounds (default 3, 1 with --quick)' },
    'no-tfjs': { type: 'flag', help: 'no TensorFlow.js peer' },
    'no-peers': { type: 'flag', help: 'no PyTorch / OpenBLAS peers (bench/peers)' },
    'no-save': { type: 'flag', help: 'do not write bench/results/' },
    isa: { type: 'enum', values: ['native', 'avx2'], default: 'native', help: 'avx2: emulate an AVX2-only CPU (Kiln and every peer capped at AVX2; results cpu-avx2cap-<date>.json)' },
  },
  examples: ['npx tsx bench/run.ts --only matmul,conv --quick', 'npx tsx bench/run.ts --json --no-save', 'npx tsx bench/run.ts --isa avx2 --no-tfjs'],
});
const { values: opts } = parseOrExit(cli);
const JSON_OUT = opts.json, QUICK = opts.quick, NO_TFJS = opts['no-tfjs'], NO_SAVE = opts['no-save'], NO_PEERS = opts['no-peers'];
const ONLY = opts.only?.split(',');
const ROUNDS = (opts.rounds as number | undefined) ?? (QUICK ? 1 : 3);
/** Samples per side per round: at least MIN_SAMPLES, about MAX_TIME seconds (2 s split over the rounds, ≥ 0.5 s). */
const MIN_SAMPLES = QUICK ? 3 : 5, MAX_TIME = QUICK ? 0.5 : Math.max(0.5, 2 / ROUNDS);
/** Samples of what is timed once, outside the rounds (tfjs-wasm, the tiny-UNet step): at least ONCE_SAMPLES, about ONCE_TIME s. */
const ONCE_SAMPLES = QUICK ? 3 : 8, ONCE_TIME = QUICK ? 0.5 : 2;
const ISA = opts.isa as PeerIsa;
for (const o of ONLY ?? []) if (!CASE_KINDS.some((k) => k.startsWith(o) || o.startsWith(k))) exitUsage(cli, `--only: no case starts with '${o}' (${CASE_KINDS.join(', ')})`);
const log = (s: string) => process.stderr.write(s + '\n');
// libgomp's default wait policy spins at barriers; on a shared 2-core machine a spinning thread whose peer was
// descheduled waits a whole time slice per barrier (conv 32ch 64²: 244 ms spinning vs 20 ms passive). Set before
// the first kernel library loads libgomp; an explicit OMP_WAIT_POLICY in the environment wins.
process.env.OMP_WAIT_POLICY ??= 'passive';
// --isa avx2: set before the first compile (the kernel library reads KILN_CPU_ISA once per process). The compiler
// wrapper puts -mno-avx512f after the runtime's -march=native; its path is part of the kernel cache key.
if (ISA === 'avx2') {
  process.env.KILN_CPU_ISA = 'avx2';
  process.env.KILN_CXX = path.join(here, 'cxx-no-avx512.sh');
}

interface Case {
  name: string;
  shape: string;
  kind: 'flop' | 'bytes';
  work: number;                                      // flops or bytes
  kiln: () => { outputs: Record<string, Tensor> };
  feeds: Record<string, Float32Array>;
  /** The PyTorch peer's op on the same feeds (Kiln's layout is PyTorch's: NCHW / OIHW). */
  torch: { op: PeerCase['op']; inputs: Record<string, readonly number[]>; attrs?: Record<string, unknown> };
  /** tfjs: builds its inputs from the same feeds (its layout), returns the op and the output in Kiln's layout. */
  tfjs?: (f: Record<string, Float32Array>) => { op: () => tf.Tensor; toKiln: (y: tf.Tensor) => tf.Tensor; inputs: tf.Tensor[] };
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
    torch: { op: 'matmul', inputs: { a: [n, n], b: [n, n] } },
    tfjs: (f) => { const a = tf.tensor2d(f.a, [n, n]), b = tf.tensor2d(f.b, [n, n]); return { op: () => tf.matMul(a, b), toKiln: (y) => y, inputs: [a, b] }; },
  };
}

function convCase(label: string, N: number, C: number, O: number, H: number, W: number, k = 3, stride = 1, pad = (k - 1) / 2): Case {
  const Ho = Math.floor((H + 2 * pad - k) / stride) + 1, Wo = Math.floor((W + 2 * pad - k) / stride) + 1;
  return {
    name: `conv${k}x${k} ${label}`, shape: `x[${N},${C},${H},${W}] w[${O},${C},${k},${k}]${stride > 1 ? ` stride ${stride}` : ''}${pad ? ` pad ${pad}` : ''}`,
    kind: 'flop', work: 2 * N * O * Ho * Wo * C * k * k,
    kiln: () => { const x = input('x', [N, C, H, W]), w = input('w', [O, C, k, k]); return { outputs: { y: conv2d(x, w, undefined, { padding: pad, stride }) } }; },
    feeds: { x: rand(N * C * H * W, 3), w: rand(O * C * k * k, 4).map((v) => v * 0.05) },
    torch: { op: 'conv2d', inputs: { x: [N, C, H, W], w: [O, C, k, k] }, attrs: { stride, padding: pad } },
    tfjs: (f) => {
      const x = tf.tidy(() => tf.transpose(tf.tensor4d(f.x, [N, C, H, W]), [0, 2, 3, 1])) as tf.Tensor4D;
      const w = tf.tidy(() => tf.transpose(tf.tensor4d(f.w, [O, C, k, k]), [2, 3, 1, 0])) as tf.Tensor4D;
      return { op: () => tf.conv2d(x, w, stride, pad), toKiln: (y) => tf.transpose(y, [0, 3, 1, 2]), inputs: [x, w] };
    },
  };
}

function attnCase(label: string, B: number, Lq: number, Lk: number, d: number): Case {
  const scale = 1 / Math.sqrt(d);
  return {
    name: `attention ${label}`, shape: `q[${B},${Lq},${d}] kv[${B},${Lk},${d}]`, kind: 'flop', work: 4 * B * Lq * Lk * d,
    kiln: () => { const q = input('q', [B, Lq, d]), k = input('k', [B, Lk, d]), v = input('v', [B, Lk, d]); return { outputs: { y: sdpa(q, k, v, { scale }) } }; },
    feeds: { q: rand(B * Lq * d, 5), k: rand(B * Lk * d, 6), v: rand(B * Lk * d, 7) },
    torch: { op: 'attention', inputs: { q: [B, Lq, d], k: [B, Lk, d], v: [B, Lk, d] }, attrs: { scale } },
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
    torch: { op: 'groupnorm_silu', inputs: { x: [N, C, H, W], gamma: [C], beta: [C] }, attrs: { groups: G, eps: 1e-5 } },
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

function softmaxCase(R: number, L: number, log = false): Case {
  return {
    name: log ? 'log-softmax' : 'softmax', shape: `[${R},${L}] rows`, kind: 'bytes', work: 2 * 4 * R * L,
    kiln: () => { const x = input('x', [R, L]); return { outputs: { y: log ? logSoftmax(x) : softmax(x) } }; },
    feeds: { x: rand(R * L, 11).map((v) => v * 4) },
    torch: { op: log ? 'log_softmax' : 'softmax', inputs: { x: [R, L] } },
    tfjs: (f) => { const x = tf.tensor2d(f.x, [R, L]); return { op: () => (log ? tf.logSoftmax(x) : tf.softmax(x)), toKiln: (y) => y, inputs: [x] }; },
  };
}

function layerNormCase(R: number, L: number): Case {
  return {
    name: 'layernorm', shape: `[${R},${L}] rows`, kind: 'bytes', work: 2 * 4 * R * L,
    kiln: () => { const x = input('x', [R, L]), g = input('gamma', [L]), b = input('beta', [L]); return { outputs: { y: layerNorm(x, g, b) } }; },
    feeds: { x: rand(R * L, 12), gamma: rand(L, 13).map((v) => 1 + 0.1 * v), beta: rand(L, 14).map((v) => 0.1 * v) },
    torch: { op: 'layernorm', inputs: { x: [R, L], gamma: [L], beta: [L] }, attrs: { eps: 1e-5 } },
  };
}

const CASES: Case[] = [
  matmulCase(512), matmulCase(1024), matmulCase(2048),
  convCase('64ch 56²', 1, 64, 64, 56, 56), convCase('32ch 64² (UNet)', 1, 32, 32, 64, 64),
  convCase('320ch 64² (UNet)', 1, 320, 320, 64, 64), convCase('320→640ch 32² (UNet shortcut)', 1, 320, 640, 32, 32, 1),
  convCase('320ch 64² stride 2 (UNet downsample)', 1, 320, 320, 64, 64, 3, 2),
  attnCase('self 8×1024²×64', 8, 1024, 1024, 64), attnCase('cross 8×1024×77×64', 8, 1024, 77, 64),
  gnCase(1, 320, 64, 64, 32), softmaxCase(4096, 1024), softmaxCase(4096, 1024, true), layerNormCase(4096, 320),
].filter((c) => !ONLY || ONLY.some((o) => c.name.startsWith(o)));

interface Timing { medianMs: number; minMs: number; samples: number; rmePct?: number }

/** Kiln (and the tiny-UNet step): one sample per call, timed like the peers time theirs (bench/peers: torch_cpu.py,
 * unet_torch.py, openblas_sgemm.cpp): two warm-up calls, then calls until at least `minSamples` and about `maxTime`
 * seconds (at most 1000); median and best. The same statistic on both sides: benchmark.js's samples (used here
 * until 2026-12-03) are means over cycles of many calls, which keep the rare slow call (a thread woken late) that a
 * per-call median drops, so they read a few % slower than the peers' medians of the same distribution. */
function time(_name: string, fn: () => void, minSamples = MIN_SAMPLES, maxTime = MAX_TIME): Timing {
  fn();
  fn();
  const ms: number[] = [];
  const start = performance.now();
  while (ms.length < minSamples || (performance.now() - start < maxTime * 1e3 && ms.length < 1000)) {
    const t0 = performance.now();
    fn();
    ms.push(performance.now() - t0);
  }
  ms.sort((x, y) => x - y);
  return { medianMs: ms[ms.length >> 1], minMs: ms[0], samples: ms.length };
}

/** tfjs-wasm (not a target peer): benchmark.js, median and best of its samples (each a mean over a cycle of calls). */
function timeBenchmarkJs(name: string, fn: () => void): Timing {
  fn(); // warm-up: first-touch pages, thread pools
  const b = new Benchmark(name, fn, { minSamples: ONCE_SAMPLES, maxTime: ONCE_TIME, initCount: 1 });
  b.run();
  if (b.error) throw b.error;
  const s = [...b.stats.sample].sort((x, y) => x - y);
  return { medianMs: s[s.length >> 1] * 1e3, minMs: s[0] * 1e3, rmePct: b.stats.rme, samples: s.length };
}

function machinePeaks(): { threads: number; fmaGflops: number; fmaGflops1: number; copyGBs: number; source: string } {
  const exe = path.join(os.tmpdir(), 'kiln-bench-peak');
  try {
    // The FMA probe on the vectors Kiln's kernels use: zmm on an AVX-512 CPU, ymm when --isa avx2 caps it.
    execFileSync('g++', ['-O3', '-march=native', ...(ISA === 'avx2' ? ['-mno-avx512f'] : []), '-fopenmp', '-std=c++17', path.join(here, 'peak.cpp'), '-o', exe]);
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

  const results: Record<string, unknown>[] = [];
  const kilnOut: Float32Array[] = [];
  const progs: CpuProgram[] = [];
  let cpuIsa: unknown;
  for (const c of CASES) {
    const t0 = performance.now();
    const prog: CpuProgram = await compile(c.kiln());
    const compileMs = performance.now() - t0;
    const ky = prog.run(c.feeds).y as Float32Array;
    kilnOut.push(ky);
    progs.push(prog);
    cpuIsa ??= prog.parts.cpuIsa;
    const row: Record<string, unknown> = {
      name: c.name, shape: c.shape, unit: c.kind === 'flop' ? 'GFLOP/s' : 'GB/s', work: c.work,
      kiln: { kernels: prog.kernels.length, kernelNames: prog.kernels.map((k) => k.name), compileMs },
    };
    if (!NO_TFJS && c.tfjs) {
      const t = c.tfjs(c.feeds);
      const ty = tf.tidy(() => t.toKiln(t.op()));
      const td = ty.dataSync() as Float32Array;
      let maxDiff = 0, maxRef = 0;
      for (let i = 0; i < td.length; i++) { maxDiff = Math.max(maxDiff, Math.abs(td[i] - ky[i])); maxRef = Math.max(maxRef, Math.abs(td[i])); }
      ty.dispose();
      const tj = timeBenchmarkJs(`tfjs ${c.name}`, () => t.op().dispose());
      t.inputs.forEach((x) => x.dispose());
      row.tfjs = tj;
      row.relErr = maxDiff / maxRef;
    }
    results.push(row);
  }

  const torch = NO_PEERS ? undefined : await startTorch(results, kilnOut, peak.threads);
  log(`timing ${CASES.length} cases in ${ROUNDS} round(s), Kiln and its peers in turn on each case`);
  const rounds: Record<string, { kiln: Timing; torch?: PeerTiming; openblas?: PeerTiming }[]> = {};
  let openblas: unknown = NO_PEERS ? 'not run (--no-peers)' : 'no matmul case';
  try {
    for (let r = 0; r < ROUNDS; r++) {
      for (const [i, c] of CASES.entries()) {
        // OpenBLAS's idle threads (inside PyTorch too) spin ~0.1 s after a call before they sleep: let them settle.
        if (!NO_PEERS) await sleep(250);
        const kiln = time(`kiln ${c.name}`, () => progs[i].parts.lib.call('kiln_run', progs[i].arena));
        const entry: (typeof rounds)[string][number] = { kiln };
        if (torch?.ok && torch.usable[i]) entry.torch = await torch.peer.time(i, MIN_SAMPLES, MAX_TIME);
        if (!NO_PEERS && c.torch.op === 'matmul') {
          const [M, K] = c.torch.inputs.a, N = c.torch.inputs.b[1];
          const ob = openblasPeer(M, N, K, c.feeds.a, c.feeds.b, peak.threads, MIN_SAMPLES, MAX_TIME, ISA);
          if (!ob.ok) openblas = ob.note;
          else {
            openblas = { config: ob.config, threads: peak.threads };
            const err = relErr(kilnOut[i], ob.out);
            results[i].openblasRelErr = err;
            if (err < 1e-3) entry.openblas = ob.timing;
          }
        }
        (rounds[c.name] ??= []).push(entry);
        log(`round ${r + 1}/${ROUNDS} ${c.name}: kiln ${kiln.medianMs.toFixed(3)} ms` +
          (entry.torch ? `, PyTorch ${entry.torch.medianMs.toFixed(3)}` : '') + (entry.openblas ? `, OpenBLAS ${entry.openblas.medianMs.toFixed(3)}` : ''));
      }
    }
  } finally {
    if (torch?.ok) torch.peer.close();  // its process and its temporary folder, whatever happened
  }
  const loadRounds = os.loadavg();
  CASES.forEach((c, i) => summarize(results[i], rounds[c.name], c, c.kind === 'flop' ? peak.fmaGflops : peak.copyGBs));
  const peers = { torch: NO_PEERS ? 'not run (--no-peers)' : torch!.ok ? { ...torch!.peer.info, loadavgAfter: os.loadavg() } : torch!.note, openblas };

  const peerIsa = { isa: ISA, kiln: { KILN_CPU_ISA: process.env.KILN_CPU_ISA ?? 'auto', cxx: repoRelative(process.env.KILN_CXX ?? 'g++') },
    peers: NO_PEERS ? 'not run (--no-peers)' : peerIsaProbe(ISA), tfjs: 'unchanged (wasm SIMD, 128-bit)' };
  log(`peer ISA (${ISA}): ${JSON.stringify(peerIsa.peers)}`);
  let unet: UnetStepResult | undefined;
  if (!ONLY || ONLY.some((o) => 'unet'.startsWith(o))) {
    log('tiny-UNet training step: compiling…');
    unet = await unetStep(peak.threads, ONCE_SAMPLES, ONCE_TIME, (name, fn) => time(name, fn, ONCE_SAMPLES, ONCE_TIME), !NO_PEERS, ISA);
    log(`tiny-UNet step: kiln ${unet.kiln.medianMs.toFixed(2)} ms${unet.torch ? `, PyTorch ${unet.torch.medianMs.toFixed(2)} ms` : ''}${unet.note ? ` (${unet.note})` : ''}`);
  }

  const cpu = os.cpus();
  const report = {
    date: new Date().toISOString(),
    machine: { cpu: cpu[0]?.model, logicalCores: cpu.length, memGiB: +(os.totalmem() / 2 ** 30).toFixed(1), node: process.version,
      ompThreads: process.env.OMP_NUM_THREADS ?? `default (${peak.threads})`, ompWaitPolicy: process.env.OMP_WAIT_POLICY,
      loadavgBefore: load0, loadavgAfterRounds: loadRounds, loadavgAfter: os.loadavg() },
    cpuIsa, peerIsa, peak, tfjs: { version: tf.version_core, ...tfjsInfo }, peers, unetStep: unet,
    timing: 'median (and min = best of N) of per-call samples for Kiln (kiln_run on the resident arena), PyTorch and OpenBLAS alike; tfjs (benchmark.js): median of cycle means, op on resident tensors, output disposed unread; ' +
      'PyTorch: eager op under torch.no_grad() on resident tensors, same thread count (bench/peers/torch_cpu.py); OpenBLAS: cblas_sgemm (bench/peers/openblas_sgemm.cpp). ' +
      `Rounds: ${ROUNDS}; in each, every case is timed on Kiln, then PyTorch, then OpenBLAS (each side at least ${MIN_SAMPLES} samples, about ${MAX_TIME} s), so both sides see the same machine. ` +
      'A side\'s medianMs is the median of its round medians (roundMediansMs), minMs its best sample. Ratios are peer time / Kiln time (> 1: Kiln faster): vs* the median over the rounds of that round\'s ratio of medians, vs*Best the ratio of the best samples',
    results,
  };
  if (!NO_SAVE) {
    const dir = path.join(here, 'results');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `cpu-${ISA === 'avx2' ? 'avx2cap-' : ''}${report.date.slice(0, 10)}.json`);
    writeJsonAtomic(file, report, 2);
    log(`saved ${path.relative(root, file)}`);
    const chart = writeChart(file.replace(/\.json$/, '-ratios'), ratioChart(report.results as Row[], report.machine.loadavgBefore, unet));
    log(`saved ${path.relative(root, chart.svg)}, ${path.relative(root, chart.png)}`);
  }
  if (JSON_OUT) { console.log(JSON.stringify(report, null, 2)); return; }
  console.log(table(report));
  if (unet) {
    console.log(`\n${unet.name} (${unet.shape}, ${unet.params} parameters): Kiln ${unet.kiln.medianMs.toFixed(2)} (${unet.kiln.minMs.toFixed(2)}) ms` +
      (unet.torch ? `, PyTorch eager ${unet.torch.medianMs.toFixed(2)} (${unet.torch.minMs.toFixed(2)}) ms, ` +
        `prediction rel. err ${unet.torch.relErr.toExponential(1)}, loss ${unet.torch.lossKiln.toPrecision(6)} vs ${unet.torch.lossTorch.toPrecision(6)}` : '') +
      (unet.vsTorch ? `; Kiln speed-up ${unet.vsTorch.toFixed(2)}× (best ${unet.vsTorchBest!.toFixed(2)}×)` : '') + (unet.note ? ` — ${unet.note}` : ''));
  }
}

/** The PyTorch peer process with every case loaded; `usable[i]`: its output of case i agrees with Kiln's (a peer
 * whose output disagrees is reported, not timed). */
async function startTorch(results: Record<string, unknown>[], kilnOut: Float32Array[], threads: number):
  Promise<{ ok: true; peer: TorchPeer; usable: boolean[] } | { ok: false; note: string }> {
  const tcases: PeerCase[] = CASES.map((c) => ({ name: c.name, op: c.torch.op, attrs: c.torch.attrs,
    inputs: Object.fromEntries(Object.entries(c.torch.inputs).map(([k, shape]) => [k, { shape, data: c.feeds[k] }])) }));
  log(`PyTorch peer: loading ${tcases.length} cases…`);
  const tr = await TorchPeer.start(tcases, threads, ISA);
  if (!tr.ok) { log(tr.note); return tr; }
  const usable = CASES.map((_, i) => {
    const err = relErr(kilnOut[i], tr.peer.outs[i]);
    results[i].torchRelErr = err;
    return err < 1e-3;
  });
  return { ok: true, peer: tr.peer, usable };
}

const median = (xs: number[]) => { const s = [...xs].sort((x, y) => x - y); return s[s.length >> 1]; };

/** A row's times and ratios from its rounds: each side's median is the median of its round medians and its best
 * the best sample of any round; a ratio (peer time / Kiln time) is the median over the rounds of that round's
 * ratio (vs*) and the ratio of the bests (vs*Best). */
function summarize(row: Record<string, unknown>, rs: { kiln: Timing; torch?: PeerTiming; openblas?: PeerTiming }[], c: Case, peakRate: number): void {
  const side = (ts: (Timing | PeerTiming)[]) => ({ medianMs: median(ts.map((t) => t.medianMs)), minMs: Math.min(...ts.map((t) => t.minMs)),
    samples: ts.reduce((n, t) => n + t.samples, 0), roundMediansMs: ts.map((t) => +t.medianMs.toFixed(4)) });
  const rate = (ms: number) => c.work / (ms / 1e3) / 1e9;
  const kiln = side(rs.map((r) => r.kiln));
  row.kiln = { ...kiln, rate: rate(kiln.medianMs), bestRate: rate(kiln.minMs),
    pctPeak: (100 * rate(kiln.medianMs)) / peakRate, ...(row.kiln as object) };
  if (row.tfjs) {
    const tj = row.tfjs as Timing;
    row.tfjs = { ...tj, rate: rate(tj.medianMs), pctPeak: (100 * rate(tj.medianMs)) / peakRate };
    row.speedup = tj.medianMs / kiln.medianMs;
  }
  for (const [key, name, errKey] of [['torch', 'Torch', 'torchRelErr'], ['openblas', 'Openblas', 'openblasRelErr']] as const) {
    const ts = rs.map((r) => r[key]).filter((t): t is PeerTiming => !!t);
    if (ts.length !== rs.length || !ts.length) continue;
    row[key] = { ...side(ts), relErr: row[errKey] };
    row[`vs${name}`] = median(rs.map((r) => r[key]!.medianMs / r.kiln.medianMs));
    row[`vs${name}Best`] = Math.min(...ts.map((t) => t.minMs)) / kiln.minMs;
    delete row[errKey];
  }
}

/** A short ASCII label for the chart's marks (the PNG's bitmap font has no superscripts; long names overlap). */
function chartTag(name: string): string {
  const m = /^matmul (\d+)/.exec(name) ?? /^conv(\dx\d) (\d+)(?:→(\d+))?ch (\d+)².*?(stride 2)?(?: \(|$)/.exec(name);
  if (m && name.startsWith('matmul')) return `mm${m[1]}`;
  if (m) return `c${m[1][0]}${m[5] ? 's2' : ''} ${m[2]}${m[3] ? `>${m[3]}` : ''}@${m[4]}`;
  return ({ 'attention self': 'attn', 'attention cross': 'x-attn', 'groupnorm+silu': 'gn+silu', softmax: 'softmax', 'log-softmax': 'logsm',
    layernorm: 'ln', 'tiny-UNet training step': 'unet step' } as Record<string, string>)[name.replace(/ \d.*$/, '')] ?? name.slice(0, 8);
}

/** Kiln's speed-up over each peer per case (best of N samples each); 1.0 = parity. */
function ratioChart(kernelRows: readonly Row[], load: readonly number[], unet?: UnetStepResult): Parameters<typeof writeChart>[1] {
  const rows = unet ? [...kernelRows, { name: unet.name, vsTorchBest: unet.vsTorchBest, kiln: unet.kiln } as unknown as Row] : kernelRows;
  const pts = (f: (r: Row) => number | undefined) => rows.map((r, i) => [i + 1, f(r) ?? NaN] as [number, number]);
  return {
    title: `Kiln CPU speed-up per case${ISA === 'avx2' ? ', Kiln and peers capped at AVX2' : ''} (peer time / Kiln time, best of N; load ${load[0].toFixed(1)})`, xLabel: 'case (see marks)', yLabel: 'speed-up',
    width: 1100, height: 520,
    series: [
      { name: 'vs PyTorch CPU', points: pts((r) => r.vsTorchBest), dots: true },
      { name: 'vs OpenBLAS sgemm', points: pts((r) => r.vsOpenblasBest), dots: true },
      { name: 'vs tfjs-wasm (1 thread)', points: pts((r) => (r.tfjs ? r.tfjs.minMs / r.kiln.minMs : undefined)), dots: true },
      { name: 'parity', points: [[1, 1], [rows.length, 1]], dashed: true, color: '#777777' },
    ],
    marks: rows.map((r, i) => ({ x: i + 1, label: chartTag(r.name) })),
  };
}

type Row = { name: string; shape: string; unit: string; kiln: Timing & { rate: number; pctPeak: number; kernels: number }; tfjs?: Timing & { rate: number }; speedup?: number; relErr?: number;
  torch?: Timing & { relErr: number }; openblas?: Timing & { relErr: number }; vsTorch?: number; vsTorchBest?: number; vsOpenblas?: number; vsOpenblasBest?: number };
function table(r: { results: unknown[]; peak: { fmaGflops: number; copyGBs: number }; machine: { loadavgBefore: number[] } }): string {
  const f = (x: number, d = 1) => x.toFixed(d);
  const lines = [
    `| case | shape | Kiln ms (min) | Kiln rate | % of peak | PyTorch ms (min) | vs PyTorch (best) | OpenBLAS ms (min) | vs OpenBLAS (best) | tfjs-wasm ms | vs tfjs | kernels | rel. err tfjs / torch |`,
    `| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |`,
  ];
  for (const x of r.results as Row[]) {
    const ms = (t?: Timing) => (t ? `${f(t.medianMs, 2)} (${f(t.minMs, 2)})` : '–');
    const ratio = (a?: number, b?: number) => (a === undefined ? '–' : `${f(a, 2)}× (${f(b!, 2)}×)`);
    lines.push(`| ${x.name} | ${x.shape} | ${ms(x.kiln)} | ${f(x.kiln.rate)} ${x.unit} | ${f(x.kiln.pctPeak)}% | ${ms(x.torch)} | ${ratio(x.vsTorch, x.vsTorchBest)} | ` +
      `${ms(x.openblas)} | ${ratio(x.vsOpenblas, x.vsOpenblasBest)} | ${x.tfjs ? `${f(x.tfjs.medianMs, 2)} | ${f(x.speedup!, 2)}×` : '– | –'} | ${x.kiln.kernels} | ` +
      `${x.relErr?.toExponential(1) ?? '–'} / ${x.torch?.relErr.toExponential(1) ?? '–'} |`);
  }
  lines.push('', `peak: ${r.peak.fmaGflops} GFLOP/s FMA, ${r.peak.copyGBs} GB/s copy; load average before: ${r.machine.loadavgBefore.map((v) => v.toFixed(2)).join(' ')}`);
  return lines.join('\n');
}

await runCli(cli, main);
