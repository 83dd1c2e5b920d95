/** Data-parallel training on 2 ranks (mpirun -np 2, CPU) against one process with the doubled batch: the micro
 * UNet with AdamW, 5 steps.
 *
 * Tolerance, from the reduction order: one process sums the 2b per-sample gradient terms in one f32 reduction;
 * two ranks sum b each and MPI adds the two halves, so each gradient element differs by a few f32 ulps (relative
 * ~1e-6). AdamW's step m̂/(√v̂+ε) is scale-free, so an element's update moves by about that relative amount of
 * lr = 1e-3 per step: after 5 steps ≤ ~1e-8 absolute, and more only where √v̂ is near ε (tiny gradients, where the
 * relative error of the sum is largest). We allow 2e-6 absolute on every parameter (0.04 % of the 5e-3 the
 * weights can move) and 1e-5 relative on each step's loss. */
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as k from '../../compiler/index';
import { DP_LR, microUnetBatch, shardKeys } from '../support/dp-nets';
import { mpiMissing, mpirun } from '../support/mpirun';
import { FULL } from '../support/full';

const missing = mpiMissing();
if (missing && FULL) throw new Error(`the multi-process tests need MPI: ${missing}`);
const mpiTest = missing ? test.skip : test;
if (missing) console.warn(`data-parallel tests skipped: ${missing}`);

const B = 2, STEPS = 5;

describe('data parallel over MPI (2 ranks)', () => {
  mpiTest('micro UNet: 2 ranks × batch 2 = 1 process × batch 4 after 5 AdamW steps (losses and every parameter)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kiln-dp-'));
    const run = mpirun(2, 'test/parallel/dp-unet-worker.ts', [String(B), String(STEPS), path.join(dir, 'out.json')]);

    const net = microUnetBatch(2 * B);
    const prog = await k.compile({ outputs: { loss: net.loss }, updates: k.adamw(net.params, k.grad(net.loss, net.params), { lr: DP_LR }) });
    const ref = Array.from({ length: STEPS }, (_v, s) => prog.run(net.feeds(shardKeys(s, 0, 1, 2 * B))).loss[0]);

    const r = await run;
    if (r.code !== 0) throw new Error(`mpirun exited ${r.code}:\n${r.stderr.slice(-3000)}`);
    const dp = JSON.parse(readFileSync(path.join(dir, 'out.json'), 'utf8')) as { size: number; losses: number[]; params: Record<string, number[]>; buckets: { n: number; bytes: number; contiguous: boolean }[] };
    expect(dp.size).toBe(2);
    dp.losses.forEach((l, i) => expect(Math.abs(l - ref[i]) / ref[i]).toBeLessThan(1e-5));
    expect(ref[STEPS - 1]).toBeLessThan(ref[0] * 0.8);   // it trains
    let worst = 0;
    const names = Object.keys(dp.params);
    expect(names.length).toBe(net.params.length);
    for (const n of names) {
      const want = prog.getParam(n), got = dp.params[n];
      expect(got.length).toBe(want.length);
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    }
    expect(worst).toBeLessThan(2e-6);
    // One contiguous bucket: the gradient buffers are back to back in the arena and reduced in place.
    expect(dp.buckets).toEqual([{ n: net.params.length, bytes: expect.any(Number), contiguous: true }]);
    console.log(`micro UNet DP: mpirun ${r.seconds.toFixed(0)} s, max |Δparam| ${worst.toExponential(2)}, losses ${dp.losses.map((x) => x.toFixed(6)).join(' ')}`);
  }, 900_000);
});
