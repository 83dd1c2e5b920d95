import { planMemory, checkPlan, formatMemoryReport, formatBytes, MemoryBudgetError } from '../../compiler/schedule/memory';
import type { PlanBuffer, PlanStep, BufferKind } from '../../compiler/schedule/plan-types';

const buf = (id: number, bytes: number, kind: BufferKind, label = `b${id}`): PlanBuffer => ({ id, bytes, kind, label });
const step = (id: number, reads: number[], writes: number[], extra: Partial<PlanStep> = {}): PlanStep =>
  ({ id, label: `s${id}`, reads, writes, recomputable: false, cost: 1, ...extra });

/** Chain a -> b -> c -> d of 1 KiB temps (d the output), started by a step that reads nothing. */
function chain(inPlace: boolean) {
  const buffers = [buf(0, 1024, 'temp', 'a'), buf(1, 1024, 'temp', 'b'), buf(2, 1024, 'temp', 'c'), buf(3, 1024, 'output', 'd')];
  const steps = [step(0, [], [0]), ...[1, 2, 3].map((i) => step(i, [i - 1], [i], inPlace ? { inPlace: [{ read: i - 1, write: i }] } : {}))];
  return { buffers, steps };
}

/** A 4-layer MLP training step: forward f_i writes activation h_i (recomputable), loss writes g4, backward b_i
 * reads h_i, h_{i-1}, g_i and W_i and writes g_{i-1} and the weight gradient dW_i (an output). */
function mlp(layers = 4, act = 4096) {
  const buffers: PlanBuffer[] = [buf(0, act, 'input', 'x')];
  const W = (i: number) => 100 + i, h = (i: number) => (i === 0 ? 0 : 200 + i), g = (i: number) => 300 + i, dW = (i: number) => 400 + i;
  for (let i = 1; i <= layers; i++) buffers.push(buf(W(i), 1024, 'param', `W${i}`), buf(h(i), act, 'temp', `h${i}`), buf(g(i), act, 'temp', `g${i}`), buf(dW(i), 1024, 'output', `dW${i}`));
  const steps: PlanStep[] = [];
  for (let i = 1; i <= layers; i++) steps.push({ ...step(i, [h(i - 1), W(i)], [h(i)]), label: `f${i}`, recomputable: true, cost: 10 });
  steps.push({ ...step(50, [h(layers)], [g(layers)]), label: 'loss' });
  for (let i = layers; i >= 1; i--) {
    steps.push({ ...step(60 + i, [g(i), h(i), h(i - 1), W(i)], i > 1 ? [g(i - 1), dW(i)] : [dW(i)]), label: `b${i}` });
  }
  return { buffers, steps, h };
}

describe('memory planner', () => {
  test('(a) a chain of temps reuses memory: two buffers, one with in-place', () => {
    const plain = planMemory(chain(false));
    checkPlan(plain);
    expect(plain.arenaBytes).toBe(2048);
    expect(plain.inPlace).toEqual([]);
    const inPlace = planMemory(chain(true));
    checkPlan(inPlace);
    expect(inPlace.arenaBytes).toBe(1024);
    expect(inPlace.peakLiveBytes).toBe(1024);
    expect(inPlace.inPlace).toEqual([{ read: 0, write: 1 }, { read: 1, write: 2 }, { read: 2, write: 3 }]);
    expect(new Set(inPlace.offsets.values())).toEqual(new Set([0]));
  });

  test('(b) params are never shared and sit at fixed, aligned offsets', () => {
    const params = [buf(0, 100, 'param'), buf(1, 64, 'const'), buf(2, 200, 'param')];
    const temps = [buf(3, 4096, 'temp'), buf(4, 4096, 'output')];
    const one = planMemory({ buffers: [...params, ...temps], steps: [step(0, [0], [3]), step(1, [3, 1, 2], [4])] });
    const two = planMemory({ buffers: [...params, ...temps], steps: [step(0, [2], [3]), step(1, [3], [4])] });
    for (const plan of [one, two]) {
      checkPlan(plan);
      expect([0, 1, 2].map((id) => plan.offsets.get(id))).toEqual([0, 128, 192]);
      expect(plan.lifetimes.get(1)).toEqual([-1, 2]);
      for (const id of [3, 4]) expect(plan.offsets.get(id)!).toBeGreaterThanOrEqual(392);
    }
  });

  test('(c) naive bytes are the sum of all buffers', () => {
    const { buffers, steps } = mlp();
    const plan = planMemory({ buffers, steps });
    expect(plan.naiveBytes).toBe(buffers.reduce((s, b) => s + b.bytes, 0));
    expect(plan.arenaBytes).toBeLessThan(plan.naiveBytes);
  });

  test('(d) MLP: without a budget every activation is kept; with one, some are recomputed', () => {
    const { buffers, steps, h } = mlp();
    const free = planMemory({ buffers, steps });
    checkPlan(free);
    const start = steps.findIndex((s) => s.label === 'loss');
    for (let i = 1; i <= 4; i++) expect(free.lifetimes.get(h(i))![1]).toBeGreaterThan(start);
    // At the loss all four activations (and W1..W4) are live.
    expect(free.peakLiveBytes).toBeGreaterThanOrEqual(4 * 4096 + 4 * 1024);
    const minimum = (() => { try { planMemory({ buffers, steps, budget: 4096 }); } catch (e) { return (e as MemoryBudgetError).minimumBytes; } throw new Error('expected failure'); })();
    expect(minimum).toBeLessThan(free.arenaBytes);
    const budget = Math.floor((minimum + free.arenaBytes) / 2);
    const plan = planMemory({ buffers, steps, budget });
    checkPlan(plan);
    expect(plan.arenaBytes).toBeLessThanOrEqual(budget);
    expect(plan.recomputed.length).toBeGreaterThan(0);
    for (const r of plan.recomputed) {
      const clone = plan.steps[r.at];
      expect(clone.recomputeOf).toBe(r.step);
      expect(clone.writes).toEqual([r.replacement]);
      for (const id of clone.reads) {
        const [f, l] = plan.lifetimes.get(id)!;
        expect(f < r.at && r.at <= l).toBe(true);
      }
      // Nothing after the clone still reads the original copy.
      for (const s of plan.steps.slice(r.at + 1)) expect(s.reads).not.toContain(r.buffer);
    }
    // The greedy sequence does not depend on the budget: the minimum it reports is reachable.
    checkPlan(planMemory({ buffers, steps, budget: minimum }));
    const report = formatMemoryReport(plan);
    expect(report).toContain(`(${free.naiveBytes} B)`);
    expect(report).toContain(`budget:`);
    expect(report).toMatch(/h\d +4\.00 KiB \(4096 B\) +f\d/);
  });

  test('(e) an impossible budget throws and states the minimum', () => {
    const { buffers, steps } = mlp();
    expect(() => planMemory({ buffers, steps, budget: 100 })).toThrow(/budget of 100 B is below the floor of 4.00 KiB \(4096 B\), .*; parameters and constants alone take 4.00 KiB/);
    let err: unknown;
    try { planMemory({ buffers, steps, budget: 8192 }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(MemoryBudgetError);
    const e = err as MemoryBudgetError;
    expect(e.budget).toBe(8192);
    expect(e.minimumBytes).toBeGreaterThan(8192);
    expect(e.floorBytes).toBe(e.minimumBytes);
    expect(e.message).toContain(`below the floor of ${formatBytes(e.minimumBytes)}`);
    expect(e.message).toMatch(/at its peak, at step \d+ \(.*\), \d+ tensors hold .* the largest are /);
    expect(e.largest.length).toBeGreaterThan(0);
    expect(e.largest[0].bytes).toBeGreaterThanOrEqual(e.largest[e.largest.length - 1].bytes);
    expect(e.message).not.toContain('\n');
  });

  test('(f) in-place reuse only where legal', () => {
    const r = buf(1, 1024, 'temp', 'r'), w = buf(2, 1024, 'temp', 'w');
    const make = (extra: PlanBuffer[], steps: PlanStep[]) => planMemory({ buffers: [buf(0, 64, 'param', 'p'), r, w, buf(3, 1024, 'output', 'o'), ...extra], steps });
    const pair = { inPlace: [{ read: 1, write: 2 }] };
    // Legal: r dies at the step.
    expect(make([], [step(0, [0], [1]), step(1, [1], [2], pair), step(2, [2], [3])]).inPlace).toEqual([{ read: 1, write: 2 }]);
    // r is read later: not in place.
    const later = make([], [step(0, [0], [1]), step(1, [1], [2], pair), step(2, [2, 1], [3])]);
    checkPlan(later);
    expect(later.inPlace).toEqual([]);
    expect(later.offsets.get(1)).not.toBe(later.offsets.get(2));
    // The receiver is bigger than the donor.
    const big = buf(4, 2048, 'temp', 'big');
    expect(make([big], [step(0, [0], [1]), step(1, [1], [4], { inPlace: [{ read: 1, write: 4 }] }), step(2, [4], [3])]).inPlace).toEqual([]);
    // Donors that must stay intact: a param, an input.
    expect(make([], [step(0, [0], [2], { inPlace: [{ read: 0, write: 2 }] }), step(1, [2], [3])]).inPlace).toEqual([]);
    const x = buf(5, 1024, 'input', 'x');
    expect(make([x], [step(0, [5], [2], { inPlace: [{ read: 5, write: 2 }] }), step(1, [2], [3])]).inPlace).toEqual([]);
  });

  test('a written-but-never-read temp still takes space on its step', () => {
    const plan = planMemory({ buffers: [buf(0, 1024, 'temp'), buf(1, 1024, 'temp'), buf(2, 1024, 'output')], steps: [step(0, [], [0, 1]), step(1, [0], [2])] });
    checkPlan(plan);
    expect(plan.lifetimes.get(1)).toEqual([0, 0]);
    expect(plan.offsets.get(1)).not.toBe(plan.offsets.get(0));
  });

  test('malformed schedules are rejected', () => {
    expect(() => planMemory({ buffers: [buf(0, 8, 'temp')], steps: [step(0, [0], [])] })).toThrow(/reads temp buffer 0 .* before any step writes it/);
    expect(() => planMemory({ buffers: [buf(0, 8, 'output')], steps: [] })).toThrow(/never written/);
    expect(() => planMemory({ buffers: [], steps: [step(0, [7], [])] })).toThrow(/unknown buffer 7/);
  });

  test('checkPlan catches overlapping live buffers and dead reads', () => {
    const plan = planMemory(chain(false));
    expect(() => checkPlan({ ...plan, offsets: new Map([...plan.offsets].map(([id]) => [id, 0])), arenaBytes: 1024 })).toThrow(/live together/);
    expect(() => checkPlan({ ...plan, lifetimes: new Map([...plan.lifetimes, [0, [0, 0]]]) })).toThrow(/lifetime of buffer 0/);
  });

  test('formatBytes shows both the rounded and the exact figure', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1572864)).toBe('1.50 MiB (1572864 B)');
  });
});
