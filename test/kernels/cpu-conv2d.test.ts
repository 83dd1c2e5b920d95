/** kiln conv2d forward / bwd_data / bwd_weight (kernels/cpu/conv2d.h) against one float64 direct
 * convolution loop; bound: see REL in harness.ts (mag = sum of |x * w| over the taps of each element). */
import { buildDriver, expectClose, Rng, runDriver } from './harness';

// [N, C, H, W, O, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, G]
type Conv = [number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number];

function reference(p: Conv, mode: number, seed: number): { ref: Float64Array; mag: Float64Array } {
  const [N, C, H, W, O, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, G] = p;
  const Ho = Math.floor((H + pt + pb - dh * (KH - 1) - 1) / sh) + 1;
  const Wo = Math.floor((W + pl + pr - dw * (KW - 1) - 1) / sw) + 1;
  const Cg = C / G;
  const Og = O / G;
  const rng = new Rng(seed);
  const x = rng.fill(N * C * H * W);
  const w = rng.fill(O * Cg * KH * KW);
  const dy = rng.fill(N * O * Ho * Wo);
  const size = mode === 0 ? N * O * Ho * Wo : mode === 1 ? N * C * H * W : O * Cg * KH * KW;
  const ref = new Float64Array(size);
  const mag = new Float64Array(size);
  // One loop over every (n, o, oh, ow, ci, kh, kw) tap; each mode accumulates its own product.
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      const g = Math.floor(o / Og);
      for (let oh = 0; oh < Ho; oh++)
        for (let ow = 0; ow < Wo; ow++)
          for (let ci = 0; ci < Cg; ci++)
            for (let kh = 0; kh < KH; kh++)
              for (let kw = 0; kw < KW; kw++) {
                const ih = oh * sh - pt + kh * dh;
                const iw = ow * sw - pl + kw * dw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const c = g * Cg + ci;
                const xi = ((n * C + c) * H + ih) * W + iw;
                const wi = ((o * Cg + ci) * KH + kh) * KW + kw;
                const yi = ((n * O + o) * Ho + oh) * Wo + ow;
                const [e, t] = mode === 0 ? [yi, x[xi] * w[wi]] : mode === 1 ? [xi, dy[yi] * w[wi]] : [wi, dy[yi] * x[xi]];
                ref[e] += t;
                mag[e] += Math.abs(t);
              }
    }
  return { ref, mag };
}

const shapes: [string, Conv][] = [
  ['3x3 pad 1', [2, 3, 9, 10, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['stride 2, asymmetric padding', [1, 4, 11, 8, 6, 3, 3, 2, 2, 0, 1, 1, 2, 1, 1, 1]],
  ['dilation 2', [1, 3, 12, 12, 4, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1]],
  ['groups 2, stride (2,1)', [2, 4, 7, 9, 6, 3, 2, 2, 1, 1, 0, 0, 1, 1, 1, 2]],
  ['depthwise (groups = C)', [1, 8, 6, 6, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8]],
  ['1x1 stride 1 (plain GEMM)', [2, 20, 5, 7, 17, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1]],
  ['1x1 stride 2', [1, 6, 9, 9, 5, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1]],
  ['deep K (> KC), 4x4 stride 2 pad 1', [1, 20, 10, 10, 18, 4, 4, 2, 2, 1, 1, 1, 1, 1, 1, 1]],
];
const modes: [string, number][] = [['forward', 0], ['bwd_data', 1], ['bwd_weight', 2]];
const cases = shapes.flatMap(([s, p]) => modes.map(([m, mode]) => [`${m}: ${s}`, p, mode] as [string, Conv, number]));

describe('conv2d (CPU)', () => {
  let bin = '';
  beforeAll(() => {
    bin = buildDriver('conv2d');
  });
  it.each(cases)('%s', (_name, p, mode) => {
    const seed = 77 + p.reduce((a, b) => a * 3 + b, 0) % 100000 + mode;
    const out = runDriver(bin, [...p, mode, seed]);
    expect(out.callsOnce).toBe(true);
    const { ref, mag } = reference(p, mode, seed);
    expectClose(out.arrays.out, ref, mag, 'out');
  });
});
