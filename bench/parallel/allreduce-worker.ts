/** Rank side of bench/parallel/allreduce.ts. Arguments "<bytes>:<calls>". Per size, in the order A B B A (neither side always first): Kiln's
 * `allReduce` (sum, in place: the whole JS + N-API + deadline path) and the addon's bare blocking MPI_Allreduce on
 * the same buffer (`commAllReduceBlocking`, no wrapper), so the layer's own cost is measured in one process.
 * Prints "<bytes> <kiln seconds per call> <bare seconds per call>" on rank 0 (best of the two passes; each pass the
 * mean of the ranks' times, as the C baseline). */
import { communicator } from '../../runtime/collective';
import { native } from '../../runtime/native';

const c = communicator();
const bare = (b: Float32Array | Float64Array) => native().commAllReduceBlocking(b);
for (const arg of process.argv.slice(2)) {
  const [bytes, reps] = arg.split(':').map(Number);
  const buf = Float32Array.from({ length: bytes / 4 }, (_v, i) => (i % 7) * 0.25 + c.rank);
  const best = [Infinity, Infinity];
  for (let pass = 0; pass < 4; pass++) {
    const side = pass === 0 || pass === 3 ? 0 : 1;
    const call = side === 0 ? () => c.allReduce(buf, 'sum') : () => bare(buf);
    call();
    c.barrier();
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) call();
    const t = new Float64Array([(performance.now() - t0) / 1000 / reps]);
    bare(t);
    best[side] = Math.min(best[side], t[0] / c.size);
  }
  if (c.rank === 0) console.log(`${bytes} ${best[0].toFixed(9)} ${best[1].toFixed(9)}`);
}
