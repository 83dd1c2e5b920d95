/** Shared by the plain-store tests (attention-store, conv-store): deterministic inputs, and the compiled C++
 * program's outputs against the float64 reference. */
import { compile, evaluate, type GraphSpec } from '../../compiler/index';

/** n deterministic values in about [-1.3, 1.3], different for each seed s. */
export const vals = (n: number, s: number): Float64Array =>
  Float64Array.from({ length: n }, (_v, i) => Math.sin(i * 0.37 + s) + 0.3 * Math.cos(i * 1.7 * s));

/** Compiles `spec()` for the CPU, runs it on `feeds`, and expects every output within `tol` (relative, floor 1) of
 * the float64 reference. */
export async function expectMatchesReference(spec: () => GraphSpec, feeds: Record<string, Float64Array>, tol = 1e-5): Promise<void> {
  const got = (await compile(spec())).run(feeds), want = evaluate(spec(), feeds).outputs;
  for (const name of Object.keys(want)) {
    const w = want[name].data, g = got[name];
    expect(g).toHaveLength(w.length);
    let err = 0;
    for (let i = 0; i < w.length; i++) err = Math.max(err, Math.abs(g[i] - w[i]) / Math.max(1, Math.abs(w[i])));
    expect([name, err <= tol]).toEqual([name, true]);
  }
}
