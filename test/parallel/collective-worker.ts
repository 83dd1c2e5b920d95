/** Run under `mpirun -np 2`: the collective layer's results, one JSON line per rank; then, with `timeout` as the
 * argument, rank 1 stays away from an all-reduce 8 s, longer than KILN_COLLECTIVE_TIMEOUT: rank 0 prints `waiting`
 * and blocks in it until its watchdog ends the job. */
import { communicator, failJob } from '../../runtime/collective';

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
  if (c.rank === 1) { await new Promise((r) => setTimeout(r, 8000)); console.log('rank 1 came back'); c.allReduce(f32, 'sum'); return; }
  console.log('waiting');
  c.allReduce(f32, 'sum');
  console.log('rank 0 returned');
}

main().catch(failJob);
