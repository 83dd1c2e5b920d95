/** Loop coalescing (codegen/lower.ts coalescedLoops): a pointwise kernel's adjacent dims run as one loop when no
 * index needs them apart, and stay apart where a transpose, a broadcast or a padding mask reads them differently.
 * Each case checks the loop nest lowering chose, that neither renderer divides an index the merge made (the
 * C++ loop body and CUDA's loads and stores), and the values against a float64 evaluation in JS. */
import { compile, input, type Tensor } from '../../compiler/index';
import { lowerProgram } from '../../compiler/compile';
import { renderProgramCpp } from '../../compiler/render/cpp';
import { renderProgramCuda } from '../../compiler/render/cuda';

const rand = (n: number, seed: number) => {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return (s >>> 0) / 4294967296 - 0.5; });
};
const strides = (shape: readonly number[]) => shape.map((_d, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
/** Multi-index of flat position f in `shape`. */
const unflat = (f: number, shape: readonly number[]) => strides(shape).map((st, i) => Math.floor(f / st) % shape[i]);
const at = (a: Float32Array, shape: readonly number[], ix: readonly number[]) => a[ix.reduce((o, v, i) => o + v * strides(shape)[i], 0)];

interface Case {
  name: string;
  /** The graph from its inputs. */
  build: (t: Record<string, Tensor>) => Tensor;
  inputs: Record<string, number[]>;
  out: number[];
  /** The output element at multi-index ix, in float64, from the inputs. */
  ref: (x: Record<string, Float32Array>, ix: number[]) => number;
  /** The loop nest the kernel should run. */
  loops: number[];
}

const W = [32, 64, 3, 3];
const cases: Case[] = [
  {
    name: 'an AdamW-like update of a [32,64,3,3] weight: one loop of 18432', inputs: { p: W, g: W, m: W },
    build: ({ p, g, m }) => p.sub(m.mul(0.9).add(g.mul(0.1)).div(g.mul(g).sqrt().add(1e-8)).mul(1e-3)),
    out: W, loops: [18432],
    ref: ({ p, g, m }, ix) => { const [pv, gv, mv] = [p, g, m].map((a) => at(a, W, ix)); return pv - ((0.9 * mv + 0.1 * gv) / (Math.sqrt(gv * gv) + 1e-8)) * 1e-3; },
  },
  {
    name: 'a transpose of the last two dims keeps them apart, merges the two before', inputs: { x: [2, 8, 4, 5] },
    build: ({ x }) => x.permute([0, 1, 3, 2]).add(1), out: [2, 8, 5, 4], loops: [16, 5, 4],
    ref: ({ x }, [a, b, c, d]) => at(x, [2, 8, 4, 5], [a, b, d, c]) + 1,
  },
  {
    name: 'a bias broadcast along the leading dim: [4, 128]', inputs: { x: [4, 8, 16], b: [8, 16] },
    build: ({ x, b }) => x.mul(b), out: [4, 8, 16], loops: [4, 128],
    ref: ({ x, b }, [i, j, k]) => at(x, [4, 8, 16], [i, j, k]) * at(b, [8, 16], [j, k]),
  },
  {
    name: 'a broadcast along a middle dim keeps every dim', inputs: { x: [4, 8, 16], b: [4, 1, 16] },
    build: ({ x, b }) => x.add(b), out: [4, 8, 16], loops: [4, 8, 16],
    ref: ({ x, b }, [i, j, k]) => at(x, [4, 8, 16], [i, j, k]) + at(b, [4, 1, 16], [i, 0, k]),
  },
  {
    name: 'a padding mask on the last dim keeps it apart', inputs: { x: [3, 4, 6] },
    build: ({ x }) => x.pad([[0, 0], [0, 0], [1, 2]], -1).mul(2), out: [3, 4, 9], loops: [12, 9],
    ref: ({ x }, [i, j, k]) => (k >= 1 && k < 7 ? at(x, [3, 4, 6], [i, j, k - 1]) * 2 : -2),
  },
];

describe('loop coalescing of pointwise kernels', () => {
  test.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const spec = () => {
      const t = Object.fromEntries(Object.entries(c.inputs).map(([k, s]) => [k, input(k, s)]));
      return { outputs: { y: c.build(t) } };
    };
    const low = lowerProgram(spec());
    const pw = low.kernels.filter((k) => k.kind === 'pointwise');
    expect(pw).toHaveLength(1);
    const k = pw[0];
    if (k.kind !== 'pointwise') throw new Error('unreachable');
    expect(k.shape).toEqual(c.loops);

    // No division of a loop variable the merge made: the C++ loop body, CUDA's loads and stores.
    const cpp = renderProgramCpp(low.kernels, low.info);
    const body = cpp.slice(cpp.indexOf(`static void ${k.name}`), cpp.indexOf('kiln_offsets[')).split('\n').filter((l) => !l.trim().startsWith('//') && !l.includes('pragma'));
    for (const l of body) expect(l).not.toMatch(/[/%] *\d/);
    const cu = renderProgramCuda(low.kernels, low.info, 0).source;
    for (const l of cu.split('\n').filter((x) => /b\d+\[/.test(x))) expect(l).not.toMatch(/[/%]/);
    if (c.loops.length === 1) expect(cu).toMatch(/const int64_t i0 = f;/);

    const feeds = Object.fromEntries(Object.entries(c.inputs).map(([name, s], i) => [name, rand(s.reduce((a, b) => a * b, 1), 7 + i)]));
    const y = (await compile(spec())).run(feeds).y as Float32Array;
    const n = c.out.reduce((a, b) => a * b, 1);
    expect(y).toHaveLength(n);
    let worst = 0;
    for (let f = 0; f < n; f++) {
      const want = c.ref(feeds, unflat(f, c.out));
      worst = Math.max(worst, Math.abs(y[f] - want) / Math.max(1, Math.abs(want)));
    }
    expect(worst).toBeLessThan(2e-6);
  });
});
