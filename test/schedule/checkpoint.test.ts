/** Checkpointed segments and budgets on a compiled C++ training step (a deep residual net: conv, group norm +
 * SiLU, layer norm, attention, GELU MLP, AdamW): the plans differ, the numbers must not, to the bit. */
import { compile, lowerProgram, type CpuProgram } from '../../compiler/index';
import { MemoryBudgetError } from '../../compiler/schedule/plan-types';
import { deepNetStep } from '../support/deep-net';

const BLOCKS = 3, STEPS = 3;

/** Runs STEPS training steps; returns every loss and every parameter (AdamW state included) after them. */
function train(prog: CpuProgram, feeds: Record<string, Float64Array>): { losses: number[]; params: Map<string, Float32Array> } {
  const losses = Array.from({ length: STEPS }, () => prog.run(feeds).loss[0]);
  return { losses, params: new Map(prog.paramNames().map((n) => [n, Float32Array.from(prog.getParam(n) as Float32Array)])) };
}

/** Bitwise equality of two parameter sets, as the count of differing words (0 expected) over all of them. */
function differingWords(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  let n = 0;
  for (const [name, x] of a) {
    const ux = new Uint32Array(x.buffer), uy = new Uint32Array(b.get(name)!.buffer);
    expect(uy.length).toBe(ux.length);
    for (let i = 0; i < ux.length; i++) if (ux[i] !== uy[i]) n++;
  }
  return n;
}

const templates = (prog: CpuProgram): string[] => prog.parts.plan.recomputed.map((r) => prog.kernels[r.at]).filter((k) => k.kind === 'extern').map((k) => (k as { template: string }).template);

describe('checkpointed segments and budgets (C++)', () => {
  let plain: CpuProgram, plainRun: ReturnType<typeof train>;
  const { feeds } = deepNetStep(BLOCKS, false);

  beforeAll(async () => {
    plain = await compile(deepNetStep(BLOCKS, false).spec);
    plainRun = train(plain, feeds);
  }, 900_000);

  test('checkpoint(fn): the same kernels plus recomputes, gradients and parameters bitwise identical, a smaller arena', async () => {
    const cp = await compile(deepNetStep(BLOCKS, true).spec);
    const run = train(cp, feeds);
    expect(run.losses).toEqual(plainRun.losses);
    expect(differingWords(plainRun.params, run.params)).toBe(0);
    // The losses move (the parameters really were updated by the gradients being compared).
    expect(run.losses[STEPS - 1]).not.toBe(run.losses[0]);
    // Same kernels in the same order, plus the segments' recomputes (templates included).
    const recomputed = new Set(cp.parts.plan.steps.filter((s) => s.recomputeOf !== undefined).map((s) => s.id));
    expect(cp.kernels.filter((_, i) => !recomputed.has(cp.parts.plan.steps[i].id)).map((k) => k.name)).toEqual(plain.kernels.map((k) => k.name));
    expect(new Set(templates(cp))).toEqual(new Set(['conv2d', 'matmul', 'sdpa']));
    const m = cp.memoryReport(), p = plain.memoryReport();
    expect(p.recomputed.length).toBe(0);
    // Each block's inner values leave the peak: activations live there 973 KiB -> 313 KiB on 3 blocks (measured).
    expect(m.plannedBytes).toBeLessThan(0.6 * p.plannedBytes);
    expect(m.byKind.activations).toBeLessThan(0.4 * p.byKind.activations);
    // A segment is recomputed once: recompute FLOPs are a fraction of the step's (measured 16%).
    expect(m.flops.base).toBe(p.flops.base);
    expect(m.flops.ratio).toBeGreaterThan(0.05);
    expect(m.flops.ratio).toBeLessThan(0.35);
    expect(cp.arena.byteLength).toBe(m.plannedBytes);
  }, 600_000);

  test('updates committed in place (the default) vs staged until one commit: same parameters bitwise, a smaller arena', async () => {
    const staged = await compile(deepNetStep(BLOCKS, false).spec, { stagedUpdates: true });
    const run = train(staged, feeds);
    expect(run.losses).toEqual(plainRun.losses);
    expect(differingWords(plainRun.params, run.params)).toBe(0);
    expect(run.losses[STEPS - 1]).not.toBe(run.losses[0]);
    // Staged: one commit copying every update (3 per parameter + the step count); in place: none left.
    const commitOf = (p: CpuProgram) => p.kernels.filter((k) => k.kind === 'commit').map((k) => (k as { copies: readonly unknown[] }).copies.length);
    expect(commitOf(staged)).toEqual([3 * plain.paramNames().filter((n) => !/adam_|\.step$/.test(n)).length + 1]);
    expect(commitOf(plain)).toEqual([]);
    expect(plain.parts.plan.commits.length).toBe(commitOf(staged)[0]);
    expect(plain.memoryReport().plannedBytes).toBeLessThan(staged.memoryReport().plannedBytes);
    expect(plain.arena.byteLength).toBe(plain.memoryReport().plannedBytes);
    expect(staged.arena.byteLength).toBe(staged.memoryReport().plannedBytes);
  }, 600_000);

  test('a budget below the no-recompute arena: same parameters bitwise, the runtime arena equals the plan', async () => {
    const free = plain.memoryReport();
    const budget = Math.floor(free.plannedBytes * 0.65);
    const tight = await compile(deepNetStep(BLOCKS, false).spec, { budget });
    const m = tight.memoryReport();
    expect(m.plannedBytes).toBeLessThanOrEqual(budget);
    expect(tight.arena.byteLength).toBe(m.plannedBytes);
    expect(plain.arena.byteLength).toBe(free.plannedBytes);
    // Templates are recomputed, not only pointwise kernels.
    expect(templates(tight).length).toBeGreaterThan(0);
    const run = train(tight, feeds);
    expect(run.losses).toEqual(plainRun.losses);
    expect(differingWords(plainRun.params, run.params)).toBe(0);
    expect(m.flops.recompute).toBeGreaterThan(0);
  }, 600_000);

  test("candidate segments (when: 'budget'): none recomputed without a budget; under one, whole segments first, same parameters bitwise", async () => {
    const free = plain.memoryReport();
    const none = lowerProgram(deepNetStep(BLOCKS, 'budget').spec);
    expect(none.planInput.optionalSegments?.length).toBe(BLOCKS);
    expect(none.plan.recomputed.length).toBe(0);
    expect(none.plan.segments).toEqual({ candidates: BLOCKS, chosen: 0, probes: 0 });
    // Between the plain arena and the arena with every segment recomputed: some, not all, segments are chosen.
    const all = lowerProgram(deepNetStep(BLOCKS, true).spec).plan.arenaBytes;
    const budget = Math.floor((free.plannedBytes + all) / 2);
    const cand = await compile(deepNetStep(BLOCKS, 'budget').spec, { budget });
    const m = cand.memoryReport();
    const seg = cand.parts.plan.segments!;
    console.log(`candidate segments: plain ${free.plannedBytes} B, all segments ${all} B, budget ${budget} B -> ${m.plannedBytes} B, ${seg.chosen} of ${seg.candidates} segments (${seg.probes} plans), +${(100 * m.flops.ratio).toFixed(1)}% FLOPs`);
    expect(m.plannedBytes).toBeLessThanOrEqual(budget);
    expect(seg.chosen).toBeGreaterThan(0);
    expect(seg.chosen).toBeLessThanOrEqual(BLOCKS);
    // Whole segments, templates included, and nothing else: every recompute re-runs a step of a chosen segment.
    expect(new Set(templates(cand))).toEqual(new Set(['conv2d', 'matmul', 'sdpa']));
    expect(cand.arena.byteLength).toBe(m.plannedBytes);
    const run = train(cand, feeds);
    expect(run.losses).toEqual(plainRun.losses);
    expect(differingWords(plainRun.params, run.params)).toBe(0);
  }, 600_000);

  test('bf16: the segments and the gradient roles survive the precision pass; checkpointed bf16 trains bitwise like plain bf16', async () => {
    const cpLow = lowerProgram(deepNetStep(BLOCKS, true).spec, { precision: 'bf16' });
    expect(cpLow.planInput.buffers.filter((b) => b.segment !== undefined).length).toBeGreaterThan(20);
    expect(cpLow.planInput.buffers.filter((b) => b.role === 'gradient').length).toBeGreaterThan(20);
    expect(cpLow.plan.recomputed.length).toBeGreaterThan(0);
    const a = await compile(deepNetStep(BLOCKS, false).spec, { precision: 'bf16' });
    const b = await compile(deepNetStep(BLOCKS, true).spec, { precision: 'bf16' });
    expect(b.memoryReport().byKind.activations).toBeLessThan(a.memoryReport().byKind.activations);
    const ra = train(a, feeds), rb = train(b, feeds);
    expect(rb.losses).toEqual(ra.losses);
    expect(differingWords(ra.params, rb.params)).toBe(0);
  }, 600_000);

  test('a budget below the floor: one paragraph naming budget, floor and the largest live tensors with source lines', () => {
    const { spec } = deepNetStep(BLOCKS, false);
    const free = lowerProgram(spec).plan.arenaBytes;
    let err: unknown;
    try { lowerProgram(spec, { budget: Math.floor(free * 0.2) }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(MemoryBudgetError);
    const e = err as MemoryBudgetError;
    expect(e.floorBytes).toBeGreaterThan(e.budget);
    expect(e.floorBytes).toBeLessThan(free);
    expect(e.message).toContain(`(${e.budget} B) is below the floor of`);
    expect(e.message).toContain(`(${e.floorBytes} B)`);
    expect(e.message).not.toContain('\n');
    expect(e.largest.length).toBe(5);
    for (const t of e.largest) expect(t.label).toMatch(/^[a-z_0-9]+#\d+ \(.*\)/);
    // The largest name the model's source lines.
    expect(e.largest.some((t) => /deep-net\.ts:\d+:\d+/.test(t.label))).toBe(true);
    expect(e.message).toMatch(/deep-net\.ts:\d+:\d+\): \d/);
    // The floor is honest: a budget at the floor succeeds.
    expect(lowerProgram(spec, { budget: e.floorBytes }).plan.arenaBytes).toBeLessThanOrEqual(e.floorBytes);
  }, 300_000);
});
