/** Run under `mpirun -np N`: N ranks train the micro UNet data-parallel with batch `b` each for `steps` steps;
 * rank 0 writes the (global) loss sequence, the final parameters and the step timings as JSON to `out`.
 * Usage: tsx test/parallel/dp-unet-worker.ts <b> <steps> <out.json> */
import fs from 'node:fs';
import * as k from '../../compiler/index';
import { DataParallelStep } from '../../compiler/data-parallel';
import { communicator, failJob } from '../../runtime/collective';
import { DP_LR, microUnetBatch, shardKeys } from '../support/dp-nets';

async function main(): Promise<void> {
  const [b, steps, out] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
  const comm = communicator();
  const net = microUnetBatch(b);
  const dp = await DataParallelStep.compile({
    outputs: { loss: net.loss }, params: net.params,
    optimizer: (p, g) => k.adamw(p, g, { lr: k.input('lr', []) }),
  });
  dp.syncFromRoot();
  const losses: number[] = [], ms: { compute: number; reduce: number; apply: number }[] = [];
  for (let s = 0; s < steps; s++) {
    const r = dp.run(() => net.feeds(shardKeys(s, comm.rank, comm.size, b)), { lr: DP_LR });
    losses.push(r.scalars.loss);
    ms.push(r.ms);
  }
  if (comm.rank === 0) {
    const params = Object.fromEntries(dp.params.map((n) => [n, [...dp.getParam(n)]]));
    fs.writeFileSync(out, JSON.stringify({ size: comm.size, losses, params, ms, buckets: dp.buckets.map((x) => ({ n: x.names.length, bytes: x.bytes, contiguous: x.contiguous })) }));
  }
}

main().catch(failJob);
