// kiln::gemm_f32 — blocked, packed f32 GEMM with a fused epilogue and a micro-kernel chosen at run time:
// AVX-512 8x48, AVX2/FMA 6x16 or portable 4x16 (gemm_ukr.h; which one: cpu_isa.h, KILN_CPU_ISA).
//
//   C(b,i,j) = sum_k A(b,i,k) * B(b,k,j)     then   epi(b, i, j, C(b,i,j))  exactly once per element
//
// Layout (BLIS / Goto): loop jc over NC columns -> pc over KC of K -> (threads split the rows or columns
// of the block) ic over MC rows -> jr over NR -> ir over MR -> micro-kernel. B(pc,jc) is packed once into
// KC x NR panels shared by both threads; each thread packs its own MC x KC block of A into MR-row panels.
// The epilogue needs the *full* K sum, so when K > KC the partial sums live in a C buffer (rows x NC) and
// the last KC step hands the finished tile to `epi`; when K <= KC the tile goes to `epi` directly.
//
// The driver `gemm_packed_f32` is generic over the packers, so conv2d.h reuses it with im2col packers.
// The driver is instantiated once per path (MR/NR/blocking are compile-time constants of each); only the
// micro-kernels carry ISA target attributes, so this header needs no -m flag to hold every path.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "cpu_cache.h"
#include "cpu_isa.h"
#include "gemm_ukr.h"

namespace kiln {

// Compile-time tile size handed to the packers: packA(Dim<MR>{}, ...), packB(Dim<NR>{}, ...).
template <int V>
using Dim = std::integral_constant<int, V>;

// Per path: micro-tile and cache blocking. The blocking is derived once per process from the detected caches
// (cpu_cache.h) by gemm_blocking<U>(); KC / MC / NC here are the values tuned on a 48 KiB L1d, 1 MiB L2 core
// (Zen 5), which the derivation reproduces there:
//   KC: one KC x NR panel of B fits the L1d (KC = L1d / (NR*4), at most U::KC) while the A panels stream past it;
//   MC: the MC x KC block of A takes U::L2Share of the L2;  NC: the KC x NC block of B (shared by the threads)
//   at most U::NC columns and half the L3.
namespace gemm_cfg {
struct Avx512 {  // B panel 256x48 (48 KiB) in a 48 KiB L1 (and L2 behind it); A block 192x256 (192 KiB) in L2
  static constexpr int MR = 8, NR = 48;
  static constexpr int64_t KC = 256, MC = 192, NC = 480;
  static constexpr double L2Share = 0.1875;
  static void ukr(int64_t kc, const float* a, const float* b, float* t) { ukr_avx512_8x48(kc, a, b, t); }
};
struct Avx2 {  // B panel 256x16 (16 KiB) + A panel 6x256 (6 KiB) in L1; A block 96x256 (96 KiB) in L2
  static constexpr int MR = 6, NR = 16;
  static constexpr int64_t KC = 256, MC = 96, NC = 512;
  static constexpr double L2Share = 0.09375;
  static void ukr(int64_t kc, const float* a, const float* b, float* t) { ukr_avx2_6x16(kc, a, b, t); }
};
struct Generic {
  static constexpr int MR = 4, NR = 16;
  static constexpr int64_t KC = 256, MC = 64, NC = 512;
  static constexpr double L2Share = 0.0625;
  static void ukr(int64_t kc, const float* a, const float* b, float* t) { ukr_generic_4x16(kc, a, b, t); }
};
constexpr int64_t MB = 2048; // rows per C-buffer chunk (C buffer <= MB x NC floats = 4 MiB)
}  // namespace gemm_cfg

// 64-byte aligned scratch, handed back at scope exit to a small per-thread cache of blocks (scratch_cache), so a
// program's next GEMM or conv reuses pages that are already mapped: a fresh mmap per call costs a page fault per
// 4 KiB, which on this project's VM took a 64ch 56^2 weight gradient from 2.3 to 31 ms whenever malloc returned
// large blocks to the OS (a fixed M_MMAP_THRESHOLD, as some host processes set).
struct ScratchCache {
  static constexpr int Slots = 8;
  static constexpr size_t MaxBytes = size_t(256) << 20;  // blocks kept per thread, in all
  struct Block { float* p = nullptr; size_t bytes = 0; };
  Block free_[Slots];
  size_t kept = 0;
  // The smallest cached block of at least `bytes`, or a new one.
  Block take(size_t bytes) {
    int best = -1;
    for (int i = 0; i < Slots; ++i)
      if (free_[i].p && free_[i].bytes >= bytes && (best < 0 || free_[i].bytes < free_[best].bytes)) best = i;
    if (best >= 0) {
      const Block b = free_[best];
      free_[best] = Block{};
      kept -= b.bytes;
      return b;
    }
    return Block{static_cast<float*>(std::aligned_alloc(64, bytes)), bytes};
  }
  // Keeps the block unless that would pass MaxBytes; a full cache drops its smallest block for a larger one.
  void give(Block b) {
    if (!b.p) return;
    if (b.bytes > MaxBytes) return std::free(b.p);
    int slot = -1;
    for (int i = 0; i < Slots; ++i)
      if (!free_[i].p) { slot = i; break; }
    if (slot < 0) {
      slot = 0;
      for (int i = 1; i < Slots; ++i)
        if (free_[i].bytes < free_[slot].bytes) slot = i;
      if (free_[slot].bytes >= b.bytes) return std::free(b.p);
      kept -= free_[slot].bytes;
      std::free(free_[slot].p);
      free_[slot] = Block{};
    }
    while (kept + b.bytes > MaxBytes) {  // drop the largest others first
      int big = -1;
      for (int i = 0; i < Slots; ++i)
        if (free_[i].p && (big < 0 || free_[i].bytes > free_[big].bytes)) big = i;
      if (big < 0) return std::free(b.p);
      kept -= free_[big].bytes;
      std::free(free_[big].p);
      free_[big] = Block{};
    }
    free_[slot] = b;
    kept += b.bytes;
  }
  ~ScratchCache() {
    for (Block& b : free_) std::free(b.p);
  }
};
inline ScratchCache& scratch_cache() {
  static thread_local ScratchCache c;
  return c;
}

struct AlignedBuf {
  float* p = nullptr;
  size_t bytes = 0;
  explicit AlignedBuf(size_t n) {
    if (n) {
      const ScratchCache::Block b = scratch_cache().take(((n * sizeof(float) + 63) / 64) * 64);
      p = b.p;
      bytes = b.bytes;
    }
  }
  ~AlignedBuf() { scratch_cache().give(ScratchCache::Block{p, bytes}); }
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
};

struct GemmBlocking { int64_t KC, MC, NC; };

// The blocking of path U on this CPU's caches (see gemm_cfg), computed once per path.
template <class U>
const GemmBlocking& gemm_blocking() {
  static const GemmBlocking b = [] {
    const CpuCaches& c = cpu_caches();
    const int64_t kc = std::min<int64_t>(U::KC, std::max<int64_t>(64, c.l1d / (U::NR * 4) / 8 * 8));
    const int64_t mc = std::min<int64_t>(gemm_cfg::MB / U::MR * U::MR,
                                         std::max<int64_t>(4 * U::MR, int64_t(double(c.l2) * U::L2Share) / (kc * 4) / U::MR * U::MR));
    const int64_t nc = std::min<int64_t>(U::NC, std::max<int64_t>(4 * U::NR, c.l3 / 2 / (kc * 4) / U::NR * U::NR));
    return GemmBlocking{kc, mc, nc};
  }();
  return b;
}

// "L1d 48 KiB, L2 1024 KiB, L3 32768 KiB (cpuid leaf 4); blocking KC 256 MC 192 NC 480" for path `isa`.
inline void describe_blocking(Isa isa, char* out, size_t n) {
  const CpuCaches& c = cpu_caches();
  const GemmBlocking& b = isa == Isa::Avx512 ? gemm_blocking<gemm_cfg::Avx512>()
                          : isa == Isa::Avx2 ? gemm_blocking<gemm_cfg::Avx2>() : gemm_blocking<gemm_cfg::Generic>();
  std::snprintf(out, n, "L1d %lld KiB, L2 %lld KiB, L3 %lld KiB (%s); blocking KC %lld MC %lld NC %lld",
                (long long)(c.l1d >> 10), (long long)(c.l2 >> 10), (long long)(c.l3 >> 10), c.source, (long long)b.KC,
                (long long)b.MC, (long long)b.NC);
}

// Modes of one micro-kernel call with respect to the K blocking.
enum class KStep { Only, First, Middle, Last };

// An epilogue may take a finished tile row at once: epi.row(b, i, j0, n, acc) for C(b, i, j0 .. j0+n-1) =
// acc[0 .. n-1]. The driver then calls row() once per tile row (MR calls per tile instead of MR x NR), so an
// epilogue that is a function pointer or needs a division per index (conv2d) pays that per row.
template <class E, class = void>
struct has_row_epi : std::false_type {};
template <class E>
struct has_row_epi<E, std::void_t<decltype(std::declval<E&>().row(int64_t(), int64_t(), int64_t(), int(),
                                                                    static_cast<const float*>(nullptr)))>>
    : std::true_type {};

// acc(MR x NR) = Ap(kc x MR) . Bp(kc x NR) by the path's micro-kernel; then, per mode: Only -> epi;
// First -> C = acc; Middle -> C += acc; Last -> epi(C + acc). mr/nr clip the tile at the matrix edge.
template <class U, class Epi>
static inline void gemm_micro(int64_t kc, const float* __restrict__ Ap, const float* __restrict__ Bp,
                              float* __restrict__ C, int64_t ldc, int mr, int nr, KStep mode, int64_t b, int64_t i0,
                              int64_t j0, Epi& epi) {
  constexpr int MR = U::MR, NR = U::NR;
  alignas(64) float t[MR * NR];
  U::ukr(kc, Ap, Bp, t);
  if constexpr (has_row_epi<Epi>::value) {
    if (mode == KStep::Only || mode == KStep::Last) {
      if (mode == KStep::Last) {
        if (nr == NR)
          for (int r = 0; r < mr; ++r)
            for (int c = 0; c < NR; ++c) t[r * NR + c] += C[r * ldc + c];
        else
          for (int r = 0; r < mr; ++r)
            for (int c = 0; c < nr; ++c) t[r * NR + c] += C[r * ldc + c];
      }
      for (int r = 0; r < mr; ++r) epi.row(b, i0 + r, j0, nr, t + r * NR);
      return;
    }
  }
  if (mr == MR && nr == NR) {
    // Full tile: compile-time bounds, so these loops vectorize (with an inlined epilogue that stores, too).
    switch (mode) {
      case KStep::Only:
        for (int r = 0; r < MR; ++r)
          for (int c = 0; c < NR; ++c) epi(b, i0 + r, j0 + c, t[r * NR + c]);
        return;
      case KStep::First:
        for (int r = 0; r < MR; ++r) std::memcpy(C + r * ldc, t + r * NR, NR * sizeof(float));
        return;
      case KStep::Middle:
        for (int r = 0; r < MR; ++r)
          for (int c = 0; c < NR; ++c) C[r * ldc + c] += t[r * NR + c];
        return;
      case KStep::Last:
        for (int r = 0; r < MR; ++r)
          for (int c = 0; c < NR; ++c) epi(b, i0 + r, j0 + c, C[r * ldc + c] + t[r * NR + c]);
        return;
    }
  }
  switch (mode) {
    case KStep::Only:
      for (int r = 0; r < mr; ++r)
        for (int c = 0; c < nr; ++c) epi(b, i0 + r, j0 + c, t[r * NR + c]);
      break;
    case KStep::First:
      for (int r = 0; r < mr; ++r)
        for (int c = 0; c < nr; ++c) C[r * ldc + c] = t[r * NR + c];
      break;
    case KStep::Middle:
      for (int r = 0; r < mr; ++r)
        for (int c = 0; c < nr; ++c) C[r * ldc + c] += t[r * NR + c];
      break;
    case KStep::Last:
      for (int r = 0; r < mr; ++r)
        for (int c = 0; c < nr; ++c) epi(b, i0 + r, j0 + c, C[r * ldc + c] + t[r * NR + c]);
      break;
  }
}

// Packer contracts (both write zeros past the matrix edge so the micro-kernel never branches; MR/NR are the
// path's tile, passed as Dim<MR>{} / Dim<NR>{} so packers keep them compile-time):
//   packA(Dim<MR>, b, i0, mc, k0, kc, dst): dst[p*kc*MR + k*MR + r] = A(b, i0 + p*MR + r, k0 + k), p < ceil(mc/MR)
//   packB(Dim<NR>, b, k0, kc, j0, nc, dst): dst[p*kc*NR + k*NR + c] = B(b, k0 + k, j0 + p*NR + c), p < ceil(nc/NR)
// packB is called by each thread for its own share of panels (j0, nc multiples of NR apart from the end).
// How threads share the work. Auto: as described above. Columns: each thread runs whole column chunks of a batch
// element by itself (its own B and C buffers, the whole K loop), chunks handed out dynamically: no barrier per KC
// step and no shared B panel, which suits GEMMs with few rows and many columns (a conv's M is its channel count,
// N its pixels) and rows that fit one MC block; a caller asks for it (conv2d), the matmul keeps Auto.
enum class GemmSplit { Auto, Columns };

// One path, U = gemm_cfg::Avx512 / Avx2 / Generic; needs batch, M, N, K > 0 (gemm_packed_f32 checks and dispatches).
template <class U, class PackA, class PackB, class Epi>
void gemm_packed_path(int64_t batch, int64_t M, int64_t N, int64_t K, PackA& packA, PackB& packB, Epi& epi,
                      GemmSplit split = GemmSplit::Auto) {
  constexpr int MR = U::MR, NR = U::NR;
  const GemmBlocking& blk = gemm_blocking<U>();
  const int64_t KC = blk.KC, MC = blk.MC, NC = blk.NC;  // MC % MR == 0, NC % NR == 0 by construction
  constexpr int64_t MB = gemm_cfg::MB / MR * MR;
  const int max_thr = omp_get_max_threads();
  const int64_t nc_max = std::min<int64_t>(NC, (N + NR - 1) / NR * NR);
  const int64_t kc_max = std::min<int64_t>(KC, K);
  const int64_t mb_max = std::min<int64_t>(MB, (M + MR - 1) / MR * MR);
  const bool need_c = K > KC;
  // Small per-batch problems: one batch element per thread, serial inside. Otherwise all threads
  // cooperate on each batch element.
  const double flops = double(M) * double(N) * double(K);
  const bool batch_parallel = batch >= max_thr && max_thr > 1 && flops < 4.0e6;
  // Column chunks: whole NR panels, at most NC columns each, a multiple of the thread count (at least 2 each,
  // when there are panels enough), panel counts differing by at most one.
  const int64_t npan_all = (N + NR - 1) / NR;
  int64_t chunks = 1;
  // Only when the rows fit one MC block: with more, Auto's threads split the row blocks and share each B panel,
  // where a column split would copy all of A once per chunk and thread (320 ch: 3.7 MB per chunk).
  if (split == GemmSplit::Columns && M <= MC && !batch_parallel && max_thr > 1 && flops >= 1.5e5) {
    const int64_t want = std::max<int64_t>(2 * max_thr, ((N + NC - 1) / NC + max_thr - 1) / max_thr * max_thr);
    chunks = npan_all >= want ? want : npan_all >= max_thr ? npan_all / max_thr * max_thr : 1;
  }
  const bool col_parallel = chunks > 1;
  const int n_ctx = batch_parallel || col_parallel ? max_thr : 1;

  AlignedBuf bbuf(size_t(n_ctx) * kc_max * nc_max);
  AlignedBuf cbuf(need_c ? size_t(n_ctx) * mb_max * nc_max : 0);
  AlignedBuf abuf(size_t(max_thr) * kc_max * ((std::min<int64_t>(MC, mb_max) + MR - 1) / MR * MR));

  // Columns [j_lo, j_hi) of batch element b.
  auto run_one = [&](int64_t b, int64_t j_lo, int64_t j_hi, int tid, int nthr, float* Bp, float* Cb, float* Ap) {
    for (int64_t ib = 0; ib < M; ib += MB) {
      const int64_t mrows = std::min(MB, M - ib);
      const int64_t mpan = (mrows + MR - 1) / MR;
      for (int64_t jc = j_lo; jc < j_hi; jc += NC) {
        const int64_t nc = std::min(NC, j_hi - jc);
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
              packB(Dim<NR>{}, b, pc, kc, jc + p0 * NR, std::min(nc, p1 * NR) - p0 * NR, Bp + p0 * kc * NR);
          }
          if (nthr > 1) {
#pragma omp barrier
          }
          auto task = [&](int64_t t) {
            const int64_t pr = (t / ncb) * pan_per_mc, pr_end = std::min(mpan, pr + pan_per_mc);
            const int64_t q0 = npan * (t % ncb) / ncb, q1 = npan * (t % ncb + 1) / ncb;
            const int64_t i0 = ib + pr * MR;
            const int64_t mc = std::min(pr_end * MR, mrows) - pr * MR;
            packA(Dim<MR>{}, b, i0, mc, pc, kc, Ap);
            for (int64_t q = q0; q < q1; ++q) {
              const int nr = int(std::min<int64_t>(NR, nc - q * NR));
              const float* bp = Bp + q * kc * NR;
              for (int64_t p = 0; p < pr_end - pr; ++p) {
                const int mr = int(std::min<int64_t>(MR, mc - p * MR));
                const int64_t row = (pr + p) * MR;  // row inside the C chunk
                float* c = need_c ? Cb + row * nc_max + q * NR : nullptr;
                gemm_micro<U>(kc, Ap + p * kc * MR, bp, c, nc_max, mr, nr, mode, b, i0 + p * MR, jc + q * NR,
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
      for (int64_t b = 0; b < batch; ++b) run_one(b, 0, N, 0, 1, Bp, Cb, abuf.p + tid * astride);
    }
  } else if (col_parallel) {
#pragma omp parallel
    {
      const int tid = omp_get_thread_num();
      float* Bp = bbuf.p + size_t(tid) * kc_max * nc_max;
      float* Cb = need_c ? cbuf.p + size_t(tid) * mb_max * nc_max : nullptr;
#pragma omp for schedule(dynamic)
      for (int64_t t = 0; t < batch * chunks; ++t) {
        const int64_t c = t % chunks, j0 = npan_all * c / chunks * NR, j1 = std::min(N, npan_all * (c + 1) / chunks * NR);
        run_one(t / chunks, j0, j1, 0, 1, Bp, Cb, abuf.p + tid * astride);
      }
    }
  } else if (max_thr == 1 || flops < 1.5e5) {
    for (int64_t b = 0; b < batch; ++b) run_one(b, 0, N, 0, 1, bbuf.p, cbuf.p, abuf.p);
  } else {
#pragma omp parallel
    {
      const int tid = omp_get_thread_num(), nthr = omp_get_num_threads();
      for (int64_t b = 0; b < batch; ++b) run_one(b, 0, N, tid, nthr, bbuf.p, cbuf.p, abuf.p + tid * astride);
    }
  }
}

// Runs the GEMM on the path cpu_isa() picked (the same for every call in the process).
template <class PackA, class PackB, class Epi>
void gemm_packed_f32(int64_t batch, int64_t M, int64_t N, int64_t K, PackA packA, PackB packB, Epi epi,
                     GemmSplit split = GemmSplit::Auto) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  if (K <= 0) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) epi(b, i, j, 0.0f);
    return;
  }
  switch (cpu_isa()) {
    case Isa::Avx512: gemm_packed_path<gemm_cfg::Avx512>(batch, M, N, K, packA, packB, epi, split); break;
    case Isa::Avx2: gemm_packed_path<gemm_cfg::Avx2>(batch, M, N, K, packA, packB, epi, split); break;
    case Isa::Generic: gemm_packed_path<gemm_cfg::Generic>(batch, M, N, K, packA, packB, epi, split); break;
  }
}

// Strided packers for gemm_f32.
template <class Off>
struct StridedPackA {
  const float* A; int64_t rs, cs; Off off; int64_t M;
  template <int MR>
  void operator()(Dim<MR>, int64_t b, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) const {
    const float* base = A + off(b) + k0 * cs;
    for (int64_t p = 0; p * MR < mc; ++p) {
      float* d = dst + p * kc * MR;
      const int64_t i = i0 + p * MR;
      const int mr = int(std::min<int64_t>(MR, mc - p * MR));
      if (mr == MR && cs == 1) {
        const float* rows[MR];
        for (int r = 0; r < MR; ++r) rows[r] = base + (i + r) * rs;
        for (int64_t k = 0; k < kc; ++k)
          for (int r = 0; r < MR; ++r) d[k * MR + r] = rows[r][k];
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
  template <int NR>
  void operator()(Dim<NR>, int64_t b, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) const {
    const float* base = B + off(b) + k0 * rs;
    for (int64_t p = 0; p * NR < nc; ++p) {
      float* d = dst + p * kc * NR;
      const int64_t j = j0 + p * NR;
      const int nr = int(std::min<int64_t>(NR, nc - p * NR));
      if (nr == NR && cs == 1) {
        for (int64_t k = 0; k < kc; ++k) std::memcpy(d + k * NR, base + k * rs + j, NR * sizeof(float));
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
