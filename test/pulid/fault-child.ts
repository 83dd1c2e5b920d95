/** The process test/pulid/faults.test.ts kills: a training loop over the trainer's real run files. It starts the way
 * examples/pulid-train.ts does (prepareRunDir removes dead writers' temp files; a present last.safetensors is
 * resumed through PulidTrainer.load, metrics.json through resumeMetrics), then per step appends the step record,
 * writes metrics.json, then the checkpoint through writeCheckpoint (what PulidTrainer.save calls), and every fourth
 * step a sample PNG (writeImagePng). The weight update is synthetic — a deterministic function of the previous
 * weights and the step, so an interrupted and resumed run must end bit-identical to an uninterrupted one — because
 * compiling the micro training step in every killed child would take ~15 s each.
 *
 *   npx tsx test/pulid/fault-child.ts <run dir> <steps>
 */
import path from 'node:path';
import { microPulidConfig } from '../../models/pulid/config';
import { PulidModel } from '../../models/pulid/model';
import { PulidTrainer } from '../../models/pulid/trainer';
import { writeImagePng } from '../../models/io/chwImage';
import { writeCheckpoint } from '../../models/pulid/checkpoint';
import { prepareRunDir, resumeMetrics, writeMetrics, type TrainingMetrics } from '../../models/pulid/runFiles';
import type { TextConditioner } from '../../models/pulid/text';
import fs from 'node:fs';

export function runChild(dir: string, steps: number, log: (s: string) => void = () => {}): void {
  const removed = prepareRunDir(dir);
  if (removed.length) log(`removed ${removed.length} temp files`);
  const model = new PulidModel(microPulidConfig, { seed: 0 });
  const trainer = new PulidTrainer(model, [], {} as TextConditioner, { steps: { 1: steps, 2: 0, 3: 0 }, seed: 3 });
  const last = path.join(dir, 'last.safetensors'), metricsFile = path.join(dir, 'metrics.json');
  let metrics: TrainingMetrics = { config: 'micro', steps: { 1: steps, 2: 0, 3: 0 }, programs: {}, history: [], stages: {} };
  if (fs.existsSync(last)) {
    trainer.load(last);
    metrics = resumeMetrics(metricsFile, trainer.done, metrics);
    log(`resumed at step ${trainer.done[1]}`);
  }
  const state = trainer.snapshot();
  while (trainer.done[1] < steps) {
    const step = trainer.done[1];
    let sum = 0;
    for (const v of state.values()) for (let i = 0; i < v.length; i++) { v[i] = v[i]! * 0.99 + 0.01 * Math.sin(step + i); sum += v[i]!; }
    trainer.done[1]++;
    metrics.history.push({ stage: 1, step, micro: 1, loss: Math.fround(sum), l_diff: step, ms: 0 });
    writeMetrics(metricsFile, metrics);
    writeCheckpoint(last, { stage: 1, done: { ...trainer.done }, config: microPulidConfig, trainer: trainer.settings(), tensors: state }, trainer.layout);
    if (step % 4 === 3) {
      const w = state.get('id_adapter.body.0.weight')!; // a 3×8×8 image from the weights, repeated as needed
      writeImagePng(path.join(dir, 'sample.png'), Float32Array.from({ length: 3 * 64 }, (_, i) => w[i % w.length]), 8);
    }
  }
  log('done');
}

if (import.meta.url === `file://${process.argv[1]}`) runChild(process.argv[2]!, Number(process.argv[3]), (s) => console.log(s));
