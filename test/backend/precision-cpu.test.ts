/** Mixed precision on the C++ back end: bf16 / f16 storage with f32 compute against the float64 oracle (every
 * primitive, gradient and composite of the op table; the same table in bf16 on the emulated CUDA back end, whose
 * templates take the bf16 operands on the tensor-core tiles), a tiny UNet step's gradients in bf16 against f32, a small
 * conv net trained 20 steps in bf16 against f32, and parameter loading across types.
 *
 * Error model (u = unit roundoff: bf16 2^-8, f16 2^-11; K = the reduction length, bounded by the largest input's
 * element count over the output's): the inputs are fed already representable in the low type, so a value is
 * rounded once where a kernel stores it and f32 accumulates K terms with error at most K·2^-24 relative.
 * - one primitive, result stored low: normwise relative error ≤ u + K·2^-23 (one rounding, f32 accumulation);
 * - a gradient or composite (several kernels, each storing its result low, then the output): ≤ 3u + K·2^-23
 *   (measured worst: 1.3u bf16 (rsqrt'), 1.4u f16 (recip')). */
import * as k from '../../compiler/index';
import { bf16BitsToF32, f32ToBf16Bits } from '../../compiler/ir/half';
import { HALF_U, halfOpTable } from '../support/op-table';
import { relErr } from '../support/lift';
import { convNetStep, microUnetStep } from '../support/nets';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadWeightsInto, saveParams } from '../../models/weights';

const U = HALF_U;

describe.each([['cpu', 'bf16'], ['cpu', 'f16'], ['cuda-emu', 'bf16']] as const)('%s back end, %s storage', (backend, precision) => {
  test('every primitive, gradient and composite of the op table against float64 (bound per output above)', async () => {
    const t = halfOpTable(precision);
    const prog = await k.compile({ outputs: t.outputs }, { precision: { precision, inputs: 'low' }, backend });
    // Fed inputs are stored low: the program's input leaves are bf16 / f16.
    expect(prog.parts.inputs.filter((n) => n.dtype === precision).length).toBeGreaterThan(50);
    const raw = prog.run(t.feeds as never);
    const bad: string[] = [];
    for (const name of Object.keys(t.written)) {
      const e = relErr(t.toF32(name, raw[name]), t.want[name].data);
      if (!(e <= t.bound(name))) bad.push(`${name}: ${e.toExponential(2)} > ${t.bound(name).toExponential(2)}`);
    }
    expect(bad).toEqual([]);
  }, 600_000);
});

describe('training in bf16 tracks f32 (C++ back end)', () => {
  test('tiny UNet step: every parameter gradient in bf16 within 16u (normwise) of f32, the loss within 2u', async () => {
    const { spec, feeds } = microUnetStep();
    const loss = spec.outputs.loss;
    const params = k.trainableParams(loss);
    const grads = k.grad(loss, params);
    const names = params.map((p) => (p.node.attrs as { name: string }).name);
    // lr 0: the update keeps the parameters, but makes them what the policy keeps in f32 (trainable masters).
    const g = { outputs: { loss, ...Object.fromEntries(grads.map((x, i) => [`g:${names[i]}`, x])) }, updates: k.sgd(params, grads, { lr: 0 }) };
    const [p32, p16] = await Promise.all([k.compile(g), k.compile(g, { precision: 'bf16' })]);
    const a = p32.run(feeds), b = p16.run(feeds);
    const errs = names.map((n) => relErr(b[`g:${n}`], a[`g:${n}`]));
    const sorted = [...errs].sort((x, y) => x - y);
    console.log(`tiny UNet bf16 vs f32 gradients: ${names.length} tensors, median ${(sorted[sorted.length >> 1] / U.bf16).toFixed(2)}u, max ${(sorted[sorted.length - 1] / U.bf16).toFixed(2)}u; loss ${a.loss[0]} vs ${b.loss[0]}`);
    expect(Math.abs(b.loss[0] - a.loss[0]) / Math.abs(a.loss[0])).toBeLessThan(2 * U.bf16);
    expect(sorted[sorted.length - 1]).toBeLessThan(16 * U.bf16);
    expect(sorted[sorted.length >> 1]).toBeLessThan(4 * U.bf16);
  }, 600_000);

  test('conv net, 20 AdamW steps: the bf16 loss curve within 10% of f32 at every step; casts fuse into neighbours', async () => {
    const { spec, feeds } = convNetStep();
    const [p32, p16] = await Promise.all([k.compile(spec), k.compile(spec, { precision: 'bf16' })]);
    const l32: number[] = [], l16: number[] = [];
    for (let i = 0; i < 20; i++) { l32.push(p32.run(feeds).loss[0]); l16.push(p16.run(feeds).loss[0]); }
    const gap = Math.max(...l32.map((v, i) => Math.abs(l16[i] - v) / v));
    console.log(`conv net 20 steps: f32 ${l32[0].toFixed(4)} -> ${l32[19].toFixed(4)}, bf16 ${l16[0].toFixed(4)} -> ${l16[19].toFixed(4)}, largest relative gap ${gap.toFixed(4)}`);
    expect(l32[19]).toBeLessThan(l32[0] / 10);
    expect(gap).toBeLessThan(0.1);
    // Masters, gradients' optimizer state and outputs stay f32; activations are stored in bf16.
    const bufs = p16.parts.plan.buffers;
    const dt = (kind: string) => bufs.filter((x) => x.kind === kind).map((x) => p16.parts.info.get(x.id)!.dtype);
    expect(new Set(dt('param'))).toEqual(new Set(['f32']));
    // Every GEMM / conv / attention kernel reads bf16 operands (backward values computed from the f32 loss stay
    // f32 until such a kernel reads them).
    const templates = p16.parts.kernels.filter((x): x is Extract<typeof x, { kind: 'extern' }> => x.kind === 'extern');
    expect(templates.length).toBe(p32.parts.kernels.filter((x) => x.kind === 'extern').length);
    expect(new Set(templates.flatMap((x) => x.operands.map((o) => o.dt)))).toEqual(new Set(['bf16']));
    // explain() says what the policy decided: bf16 and f32 storage, and the casts fused into the GEMM / conv kernels.
    const text = p16.explain();
    expect(text).toMatch(/^storage: (bf16|f32) .* in \d+ buffers, (bf16|f32) .* in \d+ buffers$/m);
    expect(text).toMatch(/template conv2d .*fuses: conv2d cast/);
    expect(p32.explain()).toMatch(/^storage: f32 [^,]* in \d+ buffers$/m);
    const temps = dt('temp');
    console.log(`conv net temporaries: ${temps.filter((d) => d === 'bf16').length} of ${temps.length} bf16`);
    // No kernel computes only a cast of an activation: the only cast-only kernels read an f32 master weight.
    const castOnly = p16.parts.fusedOps.map((ops, i) => ({ ops, i })).filter(({ ops }) => ops.every((o) => o.startsWith('cast#')));
    const groups = p16.parts.fusion.groups;
    for (const { i } of castOnly) {
      const st = p16.parts.plan.steps[i];
      const root = groups[st.recomputeOf ?? st.id].root;
      let src = root.inputs[0];
      while (src.inputs.length === 1 && src.op !== 'param') src = src.inputs[0];
      expect(`${i}: ${src.op}`).toBe(`${i}: param`);
    }
    const arena32 = p32.memoryReport().plannedBytes, arena16 = p16.memoryReport().plannedBytes;
    console.log(`conv net arena: f32 ${arena32} B, bf16 ${arena16} B; cast-only kernels (master weights): ${castOnly.length}`);
  }, 600_000);

  test('f16 with dynamic loss scaling survives an injected overflow: step skipped in the program, scale halved, training continues', async () => {
    const { spec, feeds } = convNetStep(0.02, { lossScale: true });
    const [p32, p16] = await Promise.all([k.compile(spec), k.compile(spec, { precision: 'f16' })]);
    const scaler = new k.DynamicLossScale({ init: 2 ** 12, interval: 5 });
    const names = p16.paramNames().filter((n) => !n.includes('.adam_') && n !== 'adamw.step');
    const l32: number[] = [], l16: number[] = [];
    const INJECT = 7;
    for (let i = 0; i < 20; i++) {
      const before = names.map((n) => Array.from(p16.getParam(n)));
      const scale = scaler.scale;
      const out = p16.run({ ...feeds, loss_scale: scale, boost: i === INJECT ? 1e6 : 1 });
      const { applied } = scaler.update(out.grads_finite[0] === 1);
      if (i === INJECT) {
        // The overflow: nothing changed (weights, moments, step counter), the scale halved.
        expect(applied).toBe(false);
        expect(names.map((n) => Array.from(p16.getParam(n)))).toEqual(before);
        expect(scaler.scale).toBe(scale / 2);
        continue;
      }
      expect(applied).toBe(true);
      l16.push(out.loss[0]);
      l32.push(p32.run({ ...feeds, loss_scale: 1, boost: 1 }).loss[0]);
    }
    expect(scaler.skipped).toBe(1);
    // 2^12, doubled after steps 0-4, halved at the overflow, doubled after 5 and after 10 more good steps.
    expect(scaler.scale).toBe(2 ** 14);
    const gap = Math.max(...l32.map((v, i) => Math.abs(l16[i] - v) / v));
    console.log(`f16 + loss scaling, 19 applied steps: f32 ${l32[0].toFixed(4)} -> ${l32[18].toFixed(4)}, f16 ${l16[0].toFixed(4)} -> ${l16[18].toFixed(4)}, largest relative gap ${gap.toFixed(4)}`);
    expect(l16[18]).toBeLessThan(l16[0] / 10);
    expect(gap).toBeLessThan(0.1);
  }, 600_000);

  test('parameters load across types: f32 values into a bf16 parameter are rounded to nearest even; raw bf16 words load as they are', async () => {
    const w = k.param('w', [4], { dtype: 'bf16', trainable: false });
    const prog = await k.compile({ outputs: { y: w.cast('f32').mul(2) } });
    prog.setParam('w', Float32Array.of(1, 1 + 2 ** -9, 1 + 3 * 2 ** -9, -3.14159));
    expect(Array.from(prog.run().y)).toEqual([2, 2, 2 * (1 + 2 ** -7), 2 * bf16BitsToF32(f32ToBf16Bits(-3.14159))]);
    prog.setParam('w', prog.getParam('w'));  // raw words round-trip unchanged
    expect(Array.from(prog.getParam('w'))).toEqual([0x3f80, 0x3f80, 0x3f81, f32ToBf16Bits(-3.14159)]);
  }, 300_000);

  test('safetensors across types: a BF16 file into an f32 parameter widens exactly; an F32 file into a parameter the bf16 policy stores low rounds to nearest even', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-precision-'));
    const w = k.param('w', [4], { trainable: false });
    const vals = Float64Array.of(1, 1 + 2 ** -9, 1 + 3 * 2 ** -9, -3.14159);
    const params = new Map([['w', w]]);
    const rounded = Array.from(vals, (v) => bf16BitsToF32(f32ToBf16Bits(v)));
    for (const dtype of ['BF16', 'F32'] as const) saveParams(path.join(dir, `${dtype}.safetensors`), new Map([['w', vals]]), params, { dtype });
    const load = (dtype: string) => { const st: k.ParamStore = new Map(); loadWeightsInto(st, path.join(dir, `${dtype}.safetensors`), params); return st; };
    const f32 = await k.compile({ outputs: { y: w.mul(1) } });
    const low = await k.compile({ outputs: { y: w.mul(1) } }, { precision: 'bf16' });
    expect(low.parts.params[0].dtype).toBe('bf16');
    f32.loadParams(load('BF16'));
    expect(Array.from(f32.run().y)).toEqual(rounded);                       // the file's bf16 values, exactly
    low.loadParams(load('F32'));
    expect(Array.from(low.run().y)).toEqual(rounded);                       // rounded once, to nearest even
    f32.loadParams(load('F32'));
    expect(Array.from(f32.run().y)).toEqual(Array.from(Float32Array.from(vals)));
    fs.rmSync(dir, { recursive: true });
  }, 300_000);
});
