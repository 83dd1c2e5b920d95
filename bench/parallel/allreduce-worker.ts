/** Rank side of bench/parallel/allreduce.ts: Kiln's allReduce (sum, in place) on the sizes given, the same
 * repetitions as the C baseline. Prints "<bytes> <seconds per call>" per size on rank 0. */
import { communicator } from '../../runtime/collective';

const c = communicator();
const reps = Number(process.argv[2]);
for (const arg of process.argv.slice(3)) {
  const bytes = Number(arg), n = bytes / 4;
  const buf = Float32Array.from({ length: n }, (_v, i) => (i % 7) * 0.25 + c.rank);
  c.allReduce(buf, 'sum');
  c.barrier();
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) c.allReduce(buf, 'sum');
  const t = new Float64Array([(performance.now() - t0) / 1000 / reps]);
  c.allReduce(t, 'sum');  // (no max op: the mean of the ranks' times)
  if (c.rank === 0) console.log(`${bytes} ${(t[0] / c.size).toFixed(9)}`);
}
