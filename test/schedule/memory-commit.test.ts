/** Parameter updates committed in place (memory-commit.ts): a value whose writer runs after the last read of
 * its parameter's old contents lives in the parameter's memory and the commit step no longer copies it. */
import { planMemory, checkPlan } from '../../compiler/schedule/memory';
import { computeLifetimes } from '../../compiler/schedule/memory-liveness';
import type { MemoryPlan, PlanBuffer, PlanStep, BufferKind } from '../../compiler/schedule/plan-types';

const buf = (id: number, bytes: number, kind: BufferKind, label = `b${id}`): PlanBuffer => ({ id, bytes, kind, label });
const step = (id: number, reads: number[], writes: number[], extra: Partial<PlanStep> = {}): PlanStep =>
  ({ id, label: `s${id}`, reads, writes, recomputable: false, cost: 1, ...extra });

/** Two layers y = x·W1, z = y·W2, an SGD-with-momentum update per layer (m' = m·μ + g, W' = W - lr·m'), in the
 * order a depth-first schedule gives: layer 2's update before dy = dz·W2ᵀ, which still reads the old W2. */
function net(o: { elementwise?: boolean } = {}) {
  const K = 4096, A = 2048;
  const [W1, W2, m1, m2, x] = [0, 1, 2, 3, 4];
  const [y, z, dz, dW2, dy, dW1, nm2, nW2, nm1, nW1] = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19];
  const buffers = [buf(W1, K, 'param', 'W1'), buf(W2, K, 'param', 'W2'), buf(m1, K, 'param', 'm1'), buf(m2, K, 'param', 'm2'), buf(x, A, 'input', 'x'),
    buf(y, A, 'temp', 'y'), buf(z, A, 'temp', 'z'), buf(dz, A, 'temp', 'dz'), buf(dW2, K, 'temp', 'dW2'), buf(dy, A, 'temp', 'dy'), buf(dW1, K, 'temp', 'dW1'),
    buf(nm2, K, 'temp', "m2'"), buf(nW2, K, 'temp', "W2'"), buf(nm1, K, 'temp', "m1'"), buf(nW1, K, 'temp', "W1'"), buf(20, 4, 'output', 'loss')];
  const ew = (read: number, write: number) => (o.elementwise === false ? {} : { inPlace: [{ read, write }] });
  const steps: PlanStep[] = [
    step(0, [x, W1], [y], { recomputable: true }), step(1, [y, W2], [z], { recomputable: true }), step(2, [z], [dz, 20]),
    step(3, [y, dz], [dW2]), step(4, [m2, dW2], [nm2], ew(m2, nm2)), step(5, [W2, nm2], [nW2], ew(W2, nW2)),
    step(6, [dz, W2], [dy]),  // reads the old W2 after its update kernel: the planner moves step 5 after it
    step(7, [x, dy], [dW1]), step(8, [m1, dW1], [nm1], ew(m1, nm1)), step(9, [W1, nm1], [nW1], ew(W1, nW1)),
    step(10, [nm2, nW2, nm1, nW1], [m2, W2, m1, W1], { copies: true }),
  ];
  return { buffers, steps, ids: { W1, W2, m1, m2, nW2, nm2, nW1, nm1, dy } };
}

const order = (p: MemoryPlan) => p.steps.map((s) => s.id);

describe('parameter updates committed in place', () => {
  test('every update value lands in its parameter; the late reader of W2 runs before W2 is overwritten', () => {
    const { buffers, steps, ids } = net();
    const staged = planMemory({ buffers, steps, stagedUpdates: true });
    const plan = planMemory({ buffers, steps });
    checkPlan(staged); checkPlan(plan);
    expect(staged.commits).toEqual([]);
    expect(staged.steps[staged.steps.length - 1].reads).toEqual([ids.nm2, ids.nW2, ids.nm1, ids.nW1]);
    // Step 5 (W2's update) moved after step 6 (dy = dz·W2ᵀ); nothing else moved.
    expect(plan.delayedUpdates).toBe(1);
    expect(order(plan)).toEqual([0, 1, 2, 3, 4, 6, 5, 7, 8, 9]);
    expect(plan.commits.map((c) => [c.value, c.param]).sort()).toEqual([[ids.nm2, ids.m2], [ids.nW2, ids.W2], [ids.nm1, ids.m1], [ids.nW1, ids.W1]].sort());
    for (const c of plan.commits) expect(plan.offsets.get(c.value)).toBe(plan.offsets.get(c.param));
    // The commit step had nothing left to copy: it is gone.
    expect(plan.steps.some((s) => s.copies)).toBe(false);
    // Staged, the four new values (16 KiB) were live together at the end; in place they take no memory.
    expect(staged.arenaBytes - plan.arenaBytes).toBeGreaterThanOrEqual(2 * 4096);
    expect(plan.peakLiveBytes).toBeLessThan(staged.peakLiveBytes);
  });

  test('an update kernel that reads its parameter other than element for element stays staged', () => {
    const { buffers, steps, ids } = net({ elementwise: false });
    const plan = planMemory({ buffers, steps });
    checkPlan(plan);
    // The moments' kernels read m at other elements too (no hint): staged, copied by the commit step.
    expect(plan.commits).toEqual([]);
    const last = plan.steps[plan.steps.length - 1];
    expect(last.copies).toBe(true);
    expect(last.writes).toEqual([ids.m2, ids.W2, ids.m1, ids.W1]);
  });

  test('a reader it cannot be moved past keeps the value staged', () => {
    const { buffers, steps, ids } = net();
    // dy's step now also reads W2' (as a weight-tied use would): step 5 cannot move after it.
    const tied = steps.map((s) => (s.id === 6 ? { ...s, reads: [...s.reads, ids.nW2] } : s));
    const plan = planMemory({ buffers, steps: tied });
    checkPlan(plan);
    expect(plan.delayedUpdates).toBe(0);
    expect(plan.commits.map((c) => c.param).sort()).toEqual([ids.W1, ids.m1, ids.m2]);
    const last = plan.steps[plan.steps.length - 1];
    expect(last.reads).toEqual([ids.nW2]);
    expect(last.writes).toEqual([ids.W2]);
  });

  test('checkPlan refuses an in-place commit read after it is written', () => {
    const { buffers, steps, ids } = net();
    const plan = planMemory({ buffers, steps });
    // Put W2's update back before dy's step: dy would read the new W2.
    const i5 = plan.steps.findIndex((s) => s.id === 5), i6 = plan.steps.findIndex((s) => s.id === 6);
    const swapped = [...plan.steps];
    [swapped[i5], swapped[i6]] = [swapped[i6], swapped[i5]];
    const commits = plan.commits.map((c) => (c.value === ids.nW2 ? { ...c, step: i6 } : c));
    const lifetimes = computeLifetimes(new Map(plan.buffers.map((b) => [b.id, b])), swapped);
    expect(() => checkPlan({ ...plan, steps: swapped, commits, lifetimes })).toThrow(/step 6 \(s6\) reads parameter 1 after step 5 wrote its update in place/);
    // The plan as made passes.
    expect(() => checkPlan(plan)).not.toThrow();
  });
});
