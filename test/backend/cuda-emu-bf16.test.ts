/** bf16 / f16 matmuls from compile(): the CUDA back end runs them on the tensor-core tile (mma.sync m16n8k16,
 * f32 accumulation), checked here on the emulator against an explicit reference — operands rounded to the
 * narrow type, products summed in float64, the stored result rounded again — within one unit in the last place
 * of the narrow type (f32 accumulation order is the only other difference). The C++ back end runs the same
 * GEMMs (kiln_gemm_bf16 / _f16: converted to f32 while packing) within the same bound. */
import { compile, input, type Tensor } from '../../compiler/index';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../../models/io/halfFloat';

const round = { bf16: (x: number) => bf16BitsToF32(f32ToBf16Bits(x)), f16: (x: number) => f16BitsToF32(f32ToF16Bits(x)) };
const mantissa = { bf16: 8, f16: 11 };
const fill = (n: number, seed: number) => Float64Array.from({ length: n }, (_, i) => Math.sin(i * 0.731 + seed) * 1.5);

describe.each(['bf16', 'f16'] as const)('%s matmul on the emulated CUDA back end', (dt) => {
  // K = 40: every stride and extent a multiple of 8, so the renderer picks the pipelined tile (A k-contiguous, Bᵀ
  // k-contiguous); K = 37: the general tile.
  test.each([
    [40, `gemm_tile_pipelined<kiln::GemmTilePipe, ${dt === 'bf16' ? '__nv_bfloat16' : '__half'}, true, false>`],
    [37, `gemm_tile<kiln::GemmTileMma, ${dt === 'bf16' ? '__nv_bfloat16' : '__half'}>`],
  ])('batched, transposed operand, ragged tiles, fused epilogue, K %d: within one ulp of the rounded reference', async (K, tile) => {
    const [B, M, N] = [2, 77, 130];
    const a = input('a', [B, M, K]), w = input('w', [N, K]), bias = input('bias', [N]);
    // y = relu(a @ wᵀ + bias), the matmul in the narrow type, the epilogue in f32 after a cast.
    const y: Tensor = a.cast(dt).matmul(w.cast(dt).transpose(0, 1)).cast('f32').add(bias).relu();
    const feeds = { a: fill(B * M * K, 1), w: fill(N * K, 2), bias: fill(N, 3) };
    const prog = await compile({ outputs: { y } }, { backend: 'cuda-emu', checks: true });
    expect(prog.source).toContain(tile);
    const got = prog.run(feeds).y;
    const r = round[dt], ulp = (x: number) => 2 ** (Math.floor(Math.log2(Math.max(Math.abs(x), 2 ** -100))) - (mantissa[dt] - 1));
    let worst = 0;
    for (let b = 0; b < B; b++)
      for (let i = 0; i < M; i++)
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += r(feeds.a[(b * M + i) * K + k]) * r(feeds.w[j * K + k]);
          const want = Math.max(0, r(s) + Math.fround(feeds.bias[j]));
          const e = Math.abs(got[(b * M + i) * N + j] - want) / ulp(s);
          worst = Math.max(worst, e);
        }
    expect(worst).toBeLessThanOrEqual(1);
  }, 300_000);

  test('the C++ back end runs it too (converted while packing, f32 accumulation): within one ulp of the same reference', async () => {
    const [M, K, N] = [9, 40, 13];
    const y = input('a', [M, K]).cast(dt).matmul(input('b', [K, N]).cast(dt)).cast('f32');
    const feeds = { a: fill(M * K, 4), b: fill(K * N, 5) };
    const prog = await compile({ outputs: { y } });
    expect(prog.source).toContain(`kiln_gemm_${dt}(`);
    const got = prog.run(feeds).y;
    const r = round[dt], ulp = (x: number) => 2 ** (Math.floor(Math.log2(Math.max(Math.abs(x), 2 ** -100))) - (mantissa[dt] - 1));
    let worst = 0;
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += r(feeds.a[i * K + k]) * r(feeds.b[k * N + j]);
        worst = Math.max(worst, Math.abs(got[i * N + j] - r(s)) / ulp(s));
      }
    expect(worst).toBeLessThanOrEqual(1);
  }, 300_000);
});
