/** The PuLID trainer data-parallel over mpirun -np 2 (micro config, CPU):
 *  - stage 2 (L_diff + λ_id·L_id through the Lightning branch, decode and face recognizer): 2 ranks × batch 1 give
 *    the losses and weights of 1 process × batch 2 after 5 steps;
 *  - a rank killed (SIGKILL) after step 2's checkpoint ends the job within 60 s with a KilnRankFailedError on
 *    rank 0; every checkpoint written is whole, and the last one resumes in a single process with the same
 *    global batch (another rank count).
 * Tolerance (stage 2), from the reduction order: as in data-parallel.test.ts (the batch's gradient sum is split
 * in two f32 partial sums added by MPI; AdamW's step is scale-free, so weights differ by ~ulp-relative fractions
 * of lr), plus the losses' own batch means, summed in another order: 1e-5 relative on each loss and L_id, 2e-6
 * absolute on every trainable weight (lr 1e-3 × 5 steps: weights move up to 5e-3). Measured: 6e-7 and 1.2e-7. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { microPulidConfig } from '../../models/pulid/config';
import { PulidModel } from '../../models/pulid/model';
import { loadDataset } from '../../models/pulid/data';
import { PulidTrainer } from '../../models/pulid/trainer';
import { readCheckpoint, checkpointLayout } from '../../models/pulid/checkpoint';
import { mpiMissing, mpirun } from '../support/mpirun';
import { FULL } from '../support/full';

const missing = mpiMissing();
if (missing && FULL) throw new Error(`the multi-process tests need MPI: ${missing}`);
const mpiTest = missing ? test.skip : test;
if (missing) console.warn(`PuLID data-parallel tests skipped: ${missing}`);

describe('PuLID trainer, data parallel over 2 ranks (micro)', () => {
  let data: Awaited<ReturnType<typeof loadDataset>>;
  const model = new PulidModel(microPulidConfig, { seed: 0 });
  beforeAll(async () => { if (!missing) data = await loadDataset(microPulidConfig, { seed: 0 }); }, 900_000);

  mpiTest('stage 2: 2 ranks × batch 1 = 1 process × batch 2 after 5 steps (losses, L_id, every trainable weight)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-pulid-dp-'));
    const run = mpirun(2, 'test/parallel/dp-pulid-worker.ts', ['2', '1', '5', path.join(dir, 'out.json')]);
    const tr = new PulidTrainer(model, data.samples, data.text, { steps: { 1: 0, 2: 5, 3: 0 }, lr: 1e-3, batch: 2 });
    tr.stage = 2;
    const ref: { loss: number; l_id?: number }[] = [];
    for (let i = 0; i < 5; i++) ref.push(await tr.step());
    const r = await run;
    if (r.code !== 0) throw new Error(`mpirun exited ${r.code}:\n${r.stderr.slice(-3000)}`);
    const dp = JSON.parse(fs.readFileSync(path.join(dir, 'out.json'), 'utf8')) as { size: number; losses: { loss: number; l_id: number }[]; weights: Record<string, number[]> };
    expect(dp.size).toBe(2);
    dp.losses.forEach((l, i) => {
      expect(Math.abs(l.loss - ref[i].loss) / ref[i].loss).toBeLessThan(1e-5);
      expect(Math.abs(l.l_id - ref[i].l_id!) / ref[i].l_id!).toBeLessThan(1e-5);
    });
    const snap = tr.snapshot();
    let worst = 0;
    for (const [n, got] of Object.entries(dp.weights)) { const want = snap.get(n)!; for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i])); }
    expect(Object.keys(dp.weights).length).toBe(model.trainable.params.size);
    expect(worst).toBeLessThan(2e-6);
    console.log(`PuLID stage 2 DP: mpirun ${r.seconds.toFixed(0)} s, max |Δw| ${worst.toExponential(2)}, losses ${dp.losses.map((x) => x.loss.toFixed(5)).join(' ')} vs ${ref.map((x) => x.loss.toFixed(5)).join(' ')}`);
  }, 1_800_000);

  mpiTest('a killed rank ends the job with KilnRankFailedError on rank 0 within 60 s; the checkpoint is whole and resumes', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-pulid-kill-'));
    const pids = new Map<number, number>();
    let killedAt = 0;
    const r = await mpirun(2, 'test/parallel/dp-pulid-worker.ts', ['1', '1', '8', path.join(dir, 'out.json'), dir], {
      env: { KILN_COLLECTIVE_TIMEOUT: '120' },
      onLine: (line) => {
        const m = /^rank (\d+) pid (\d+)/.exec(line);
        if (m) pids.set(Number(m[1]), Number(m[2]));
        if (line === 'saved 2' && !killedAt) { killedAt = performance.now(); process.kill(pids.get(1)!, 'SIGKILL'); }
      },
    });
    expect(killedAt).toBeGreaterThan(0);
    const seconds = (performance.now() - killedAt) / 1000;
    console.log(`killed rank 1 after step 2: the job ended in ${seconds.toFixed(1)} s, exit ${r.code}\n${r.stderr.split('\n').filter((l) => /Kiln|rank|signal/i.test(l)).slice(0, 6).join('\n')}`);
    expect(r.code).not.toBe(0);
    expect(seconds).toBeLessThan(60);
    expect(r.stderr).toMatch(/KilnRankFailedError: rank 0: the launcher ended the job/);
    expect(fs.existsSync(path.join(dir, 'out.json'))).toBe(false);
    // Every checkpoint on disk is whole (checksum verified); no temporary file is mistaken for one.
    const cks = fs.readdirSync(dir).filter((f) => /^step\d+\.safetensors$/.test(f)).sort();
    expect(cks).toContain('step2.safetensors');
    const layout = checkpointLayout(model.trainable.params, 1);
    for (const f of cks) readCheckpoint(path.join(dir, f), { config: microPulidConfig, layout });
    // Resume in one process with the same global batch (2 = 2 ranks × 1): it continues at step 2.
    const last = path.join(dir, cks[cks.length - 1]);
    const tr = new PulidTrainer(model, data.samples, data.text, { steps: { 1: 8, 2: 0, 3: 0 }, lr: 1e-3, batch: 2 });
    tr.load(last);
    const done = tr.done[1];
    expect(done).toBeGreaterThanOrEqual(2);
    const rec = await tr.step();
    expect(rec.step).toBe(done);
    expect(Number.isFinite(rec.loss)).toBe(true);
    expect(tr.done[1]).toBe(done + 1);
  }, 1_800_000);
});
