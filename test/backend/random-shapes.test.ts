/** Seeded random shapes, ragged against every tile and block size (1, 7, 33, 77, 129, 130, 257…), through the C++
 * back end and the CUDA back end on the checked emulator, forward and backward, against the float64 reference:
 * broadcasting elementwise ops, reductions over random axes (block, warp and thread per row), softmax and layer
 * norm rows, batched and transposed matmuls, strided and padded convolutions, attention. The fixed-shape op table
 * (op-table.ts) covers every op; this covers the shapes. */
import { compile, conv2d, evaluate, grad, input, layerNorm, sdpa, softmax, type CompileOptions, type Tensor } from '../../compiler/index';
import { values } from '../support/gradcheck';
import { relErr } from '../support/lift';

const TOL = 1e-5;
const SIZES = [1, 2, 7, 33, 77, 129, 130, 257];

/** xorshift32: the same cases on every machine. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s; };
  return { int: (n: number) => next() % n, pick: <T>(xs: readonly T[]) => xs[next() % xs.length] };
}

/** The cases of one seed: named outputs (values and gradients) and their inputs' shapes. */
function cases(seed: number): { outputs: Record<string, Tensor>; feeds: Record<string, Float64Array> } {
  const r = rng(seed), feeds: Record<string, Float64Array> = {}, outputs: Record<string, Tensor> = {};
  let n = 0;
  const inp = (shape: number[], domain: 'real' | 'positive' = 'real') => {
    const name = `s${seed}_x${n++}`;
    feeds[name] = values(shape, domain, seed * 31 + n);
    return input(name, shape);
  };
  // Gradients of Σ y·w with random w (a constant weight would give exactly zero gradients through softmax or a norm).
  const add = (key: string, xs: Tensor[], y: Tensor) => {
    outputs[`${key}_y`] = y;
    grad(y.mul(inp(y.shape as number[])).sum(), xs).forEach((g, i) => { outputs[`${key}_g${i}`] = g; });
  };
  const small = () => r.pick([1, 2, 3, 5, 7]);
  // broadcasting elementwise: [a, b, c] with [1, b, 1] or [c]
  {
    const [a, b, c] = [small(), r.pick(SIZES), r.pick(SIZES)];
    const x = inp([a, b, c]), y = r.int(2) ? inp([1, b, 1]) : inp([c]);
    add(`s${seed}_bcast`, [x, y], x.mul(y).add(x.tanh()).sub(y.sigmoid()));
  }
  // reductions over a random axis: sum and max (rows from 1 to 257 elements)
  {
    const shape = [small(), r.pick(SIZES), r.pick(SIZES)], axis = r.int(3);
    const x = inp(shape);
    add(`s${seed}_sum`, [x], x.sum(axis, r.int(2) === 1).mul(1 / shape[axis]));
    const x2 = inp(shape);
    add(`s${seed}_max`, [x2], x2.max(axis));
  }
  // softmax and layer norm over rows of random length
  {
    const x = inp([small(), r.pick(SIZES)]);
    add(`s${seed}_softmax`, [x], softmax(x.mul(3)));
    const z = inp([small(), r.pick(SIZES.filter((s) => s > 1))]);
    add(`s${seed}_layernorm`, [z], layerNorm(z));
  }
  // matmul: batched, ragged M, N, K, sometimes a transposed operand
  {
    const [b, m, k, nn] = [small(), r.pick(SIZES), r.pick(SIZES), r.pick(SIZES)];
    const a = inp([b, m, k]), w = r.int(2) ? inp([nn, k]) : inp([k, nn]);
    const wv = w.shape[0] === nn && w.shape[1] === k && nn !== k ? w.transpose(0, 1) : w.shape[0] === k ? w : w.transpose(0, 1);
    add(`s${seed}_matmul`, [a, w], a.matmul(wv));
  }
  // convolution: random channels, size, stride, padding, groups
  {
    const g = r.pick([1, 2]), c = g * r.pick([1, 3]), o = g * r.pick([1, 2, 5]), hw = r.pick([5, 8, 9]), kk = r.pick([1, 3]);
    const x = inp([r.pick([1, 2]), c, hw, hw]), w = inp([o, c / g, kk, kk]);
    add(`s${seed}_conv`, [x, w], conv2d(x, w, undefined, { stride: r.pick([1, 2]), padding: r.int(kk), groups: g }));
  }
  // attention: lq and lk ragged, head dim 8 or 64, causal or not
  {
    const [b, lq, lk, d] = [small(), r.pick([1, 7, 33, 77]), r.pick([1, 7, 33, 77]), r.pick([8, 64])];
    const causal = r.int(2) === 1 && lq === lk;
    const q = inp([b, lq, d]), k = inp([b, lk, d]), v = inp([b, lk, d]);
    // With one key the softmax is constant: q and k get exactly zero gradient, which no f32 result matches
    // relatively (the rounding of dP - δ is all there is); only v's gradient is compared then.
    add(`s${seed}_attn`, lk === 1 ? [v] : [q, k, v], sdpa(q, k, v, { causal }));
  }
  return { outputs, feeds };
}

const SEEDS = [1, 2, 3];

describe.each([
  ['C++', {}],
  ['CUDA on the checked emulator', { backend: 'cuda-emu', checks: true }],
] as const)('random ragged shapes on the %s back end vs the float64 reference', (_name, opts) => {
  test(`seeds ${SEEDS.join(', ')}`, async () => {
    const outputs: Record<string, Tensor> = {};
    let feeds: Record<string, Float64Array> = {};
    for (const seed of SEEDS) {
      const c = cases(seed);
      Object.assign(outputs, c.outputs);
      feeds = { ...feeds, ...c.feeds };
    }
    const got = (await compile({ outputs }, opts as CompileOptions)).run(feeds);
    const want = evaluate({ outputs }, feeds).outputs;
    const bad = Object.keys(outputs).map((k) => [k, relErr(got[k], want[k].data)] as const).filter(([, e]) => !(e <= TOL));
    expect(bad).toEqual([]);
  }, 600_000);
});
