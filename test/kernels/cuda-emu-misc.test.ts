/** kernels/cuda/groupnorm_silu.cuh and scatter_add.cuh on the CUDA emulator with memcheck, racecheck and
 * initcheck, against float64 references (bf16 inputs rounded in the reference). Bound: REL in harness.ts.
 * GroupNorm's mag is rstd * (mean|x| + |x - mean|) * |gamma| + |beta| (the scale of the f32 rounding of the
 * mean, the variance and the normalisation), times 1.1 through SiLU (|d silu| <= 1.1), plus |y|; groups of
 * fewer, not a multiple of, and more than 256 elements (the block's stride). Scatter-add: duplicates,
 * several blocks, bf16 updates; the output is NaN-filled first, so scatter_zero must cover every element. */
import { f32Param } from '../../runtime/cuda';
import { expectClose, Rng } from './harness';
import { EmuDriver, quantize, type Dtype } from './emu-harness';

interface Gn { N: number; C: number; HW: number; G: number; affine: boolean; silu: 0 | 1; dt: Dtype }
const EPS = 1e-5;

function groupnormRef(c: Gn, x: Float64Array, gamma: Float64Array, beta: Float64Array) {
  const { N, C, HW, G } = c;
  const Cg = C / G;
  const ref = new Float64Array(N * C * HW);
  const mag = new Float64Array(N * C * HW);
  const epsF = Math.fround(EPS);
  for (let n = 0; n < N; n++)
    for (let g = 0; g < G; g++) {
      const base = (n * C + g * Cg) * HW;
      const cnt = Cg * HW;
      let s = 0;
      let a = 0;
      for (let e = 0; e < cnt; e++) {
        s += x[base + e];
        a += Math.abs(x[base + e]);
      }
      const mean = s / cnt;
      let v = 0;
      for (let e = 0; e < cnt; e++) v += (x[base + e] - mean) ** 2;
      const rstd = 1 / Math.sqrt(v / cnt + epsF);
      for (let e = 0; e < cnt; e++) {
        const ch = g * Cg + Math.floor(e / HW);
        const gm = c.affine ? gamma[ch] : 1;
        const bt = c.affine ? beta[ch] : 0;
        const t = (x[base + e] - mean) * rstd * gm + bt;
        const y = c.silu ? t / (1 + Math.exp(-t)) : t;
        ref[base + e] = y;
        mag[base + e] = (rstd * (a / cnt + Math.abs(x[base + e] - mean)) * Math.abs(gm) + Math.abs(bt)) * (c.silu ? 1.1 : 1) + Math.abs(y);
      }
    }
  return { ref, mag };
}

function runGroupnorm(drv: EmuDriver, c: Gn, seed: number): void {
  const rng = new Rng(seed);
  const x = quantize(rng.fill(c.N * c.C * c.HW).map((v) => 3 * v + 0.5), c.dt);
  const gamma = quantize(rng.fill(c.C).map((v) => 1 + v / 2), 'f32');
  const beta = quantize(rng.fill(c.C), 'f32');
  const { ref, mag } = groupnormRef(c, x.values, gamma.values, beta.values);
  drv.reset();
  const xb = drv.buf('x', x.bytes);
  const gb = c.affine ? drv.buf('gamma', gamma.bytes) : 0n;
  const bb = c.affine ? drv.buf('beta', beta.bytes) : 0n;
  const y = drv.buf('y', ref.length * 4);
  const count = drv.counter('count', ref.length);
  drv.launch(`emu_groupnorm_${c.dt}`, [c.G, c.N, 1], 256, 0, [y, count, xb, gb, bb, c.C, c.HW, c.G, f32Param(EPS), c.silu]);
  drv.expectOnce(count);
  expectClose(drv.f32(y), ref, mag, `groupnorm (${c.dt})`);
}

interface Sc { outer: number; nIdx: number; inner: number; size: number; dt: Dtype }

function runScatter(drv: EmuDriver, c: Sc, seed: number): void {
  const { outer, nIdx, inner, size } = c;
  const rng = new Rng(seed);
  const idx = Int32Array.from({ length: nIdx }, () => rng.next() % size);
  const upd = quantize(rng.fill(outer * nIdx * inner), c.dt);
  const ref = new Float64Array(outer * size * inner);
  const mag = new Float64Array(outer * size * inner);
  for (let o = 0; o < outer; o++)
    for (let n = 0; n < nIdx; n++)
      for (let t = 0; t < inner; t++) {
        const u = upd.values[(o * nIdx + n) * inner + t];
        ref[(o * size + idx[n]) * inner + t] += u;
        mag[(o * size + idx[n]) * inner + t] += Math.abs(u);
      }
  drv.reset();
  const ub = drv.buf('upd', upd.bytes);
  const ib = drv.buf('idx', idx);
  const out = drv.buf('out', ref.length * 4);
  drv.launch('emu_scatter_zero', [Math.ceil(ref.length / 256), 1, 1], 256, 0, [out, ref.length]);
  const nu = outer * nIdx * inner;
  drv.launch(`emu_scatter_add_${c.dt}`, [Math.ceil(nu / 256), 1, 1], 256, 0, [out, ub, ib, outer, nIdx, inner, size]);
  expectClose(drv.f32(out), ref, mag, `scatter_add (${c.dt})`);
}

const gn: [string, Gn][] = [
  ['f32, affine + SiLU, 74 per group', { N: 2, C: 6, HW: 37, G: 3, affine: true, silu: 1, dt: 'f32' }],
  ['f32, no affine, no SiLU, 300 per group', { N: 1, C: 4, HW: 150, G: 2, affine: false, silu: 0, dt: 'f32' }],
  ['f32, one group of 600, SiLU', { N: 2, C: 3, HW: 200, G: 1, affine: true, silu: 1, dt: 'f32' }],
  ['bf16, affine + SiLU, 66 per group', { N: 2, C: 8, HW: 33, G: 4, affine: true, silu: 1, dt: 'bf16' }],
  ['bf16, 512 per group (2 x 256)', { N: 1, C: 4, HW: 256, G: 2, affine: false, silu: 1, dt: 'bf16' }],
];
const sc: [string, Sc][] = [
  ['f32, embedding-style rows, duplicates, 2 blocks', { outer: 1, nIdx: 50, inner: 8, size: 10, dt: 'f32' }],
  ['f32, outer 3, size 4', { outer: 3, nIdx: 40, inner: 5, size: 4, dt: 'f32' }],
  ['f32, inner 1', { outer: 4, nIdx: 100, inner: 1, size: 13, dt: 'f32' }],
  ['bf16 updates', { outer: 2, nIdx: 30, inner: 7, size: 9, dt: 'bf16' }],
];

describe.each([true, false])('groupnorm_silu.cuh / scatter_add.cuh on the CUDA emulator (checks %s)', (checks) => {
  let drv: EmuDriver;
  beforeAll(async () => {
    drv = await EmuDriver.load('misc', checks);
  });
  it.each(checks ? gn : gn.slice(0, 1))('groupnorm: %s', (_n, c) => runGroupnorm(drv, c, 31 + c.C * c.HW + c.G));
  it.each(checks ? sc : sc.slice(0, 1))('scatter_add: %s', (_n, c) => runScatter(drv, c, 4242 + c.outer + c.nIdx + c.inner));
});
