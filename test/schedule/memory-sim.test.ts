/** The plan is run, not just inspected: every buffer gets a symbolic value (the step that computed it and the
 * values it read), the planned step list runs against arena offsets with memory modelled cell by cell, and
 * every read must see the value the unplanned schedule reads. Sharing or recomputation mistakes show up as a
 * torn or wrong value. */
import { planMemory, checkPlan, MemoryBudgetError } from '../../compiler/schedule/memory';
import type { MemoryPlan, PlanBuffer, PlanInput, PlanStep, BufferKind } from '../../compiler/schedule/plan-types';

const CELL = 64;  // every size in these tests is a multiple of it, so a cell belongs to one buffer at a time

/** What a step computes: a name for each output from the step (clones count as the step they re-run) and
 * the values it read. Two runs agree exactly when they computed the same thing from the same inputs. */
const valueOf = (s: PlanStep, k: number, reads: string[]): string => `s${s.recomputeOf ?? s.id}.${k}(${reads.join(',')})`;

function reference(input: PlanInput): { reads: Map<number, string[]>; outputs: Map<number, string> } {
  const vals = new Map<number, string>(input.buffers.filter((b) => b.kind === 'param' || b.kind === 'const' || b.kind === 'input').map((b) => [b.id, `in${b.id}`]));
  const reads = new Map<number, string[]>();
  for (const s of input.steps) {
    const r = s.reads.map((id) => vals.get(id)!);
    reads.set(s.id, r);
    s.writes.forEach((id, k) => vals.set(id, valueOf(s, k, r)));
  }
  return { reads, outputs: new Map(input.buffers.filter((b) => b.kind === 'output').map((b) => [b.id, vals.get(b.id)!])) };
}

function execute(plan: MemoryPlan): { reads: Map<number, string[]>; outputs: Map<number, string> } {
  const bytes = new Map(plan.buffers.map((b) => [b.id, b.bytes]));
  const mem: (string | undefined)[] = new Array(Math.ceil(plan.arenaBytes / CELL)).fill(undefined);
  const cells = (id: number): number[] => {
    const off = plan.offsets.get(id)!;
    expect(off % CELL).toBe(0);
    return Array.from({ length: bytes.get(id)! / CELL }, (_, i) => off / CELL + i);
  };
  const load = (id: number): string => {
    const vs = new Set(cells(id).map((c) => mem[c]));
    if (vs.size !== 1) throw new Error(`buffer ${id} is torn: ${[...vs].join(' | ')}`);
    return [...vs][0]!;
  };
  const store = (id: number, v: string) => { for (const c of cells(id)) mem[c] = v; };
  for (const b of plan.buffers) if (b.kind === 'param' || b.kind === 'const' || b.kind === 'input') store(b.id, `in${b.id}`);
  const reads = new Map<number, string[]>();
  for (const s of plan.steps) {
    const r = s.reads.map(load);  // a kernel reads element i before writing it: in-place pairs are safe
    if (s.recomputeOf === undefined) reads.set(s.id, r);
    s.writes.forEach((id, k) => store(id, valueOf(s, k, r)));
  }
  return { reads, outputs: new Map(plan.buffers.filter((b) => b.kind === 'output').map((b) => [b.id, load(b.id)])) };
}

function expectSameSemantics(input: PlanInput, plan: MemoryPlan): void {
  const want = reference(input), got = execute(plan);
  expect(got.reads).toEqual(want.reads);
  expect(got.outputs).toEqual(want.outputs);
}

/** Seeded PRNG (mulberry32) so a failure can be replayed. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random DAG schedule: params, inputs, steps reading 1-3 earlier values and writing 1-2 new temps, some
 * recomputable, some with in-place hints (legal or not), some parameter updates and accumulations (a step
 * that rewrites a buffer it reads), which make recomputing a reader of that buffer illegal. */
function randomSchedule(seed: number): PlanInput {
  const r = rng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const buffers: PlanBuffer[] = [];
  const add = (kind: BufferKind) => { const b = { id: buffers.length, bytes: CELL * int(1, 16), kind, label: `${kind}${buffers.length}` }; buffers.push(b); return b.id; };
  const params = Array.from({ length: int(0, 3) }, () => add('param'));
  const avail = [...params, ...Array.from({ length: int(1, 3) }, () => add('input'))];
  const temps: number[] = [];
  const steps: PlanStep[] = [];
  for (let i = 0, n = int(3, 25); i < n; i++) {
    if (r() < 0.08 && params.length > 0 && temps.length > 0) {
      const p = pick(params);
      steps.push({ id: i, label: `update${i}`, reads: [p, pick(temps)], writes: [p], recomputable: false, cost: 5 });
      continue;
    }
    if (r() < 0.06 && temps.length > 0) {
      const t = pick(temps);
      steps.push({ id: i, label: `acc${i}`, reads: [t, pick(avail)], writes: [t], recomputable: false, cost: 5 });
      continue;
    }
    const reads = [...new Set(Array.from({ length: int(1, 3) }, () => pick(avail)))];
    const writes = Array.from({ length: r() < 0.15 ? 2 : 1 }, () => add('temp'));
    const inPlace = r() < 0.4 ? [{ read: pick(reads), write: writes[0] }] : undefined;
    steps.push({ id: i, label: `k${i}`, reads, writes, recomputable: r() < 0.6, cost: int(0, 100), ...(inPlace ? { inPlace } : {}) });
    avail.push(...writes); temps.push(...writes);
  }
  // Some temps become outputs (all unread ones sometimes, a few others always possible).
  const read = new Set(steps.flatMap((s) => s.reads));
  for (const id of temps) if ((!read.has(id) && r() < 0.5) || r() < 0.1) buffers[id] = { ...buffers[id], kind: 'output' };
  return { buffers, steps };
}

describe('memory planner, executed', () => {
  test('200 random DAG schedules: valid plans, peak <= arena <= naive, same values; budgets met or refused', () => {
    let recomputes = 0, refusals = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const input = randomSchedule(seed);
      const free = planMemory(input);
      checkPlan(free);
      expect(free.arenaBytes).toBeGreaterThanOrEqual(free.peakLiveBytes);
      expect(free.arenaBytes).toBeLessThanOrEqual(free.naiveBytes);
      expectSameSemantics(input, free);
      // A budget between the parameters' footprint and the unplanned arena: met, or refused with a minimum that
      // is then reachable.
      const resident = input.buffers.filter((b) => b.kind === 'param').reduce((s, b) => s + b.bytes, 0);
      const budget = resident + Math.floor(rng(seed * 7)() * (free.arenaBytes - resident));
      let plan: MemoryPlan;
      try {
        plan = planMemory({ ...input, budget });
      } catch (e) {
        if (!(e instanceof MemoryBudgetError)) throw e;
        expect(e.minimumBytes).toBeGreaterThan(budget);
        refusals++;
        plan = planMemory({ ...input, budget: e.minimumBytes });
      }
      checkPlan(plan);
      expectSameSemantics(input, plan);
      recomputes += plan.recomputed.length;
    }
    // The generator exercises both outcomes.
    expect(recomputes).toBeGreaterThan(20);
    expect(refusals).toBeGreaterThan(20);
  });

  test('a tight budget forces several recomputes on an 8-layer MLP, and the plan still computes the same values', () => {
    const act = 4096;
    const buffers: PlanBuffer[] = [{ id: 0, bytes: act, kind: 'input', label: 'x' }];
    const steps: PlanStep[] = [];
    const L = 8, W = (i: number) => 100 + i, h = (i: number) => (i === 0 ? 0 : 200 + i), g = (i: number) => 300 + i;
    for (let i = 1; i <= L; i++) {
      buffers.push({ id: W(i), bytes: 1024, kind: 'param', label: `W${i}` }, { id: h(i), bytes: act, kind: 'temp', label: `h${i}` },
        { id: g(i), bytes: act, kind: 'temp', label: `g${i}` }, { id: 400 + i, bytes: 1024, kind: 'output', label: `dW${i}` });
      steps.push({ id: i, label: `f${i}`, reads: [h(i - 1), W(i)], writes: [h(i)], recomputable: true, cost: 10 });
    }
    steps.push({ id: 50, label: 'loss', reads: [h(L)], writes: [g(L)], recomputable: false, cost: 1 });
    for (let i = L; i >= 1; i--) {
      steps.push({ id: 60 + i, label: `b${i}`, reads: [g(i), h(i), h(i - 1), W(i)], writes: i > 1 ? [g(i - 1), 400 + i] : [400 + i], recomputable: false, cost: 20 });
    }
    const input = { buffers, steps };
    const free = planMemory(input);
    let minimum = 0;
    try { planMemory({ ...input, budget: L * 1024 }); } catch (e) { minimum = (e as MemoryBudgetError).minimumBytes; }
    const plan = planMemory({ ...input, budget: minimum });
    checkPlan(plan);
    expect(plan.arenaBytes).toBeLessThan(free.arenaBytes - 2 * act);
    expect(plan.recomputed.length).toBeGreaterThanOrEqual(3);
    expectSameSemantics(input, plan);
  });
});

describe('memory planner, deep schedules', () => {
  // 400 layers forward and backward (1201 steps): rematerialization takes its splits in batches here.
  const L = 400, act = 1024;
  const W = (i: number) => 10000 + i, h = (i: number) => (i === 0 ? 0 : 20000 + i), g = (i: number) => 30000 + i, dW = (i: number) => 40000 + i;
  const buffers: PlanBuffer[] = [{ id: 0, bytes: act, kind: 'input', label: 'x' }];
  const steps: PlanStep[] = [];
  for (let i = 1; i <= L; i++) {
    buffers.push({ id: W(i), bytes: 256, kind: 'param', label: `W${i}` }, { id: h(i), bytes: act + 64 * (i % 5), kind: 'temp', label: `h${i}` },
      { id: g(i), bytes: act, kind: 'temp', label: `g${i}` }, { id: dW(i), bytes: 256, kind: 'output', label: `dW${i}` });
    steps.push({ id: i, label: `f${i}`, reads: [h(i - 1), W(i)], writes: [h(i)], recomputable: true, cost: 10 + (i % 3) });
  }
  steps.push({ id: 1000, label: 'loss', reads: [h(L)], writes: [g(L)], recomputable: false, cost: 1 });
  for (let i = L; i >= 1; i--) steps.push({ id: 2000 + i, label: `b${i}`, reads: [g(i), h(i), h(i - 1), W(i)], writes: i > 1 ? [g(i - 1), dW(i)] : [dW(i)], recomputable: false, cost: 20 });
  const input = { buffers, steps };

  test('a budget at 40% of the planned arena is met with batched recomputes, and the plan computes the same values', () => {
    const free = planMemory(input);
    const budget = Math.floor(0.4 * free.arenaBytes);
    const plan = planMemory({ ...input, budget });
    checkPlan(plan);
    expect(plan.arenaBytes).toBeLessThanOrEqual(budget);
    expect(plan.recomputed.length).toBeGreaterThan(100);
    expectSameSemantics(input, plan);
  });

  test('a budget below what any split reaches is refused with a minimum that is then met', () => {
    const resident = L * 256;
    let minimum = 0;
    try { planMemory({ ...input, budget: resident + 4 * act }); } catch (e) { minimum = (e as MemoryBudgetError).minimumBytes; }
    expect(minimum).toBeGreaterThan(resident + 4 * act);
    const plan = planMemory({ ...input, budget: minimum });
    checkPlan(plan);
    expect(plan.arenaBytes).toBeLessThanOrEqual(minimum);
    expectSameSemantics(input, plan);
  });
});
