/** Side outputs (fusion step 5, multi-output pointwise kernels): AdamW's new moments are stored by the kernel of
 * the parameter's update that reads them, one kernel per parameter writing p', m', v', committed in place; the
 * results are the float64 oracle's, as with the kernels apart (fusion off). Values read elsewhere keep their own
 * kernel. */
import { compile, evaluate, input, type ParamStore } from '../../compiler/index';
import { mlpStep } from '../support/nets';

const PARAMS = ['l1.w', 'l1.b', 'l2.w', 'l2.b'];

describe('side outputs: one kernel per AdamW parameter update', () => {
  test('p, m and v are written by one kernel each, in place, and match the oracle after 3 steps', async () => {
    const { spec, feeds } = mlpStep();
    const prog = await compile(spec);
    const updates = prog.kernels.filter((k) => k.kind === 'pointwise' && k.stores.length === 3);
    expect(updates).toHaveLength(PARAMS.length);
    // Every update lands in its parameter's memory: no commit kernel copies anything.
    expect(prog.kernels.filter((k) => k.kind === 'commit').flatMap((k) => (k.kind === 'commit' ? k.copies : []))).toHaveLength(0);
    const unfused = await compile(spec, { fusion: false });
    expect(unfused.kernels.filter((k) => k.kind === 'pointwise' && k.stores.length > 1)).toHaveLength(0);
    const store: ParamStore = new Map();
    for (let s = 0; s < 3; s++) {
      const a = prog.run(feeds).loss[0], b = unfused.run(feeds).loss[0];
      const r = evaluate(spec, feeds, store).outputs.loss.data[0];
      expect(Math.abs(a - r) / r).toBeLessThan(1e-5);
      expect(Math.abs(b - r) / r).toBeLessThan(1e-5);
    }
    for (const p of PARAMS) for (const name of [p, `${p}.adam_m`, `${p}.adam_v`]) {
      const want = store.get(name)!, got = prog.getParam(name), ref = unfused.getParam(name);
      let scale = 0, err = 0, errUnfused = 0, apart = 0;
      for (let i = 0; i < want.length; i++) {
        scale = Math.max(scale, Math.abs(want[i]));
        err = Math.max(err, Math.abs(got[i] - want[i]));
        errUnfused = Math.max(errUnfused, Math.abs(ref[i] - want[i]));
        apart = Math.max(apart, Math.abs(got[i] - ref[i]));
      }
      // f32 against float64 after three AdamW steps (the training tests' 1e-4), and the same as the kernels apart
      expect(err / scale).toBeLessThan(1e-4);
      expect(errUnfused / scale).toBeLessThan(1e-4);
      expect(apart / scale).toBeLessThan(1e-6);
    }
  });

  test('an output that a reduction also reads keeps its own kernel', async () => {
    const x = input('x', [4, 8]);
    const z = x.exp();
    const prog = await compile({ outputs: { z, s: z.sum(1).mul(2) } });
    expect(prog.kernels.filter((k) => 'stores' in k && k.stores.length > 1)).toHaveLength(0);
    const xs = Float32Array.from({ length: 32 }, (_v, i) => Math.sin(i) * 0.5);
    const out = prog.run({ x: xs });
    for (let r = 0; r < 4; r++) {
      let s = 0;
      for (let c = 0; c < 8; c++) s += Math.exp(xs[r * 8 + c]);
      expect(Math.abs(out.s[r] - 2 * s) / (2 * s)).toBeLessThan(1e-6);
    }
  });

  test('an output read by a pointwise kernel of its shape is stored by that kernel', async () => {
    const x = input('x', [6, 5]);
    const z = x.mul(3).add(1);
    const prog = await compile({ outputs: { z, y: z.mul(z).add(x) } });
    const pw = prog.kernels.filter((k) => k.kind === 'pointwise');
    expect(pw).toHaveLength(1);
    expect(pw[0].kind === 'pointwise' && pw[0].stores.length).toBe(2);
    const xs = Float32Array.from({ length: 30 }, (_v, i) => i * 0.1 - 1);
    const out = prog.run({ x: xs });
    xs.forEach((v, i) => {
      const zv = v * 3 + 1;
      expect(Math.abs(out.z[i] - zv)).toBeLessThan(1e-6 * Math.max(1, Math.abs(zv)));
      expect(Math.abs(out.y[i] - (zv * zv + v))).toBeLessThan(1e-6 * Math.max(1, Math.abs(zv * zv + v)));
    });
  });
});
