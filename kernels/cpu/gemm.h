// kiln::gemm_f32 — blocked, packed f32 GEMM with an AVX2/FMA 6x16 micro-kernel and a fused epilogue.
//
//   C(b,i,j) = sum_k A(b,i,k) * B(b,k,j)     then   epi(b, i, j, C(b,i,j))  exactly once per element
//
// Layout (BLIS / Goto): loop jc over NC columns -> pc over KC of K -> (threads split the rows or columns
// of the block) ic over MC rows -> jr over NR -> ir over MR -> micro-kernel. B(pc,jc) is packed once into
// KC x NR panels shared by both threads; each thread packs its own MC x KC block of A into MR-row panels.
// The epilogue needs the *full* K sum, so when K > KC the partial sums live in a C buffer (rows x NC) and
// the last KC step hands the finished tile to `epi`; when K <= KC the micro-kernel calls `epi` directly.
//
// The driver `gemm_packed_f32` is generic over the packers, so conv2d.h reuses it with im2col packers.
// Self-contained: needs only <immintrin.h> and OpenMP (compile with -mavx2 -mfma or -march=native).
#pragma once

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace kiln {

namespace gemm_cfg {
constexpr int MR = 6;      // micro-tile rows   (6 x 2 ymm = 12 accumulators)
constexpr int NR = 16;     // micro-tile cols   (2 ymm)
constexpr int64_t KC = 256;  // K block: A panel 6x256 (6 KiB) + B panel 256x16 (16 KiB) fit L1
constexpr int64_t MC = 96;   // A block 96x256 = 96 KiB sits in the 512 KiB L2
constexpr int64_t NC = 512;  // B block 256x512 = 512 KiB, shared by both cores through L3
constexpr int64_t MB = 2048; // rows per C-buffer chunk (C buffer <= MB x NC floats = 4 MiB)
}  // namespace gemm_cfg

// 64-byte aligned scratch, freed at scope exit.
struct AlignedBuf {
  float* p = nullptr;
  explicit AlignedBuf(size_t n) {
    if (n) p = static_cast<float*>(std::aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64));
  }
  ~AlignedBuf() { std::free(p); }
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
};

// Modes of one micro-kernel call with respect to the K blocking.
enum class KStep { Only, First, Middle, Last };

// acc(6x16) = Ap(kc x 6) . Bp(kc x 16); then, per mode: Only -> epi; First -> C = acc;
// Middle -> C += acc; Last -> epi(C + acc). mr/nr clip the tile at the matrix edge.
template <class Epi>
static inline void gemm_micro_6x16(int64_t kc, const float* __restrict__ Ap, const float* __restrict__ Bp,
                                   float* __restrict__ C, int64_t ldc, int mr, int nr, KStep mode, int64_t b,
                                   int64_t i0, int64_t j0, Epi& epi) {
  // Inner product loop in inline asm: GCC spills accumulators when the loop is written with intrinsics.
  // ymm0..11 = 6x16 accumulators (row r in ymm2r, ymm2r+1), ymm12/13 = B row, ymm14/15 = A broadcasts.
  int64_t k4 = kc >> 2, k1 = kc & 3;
  alignas(32) float t[6 * 16];
  __asm__ volatile(
      "vxorps %%ymm0, %%ymm0, %%ymm0\n\t"
      "vxorps %%ymm1, %%ymm1, %%ymm1\n\t"
      "vxorps %%ymm2, %%ymm2, %%ymm2\n\t"
      "vxorps %%ymm3, %%ymm3, %%ymm3\n\t"
      "vxorps %%ymm4, %%ymm4, %%ymm4\n\t"
      "vxorps %%ymm5, %%ymm5, %%ymm5\n\t"
      "vxorps %%ymm6, %%ymm6, %%ymm6\n\t"
      "vxorps %%ymm7, %%ymm7, %%ymm7\n\t"
      "vxorps %%ymm8, %%ymm8, %%ymm8\n\t"
      "vxorps %%ymm9, %%ymm9, %%ymm9\n\t"
      "vxorps %%ymm10, %%ymm10, %%ymm10\n\t"
      "vxorps %%ymm11, %%ymm11, %%ymm11\n\t"
      "test %[k4], %[k4]\n\t"
      "jz 2f\n\t"
      "1:\n\t"
      "prefetcht0 512(%[b])\n\t"
      "vmovaps 0(%[b]), %%ymm12\n\t"
      "vmovaps 32(%[b]), %%ymm13\n\t"
      "vbroadcastss 0(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm0\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm1\n\t"
      "vbroadcastss 4(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm2\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm3\n\t"
      "vbroadcastss 8(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm4\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm5\n\t"
      "vbroadcastss 12(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm6\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm7\n\t"
      "vbroadcastss 16(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm8\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm9\n\t"
      "vbroadcastss 20(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm10\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm11\n\t"
      "vmovaps 64(%[b]), %%ymm12\n\t"
      "vmovaps 96(%[b]), %%ymm13\n\t"
      "vbroadcastss 24(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm0\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm1\n\t"
      "vbroadcastss 28(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm2\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm3\n\t"
      "vbroadcastss 32(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm4\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm5\n\t"
      "vbroadcastss 36(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm6\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm7\n\t"
      "vbroadcastss 40(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm8\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm9\n\t"
      "vbroadcastss 44(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm10\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm11\n\t"
      "vmovaps 128(%[b]), %%ymm12\n\t"
      "vmovaps 160(%[b]), %%ymm13\n\t"
      "vbroadcastss 48(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm0\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm1\n\t"
      "vbroadcastss 52(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm2\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm3\n\t"
      "vbroadcastss 56(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm4\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm5\n\t"
      "vbroadcastss 60(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm6\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm7\n\t"
      "vbroadcastss 64(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm8\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm9\n\t"
      "vbroadcastss 68(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm10\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm11\n\t"
      "vmovaps 192(%[b]), %%ymm12\n\t"
      "vmovaps 224(%[b]), %%ymm13\n\t"
      "vbroadcastss 72(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm0\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm1\n\t"
      "vbroadcastss 76(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm2\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm3\n\t"
      "vbroadcastss 80(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm4\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm5\n\t"
      "vbroadcastss 84(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm6\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm7\n\t"
      "vbroadcastss 88(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm8\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm9\n\t"
      "vbroadcastss 92(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm10\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm11\n\t"
      "add $96, %[a]\n\t"
      "add $256, %[b]\n\t"
      "dec %[k4]\n\t"
      "jnz 1b\n\t"
      "2:\n\t"
      "test %[k1], %[k1]\n\t"
      "jz 4f\n\t"
      "3:\n\t"
      "vmovaps 0(%[b]), %%ymm12\n\t"
      "vmovaps 32(%[b]), %%ymm13\n\t"
      "vbroadcastss 0(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm0\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm1\n\t"
      "vbroadcastss 4(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm2\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm3\n\t"
      "vbroadcastss 8(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm4\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm5\n\t"
      "vbroadcastss 12(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm6\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm7\n\t"
      "vbroadcastss 16(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm8\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm9\n\t"
      "vbroadcastss 20(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm10\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm11\n\t"
      "add $24, %[a]\n\t"
      "add $64, %[b]\n\t"
      "dec %[k1]\n\t"
      "jnz 3b\n\t"
      "4:\n\t"
      "vmovaps %%ymm0, 0(%[t])\n\t"
      "vmovaps %%ymm1, 32(%[t])\n\t"
      "vmovaps %%ymm2, 64(%[t])\n\t"
      "vmovaps %%ymm3, 96(%[t])\n\t"
      "vmovaps %%ymm4, 128(%[t])\n\t"
      "vmovaps %%ymm5, 160(%[t])\n\t"
      "vmovaps %%ymm6, 192(%[t])\n\t"
      "vmovaps %%ymm7, 224(%[t])\n\t"
      "vmovaps %%ymm8, 256(%[t])\n\t"
      "vmovaps %%ymm9, 288(%[t])\n\t"
      "vmovaps %%ymm10, 320(%[t])\n\t"
      "vmovaps %%ymm11, 352(%[t])\n\t"
      : [a] "+r"(Ap), [b] "+r"(Bp), [k4] "+r"(k4), [k1] "+r"(k1)
      : [t] "r"(t)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
  switch (mode) {
    case KStep::Only:
      for (int r = 0; r < mr; ++r)
        for (int c = 0; c < nr; ++c) epi(b, i0 + r, j0 + c, t[r * 16 + c]);
      break;
    case KStep::First:
      for (int r = 0; r < mr; ++r)
        for (int c = 0; c < nr; ++c) C[r * ldc + c] = t[r * 16 + c];
      break;
    case KStep::Middle:
      for (int r = 0; r < mr; ++r)
        for (int c = 0; c < nr; ++c) C[r * ldc + c] += t[r * 16 + c];
      break;
    case KStep::Last:
      for (int r = 0; r < mr; ++r)
        for (int c = 0; c < nr; ++c) epi(b, i0 + r, j0 + c, C[r * ldc + c] + t[r * 16 + c]);
      break;
  }
}

// Packer contracts (both write zeros past the matrix edge so the micro-kernel never branches):
//   packA(b, i0, mc, k0, kc, dst): dst[p*kc*MR + k*MR + r] = A(b, i0 + p*MR + r, k0 + k), p < ceil(mc/MR)
//   packB(b, k0, kc, j0, nc, dst): dst[p*kc*NR + k*NR + c] = B(b, k0 + k, j0 + p*NR + c), p < ceil(nc/NR)
// packB is called by each thread for its own share of panels (j0, nc multiples of NR apart from the end).
template <class PackA, class PackB, class Epi>
void gemm_packed_f32(int64_t batch, int64_t M, int64_t N, int64_t K, PackA packA, PackB packB, Epi epi) {
  using namespace gemm_cfg;
  if (batch <= 0 || M <= 0 || N <= 0) return;
  if (K <= 0) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) epi(b, i, j, 0.0f);
    return;
  }
  const int max_thr = omp_get_max_threads();
  const int64_t nc_max = std::min<int64_t>(NC, (N + NR - 1) / NR * NR);
  const int64_t kc_max = std::min<int64_t>(KC, K);
  const int64_t mb_max = std::min<int64_t>(MB, (M + MR - 1) / MR * MR);
  const bool need_c = K > KC;
  // Small per-batch problems: one batch element per thread, serial inside. Otherwise all threads
  // cooperate on each batch element.
  const double flops = double(M) * double(N) * double(K);
  const bool batch_parallel = batch >= max_thr && max_thr > 1 && flops < 4.0e6;
  const int n_ctx = batch_parallel ? max_thr : 1;

  AlignedBuf bbuf(size_t(n_ctx) * kc_max * nc_max);
  AlignedBuf cbuf(need_c ? size_t(n_ctx) * mb_max * nc_max : 0);
  AlignedBuf abuf(size_t(max_thr) * kc_max * ((std::min<int64_t>(MC, mb_max) + MR - 1) / MR * MR));

  auto run_one = [&](int64_t b, int tid, int nthr, float* Bp, float* Cb, float* Ap) {
    for (int64_t ib = 0; ib < M; ib += MB) {
      const int64_t mrows = std::min(MB, M - ib);
      const int64_t mpan = (mrows + MR - 1) / MR;
      for (int64_t jc = 0; jc < N; jc += NC) {
        const int64_t nc = std::min(NC, N - jc);
        const int64_t npan = (nc + NR - 1) / NR;
        // Work items: MC-row blocks x column chunks of the (mrows x nc) block, handed out dynamically so a
        // core slowed by another process does not hold the other one at the barrier.
        const int64_t pan_per_mc = MC / MR;
        const int64_t nrb = (mpan + pan_per_mc - 1) / pan_per_mc;
        const int64_t ncb = nthr > 1 ? std::min<int64_t>(npan, std::max<int64_t>(1, (8 * nthr + nrb - 1) / nrb)) : 1;
        for (int64_t pc = 0; pc < K; pc += KC) {
          const int64_t kc = std::min(KC, K - pc);
          const bool first = pc == 0, last = pc + kc >= K;
          const KStep mode = first && last ? KStep::Only : first ? KStep::First : last ? KStep::Last : KStep::Middle;
          // Pack B(pc, jc): panels split evenly between threads.
          {
            const int64_t p0 = npan * tid / nthr, p1 = npan * (tid + 1) / nthr;
            if (p1 > p0)
              packB(b, pc, kc, jc + p0 * NR, std::min(nc, p1 * NR) - p0 * NR, Bp + p0 * kc * NR);
          }
          if (nthr > 1) {
#pragma omp barrier
          }
          auto task = [&](int64_t t) {
            const int64_t pr = (t / ncb) * pan_per_mc, pr_end = std::min(mpan, pr + pan_per_mc);
            const int64_t q0 = npan * (t % ncb) / ncb, q1 = npan * (t % ncb + 1) / ncb;
            const int64_t i0 = ib + pr * MR;
            const int64_t mc = std::min(pr_end * MR, mrows) - pr * MR;
            packA(b, i0, mc, pc, kc, Ap);
            for (int64_t q = q0; q < q1; ++q) {
              const int nr = int(std::min<int64_t>(NR, nc - q * NR));
              const float* bp = Bp + q * kc * NR;
              for (int64_t p = 0; p < pr_end - pr; ++p) {
                const int mr = int(std::min<int64_t>(MR, mc - p * MR));
                const int64_t row = (pr + p) * MR;  // row inside the C chunk
                float* c = need_c ? Cb + row * nc_max + q * NR : nullptr;
                gemm_micro_6x16(kc, Ap + p * kc * MR, bp, c, nc_max, mr, nr, mode, b, i0 + p * MR, jc + q * NR,
                                epi);
              }
            }
          };
          if (nthr > 1) {
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < nrb * ncb; ++t) task(t);  // implicit barrier: B is reused next step
          } else {
            for (int64_t t = 0; t < nrb * ncb; ++t) task(t);
          }
        }
      }
    }
  };

  const size_t astride = size_t(kc_max) * ((std::min<int64_t>(MC, mb_max) + MR - 1) / MR * MR);
  if (batch_parallel) {
#pragma omp parallel
    {
      const int tid = omp_get_thread_num();
      float* Bp = bbuf.p + size_t(tid) * kc_max * nc_max;
      float* Cb = need_c ? cbuf.p + size_t(tid) * mb_max * nc_max : nullptr;
#pragma omp for schedule(dynamic)
      for (int64_t b = 0; b < batch; ++b) run_one(b, 0, 1, Bp, Cb, abuf.p + tid * astride);
    }
  } else if (max_thr == 1 || flops < 1.5e5) {
    for (int64_t b = 0; b < batch; ++b) run_one(b, 0, 1, bbuf.p, cbuf.p, abuf.p);
  } else {
#pragma omp parallel
    {
      const int tid = omp_get_thread_num(), nthr = omp_get_num_threads();
      for (int64_t b = 0; b < batch; ++b) run_one(b, tid, nthr, bbuf.p, cbuf.p, abuf.p + tid * astride);
    }
  }
}

// Strided packers for gemm_f32.
template <class Off>
struct StridedPackA {
  const float* A; int64_t rs, cs; Off off; int64_t M;
  void operator()(int64_t b, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) const {
    using gemm_cfg::MR;
    const float* base = A + off(b) + k0 * cs;
    for (int64_t p = 0; p * MR < mc; ++p) {
      float* d = dst + p * kc * MR;
      const int64_t i = i0 + p * MR;
      const int mr = int(std::min<int64_t>(MR, mc - p * MR));
      if (mr == MR && cs == 1) {
        const float* r0 = base + (i + 0) * rs; const float* r1 = base + (i + 1) * rs;
        const float* r2 = base + (i + 2) * rs; const float* r3 = base + (i + 3) * rs;
        const float* r4 = base + (i + 4) * rs; const float* r5 = base + (i + 5) * rs;
        for (int64_t k = 0; k < kc; ++k) {
          d[k * 6 + 0] = r0[k]; d[k * 6 + 1] = r1[k]; d[k * 6 + 2] = r2[k];
          d[k * 6 + 3] = r3[k]; d[k * 6 + 4] = r4[k]; d[k * 6 + 5] = r5[k];
        }
      } else {
        for (int64_t k = 0; k < kc; ++k) {
          const float* src = base + k * cs + i * rs;
          int r = 0;
          for (; r < mr; ++r) d[k * MR + r] = src[r * rs];
          for (; r < MR; ++r) d[k * MR + r] = 0.0f;
        }
      }
    }
  }
};

template <class Off>
struct StridedPackB {
  const float* B; int64_t rs, cs; Off off;
  void operator()(int64_t b, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) const {
    using gemm_cfg::NR;
    const float* base = B + off(b) + k0 * rs;
    for (int64_t p = 0; p * NR < nc; ++p) {
      float* d = dst + p * kc * NR;
      const int64_t j = j0 + p * NR;
      const int nr = int(std::min<int64_t>(NR, nc - p * NR));
      if (nr == NR && cs == 1) {
        for (int64_t k = 0; k < kc; ++k) {
          const float* src = base + k * rs + j;
          _mm256_store_ps(d + k * NR, _mm256_loadu_ps(src));
          _mm256_store_ps(d + k * NR + 8, _mm256_loadu_ps(src + 8));
        }
      } else if (nr == NR && rs == 1) {
        // Transposed B: each column j is contiguous in k.
        for (int c = 0; c < NR; ++c) {
          const float* src = base + (j + c) * cs;
          for (int64_t k = 0; k < kc; ++k) d[k * NR + c] = src[k];
        }
      } else {
        for (int64_t k = 0; k < kc; ++k) {
          const float* src = base + k * rs + j * cs;
          int c = 0;
          for (; c < nr; ++c) d[k * NR + c] = src[c * cs];
          for (; c < NR; ++c) d[k * NR + c] = 0.0f;
        }
      }
    }
  }
};

// A(b,i,k) = A[aOff(b) + i*rsA + k*csA], B(b,k,j) = B[bOff(b) + k*rsB + j*csB];
// epi(int64_t b, int64_t i, int64_t j, float acc) is called exactly once per (b,i,j), possibly from
// several threads at once (for distinct elements). aOff/bOff: int64_t(int64_t b), e.g. [](int64_t){return 0;}
// for a broadcast operand.
template <class AOff, class BOff, class Epi>
void gemm_f32(int64_t batch, int64_t M, int64_t N, int64_t K,
              const float* A, int64_t rsA, int64_t csA, AOff aOff,
              const float* B, int64_t rsB, int64_t csB, BOff bOff,
              Epi epi) {
  gemm_packed_f32(batch, M, N, K, StridedPackA<AOff>{A, rsA, csA, aOff, M}, StridedPackB<BOff>{B, rsB, csB, bOff},
                  epi);
}

}  // namespace kiln
