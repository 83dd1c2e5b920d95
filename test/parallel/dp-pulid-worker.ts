/** Run under `mpirun -np N`: PuLID (micro config) trained data-parallel with `batch` per rank.
 * Usage: tsx test/parallel/dp-pulid-worker.ts <stage> <batch> <steps> <out.json> [checkpoint dir] [resume file]
 * Trains `steps` steps of `stage`; with a checkpoint dir, rank 0 saves `<dir>/step<k>.safetensors` after every step
 * and prints "saved <k>" (the fault test kills a rank after that); rank 0 writes the losses and the final
 * trainable weights as JSON to `out`. */
import fs from 'node:fs';
import path from 'node:path';
import { microPulidConfig } from '../../models/pulid/config';
import { PulidModel, type Stage } from '../../models/pulid/model';
import { loadDataset } from '../../models/pulid/data';
import { DataParallelPulidTrainer } from '../../models/pulid/data-parallel';
import { failJob } from '../../runtime/collective';

async function main(): Promise<void> {
  const [stage, batch, steps] = process.argv.slice(2, 5).map(Number) as [Stage, number, number];
  const [out, ckDir, resume] = process.argv.slice(5);
  const data = await loadDataset(microPulidConfig, { seed: 0 });
  const model = new PulidModel(microPulidConfig, { seed: 0 });
  const st = { 1: 0, 2: 0, 3: 0, [stage]: steps } as Record<Stage, number>;
  const tr = new DataParallelPulidTrainer(model, data.samples, data.text, { steps: st, lr: 1e-3, batch });
  console.log(`rank ${tr.rank} pid ${process.pid}`);
  tr.stage = stage;
  if (resume) tr.load(resume);
  const losses: Record<string, number>[] = [];
  while (tr.done[stage] < steps) {
    const r = await tr.step();
    losses.push({ loss: r.loss, l_diff: r.l_diff, ...(r.l_id !== undefined ? { l_id: r.l_id } : {}) });
    if (ckDir) {
      tr.save(path.join(ckDir, `step${tr.done[stage]}.safetensors`));
      if (tr.rank === 0) console.log(`saved ${tr.done[stage]}`);
    }
  }
  if (tr.rank === 0) {
    const snap = tr.snapshot();
    const weights = Object.fromEntries([...model.trainable.params.keys()].map((n) => [n, [...snap.get(n)!]]));
    fs.writeFileSync(out, JSON.stringify({ size: tr.comm.size, losses, weights }));
  }
}

main().catch(failJob);
