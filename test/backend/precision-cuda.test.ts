/** Mixed precision on the CUDA back end: the bf16 training step of a small conv net (conv forward and both
 * backward templates, GEMMs, flash attention forward and backward on bf16 operands with f32 accumulators,
 * GroupNorm/LayerNorm in f32, AdamW on f32 masters) compiled by nvcc for sm_90a, and run on the emulated CUDA back
 * end against the C++ back end's bf16 result. The two differ only in accumulation order (tensor-core tiles vs the
 * CPU kernels), so after 5 steps the losses agree within 4u (u = 2^-8). */
import * as k from '../../compiler/index';
import { compileCudaSource } from '../../compiler/compile';
import { nvccAvailable } from '../../runtime/cuda';
import { convNetStep } from '../support/nets';
import { forwardTable, gradTable } from '../support/op-table';

const U = 2 ** -8;

describe('bf16 training step on the CUDA back end', () => {
  (nvccAvailable() ? test : test.skip)('nvcc compiles the bf16 step for sm_90a: every template on bf16 operands', async () => {
    const { spec } = convNetStep();
    const r = await compileCudaSource(spec, { precision: 'bf16' });
    for (const t of ['conv2d', 'conv2d_bwd_data', 'conv2d_bwd_weight', 'matmul', 'sdpa', 'sdpa_grad']) {
      const ks = r.kernels.filter((x) => x.kind === 'extern' && x.template === t);
      expect(`${t}: ${ks.length > 0}`).toBe(`${t}: true`);
      for (const x of ks) if (x.kind === 'extern') expect(`${t}: ${x.operands.map((o) => o.dt)}`).toBe(`${t}: ${x.operands.map(() => 'bf16')}`);
    }
    expect(r.source).toContain('__nv_bfloat16');
    expect(r.cubin).toBeDefined();
  }, 900_000);

  (nvccAvailable() ? test : test.skip)('nvcc compiles the whole op table (forward and gradients) in bf16, small-head attention included', async () => {
    const f = forwardTable(), g = gradTable();
    const outputs = { ...f.outputs, ...Object.fromEntries(Object.entries(g.outputs).map(([a, b]) => [`grad:${a}`, b])) };
    const r = await compileCudaSource({ outputs }, { precision: { precision: 'bf16', inputs: 'low' } });
    expect(r.source).toContain('kiln::small_attn::');
    expect(r.cubin).toBeDefined();
  }, 900_000);

  test('emulated CUDA and C++ agree on 5 bf16 AdamW steps (losses within 4u, weights within 8u normwise)', async () => {
    const { spec, feeds } = convNetStep();
    const [cpu, emu] = [await k.compile(spec, { precision: 'bf16' }), await k.compile(spec, { precision: 'bf16', backend: 'cuda-emu' })];
    for (let i = 0; i < 5; i++) {
      const a = cpu.run(feeds).loss[0], b = emu.run(feeds).loss[0];
      expect(Math.abs(a - b) / a).toBeLessThan(4 * U);
    }
    for (const n of cpu.paramNames().filter((x) => !x.includes('.adam_') && x !== 'adamw.step')) {
      const a = cpu.getParam(n), b = emu.getParam(n);
      let d = 0, s = 0;
      for (let i = 0; i < a.length; i++) { d += (a[i] - b[i]) ** 2; s += a[i] ** 2; }
      expect(`${n}: ${Math.sqrt(d / Math.max(s, 1e-30)) < 8 * U}`).toBe(`${n}: true`);
    }
  }, 900_000);
});
