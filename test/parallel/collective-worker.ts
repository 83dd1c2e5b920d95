/** Run under `mpirun -np 2`: the collective layer's results, one JSON line per rank; then, with `timeout` as the
 * argument, rank 1 stays away from a barrier longer than KILN_COLLECTIVE_TIMEOUT and rank 0 reports what it caught. */
import { communicator, failJob, KilnRankFailedError } from '../../runtime/collective';

async function main(): Promise<void> {
  const c = communicator();
  const f32 = Float32Array.from({ length: 1000 }, (_v, i) => i * 0.5 + c.rank);
  c.allReduce(f32, 'sum');
  const f64 = Float64Array.of(c.rank + 1, 10 * (c.rank + 1));
  c.allReduce(f64, 'mean');
  const i32 = Int32Array.of(c.rank, 7);
  c.allReduce(i32, 'sum');
  const b = new Uint8Array(5);
  if (c.rank === 1) b.set([9, 8, 7, 6, 5]);
  c.broadcast(b, 1);
  c.barrier();
  console.log(JSON.stringify({ rank: c.rank, size: c.size, backend: c.backend, f32: [f32[0], f32[999]], f64: [...f64], i32: [...i32], b: [...b] }));
  if (process.argv[2] !== 'timeout') return;
  if (c.rank === 1) { await new Promise((r) => setTimeout(r, 8000)); c.barrier(); return; }
  try {
    c.barrier();
  } catch (e) {
    if (e instanceof KilnRankFailedError) { console.log(`caught ${e.name} ${e.kind}: ${e.message}`); c.abort(3); }
    throw e;
  }
}

main().catch(failJob);
