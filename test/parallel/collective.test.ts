/** The collective layer (runtime/collective.ts) on 2 ranks under mpirun, and single-process without a launcher. */
import { collectiveInfo, communicator, collectiveTimeoutMs } from '../../runtime/collective';
import { mpiMissing, mpirun } from '../support/mpirun';
import { FULL } from '../support/full';

const missing = mpiMissing();
if (missing && FULL) throw new Error(`the multi-process tests need MPI: ${missing}`);
const mpiTest = missing ? test.skip : test;

describe('collectives', () => {
  test('without a launcher: one process, every collective the identity; bad arguments are named errors', () => {
    expect(collectiveInfo().launched).toBe(false);
    const c = communicator();
    expect([c.rank, c.size, c.backend]).toEqual([0, 1, 'single']);
    const a = Float32Array.of(1, 2, 3);
    c.allReduce(a, 'mean');
    expect([...a]).toEqual([1, 2, 3]);
    expect(() => c.allReduce(a, 'max' as never)).toThrow(/op must be 'sum' or 'mean'/);
    expect(() => c.allReduce(Int32Array.of(1), 'mean')).toThrow(/'mean' needs a float buffer/);
    expect(() => c.allReduce(new Uint8Array(4) as never, 'sum')).toThrow(/the buffer must be a Float32Array, Float64Array or Int32Array/);
    expect(() => c.broadcast(a, 1)).toThrow(/root 1 is not a rank of 1/);
    const old = process.env.KILN_COLLECTIVE_TIMEOUT;
    process.env.KILN_COLLECTIVE_TIMEOUT = 'soon';
    expect(() => collectiveTimeoutMs()).toThrow(/KILN_COLLECTIVE_TIMEOUT = soon/);
    process.env.KILN_COLLECTIVE_TIMEOUT = '2.5';
    expect(collectiveTimeoutMs()).toBe(2500);
    if (old === undefined) delete process.env.KILN_COLLECTIVE_TIMEOUT; else process.env.KILN_COLLECTIVE_TIMEOUT = old;
  });

  mpiTest('2 ranks: sum and mean (f32, f64, i32), broadcast from rank 1, barrier; a rank that stays away ends the job at the deadline', async () => {
    let waitingAt = 0;
    const r = await mpirun(2, 'test/parallel/collective-worker.ts', ['timeout'], {
      env: { KILN_COLLECTIVE_TIMEOUT: '2' }, timeoutMs: 120_000,
      onLine: (l) => { if (l === 'waiting') waitingAt = performance.now(); },
    });
    const ended = (performance.now() - waitingAt) / 1000;
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    for (const x of lines) {
      expect(x.size).toBe(2);
      expect(x.backend).toBe('mpi');
      expect(x.f32).toEqual([1, 999 + 1]);      // (0·0.5 + 0) + (0·0.5 + 1); (999·0.5)·2 + 1
      expect(x.f64).toEqual([1.5, 15]);
      expect(x.i32).toEqual([1, 14]);
      expect(x.b).toEqual([9, 8, 7, 6, 5]);
    }
    // Rank 0's watchdog fires 2-2.1 s into the all-reduce and ends the job before rank 1 (asleep 8 s) comes back.
    expect(waitingAt).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/KilnRankFailedError: rank 0: allReduce waited 2 s for the other ranks \(KILN_COLLECTIVE_TIMEOUT\)/);
    expect(r.stdout).not.toMatch(/rank 0 returned|rank 1 came back/);
    expect(ended).toBeGreaterThan(2);
    expect(ended).toBeLessThan(8);
    expect(r.code).not.toBe(0);
    console.log(`a rank away from allReduce: the job ended ${ended.toFixed(1)} s after rank 0 began waiting (deadline 2 s)`);
  }, 180_000);
});
