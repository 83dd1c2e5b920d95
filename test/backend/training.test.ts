import { compile, evaluate, type ParamStore } from '../../compiler/index';
import { mlpStep, convNetStep } from '../support/nets';

/** Runs `n` steps compiled and in the float64 oracle; returns both loss curves. */
async function train(make: () => ReturnType<typeof mlpStep>, n: number, refSteps: number, opts = {}) {
  const { spec, feeds } = make();
  const prog = await compile(spec, opts);
  const compiled = Array.from({ length: n }, () => prog.run(feeds).loss[0]);
  const store: ParamStore = new Map();
  const reference = Array.from({ length: refSteps }, () => evaluate(spec, feeds, store).outputs.loss.data[0]);
  return { prog, compiled, reference };
}

describe('training steps compiled to C++', () => {
  test('MLP with AdamW: matches the oracle step by step, and the loss falls', async () => {
    const { prog, compiled, reference } = await train(mlpStep, 60, 5);
    reference.forEach((r, i) => expect(Math.abs(compiled[i] - r) / r).toBeLessThan(1e-4));
    expect(compiled[59]).toBeLessThan(compiled[0] * 0.5);
    const text = prog.explain();
    expect(text).toMatch(/template matmul/);
    expect(prog.kernels.length).toBeLessThan(prog.parts.unfusedKernels / 2);
  });

  test('conv net (conv, group norm, SiLU, attention, layer norm, AdamW): matches the oracle, loss falls, arena below naive', async () => {
    const { prog, compiled, reference } = await train(convNetStep, 40, 3);
    reference.forEach((r, i) => expect(Math.abs(compiled[i] - r) / r).toBeLessThan(1e-4));
    expect(compiled[39]).toBeLessThan(compiled[0] * 0.7);
    const m = prog.memoryReport();
    expect(m.plannedBytes).toBeLessThan(m.naiveBytes);
    const templates = prog.kernels.filter((k) => k.kind === 'extern').map((k) => (k as { template: string }).template);
    for (const t of ['conv2d', 'conv2d_bwd_data', 'conv2d_bwd_weight', 'sdpa', 'sdpa_grad', 'matmul']) expect(templates).toContain(t);
  });

  test('fused and unfused programs compute the same values; fusion removes most kernels', async () => {
    const { spec, feeds } = convNetStep();
    const fused = await compile({ outputs: spec.outputs });
    const unfused = await compile({ outputs: spec.outputs }, { fusion: false });
    expect(unfused.kernels.length).toBeGreaterThan(2 * fused.kernels.length);
    // group norm + SiLU is one row kernel (mean, variance, then normalize, scale, shift and SiLU per row); so is
    // layer norm; the conv's bias add runs in the conv's epilogue.
    const rows = fused.kernels.filter((k) => k.kind === 'row');
    expect(rows.some((k) => k.ops.includes('sigmoid') && k.ops.includes('rsqrt') && k.kind === 'row' && k.reductions.length === 2)).toBe(true);
    expect(rows.length).toBe(2);
    expect(fused.kernels.some((k) => k.kind === 'extern' && k.template === 'conv2d' && k.ops.includes('add'))).toBe(true);
    const a = fused.run(feeds).loss[0], b = unfused.run(feeds).loss[0];
    expect(Math.abs(a - b) / Math.abs(b)).toBeLessThan(1e-5);
  });

  test('a memory budget below the unplanned peak is met by rematerialization, with identical results', async () => {
    const { spec, feeds } = convNetStep();
    const free = await compile(spec);
    const naivePeak = free.memoryReport().plannedBytes;
    const budget = Math.floor(naivePeak * 0.9);
    const tight = await compile(spec, { budget });
    const m = tight.memoryReport();
    expect(m.plannedBytes).toBeLessThanOrEqual(budget);
    expect(m.recomputed.length).toBeGreaterThan(0);
    for (let i = 0; i < 3; i++) expect(tight.run(feeds).loss[0]).toBe(free.run(feeds).loss[0]);
    await expect(compile(spec, { budget: 1024 })).rejects.toThrow(/is below the floor of .* \(\d+ B\), the smallest arena the planner can reach/);
  });

  test('a second compile of the same graph is a kernel-cache hit', async () => {
    const a = await compile(mlpStep().spec);
    const b = await compile(mlpStep().spec);
    expect(a.parts.sourcePath).toBe(b.parts.sourcePath);
    expect(b.parts.lib.cacheHit).toBe(true);
  });
});
