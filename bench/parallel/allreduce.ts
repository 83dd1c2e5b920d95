/** All-reduce bandwidth of Kiln's collective layer (runtime/collective.ts: the blocking MPI_Allreduce on the caller's
 * buffer, with a watchdog deadline) against a plain C program calling MPI_Allreduce on the same buffer sizes
 * (bench/parallel/allreduce.c, built with mpicc), both under `mpirun -np N`; and the data-parallel step's overhead
 * (the micro UNet step at np N with batch b per rank against one process with batch b).
 *
 *   npx tsx bench/parallel/allreduce.ts [--np 2] [--reps 20] [--rounds 5] [--no-step]
 *
 * The machine is shared, so the two sides are interleaved: `rounds` rounds, each one C job and one Kiln job (in
 * alternating order) over every size, and each side's best round per size is compared. Calls per size: `reps` at
 * 1 MiB, scaled by 1 MiB / size (at least 5): about equal time per size. The Kiln job also times the addon's bare
 * MPI_Allreduce in the same process (allreduce-worker.ts). Bandwidth is the algorithm bandwidth, buffer bytes /
 * seconds per call (the same for all sides). Results are printed and saved to bench/results/allreduce-<date>.json. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k from '../../compiler/index';
import { repoRoot } from '../../runtime/paths';
import { DP_LR, microUnetBatch, shardKeys } from '../../test/support/dp-nets';
import { mpirunArgs } from '../../test/support/mpirun';
import { writeJsonAtomic } from '../../models/io/atomicWrite';

const arg = (name: string, d: number) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : d; };
const np = arg('np', 2), reps = arg('reps', 20), rounds = arg('rounds', 5);
const sizes = [64 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20];
const calls = (b: number) => Math.max(5, Math.round(reps * (1 << 20) / b));
const jobArgs = sizes.map((b) => `${b}:${calls(b)}`);
const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-allreduce-'));
const load = [os.loadavg()[0]];

const parse = (out: string) => new Map(out.trim().split('\n').filter((l) => /^\d+ /.test(l)).map((l) => { const [b, ...t] = l.split(' ').map(Number); return [b, t] as const; }));
const mpi = (args: string[]) => execFileSync('mpirun', args, { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });

execFileSync('mpicc', ['-O2', '-o', path.join(dir, 'allreduce'), path.join(repoRoot, 'bench/parallel/allreduce.c')]);
const asRoot = process.getuid?.() === 0 ? ['--allow-run-as-root'] : [];
// The C peer runs with the heap policy Kiln's addon sets when it joins a job of more than one rank (mallopt in
// runtime/native/src/collective.cc): without it every Open MPI reduction scratch above glibc's mmap threshold is a
// fresh mapping faulted in again, which measures glibc, not the collective.
const heap = ['-x', 'MALLOC_MMAP_THRESHOLD_=1073741824', '-x', 'MALLOC_TRIM_THRESHOLD_=1073741824'];
const runC = () => parse(mpi(['-np', String(np), '--oversubscribe', ...asRoot, ...heap, path.join(dir, 'allreduce'), ...jobArgs]));
const runKiln = () => parse(mpi(mpirunArgs(np, 'bench/parallel/allreduce-worker.ts', jobArgs)));
// Seconds per call, per size, per round: C, Kiln's allReduce, the bare MPI_Allreduce in Kiln's process.
const t = { c: sizes.map(() => [] as number[]), kiln: sizes.map(() => [] as number[]), bare: sizes.map(() => [] as number[]) };
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? ['c', 'kiln'] : ['kiln', 'c'];
  for (const side of order) {
    const got = side === 'c' ? runC() : runKiln();
    sizes.forEach((b, i) => {
      const x = got.get(b)!;
      if (side === 'c') t.c[i].push(x[0]); else { t.kiln[i].push(x[0]); t.bare[i].push(x[1]); }
    });
  }
  load.push(os.loadavg()[0]);
}
const min = (xs: number[]) => Math.min(...xs);
const rows = sizes.map((b, i) => ({
  bytes: b, calls: calls(b),
  cGBs: b / min(t.c[i]) / 1e9, kilnGBs: b / min(t.kiln[i]) / 1e9, bareGBs: b / min(t.bare[i]) / 1e9,
  ratio: min(t.c[i]) / min(t.kiln[i]), ratioBare: min(t.bare[i]) / min(t.kiln[i]),
  seconds: { c: t.c[i], kiln: t.kiln[i], bare: t.bare[i] },
}));
console.log(`all-reduce (sum, f32, in place), np ${np}, best of ${rounds} interleaved rounds; load average (1 min) ${load.map((x) => x.toFixed(1)).join(' → ')}`);
console.log('bytes       calls   C MPI_Allreduce GB/s   Kiln allReduce GB/s   Kiln/C   bare MPI_Allreduce in Kiln GB/s   Kiln/bare');
for (const r of rows) console.log(`${String(r.bytes).padEnd(12)}${String(r.calls).padStart(5)}${r.cGBs.toFixed(3).padStart(23)}${r.kilnGBs.toFixed(3).padStart(22)}${r.ratio.toFixed(3).padStart(9)}${r.bareGBs.toFixed(3).padStart(34)}${r.ratioBare.toFixed(3).padStart(12)}`);

let step: Record<string, number> | undefined;
if (!process.argv.includes('--no-step')) {
  // One process, batch b: the step the data-parallel one should cost no more than, plus its reduction.
  const b = 2, steps = 6;
  const net = microUnetBatch(b);
  const prog = await k.compile({ outputs: { loss: net.loss }, updates: k.adamw(net.params, k.grad(net.loss, net.params), { lr: DP_LR }) });
  const times: number[] = [];
  for (let s = 0; s < steps; s++) { const f = net.feeds(shardKeys(s, 0, 1, b)); const t0 = performance.now(); prog.run(f); times.push(performance.now() - t0); }
  const out = path.join(dir, 'dp.json');
  mpi(mpirunArgs(np, 'test/parallel/dp-unet-worker.ts', [String(b), String(steps), out]));
  const dp = JSON.parse(readFileSync(out, 'utf8')) as { ms: { compute: number; reduce: number; apply: number }[] };
  const med = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)];
  const single = med(times.slice(1)), rest = dp.ms.slice(1);
  step = { singleMs: single, dpMs: med(rest.map((m) => m.compute + m.reduce + m.apply)), computeMs: med(rest.map((m) => m.compute)), reduceMs: med(rest.map((m) => m.reduce)), applyMs: med(rest.map((m) => m.apply)) };
  console.log(`\nmicro UNet step, batch ${b} per rank: 1 process ${single.toFixed(1)} ms; np ${np}: ${step.dpMs.toFixed(1)} ms ` +
    `(gradients ${step.computeMs.toFixed(1)}, all-reduce ${step.reduceMs.toFixed(1)}, update + copies ${step.applyMs.toFixed(1)}); overhead ${((step.dpMs / single - 1) * 100).toFixed(0)} %`);
}
mkdirSync(path.join(repoRoot, 'bench/results'), { recursive: true });
const file = path.join(repoRoot, 'bench/results', `allreduce-${new Date().toISOString().slice(0, 10)}.json`);
load.push(os.loadavg()[0]);
writeJsonAtomic(file, { np, reps, rounds, cpus: os.cpus().length, loadAverage1m: load, rows, step }, 2);
console.log(`saved ${path.relative(repoRoot, file)}`);
