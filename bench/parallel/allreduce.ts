/** All-reduce bandwidth of Kiln's collective layer (runtime/collective.ts: MPI_Iallreduce polled with a deadline)
 * against a plain C program calling MPI_Allreduce on the same buffer sizes (bench/parallel/allreduce.c, built
 * with mpicc), both under `mpirun -np N`; and the data-parallel step's overhead (the micro UNet step at np N with
 * batch b per rank against one process with batch b).
 *
 *   npx tsx bench/parallel/allreduce.ts [--np 2] [--reps 20] [--no-step]
 *
 * Bandwidth is the algorithm bandwidth, buffer bytes / seconds per call (the same for both sides). Results are
 * printed and saved to bench/results/allreduce-<date>.json. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k from '../../compiler/index';
import { repoRoot } from '../../runtime/paths';
import { DP_LR, microUnetBatch, shardKeys } from '../../test/support/dp-nets';
import { mpirunArgs } from '../../test/support/mpirun';

const arg = (name: string, d: number) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : d; };
const np = arg('np', 2), reps = arg('reps', 20);
const sizes = [64 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20];
const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-allreduce-'));

const parse = (out: string) => new Map(out.trim().split('\n').filter((l) => /^\d+ /.test(l)).map((l) => { const [b, s] = l.split(' ').map(Number); return [b, s] as const; }));
const mpi = (args: string[]) => execFileSync('mpirun', args, { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });

execFileSync('mpicc', ['-O2', '-o', path.join(dir, 'allreduce'), path.join(repoRoot, 'bench/parallel/allreduce.c')]);
const asRoot = process.getuid?.() === 0 ? ['--allow-run-as-root'] : [];
const c = parse(mpi(['-np', String(np), '--oversubscribe', ...asRoot, path.join(dir, 'allreduce'), String(reps), ...sizes.map(String)]));
const kiln = parse(mpi(mpirunArgs(np, 'bench/parallel/allreduce-worker.ts', [String(reps), ...sizes.map(String)])));
const rows = sizes.map((b) => ({ bytes: b, cGBs: b / c.get(b)! / 1e9, kilnGBs: b / kiln.get(b)! / 1e9, ratio: c.get(b)! / kiln.get(b)! }));
console.log(`all-reduce (sum, f32, in place), np ${np}, ${reps} calls per size`);
console.log('bytes       C MPI_Allreduce GB/s   Kiln allReduce GB/s   Kiln/C');
for (const r of rows) console.log(`${String(r.bytes).padEnd(12)}${r.cGBs.toFixed(3).padStart(10)}${r.kilnGBs.toFixed(3).padStart(22)}${r.ratio.toFixed(3).padStart(10)}`);

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
writeFileSync(file, JSON.stringify({ np, reps, cpus: os.cpus().length, rows, step }, null, 2));
console.log(`saved ${path.relative(repoRoot, file)}`);
