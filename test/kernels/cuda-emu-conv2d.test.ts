/** kernels/cuda/conv2d.cuh (implicit GEMM on gemm.cuh's tiles) on the CUDA emulator with memcheck, racecheck
 * and initcheck, against the float64 direct convolution of reference.ts: forward, bwd_data and bwd_weight,
 * f32 (SIMT) and bf16 (mma.sync; bwd_data also f16), on stride 2, asymmetric padding, dilation 2, groups 2,
 * 1x1 and shapes whose GEMM views span two blocks in M or N. bf16 / f16 inputs are rounded in the reference
 * (exact products). Bound: REL in harness.ts. Every epilogue must run exactly once. */
import { expectClose, Rng } from './harness';
import { EmuDriver, quantize, type Dtype } from './emu-harness';
import { convDims, convRef, type Conv } from './reference';

// [N, C, H, W, O, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, G]
const shapes: [string, Conv][] = [
  ['3x3 pad 1', [2, 3, 9, 10, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['stride 2, asymmetric padding', [1, 4, 11, 8, 6, 3, 3, 2, 2, 0, 1, 1, 2, 1, 1, 1]],
  ['dilation 2, 12x12 (GEMM N = 144: two blocks)', [1, 3, 12, 12, 4, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1]],
  ['groups 2, stride (2,1)', [2, 4, 7, 9, 6, 3, 2, 2, 1, 1, 0, 0, 1, 1, 1, 2]],
  ['1x1 stride 1', [2, 20, 5, 7, 17, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1]],
  ['1x1 stride 2', [1, 6, 9, 9, 5, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1]],
  ['O = 130 (GEMM M: two blocks), 2x2 kernel', [1, 3, 4, 5, 130, 2, 2, 1, 1, 0, 1, 1, 0, 1, 1, 1]],
];
const modes = ['fwd', 'bwd_data', 'bwd_weight'] as const;
const SMEM = { f32: 8448, bf16: 20480, f16: 20480 };

function run(drv: EmuDriver, dt: Dtype, p: Conv, mode: number, seed: number): void {
  const [N, C, H, W, O, KH, KW, , , , , , , , , G] = p;
  const dims = convDims(p);
  const rng = new Rng(seed);
  const x = quantize(rng.fill(dims.x), dt);
  const w = quantize(rng.fill(dims.w), dt);
  const dy = quantize(rng.fill(dims.y), dt);
  const { ref, mag } = convRef(p, mode, x.values, w.values, dy.values);
  drv.reset();
  const ins = mode === 0 ? [drv.buf('x', x.bytes), drv.buf('w', w.bytes)] : mode === 1 ? [drv.buf('dy', dy.bytes), drv.buf('w', w.bytes)] : [drv.buf('x', x.bytes), drv.buf('dy', dy.bytes)];
  const out = drv.buf(['y', 'dx', 'dw'][mode], ref.length * 4);
  const count = drv.counter('count', ref.length);
  const P = dims.Ho * dims.Wo;
  const Cg = C / G;
  const Og = O / G;
  const [batch, M, Ng] = mode === 0 ? [N * G, Og, P] : mode === 1 ? [N * G, Cg, H * W] : [G, Og, Cg * KH * KW];
  drv.launch(`emu_conv_${modes[mode]}_${dt}`, [Math.ceil(Ng / 128), Math.ceil(M / 128), batch], 256, SMEM[dt], [out, count, ...ins, ...p]);
  drv.expectOnce(count);
  expectClose(drv.f32(out), ref, mag, `${modes[mode]} (${dt})`);
}

type Case = [string, Dtype, Conv, number];
const all = (dts: Dtype[], sel: [string, Conv][]): Case[] =>
  dts.flatMap((dt) => sel.flatMap(([s, p]) => modes.map((m, mode) => [`${m} ${dt}: ${s}`, dt, p, mode] as Case)));

describe.each([true, false])('conv2d.cuh on the CUDA emulator (checks %s)', (checks) => {
  let drv: EmuDriver;
  beforeAll(async () => {
    drv = await EmuDriver.load('conv2d', checks);
  });
  const cases = checks
    ? [...all(['f32', 'bf16'], shapes), ...all(['f16'], shapes).filter(([, , , mode]) => mode === 1)]
    : all(['f32', 'bf16'], shapes.slice(1, 2));
  it.each(cases)('%s', (_n, dt, p, mode) => {
    run(drv, dt, p, mode, 77 + (p.reduce((a, b) => a * 3 + b, 0) % 100000) + mode);
  });
});
