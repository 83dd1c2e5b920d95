/** The op table, forward and backward, through one back end against the float64 oracle: every primitive's forward
 * case, and every differentiable primitive and composite with its gradients. All cases go into one program (one
 * native build), each with its own inputs. Shared by the C++ back end and the emulated CUDA back end, so a new
 * back end gets the whole table by calling describeOpTable. */
import { compile, evaluate, grad, input, constant, type CompileOptions, type Tensor } from '../../compiler/index';
import { collect } from '../../compiler/ir/graph';
import { numel } from '../../compiler/ir/shape';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, halfToF32 } from '../../compiler/ir/half';
import { forwardCases } from '../ops/forward-cases';
import { compositeGradCases, primitiveGradCases } from '../ops/grad-cases';
import { values } from './gradcheck';
import { liftConstants, relErr } from './lift';

/** f32 against float64, for well-conditioned cases (normwise). */
const TOL = 1e-5;

/** Every primitive's forward case as one program's outputs and feeds (constants lifted to inputs). */
export function forwardTable(): { outputs: Record<string, Tensor>; feeds: Record<string, ArrayLike<number>> } {
  const outputs: Record<string, Tensor> = {};
  let feeds: Record<string, ArrayLike<number>> = {};
  for (const [op, c] of Object.entries(forwardCases)) {
    const lifted = liftConstants({ [op]: c.build() }, op);
    Object.assign(outputs, lifted.outputs);
    feeds = { ...feeds, ...lifted.feeds, ...(c.feeds ?? {}) };
  }
  return { outputs, feeds };
}

/** Every differentiable primitive and composite: `<key>_y` and the gradients `<key>_g<i>` of Σ y·w (random w). */
export function gradTable(): { outputs: Record<string, Tensor>; feeds: Record<string, Float64Array> } {
  const outs: Record<string, Tensor> = {};
  const feeds: Record<string, Float64Array> = {};
  const cases = [...Object.entries(primitiveGradCases).map(([k, c]) => [k, c!] as const), ...compositeGradCases.map((c, i) => [`comp${i}`, c] as const)];
  for (const [key, c] of cases) {
    const xs = c.shapes.map((s, i) => input(`${key}_x${i}`, s));
    c.shapes.forEach((s, i) => { feeds[`${key}_x${i}`] = values(s, c.domains?.[i] ?? 'real', 11 + i); });
    const y = c.f(...xs);
    const gs = grad(y.mul(constant(values(y.shape, 'real', 99), y.shape)).sum(), xs);
    outs[`${key}_y`] = y;
    gs.forEach((g, i) => { outs[`${key}_g${i}`] = g; });
  }
  const lifted = liftConstants(outs, 'g');
  return { outputs: lifted.outputs, feeds: { ...feeds, ...lifted.feeds } };
}

/** The bound for one output: f16/bf16 round trips are compared with exact math, so f16's half-ulp. */
export const opTableBound = (output: string): number => (output.startsWith('cast') ? 2 ** -11 : TOL);

/** Unit roundoff of the 16-bit storage types. */
export const HALF_U = { bf16: 2 ** -8, f16: 2 ** -11 } as const;

/** The whole op table (forward cases and gradients as `grad:<key>`) for 16-bit storage: float outputs cast to
 * `precision` (so every value is rounded where it is stored), feeds rounded to it (compile with
 * `{ precision: { precision, inputs: 'low' } }` and they are stored low exactly). `want` is the float64 oracle of
 * the uncast outputs; `bound(name)` is the normwise bound of test/backend/precision-cpu.test.ts's error model:
 * (3 for gradients and composites, else 1)·u + K·2^-23, K the reduction length; `toF32` reads an output back. */
export function halfOpTable(precision: 'bf16' | 'f16') {
  const f = forwardTable(), g = gradTable();
  const written: Record<string, Tensor> = { ...f.outputs, ...Object.fromEntries(Object.entries(g.outputs).map(([a, b]) => [`grad:${a}`, b])) };
  const outputs = Object.fromEntries(Object.entries(written).map(([a, b]) => [a, b.dtype === 'f32' ? b.cast(precision) : b]));
  const leaves = collect({ outputs: written }).inputs;
  const round = (v: number) => (precision === 'bf16' ? bf16BitsToF32(f32ToBf16Bits(v)) : f16BitsToF32(f32ToF16Bits(v)));
  const fed: Record<string, ArrayLike<number>> = { ...f.feeds, ...g.feeds };
  const dtypeOf = new Map(leaves.map((n) => [n.attrs.name, n.dtype]));
  const feeds = Object.fromEntries(Object.entries(fed).map(([n, v]) => [n, dtypeOf.get(n) === 'f32' ? Float64Array.from(v, round) : v]));
  const want = evaluate({ outputs: written }, feeds).outputs;
  const bound = (name: string): number => {
    const t = written[name];
    const K = Math.max(1, ...t.node.inputs.map((i) => numel(i.shape) / Math.max(1, numel(t.shape))));
    return (name.startsWith('grad:') ? 3 : 1) * HALF_U[precision] + K * 2 ** -23;
  };
  const toF32 = (name: string, raw: ArrayLike<number>): ArrayLike<number> => (outputs[name].dtype === precision ? halfToF32(raw as Uint16Array, precision) : raw);
  return { outputs, written, feeds, want, bound, toF32 };
}

export function describeOpTable(label: string, opts: CompileOptions = {}): void {
  describe(label, () => {
    test('forward: every primitive', async () => {
      const { outputs: outs, feeds } = forwardTable();
      const prog = await compile({ outputs: outs }, opts);
      const got = prog.run(feeds as never);
      const want = evaluate({ outputs: outs }, feeds).outputs;
      for (const op of Object.keys(outs)) {
        const e = relErr(got[op], want[op].data);
        if (!(e <= TOL)) throw new Error(`${op}: relative error ${e} (got ${Array.from(got[op]).slice(0, 6)}, want ${Array.from(want[op].data).slice(0, 6)})`);
      }
    });

    test('forward and gradients: every differentiable primitive and composite', async () => {
      const { outputs, feeds } = gradTable();
      const got = (await compile({ outputs }, opts)).run(feeds);
      const want = evaluate({ outputs }, feeds).outputs;
      const bad = Object.keys(outputs).map((k) => [k, relErr(got[k], want[k].data)] as const).filter(([k, e]) => !(e <= opTableBound(k)));
      expect(bad).toEqual([]);
    });
  });
}
