/** kernels/cuda/gemm.cuh on the CUDA emulator (memcheck, racecheck, initcheck on) against the float64
 * reference: the f32 SIMT tile (128x128x8) and the bf16 / f16 mma.sync tiles (128x128x32) on shapes with
 * ragged M, N and K edges, N = 1, K < BK, several blocks, transposed operands and batch-broadcast operands.
 * bf16 / f16 inputs are rounded in the reference too, so products are exact and only the f32 accumulation
 * differs (bound: REL in harness.ts, K <= 130 terms). Every epilogue must run exactly once. */
import { expectClose, Rng } from './harness';
import { EmuDriver, quantize, type DevBuf, type Dtype } from './emu-harness';
import { gemmRef, gemmSizes, type GemmCase } from './reference';

const F32 = { BM: 128, BN: 128, smem: 8448 };
const MMA = { BM: 128, BN: 128, smem: 20480 };

const cases: [string, GemmCase][] = [
  ['1x1x1', { batch: 1, M: 1, N: 1, K: 1, tA: 0, tB: 0, bcA: 0, bcB: 0 }],
  ['N = 1, K = 7 < BK', { batch: 1, M: 77, N: 1, K: 7, tA: 0, tB: 0, bcA: 0, bcB: 0 }],
  ['130 x 129 x 130: 2 x 2 blocks, ragged K', { batch: 1, M: 130, N: 129, K: 130, tA: 0, tB: 0, bcA: 0, bcB: 0 }],
  ['both transposed, batch 2', { batch: 2, M: 33, N: 77, K: 45, tA: 1, tB: 1, bcA: 0, bcB: 0 }],
  ['batch 3, A broadcast (offset 0), B transposed, 2 column blocks', { batch: 3, M: 20, N: 140, K: 40, tA: 0, tB: 1, bcA: 1, bcB: 0 }],
  ['batch 2, B broadcast, A transposed, 2 row blocks', { batch: 2, M: 129, N: 17, K: 33, tA: 1, tB: 0, bcA: 0, bcB: 1 }],
];

/** Random operands rounded to `dt`, the float64 reference and the device buffers; `launch` gets them and launches, then
 * every output must have been stored exactly once and be within the bound. */
function check(drv: EmuDriver, dt: Dtype, c: GemmCase, seed: number, label: string, launch: (a: DevBuf, b: DevBuf, out: DevBuf, count: DevBuf) => void): void {
  const rng = new Rng(seed);
  const sz = gemmSizes(c);
  const A = quantize(rng.fill(sz.a), dt);
  const B = quantize(rng.fill(sz.b), dt);
  const { ref, mag } = gemmRef(c, A.values, B.values);
  drv.reset();
  const a = drv.buf('A', A.bytes), b = drv.buf('B', B.bytes), out = drv.buf('C', ref.length * 4), count = drv.counter('count', ref.length);
  launch(a, b, out, count);
  drv.expectOnce(count);
  expectClose(drv.f32(out), ref, mag, label);
}

function run(drv: EmuDriver, dt: Dtype, c: GemmCase, seed: number): void {
  const { M, N, K } = c;
  const cfg = dt === 'f32' ? F32 : MMA;
  const strides = [c.tA ? 1 : K, c.tA ? M : 1, c.bcA ? 0 : M * K, c.tB ? 1 : N, c.tB ? K : 1, c.bcB ? 0 : K * N];
  check(drv, dt, c, seed, `C (${dt})`, (a, b, out, count) =>
    drv.launch(`emu_gemm_${dt}`, [Math.ceil(N / cfg.BN), Math.ceil(M / cfg.BM), c.batch], 256, cfg.smem, [out, count, a, b, M, N, K, ...strides]));
}

describe.each([true, false])('gemm.cuh on the CUDA emulator (checks %s)', (checks) => {
  let drv: EmuDriver;
  beforeAll(async () => {
    drv = await EmuDriver.load('gemm', checks);
  });
  const dts: Dtype[] = ['f32', 'bf16', 'f16'];
  // Unchecked: the two multi-block cases only (the same code; this proves the plain build runs too).
  const sel = checks ? cases : cases.filter(([, c]) => c.M > 128 || c.N > 128);
  it.each(dts.flatMap((dt) => sel.map(([name, c]) => [`${dt}: ${name}`, dt, c] as [string, Dtype, GemmCase])))('%s', (_n, dt, c) => {
    run(drv, dt, c, 1000 + c.M * 7 + c.N * 13 + c.K);
  });
});

/** The pipelined tile (GemmTilePipe: 3-stage cp.async ring, ldmatrix) per storage order, then the guarded entry on
 * aligned and unaligned operands. Shapes ragged against the 128 x 128 tile, K over five 32-deep k tiles (the ring
 * wraps), batch 2 with one operand broadcast. */
const PIPE = { BM: 128, BN: 128, smem: 61440 };
const pipeCases: [string, string, GemmCase][] = [
  ['A k-contiguous, B n-contiguous', 'akbn', { batch: 2, M: 136, N: 264, K: 136, tA: 0, tB: 0, bcA: 1, bcB: 0 }],
  ['A k-contiguous, B k-contiguous', 'akbk', { batch: 2, M: 136, N: 264, K: 136, tA: 0, tB: 1, bcA: 0, bcB: 1 }],
  ['A m-contiguous, B n-contiguous', 'ambn', { batch: 2, M: 136, N: 144, K: 136, tA: 1, tB: 0, bcA: 0, bcB: 0 }],
  ['A m-contiguous, B k-contiguous, K < BK', 'ambk', { batch: 1, M: 8, N: 264, K: 16, tA: 1, tB: 1, bcA: 0, bcB: 0 }],
];

function runPipe(drv: EmuDriver, dt: Dtype, kernel: string, c: GemmCase, seed: number, guarded = false): void {
  const { M, N, K } = c, sA = c.bcA ? 0 : M * K, sB = c.bcB ? 0 : K * N;
  const args = guarded
    ? [c.tA ? 1 : K, c.tA ? M : 1, sA, c.tB ? 1 : N, c.tB ? K : 1, sB]
    : [c.tA ? M : K, sA, c.tB ? K : N, sB];
  check(drv, dt, c, seed, `C (${kernel})`, (a, b, out, count) =>
    drv.launch(kernel, [Math.ceil(N / PIPE.BN), Math.ceil(M / PIPE.BM), c.batch], 256, PIPE.smem, [out, count, a, b, M, N, K, ...args]));
}

describe('gemm.cuh pipelined tile on the CUDA emulator (checks on)', () => {
  let drv: EmuDriver;
  beforeAll(async () => {
    drv = await EmuDriver.load('gemm', true);
  });
  it.each(pipeCases)('bf16: %s', (_n, layout, c) => runPipe(drv, 'bf16', `emu_gemm_pipe_bf16_${layout}`, c, 77 + c.M + c.N));
  it('f16: A k-contiguous, B n-contiguous', () => runPipe(drv, 'f16', 'emu_gemm_pipe_f16_akbn', pipeCases[0][2], 5));
  it('guarded entry: aligned operands (pipelined) and K = 7 (falls back to the GemmTileMma tile)', () => {
    runPipe(drv, 'bf16', 'emu_gemm_guarded_bf16', { batch: 2, M: 136, N: 264, K: 40, tA: 0, tB: 0, bcA: 0, bcB: 1 }, 9, true);
    runPipe(drv, 'bf16', 'emu_gemm_guarded_bf16', { batch: 1, M: 77, N: 130, K: 7, tA: 0, tB: 0, bcA: 0, bcB: 0 }, 10, true);
  });
});

describe('gemm.cuh on the CUDA emulator: memcheck', () => {
  it('names the buffer and the template line of an out-of-bounds operand read', async () => {
    const drv = await EmuDriver.load('gemm', true);
    const c: GemmCase = { batch: 1, M: 77, N: 5, K: 7, tA: 0, tB: 0, bcA: 0, bcB: 0 };
    drv.reset();
    const a = drv.buf('A', new Float32Array((c.M - 1) * c.K)); // one row of A short
    const b = drv.buf('B', new Float32Array(c.K * c.N));
    const out = drv.buf('C', c.M * c.N * 4);
    const count = drv.counter('count', c.M * c.N);
    expect(() => drv.launch('emu_gemm_f32', [1, 1, 1], 256, F32.smem, [out, count, a, b, c.M, c.N, c.K, c.K, 1, 0, c.N, 1, 0])).toThrow(
      /memcheck: invalid 4-byte global read .*past the end of buffer 'A' .*gemm\.cuh:\d+/,
    );
  });
});
