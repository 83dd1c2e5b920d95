/** The op table, forward and backward, through one back end against the float64 oracle: every primitive's forward
 * case, and every differentiable primitive and composite with its gradients. All cases go into one program (one
 * native build), each with its own inputs. Shared by the C++ back end and the emulated CUDA back end, so a new
 * back end gets the whole table by calling describeOpTable. */
import { compile, evaluate, grad, input, constant, type CompileOptions, type Tensor } from '../../compiler/index';
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
