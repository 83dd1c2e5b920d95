// kiln GEMM tiles for CUDA: each thread block computes one BM x BN tile of
//   C(b,i,j) = sum_k A(b,i,k) B(b,k,j)      and calls epi(b, i, j, float acc) once per in-range element.
//
// Two paths, chosen by the element type T:
//   T = __nv_bfloat16 / __half : tensor cores, mma.sync.m16n8k16 (f32 accumulate), config GemmTileMma
//   T = float                  : SIMT FMA, 8x8 outputs per thread, config GemmTileF32
// Operands come through loader functors (gemm_tile_generic) so conv2d.cuh can feed im2col gathers; the
// strided entry point gemm_tile builds them from BLIS-style strides plus per-batch offset functors.
//
// Launch contract (both configs): grid = (ceil(N/BN), ceil(M/BM), batch), block = THREADS,
// dynamic shared memory = Cfg::smem_bytes; call gemm_tile<Cfg>(blockIdx.x, blockIdx.y, blockIdx.z, ...).
#pragma once

#include "common.cuh"
#include "ptx.cuh"

namespace kiln {

struct GemmTileMma {  // bf16 / f16 in, f32 accumulate
  static constexpr bool tensor_cores = true;
  static constexpr int BM = 128, BN = 128, BK = 32, THREADS = 256;
  static constexpr int WARPS_M = 2, WARPS_N = 4;               // warp tile 64 x 32
  static constexpr int MT = BM / WARPS_M / 16, NT = BN / WARPS_N / 8;  // 4 x 4 mma tiles per warp
  static constexpr int LDS = BK + 8;  // row pitch in elements: 80 B, so fragment loads hit distinct banks
  static constexpr int smem_bytes = (BM + BN) * LDS * 2;  // 20480
};

// bf16 / f16 operands whose contiguous dimension is a multiple of 8 elements and 16-byte aligned: 16-byte cp.async
// copies into a STAGES-deep shared-memory ring (the next tiles load while this one multiplies), ldmatrix fragment loads
// (.trans for an operand stored with M or N contiguous). Same tile and warp layout as GemmTileMma; its shared memory
// also holds GemmTileMma's, which gemm_tile_pipelined falls back to when an operand is not aligned at run time.
struct GemmTilePipe {
  static constexpr bool tensor_cores = true;
  static constexpr int BM = 128, BN = 128, BK = 32, THREADS = 256, STAGES = 3;
  static constexpr int WARPS_M = 2, WARPS_N = 4;
  static constexpr int MT = BM / WARPS_M / 16, NT = BN / WARPS_N / 8;
  static constexpr int LDS = BK + 8;                  // operand stored k-contiguous: [BM or BN][BK + 8], 80 B rows
  static constexpr int LDT = BM + 8;                  // operand stored m/n-contiguous: [BK][BM + 8], 272 B rows
  static constexpr int STAGE = BM * LDS;              // elements per operand per stage (>= BK * LDT)
  static constexpr int smem_bytes = STAGES * 2 * STAGE * 2;  // 61440
  static_assert(BK * LDT <= STAGE && BM == BN, "one stage size for both storage orders");
  static_assert(smem_bytes >= GemmTileMma::smem_bytes, "the fallback tile fits");
};

struct GemmTileF32 {  // f32 SIMT
  static constexpr bool tensor_cores = false;
  static constexpr int BM = 128, BN = 128, BK = 8, THREADS = 256;
  static constexpr int TM = 8, TN = 8;  // outputs per thread: rows ty + 16r, cols tx + 16c
  static constexpr int smem_bytes = BK * (BM + BN + 8) * 4;  // 8448
};

namespace gemm_detail {

template <class T> struct MmaOp;
template <> struct MmaOp<__nv_bfloat16> {
  static __device__ __forceinline__ void run(float* c, const uint32_t* a, const uint32_t* b) { ptx::mma_m16n8k16_bf16(c, a, b, c); }
};
template <> struct MmaOp<__half> {
  static __device__ __forceinline__ void run(float* c, const uint32_t* a, const uint32_t* b) { ptx::mma_m16n8k16_f16(c, a, b, c); }
};

// The warp's MT x NT m16n8k16 products of one 16-deep k step.
template <class Cfg, class T>
__device__ __forceinline__ void mma_all(float (&acc)[Cfg::MT][Cfg::NT][4], const uint32_t (&af)[Cfg::MT][4], const uint32_t (&bf)[Cfg::NT][2]) {
#pragma unroll
  for (int a = 0; a < Cfg::MT; ++a)
#pragma unroll
    for (int c = 0; c < Cfg::NT; ++c) MmaOp<T>::run(acc[a][c], af[a], bf[c]);
}

// The warp's accumulators to the epilogue, in range only. Layout of m16n8: c0,c1 -> (g, 2*tig + {0,1}); c2,c3 ->
// (g + 8, 2*tig + {0,1}), warps tiled WARPS_M x WARPS_N over the block's BM x BN.
template <class Cfg, class Epi>
__device__ __forceinline__ void store_acc(const float (&acc)[Cfg::MT][Cfg::NT][4], int b, int i0, int j0, int M, int N, Epi& epi) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, wm = warp / Cfg::WARPS_N, wn = warp % Cfg::WARPS_N;
  const int g = lane >> 2, tig = lane & 3;
#pragma unroll
  for (int a = 0; a < Cfg::MT; ++a)
#pragma unroll
    for (int c = 0; c < Cfg::NT; ++c)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = i0 + wm * (Cfg::MT * 16) + a * 16 + g + (e >= 2 ? 8 : 0);
        const int j = j0 + wn * (Cfg::NT * 8) + c * 8 + tig * 2 + (e & 1);
        if (i < M && j < N) epi(b, i, j, acc[a][c][e]);
      }
}

// Tensor-core tile. As is [BM][LDS] (k contiguous), Bs is [BN][LDS] (k contiguous, i.e. "col" operand).
template <class Cfg, class T, class ALoad, class BLoad, class Epi>
__device__ __forceinline__ void tile_mma(int tn, int tm, int b, int M, int N, int K, ALoad aLoad, BLoad bLoad,
                                         Epi& epi) {
  T* As = reinterpret_cast<T*>(kiln_smem);
  T* Bs = As + Cfg::BM * Cfg::LDS;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / Cfg::WARPS_N, wn = warp % Cfg::WARPS_N;
  const int g = lane >> 2, tig = lane & 3;
  const int i0 = tm * Cfg::BM, j0 = tn * Cfg::BN;
  float acc[Cfg::MT][Cfg::NT][4] = {};
  const T zero = from_f32<T>(0.0f);
  for (int k0 = 0; k0 < K; k0 += Cfg::BK) {
    // Fill: A with k fastest (coalesced for row-major A), B with n fastest (coalesced for row-major B).
    for (int e = tid; e < Cfg::BM * Cfg::BK; e += Cfg::THREADS) {
      const int r = e / Cfg::BK, kk = e % Cfg::BK;
      const int i = i0 + r, k = k0 + kk;
      As[r * Cfg::LDS + kk] = (i < M && k < K) ? aLoad(b, i, k) : zero;
    }
    for (int e = tid; e < Cfg::BN * Cfg::BK; e += Cfg::THREADS) {
      const int n = e % Cfg::BN, kk = e / Cfg::BN;
      const int j = j0 + n, k = k0 + kk;
      Bs[n * Cfg::LDS + kk] = (j < N && k < K) ? bLoad(b, k, j) : zero;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < Cfg::BK; kk += 16) {
      uint32_t af[Cfg::MT][4], bf[Cfg::NT][2];
#pragma unroll
      for (int a = 0; a < Cfg::MT; ++a) {
        const T* p = As + (wm * (Cfg::MT * 16) + a * 16 + g) * Cfg::LDS + kk + tig * 2;
        af[a][0] = *reinterpret_cast<const uint32_t*>(p);
        af[a][1] = *reinterpret_cast<const uint32_t*>(p + 8 * Cfg::LDS);
        af[a][2] = *reinterpret_cast<const uint32_t*>(p + 8);
        af[a][3] = *reinterpret_cast<const uint32_t*>(p + 8 * Cfg::LDS + 8);
      }
#pragma unroll
      for (int c = 0; c < Cfg::NT; ++c) {
        const T* p = Bs + (wn * (Cfg::NT * 8) + c * 8 + g) * Cfg::LDS + kk + tig * 2;
        bf[c][0] = *reinterpret_cast<const uint32_t*>(p);
        bf[c][1] = *reinterpret_cast<const uint32_t*>(p + 8);
      }
      mma_all<Cfg, T>(acc, af, bf);
    }
    __syncthreads();
  }
  store_acc<Cfg>(acc, b, i0, j0, M, N, epi);
}

// SIMT f32 tile. As is [BK][BM + 4], Bs is [BK][BN + 4].
template <class Cfg, class ALoad, class BLoad, class Epi>
__device__ __forceinline__ void tile_f32(int tn, int tm, int b, int M, int N, int K, ALoad aLoad, BLoad bLoad,
                                         Epi& epi) {
  constexpr int LA = Cfg::BM + 4, LB = Cfg::BN + 4;
  float* As = reinterpret_cast<float*>(kiln_smem);
  float* Bs = As + Cfg::BK * LA;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int i0 = tm * Cfg::BM, j0 = tn * Cfg::BN;
  float acc[Cfg::TM][Cfg::TN];
#pragma unroll
  for (int r = 0; r < Cfg::TM; ++r)
#pragma unroll
    for (int c = 0; c < Cfg::TN; ++c) acc[r][c] = 0.0f;
  for (int k0 = 0; k0 < K; k0 += Cfg::BK) {
    for (int e = tid; e < Cfg::BM * Cfg::BK; e += Cfg::THREADS) {
      const int r = e / Cfg::BK, kk = e % Cfg::BK, i = i0 + r, k = k0 + kk;
      As[kk * LA + r] = (i < M && k < K) ? to_f32(aLoad(b, i, k)) : 0.0f;
    }
    for (int e = tid; e < Cfg::BN * Cfg::BK; e += Cfg::THREADS) {
      const int n = e % Cfg::BN, kk = e / Cfg::BN, j = j0 + n, k = k0 + kk;
      Bs[kk * LB + n] = (j < N && k < K) ? to_f32(bLoad(b, k, j)) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < Cfg::BK; ++kk) {
      float av[Cfg::TM], bv[Cfg::TN];
#pragma unroll
      for (int r = 0; r < Cfg::TM; ++r) av[r] = As[kk * LA + ty + 16 * r];
#pragma unroll
      for (int c = 0; c < Cfg::TN; ++c) bv[c] = Bs[kk * LB + tx + 16 * c];
#pragma unroll
      for (int r = 0; r < Cfg::TM; ++r)
#pragma unroll
        for (int c = 0; c < Cfg::TN; ++c) acc[r][c] = fmaf(av[r], bv[c], acc[r][c]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < Cfg::TM; ++r)
#pragma unroll
    for (int c = 0; c < Cfg::TN; ++c) {
      const int i = i0 + ty + 16 * r, j = j0 + tx + 16 * c;
      if (i < M && j < N) epi(b, i, j, acc[r][c]);
    }
}


// The pipelined tensor-core tile. AK: A(i, k) has k contiguous (else i contiguous); BN: B(k, j) has j contiguous (else
// k contiguous). Ab / Bb point at this batch's operands; ldA / ldB are the non-unit strides. Out-of-range 16-byte
// chunks are zero-filled by cp.async (source size 0), so ragged M, N and K need no special case as long as the
// contiguous extents are multiples of 8 (checked by the caller).
template <class Cfg, class T, bool AK, bool BN, class Epi>
__device__ __forceinline__ void tile_pipe(int tn, int tm, int b, int M, int N, int K, const T* __restrict__ Ab, int64_t ldA,
                                          const T* __restrict__ Bb, int64_t ldB, Epi& epi) {
  T* As = reinterpret_cast<T*>(kiln_smem);
  T* Bs = As + Cfg::STAGES * Cfg::STAGE;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / Cfg::WARPS_N, wn = warp % Cfg::WARPS_N;
  const int i0 = tm * Cfg::BM, j0 = tn * Cfg::BN;
  const int KT = (K + Cfg::BK - 1) / Cfg::BK;
  // One stage: BM x BK of A and BK x BN of B in 16-byte chunks, two of each per thread.
  auto load = [&](int stage, int kt) {
    const int k0 = kt * Cfg::BK;
    T* as = As + stage * Cfg::STAGE;
    T* bs = Bs + stage * Cfg::STAGE;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int e = tid + h * Cfg::THREADS;
      if constexpr (AK) {  // [BM][LDS]: row r = i, chunk c along k
        const int r = e / (Cfg::BK / 8), c = e % (Cfg::BK / 8), i = i0 + r, k = k0 + c * 8;
        const bool ok = i < M && k < K;
        ptx::cp_async<16>(as + r * Cfg::LDS + c * 8, ok ? Ab + int64_t(i) * ldA + k : Ab, ok ? 16 : 0);
      } else {  // [BK][LDT]: row r = k, chunk c along i
        const int r = e / (Cfg::BM / 8), c = e % (Cfg::BM / 8), i = i0 + c * 8, k = k0 + r;
        const bool ok = i < M && k < K;
        ptx::cp_async<16>(as + r * Cfg::LDT + c * 8, ok ? Ab + int64_t(k) * ldA + i : Ab, ok ? 16 : 0);
      }
      if constexpr (BN) {  // [BK][LDT]: row r = k, chunk c along j
        const int r = e / (Cfg::BN / 8), c = e % (Cfg::BN / 8), j = j0 + c * 8, k = k0 + r;
        const bool ok = j < N && k < K;
        ptx::cp_async<16>(bs + r * Cfg::LDT + c * 8, ok ? Bb + int64_t(k) * ldB + j : Bb, ok ? 16 : 0);
      } else {  // [BN][LDS]: row r = j, chunk c along k
        const int r = e / (Cfg::BK / 8), c = e % (Cfg::BK / 8), j = j0 + r, k = k0 + c * 8;
        const bool ok = j < N && k < K;
        ptx::cp_async<16>(bs + r * Cfg::LDS + c * 8, ok ? Bb + int64_t(j) * ldB + k : Bb, ok ? 16 : 0);
      }
    }
  };
  float acc[Cfg::MT][Cfg::NT][4] = {};
#pragma unroll
  for (int s = 0; s < Cfg::STAGES - 1; ++s) {
    if (s < KT) load(s, s);
    ptx::cp_async_commit();
  }
  // ldmatrix row addresses: lane l serves row (l & 7) of 8x8 matrix (l >> 3).
  const int r8 = lane & 7, mj = lane >> 3;
  for (int kt = 0; kt < KT; ++kt) {
    ptx::cp_async_wait<Cfg::STAGES - 2>();  // tile kt has landed (this thread's copies) ...
    __syncthreads();                         // ... everyone's, and everyone is done with the stage refilled next
    {
      const int nk = kt + Cfg::STAGES - 1;
      if (nk < KT) load(nk % Cfg::STAGES, nk);
      ptx::cp_async_commit();
    }
    const T* as = As + (kt % Cfg::STAGES) * Cfg::STAGE;
    const T* bs = Bs + (kt % Cfg::STAGES) * Cfg::STAGE;
#pragma unroll
    for (int kk = 0; kk < Cfg::BK; kk += 16) {
      uint32_t af[Cfg::MT][4], bf[Cfg::NT][2];
#pragma unroll
      for (int a = 0; a < Cfg::MT; ++a) {
        const int m0 = wm * (Cfg::MT * 16) + a * 16;
        // Matrices: 0 (rows m0.., k kk..), 1 (m0 + 8, kk), 2 (m0, kk + 8), 3 (m0 + 8, kk + 8) = a0..a3.
        if constexpr (AK) ptx::ldmatrix<4, false>(af[a], as + (m0 + r8 + (mj & 1) * 8) * Cfg::LDS + kk + (mj >> 1) * 8);
        else ptx::ldmatrix<4, true>(af[a], as + (kk + r8 + (mj >> 1) * 8) * Cfg::LDT + m0 + (mj & 1) * 8);
      }
#pragma unroll
      for (int c = 0; c < Cfg::NT; c += 2) {
        const int n0 = wn * (Cfg::NT * 8) + c * 8;
        // Matrices: 0 (k kk.., n n0..) = b0 and 1 (kk + 8, n0) = b1 of tile c; 2, 3 the same for n0 + 8 (tile c + 1).
        uint32_t r[4];
        if constexpr (BN) ptx::ldmatrix<4, true>(r, bs + (kk + r8 + (mj & 1) * 8) * Cfg::LDT + n0 + (mj >> 1) * 8);
        else ptx::ldmatrix<4, false>(r, bs + (n0 + r8 + (mj >> 1) * 8) * Cfg::LDS + kk + (mj & 1) * 8);
        bf[c][0] = r[0]; bf[c][1] = r[1]; bf[c + 1][0] = r[2]; bf[c + 1][1] = r[3];
      }
      mma_all<Cfg, T>(acc, af, bf);
    }
  }
  ptx::cp_async_wait<0>();  // no copy may still target shared memory when the block exits
  store_acc<Cfg>(acc, b, i0, j0, M, N, epi);
}

}  // namespace gemm_detail

// Loader form: aLoad(int b, int i, int k) -> T and bLoad(int b, int k, int j) -> T are only called in range.
// T = float uses the SIMT path (Cfg = GemmTileF32); bf16/half use tensor cores (Cfg = GemmTileMma).
template <class Cfg, class T, class ALoad, class BLoad, class Epi>
__device__ __forceinline__ void gemm_tile_generic(int tile_n, int tile_m, int b, int M, int N, int K, ALoad aLoad,
                                                  BLoad bLoad, Epi epi) {
  static_assert(Cfg::tensor_cores == (sizeof(T) == 2), "GemmTileF32 goes with float, GemmTileMma with bf16 / half");
  if constexpr (sizeof(T) == 4)
    gemm_detail::tile_f32<Cfg>(tile_n, tile_m, b, M, N, K, aLoad, bLoad, epi);
  else
    gemm_detail::tile_mma<Cfg, T>(tile_n, tile_m, b, M, N, K, aLoad, bLoad, epi);
}

// Strided form, the CUDA twin of the CPU gemm_f32:
//   A(b,i,k) = A[aOff(b) + i*rsA + k*csA],  B(b,k,j) = B[bOff(b) + k*rsB + j*csB],  epi(b, i, j, float acc).
// aOff/bOff: int64_t(int b). Strides and offsets are 64-bit; M, N, K, batch fit in int.
template <class Cfg, class T, class AOff, class BOff, class Epi>
__device__ __forceinline__ void gemm_tile(int tile_n, int tile_m, int b, int M, int N, int K,
                                          const T* __restrict__ A, int64_t rsA, int64_t csA, AOff aOff,
                                          const T* __restrict__ B, int64_t rsB, int64_t csB, BOff bOff, Epi epi) {
  const T* Ab = A + aOff(b);
  const T* Bb = B + bOff(b);
  gemm_tile_generic<Cfg, T>(
      tile_n, tile_m, b, M, N, K, [=](int, int i, int k) { return Ab[i * rsA + k * csA]; },
      [=](int, int k, int j) { return Bb[k * rsB + j * csB]; }, epi);
}

// The strided form on the pipelined tile (Cfg = GemmTilePipe, bf16 / half), for operands the renderer knows to be
// stored with a unit stride: AK means csA == 1 (else rsA == 1), BN means csB == 1 (else rsB == 1). When the other
// stride, the contiguous extent or a batch's base pointer is not a multiple of 8 elements / 16 bytes it runs
// GemmTileMma's tile instead (same result up to f32 summation order).
template <class Cfg, class T, bool AK, bool BN, class AOff, class BOff, class Epi>
__device__ __forceinline__ void gemm_tile_pipelined(int tile_n, int tile_m, int b, int M, int N, int K,
                                                    const T* __restrict__ A, int64_t rsA, int64_t csA, AOff aOff,
                                                    const T* __restrict__ B, int64_t rsB, int64_t csB, BOff bOff, Epi epi) {
  static_assert(sizeof(T) == 2 && Cfg::STAGES >= 2, "the pipelined tile takes bf16 / half operands");
  const T* Ab = A + aOff(b);
  const T* Bb = B + bOff(b);
  const int64_t ldA = AK ? rsA : csA, ldB = BN ? rsB : csB;
  const bool unit = (AK ? csA : rsA) == 1 && (BN ? csB : rsB) == 1;
  const bool ok = unit && ldA % 8 == 0 && ldB % 8 == 0 && (AK ? K : M) % 8 == 0 && (BN ? N : K) % 8 == 0 &&
                  (reinterpret_cast<uintptr_t>(Ab) & 15) == 0 && (reinterpret_cast<uintptr_t>(Bb) & 15) == 0;
  if (ok) {
    gemm_detail::tile_pipe<Cfg, T, AK, BN>(tile_n, tile_m, b, M, N, K, Ab, ldA, Bb, ldB, epi);
  } else {
    gemm_detail::tile_mma<GemmTileMma, T>(
        tile_n, tile_m, b, M, N, K, [=](int, int i, int k) { return Ab[i * rsA + k * csA]; },
        [=](int, int k, int j) { return Bb[k * rsB + j * csB]; }, epi);
  }
}

}  // namespace kiln
