// kiln::gemm_f32 — blocked, packed f32 GEMM with a fused epilogue and a micro-kernel chosen at run time:
// AVX-512 8x48, AVX2/FMA 4x24 or portable 4x16 (gemm_ukr.h; which one: cpu_isa.h, KILN_CPU_ISA).
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

#include <immintrin.h>
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
#include "half.h"
#include "parallel.h"
#include "team_sync.h"

namespace kiln {

// Compile-time tile size handed to the packers: packA(Dim<MR>{}, ...), packB(Dim<NR>{}, ...).
template <int V>
using Dim = std::integral_constant<int, V>;

// Per path: micro-tile and cache blocking. The blocking is derived once per process from the detected caches
// (cpu_cache.h) by gemm_blocking<U>(); KC / MC / NC here are the values tuned on a 48 KiB L1d, 1 MiB L2 core
// (Zen 5), which the derivation reproduces there:
//   KC: one KC x NR panel of B takes at most 3/8 of the L2 (KC = 3 L2 / 8 / (NR*4), at most U::KC) while the
//   MR-row A panels stream past it; a K up to 2304 runs as one block (2048^3: no C buffer at all). A deep KC matters
//   more than an L1-resident B panel: every K block past the first is a pass over the C buffer of partial sums
//   (below), which for 2048^3 does not fit any cache; the
//   micro-kernel's 3 B loads + 8 broadcasts per 24 FMAs are served from L2 at full speed (measured, avx512:
//   KC 1024 vs 256 on 2048^3 -11%, 1024^3 -11%; kernels/README.md). The column split (conv) keeps L1-sized K
//   blocks (gemm_packed_path);
//   MC: the MC x KC block of A takes U::L2Share of the L2 (at least 4 MR rows);  NC: the KC x NC block of B (shared by the threads)
//   at most U::NC columns and half the L3.
namespace gemm_cfg {
// Elem: the packed panels' element type; KP: k granularity of a panel (2: bf16 pairs, k padded to even).
struct Avx512 {  // B panel 2048x48 (384 KiB) and A block 32x2048 (256 KiB) in a 1 MiB L2
  using Elem = float;
  static constexpr int KP = 1;
  static constexpr int MR = 8, NR = 48;
  static constexpr int64_t KC = 2048, MC = 32, NC = 1536;
  static constexpr double L2Share = 0.1875;
  // d = c + a.b, rows ldc / ldd apart (c == nullptr: d = a.b); ukr_rows reads B in place, row k at b + koff[k].
  static void ukr_c(int64_t kc, const float* a, const float* b, const float* c, int64_t ldc, float* d, int64_t ldd,
                    const float* pf) {
    ukr_avx512_8x48(kc, a, b, c, ldc, d, ldd, pf);
  }
  static void ukr_rows(int64_t kc, const float* a, const float* b, const int64_t* koff, const float* c, int64_t ldc,
                       float* d, int64_t ldd) {
    ukr_avx512_8x48_rows(kc, a, b, koff, c, ldc, d, ldd);
  }
  // t = a.b for the first nr < NR columns of a packed panel (at least those; t rows NR apart).
  static void ukr_tail(int64_t kc, const float* a, const float* b, int nr, float* t) {
    if (nr <= 16) ukr_avx512_8xn<1>(kc, a, b, NR, t, NR);
    else if (nr <= 32) ukr_avx512_8xn<2>(kc, a, b, NR, t, NR);
    else ukr_avx512_8x48(kc, a, b, nullptr, 0, t, NR);
  }
};
struct Avx512Bf16 {  // bf16 operands: B panel 512x48 bf16 (48 KiB) in L1; A block 192x512 bf16 (192 KiB) in L2
  using Elem = uint16_t;
  static constexpr int KP = 2;
  static constexpr int MR = 8, NR = 48;
  static constexpr int64_t KC = 512, MC = 192, NC = 1536;
  static constexpr double L2Share = 0.1875;
  static void ukr_c(int64_t kc, const uint16_t* a, const uint16_t* b, const float* c, int64_t ldc, float* d, int64_t ldd,
                    const uint16_t* pf) {
    ukr_avx512bf16_8x48(kc, a, b, c, ldc, d, ldd, pf);
  }
};
struct Avx2 {  // B panel 2048x24 (192 KiB) and A block 24x2048 (192 KiB) in L2, deep K as avx512 (kernels/README.md)
  using Elem = float;
  static constexpr int KP = 1;
  static constexpr int MR = 4, NR = 24;
  static constexpr int64_t KC = 2048, MC = 24, NC = 2040;
  static constexpr double L2Share = 0.1875;
  static void ukr_c(int64_t kc, const float* a, const float* b, const float* c, int64_t ldc, float* d, int64_t ldd,
                    const float* pf) {
    ukr_avx2_4x24(kc, a, b, c, ldc, d, ldd, pf);
  }
  static void ukr_rows(int64_t kc, const float* a, const float* b, const int64_t* koff, const float* c, int64_t ldc,
                       float* d, int64_t ldd) {
    ukr_avx2_4x24_rows(kc, a, b, koff, c, ldc, d, ldd);
  }
  static void ukr_tail(int64_t kc, const float* a, const float* b, int nr, float* t) {
    if (nr <= 8) ukr_avx2_4xn<1>(kc, a, b, NR, t, NR);
    else if (nr <= 16) ukr_avx2_4xn<2>(kc, a, b, NR, t, NR);
    else ukr_avx2_4x24(kc, a, b, nullptr, 0, t, NR);
  }
};
struct Generic {
  using Elem = float;
  static constexpr int KP = 1;
  static constexpr int MR = 4, NR = 16;
  static constexpr int64_t KC = 256, MC = 64, NC = 1024;
  static constexpr double L2Share = 0.0625;
  static void ukr(int64_t kc, const float* a, const float* b, float* t) { ukr_generic_4x16(kc, a, b, t); }
};
constexpr int64_t MBF = int64_t(1) << 21;  // floats of partial sums per C-buffer chunk (8 MiB), when K > KC
}  // namespace gemm_cfg

// 64-byte aligned scratch (the GEMM's packing / partial-sum buffers, conv's planes and prepacked weights), handed
// back at scope exit to a small per-thread cache of blocks, so the next GEMM or conv reuses pages that are already
// mapped. A fresh multi-MiB allocation per call is a first-touch page fault per 4 KiB on every call (measured: 12 ms
// inside one B-packing item of a 1.5 ms 512^3 GEMM on 2 threads; a 64ch 56^2 conv weight gradient 2.3 -> 31 ms
// whenever malloc returned large blocks to the OS, as a fixed M_MMAP_THRESHOLD makes it).
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
    Block b{static_cast<float*>(std::aligned_alloc(64, bytes)), bytes};
    if (!b.p) {
      std::fprintf(stderr, "kiln: out of memory for %zu bytes of GEMM / conv scratch\n", bytes);
      std::abort();
    }
    return b;
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

// n floats of scratch from the calling thread's cache (n == 0: none), returned to it at scope exit.
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
    constexpr int64_t es = sizeof(typename U::Elem);
    const int64_t kc = std::min<int64_t>(U::KC, std::max<int64_t>(64, c.l2 * 3 / 8 / (U::NR * es) / 8 * 8));
    const int64_t mc = std::min<int64_t>(2048 / U::MR * U::MR,
                                         std::max<int64_t>(4 * U::MR, int64_t(double(c.l2) * U::L2Share) / (kc * es) / U::MR * U::MR));
    const int64_t nc = std::min<int64_t>(U::NC, std::max<int64_t>(4 * U::NR, c.l3 / 2 / (kc * es) / U::NR * U::NR));
    return GemmBlocking{kc, mc, nc};
  }();
  return b;
}

// "L1d 48 KiB, L2 1024 KiB, L3 32768 KiB (cpuid leaf 4); blocking KC 256 MC 192 NC 480" for path `isa`; on the
// avx512_bf16 path without bf16_dot (cpu_isa.h: auto on Intel) the avx512 blocking, and a note that bf16 GEMMs
// convert their panels to f32.
inline void describe_blocking(Isa isa, char* out, size_t n, bool bf16_dot = true) {
  const CpuCaches& c = cpu_caches();
  const bool pairs = isa == Isa::Avx512Bf16 && bf16_dot;
  const GemmBlocking& b = pairs ? gemm_blocking<gemm_cfg::Avx512Bf16>()
                          : isa >= Isa::Avx512 ? gemm_blocking<gemm_cfg::Avx512>()
                          : isa == Isa::Avx2 ? gemm_blocking<gemm_cfg::Avx2>() : gemm_blocking<gemm_cfg::Generic>();
  std::snprintf(out, n, "L1d %lld KiB, L2 %lld KiB, L3 %lld KiB (%s); blocking KC %lld MC %lld NC %lld%s",
                (long long)(c.l1d >> 10), (long long)(c.l2 >> 10), (long long)(c.l3 >> 10), c.source, (long long)b.KC,
                (long long)b.MC, (long long)b.NC,
                isa == Isa::Avx512Bf16 && !pairs ? "; bf16 GEMMs on f32 panels (vdpbf16ps is slower on Intel cores)" : "");
}

// Modes of one micro-kernel call with respect to the K blocking.
enum class KStep { Only, First, Middle, Last };

// Row epilogues: an Epi with a member `row(b, i, j0, n, const float* v)` receives a run of n finished values of
// output row i (v[t] is C(b, i, j0 + t)) in one call; any other Epi is called once per element. Both see each
// element exactly once. The library's entry points use rows (one indirect call per tile row, not per element).
template <class E, class = void>
struct has_row_epi : std::false_type {};
template <class E>
struct has_row_epi<E, std::void_t<decltype(std::declval<E&>().row(int64_t(), int64_t(), int64_t(), int(),
                                                                  static_cast<const float*>(nullptr)))>>
    : std::true_type {};

template <class Epi>
static inline void epi_run(Epi& epi, int64_t b, int64_t i, int64_t j0, int n, const float* v) {
  if constexpr (has_row_epi<Epi>::value) {
    epi.row(b, i, j0, n, v);
  } else {
    for (int c = 0; c < n; ++c) epi(b, i, j0 + c, v[c]);
  }
}

// Plain-store epilogues: an Epi with `float* at(b, i, j)` (where C(b, i, j) goes, rows `ld` floats apart) and a
// member `ld` takes full tiles straight from the micro-kernel's registers (conv2d_winograd.h's M), no tile copy.
template <class E, class = void>
struct has_direct_c : std::false_type {};
template <class E>
struct has_direct_c<E, std::void_t<decltype(std::declval<E&>().at(int64_t(), int64_t(), int64_t())), decltype(E::ld)>>
    : std::true_type {};

// The plain store into a dense C[b][i][j] (M rows a batch element, rows ld floats apart): full tiles straight from the
// micro-kernel (has_direct_c), partial ones by row. Winograd's M and the few-pixel input gradient's dcol use it.
struct DenseStore {
  float* c; int64_t M, ld;
  float* at(int64_t b, int64_t i, int64_t j) const { return c + (b * M + i) * ld + j; }
  void row(int64_t b, int64_t i, int64_t j0, int n, const float* acc) const {
    __builtin_memcpy(at(b, i, j0), acc, size_t(n) * sizeof(float));
  }
  void operator()(int64_t b, int64_t i, int64_t j, float acc) const { *at(b, i, j) = acc; }
};

// Paths whose micro-kernel adds a C tile itself: U::ukr_c(kc, Ap, Bp, C, ldc, D, ldd), D = C + Ap.Bp (gemm_ukr.h);
// and that can read B in place: U::ukr_rows(kc, Ap, B, koff, C, ldc, D, ldd), row k of the B panel at B + koff[k].
template <class U, class = void>
struct has_ukr_c : std::false_type {};
template <class U>
struct has_ukr_c<U, std::void_t<decltype(&U::ukr_c)>> : std::true_type {};
template <class U, class = void>
struct has_ukr_rows : std::false_type {};
template <class U>
struct has_ukr_rows<U, std::void_t<decltype(&U::ukr_rows)>> : std::true_type {};
template <class U, class = void>
struct has_ukr_tail : std::false_type {};
template <class U>
struct has_ukr_tail<U, std::void_t<decltype(&U::ukr_tail)>> : std::true_type {};

// acc(MR x NR) = Ap(kc x MR) . Bp(kc x NR) by the path's micro-kernel; then, per mode: Only -> epi;
// First -> C = acc; Middle -> C += acc; Last -> epi(C + acc). mr/nr clip the tile at the matrix edge. Bk != nullptr
// (paths with ukr_rows, full-width tiles): Bp is B read in place, row k at Bp + Bk[k] (gemm_packed_path direct_b).
// pf: where a packed kernel's L2 prefetch stream starts (gemm_ukr.h K3_PF; nullptr: none).
template <class U, class Epi>
static inline void gemm_micro(int64_t kc, const typename U::Elem* __restrict__ Ap, const typename U::Elem* Bp,
                              const int64_t* Bk, float* __restrict__ C, int64_t ldc, int mr, int nr, KStep mode,
                              int64_t b, int64_t i0, int64_t j0, Epi& epi, const typename U::Elem* pf = nullptr) {
  constexpr int MR = U::MR, NR = U::NR;
  alignas(64) float t[MR * NR];
  // The C-buffer tile (K > KC) was last touched a whole K block ago and sits in L2: fetch its lines now, so they
  // arrive while the micro-kernel runs instead of stalling the update after it (a profile of the 320 ch 64²
  // forward, 12 K blocks over 245 KiB C chunks, had ~5-12% of its time on the C += t loads).
  if (mode != KStep::Only)
    for (int r = 0; r < mr; ++r)
      for (int c = 0; c < nr; c += 64 / int(sizeof(float))) __builtin_prefetch(C + r * ldc + c, 1, 3);
  if constexpr (has_ukr_c<U>::value) {
    // A kernel that adds to C itself (AVX2, AVX-512): a full tile's K blocks go straight between its registers and C.
    auto kernel = [&](const float* c, int64_t lc, float* d, int64_t ld) {
      if constexpr (has_ukr_rows<U>::value)
        if (Bk) return U::ukr_rows(kc, Ap, Bp, Bk, c, lc, d, ld);
      U::ukr_c(kc, Ap, Bp, c, lc, d, ld, pf);
    };
    if constexpr (has_direct_c<Epi>::value) {
      if (mr == MR && nr == NR && mode == KStep::Only) return kernel(nullptr, 0, epi.at(b, i0, j0), epi.ld);
      if (mr == MR && nr == NR && mode == KStep::Last) return kernel(C, ldc, epi.at(b, i0, j0), epi.ld);
    }
    if (mr == MR && nr == NR && mode != KStep::Only) {
      if (mode == KStep::First) return kernel(nullptr, 0, C, ldc);
      if (mode == KStep::Middle) return kernel(C, ldc, C, ldc);
      kernel(C, ldc, t, NR);
      for (int r = 0; r < MR; ++r) epi_run(epi, b, i0 + r, j0, NR, t + r * NR);
      return;
    }
    if constexpr (has_ukr_tail<U>::value)
      if (nr < NR && !Bk) U::ukr_tail(kc, Ap, Bp, nr, t);  // a narrow tail of a packed panel
      else kernel(nullptr, 0, t, NR);
    else
      kernel(nullptr, 0, t, NR);
  } else {
    U::ukr(kc, Ap, Bp, t);
  }
  if (mr == MR && nr == NR) {
    // Full tile: compile-time bounds, so these loops vectorize (with an inlined epilogue that stores, too).
    switch (mode) {
      case KStep::Only:
        for (int r = 0; r < MR; ++r) epi_run(epi, b, i0 + r, j0, NR, t + r * NR);
        return;
      case KStep::First:
        for (int r = 0; r < MR; ++r) __builtin_memcpy(C + r * ldc, t + r * NR, NR * sizeof(float));
        return;
      case KStep::Middle:
        for (int r = 0; r < MR; ++r)
          for (int c = 0; c < NR; ++c) C[r * ldc + c] += t[r * NR + c];
        return;
      case KStep::Last:
        for (int r = 0; r < MR; ++r) {
          for (int c = 0; c < NR; ++c) t[r * NR + c] += C[r * ldc + c];
          epi_run(epi, b, i0 + r, j0, NR, t + r * NR);
        }
        return;
    }
  }
  switch (mode) {
    case KStep::Only:
      for (int r = 0; r < mr; ++r) epi_run(epi, b, i0 + r, j0, nr, t + r * NR);
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
      for (int r = 0; r < mr; ++r) {
        for (int c = 0; c < nr; ++c) t[r * NR + c] += C[r * ldc + c];
        epi_run(epi, b, i0 + r, j0, nr, t + r * NR);
      }
      break;
  }
}

// Packer contracts (both write zeros past the matrix edge so the micro-kernel never branches; MR/NR are the
// path's tile, passed as Dim<MR>{} / Dim<NR>{} so packers keep them compile-time):
//   packA(Dim<MR>, b, i0, mc, k0, kc, dst): dst[p*kc*MR + k*MR + r] = A(b, i0 + p*MR + r, k0 + k), p < ceil(mc/MR)
//   packB(Dim<NR>, b, k0, kc, j0, nc, dst): dst[p*kc*NR + k*NR + c] = B(b, k0 + k, j0 + p*NR + c), p < ceil(nc/NR)
// Both are called by several threads at once for disjoint panel ranges (i0 / j0 multiples of MR / NR from the
// block start, mc / nc multiples of MR / NR apart from the block end).
//
// Threads (one batch element at a time): per (row chunk ib, column block jc, K block pc) step
//   1. the threads pack B(pc, jc) together, in groups of panels handed out dynamically; barrier;
//   2. work items are row blocks of the chunk (x column ranges only when there are too few row blocks); each
//      item packs its own A block once and runs it against every B panel of its range.
// B is double-buffered, so step s + 1 packs while slower threads finish step s: one barrier per step
// (team_sync.h, which spins briefly instead of sleeping). Row blocks are balanced (equal panel counts, at least
// 4 per thread when M allows), so no row of A is packed twice in a step unless M is too small to split (then A
// is cheap); the column block NC is balanced over N too.
//
// GemmSplit::Columns (a caller's choice; conv2d asks for it, the matmul keeps Auto): when the rows fit one MC
// block, each thread instead runs whole column chunks of a batch element by itself (its own B and C buffers, the
// whole K loop), chunks handed out dynamically: no barrier per K step and no shared B panel, which suits GEMMs
// with few rows and many columns (a conv's M is its channel count, N its pixels). With more rows Auto's threads
// split the row blocks and share each B panel, where a column split would pack all of A once per chunk — unless
// A is read in place (has_direct_a below: conv's prepacked weights), when the column split is taken for any M.
enum class GemmSplit { Auto, Columns };

// An A packer whose matrix is already in the driver's panel layout (conv2d_shift.h PrepackedA) says so with
// `panels(Dim<MR>, b, i0, k0)`: a pointer to the MR-row panel of rows i0.. at k0, the next panel `panel_stride()`
// floats on. The driver then reads A in place instead of copying each block, so the column split (below) costs
// no A packing per chunk and is taken for any M.
template <class P, int MR, class = void>
struct has_direct_a : std::false_type {};
template <class P, int MR>
struct has_direct_a<P, MR, std::void_t<decltype(std::declval<const P&>().panels(Dim<MR>{}, int64_t(), int64_t(), int64_t()))>>
    : std::true_type {};

// Likewise a B packer over a matrix whose rows are contiguous runs (conv2d_shift.h ShiftPackB) says so with
// `rows(b, j0)` and `row_offsets(k0)`: B(b, k0 + k, j0 + c) = rows(b, j0)[row_offsets(k0)[k] + c]. On a path whose
// micro-kernel reads such rows (has_ukr_rows: avx2, avx512) the driver packs no full-width B panel, only a last partial
// one (measured: packing was ~15% of the 32 ch 64² 3x3 forward, ~4% at 320 ch).
template <class P, class = void>
struct has_direct_b : std::false_type {};
template <class P>
struct has_direct_b<P, std::void_t<decltype(std::declval<const P&>().rows(int64_t(), int64_t())),
                                   decltype(std::declval<const P&>().row_offsets(int64_t()))>> : std::true_type {};

// One path, U = gemm_cfg::Avx512 / Avx2 / Generic; needs batch, M, N, K > 0 (gemm_packed_f32 checks and dispatches).
template <class U, class PackA, class PackB, class Epi>
void gemm_packed_path(int64_t batch, int64_t M, int64_t N, int64_t K, PackA& packA, PackB& packB, Epi& epi,
                      GemmSplit split = GemmSplit::Auto) {
  constexpr int MR = U::MR, NR = U::NR;
  using E = typename U::Elem;
  constexpr bool direct_a = has_direct_a<PackA, MR>::value && std::is_same<E, float>::value;
  constexpr bool direct_b = has_direct_b<PackB>::value && has_ukr_rows<U>::value && std::is_same<E, float>::value;
  const GemmBlocking& blk = gemm_blocking<U>();
  // K blocks of equal depth (a multiple of 8, at most the blocking's KC): K = 288 runs 2 x 144, not 256 + a 32-deep
  // pass that costs a whole pass over the C buffer for an eighth of the work; a K at most 1/8 past KC runs in one.
  // The column split (conv; below) keeps a KC x NR panel of B in the L1d instead of the blocking's deeper KC: its
  // chunks already hold their C buffer in L2, so extra K blocks are cheap there (measured: the 64 ch 56² forward
  // ~5% slower as one 576-deep K block than as 3 x 192).
  const int64_t kcb = split == GemmSplit::Columns
                          ? std::min<int64_t>(blk.KC, std::max<int64_t>(64, cpu_caches().l1d / (NR * int64_t(sizeof(E))) / 8 * 8))
                          : blk.KC;
  const int64_t nkb = K <= kcb + kcb / 8 ? 1 : (K + kcb - 1) / kcb;
  const int64_t KC = ((K + nkb - 1) / nkb + 7) / 8 * 8;  // KC % 8 == 0
  // Row blocks at this call's depth: a K block shallower than the blocking's KC affords taller A blocks in the same
  // share of L2, up to 4 x MC (MC % MR == 0).
  const int64_t MC = std::max(blk.MC, std::min(4 * blk.MC, blk.MC * blk.KC / KC / MR * MR));
  auto kpad = [](int64_t kc) { return (kc + U::KP - 1) / U::KP * U::KP; };  // k extent of a packed panel
  // Inside an active parallel region (a caller that splits the work itself: conv3x3_winograd's fused pipeline) the
  // GEMM runs on the calling thread alone.
  const int max_thr = omp_in_parallel() ? 1 : omp_get_max_threads();
  // Column blocks: as few as NC allows, of equal width (whole panels), so no thin block is left at the end.
  const int64_t npan_all = (N + NR - 1) / NR;
  const int64_t nblk_n = (npan_all * NR + blk.NC - 1) / blk.NC;
  const int64_t NCb = (npan_all + nblk_n - 1) / nblk_n * NR;
  // Row chunks for the C buffer (K > KC): at most MBF floats of partial sums each, of equal height.
  const bool need_c = K > KC;
  const int64_t mpan_all = (M + MR - 1) / MR;
  const int64_t nblk_m = need_c ? (mpan_all * MR * NCb + gemm_cfg::MBF - 1) / gemm_cfg::MBF : 1;
  const int64_t MB = (mpan_all + nblk_m - 1) / nblk_m * MR;
  const int64_t nc_max = std::min<int64_t>(NCb, npan_all * NR);
  const int64_t kc_max = std::min<int64_t>(KC, K);
  const int64_t mb_max = std::min<int64_t>(MB, mpan_all * MR);
  // Too little work in all for a parallel region (parallel.h): one thread. Small per-batch problems: one batch
  // element per thread, serial inside. Otherwise all threads cooperate on each batch element.
  const double flops = double(M) * double(N) * double(K);
  const bool serial = max_thr == 1 || !par_macs(flops * double(batch));
  const bool batch_parallel = !serial && batch >= max_thr && flops < 4.0e6;
  // Column chunks (GemmSplit::Columns): whole NR panels, at most NC columns each, a multiple of the thread count
  // (at least 2 per thread when there are panels enough), panel counts differing by at most one; when K > KC, at
  // most as many columns as keep the chunk's C buffer in a quarter of the L2 (its K passes then never leave it).
  int64_t chunks = 1;
  if (split == GemmSplit::Columns && (M <= MC || direct_a) && !batch_parallel && !serial) {
    int64_t want = std::max<int64_t>(2 * max_thr, (nblk_n + max_thr - 1) / max_thr * max_thr);
    if (need_c) {  // narrow enough that a chunk's partial sums (all M rows) stay in a quarter of the L2
      const int64_t pan_c = std::max<int64_t>(1, cpu_caches().l2 / 4 / (int64_t(sizeof(float)) * mpan_all * MR * NR));
      want = std::max(want, ((npan_all + pan_c - 1) / pan_c + max_thr - 1) / max_thr * max_thr);
    }
    chunks = npan_all >= want ? want : npan_all >= max_thr ? npan_all / max_thr * max_thr : 1;
  }
  const bool col_parallel = chunks > 1;
  const int n_ctx = batch_parallel || col_parallel ? max_thr : 1;
  const int64_t a_rows = std::min<int64_t>(MC, mb_max);
  const size_t astride = size_t(kpad(kc_max)) * size_t((a_rows + MR - 1) / MR * MR);  // in E
  const size_t bstride = size_t(kpad(kc_max)) * nc_max;  // one B buffer, in E; a team uses two
  auto floats = [](size_t n_elem) { return (n_elem * sizeof(E) + 63) / 64 * 16; };

  const bool team_run = !serial && !batch_parallel && !col_parallel;
  AlignedBuf bmem(floats(size_t(n_ctx) * bstride * (team_run ? 2 : 1)));
  AlignedBuf cmem(need_c ? size_t(n_ctx) * mb_max * nc_max : 0);
  AlignedBuf amem(direct_a ? 0 : floats(size_t(max_thr) * astride));
  struct { E* p; } bbuf{reinterpret_cast<E*>(bmem.p)}, abuf{reinterpret_cast<E*>(amem.p)};
  float* const cbuf = cmem.p;

  // Columns [j_lo, j_hi) of batch element b. team == nullptr: the calling thread alone. `step` numbers the steps
  // across calls (the team's B buffer and phase numbers follow it).
  auto run_one = [&](int64_t b, int64_t j_lo, int64_t j_hi, TeamSync* team, int64_t joined, int64_t& step, E* Bbase,
                     float* Cb, E* Ap) {
    const int nthr = team ? omp_get_num_threads() : 1;
    for (int64_t ib = 0; ib < M; ib += MB) {
      const int64_t mrows = std::min(MB, M - ib);
      const int64_t mpan = (mrows + MR - 1) / MR;
      // Row blocks: equal shares of the panels, each at most MC rows; with threads, at least 4 per thread while a
      // block keeps >= 2 panels, so a core slowed by another process hands its share to the other one.
      int64_t nrb = (mpan + MC / MR - 1) / (MC / MR);
      if (nthr > 1) nrb = std::max(nrb, std::min<int64_t>(4 * nthr, mpan / 2));
      // A multiple of the thread count: 11 blocks on 2 threads leave one thread a twelfth of the work alone at the end.
      if (nthr > 1 && (nrb + nthr - 1) / nthr * nthr <= mpan) nrb = (nrb + nthr - 1) / nthr * nthr;
      nrb = std::max<int64_t>(1, std::min(nrb, mpan));
      for (int64_t jc = j_lo; jc < j_hi; jc += NCb) {
        const int64_t nc = std::min(NCb, j_hi - jc);
        const int64_t npan = (nc + NR - 1) / NR;
        // Too few row blocks for the threads: split the columns too (each item then packs its A block again).
        const int64_t ncb = nthr > 1 && nrb < 2 * nthr ? std::min<int64_t>(npan, (4 * nthr + nrb - 1) / nrb) : 1;
        const int64_t bgrp = std::max<int64_t>(1, npan / (4 * nthr));  // B panels per packing item
        const int64_t ngrp = (npan + bgrp - 1) / bgrp, ntask = nrb * ncb;
        for (int64_t pc = 0; pc < K; pc += KC, ++step) {
          const int64_t kc = std::min(KC, K - pc), kp = kpad(kc);
          // K3_PF streams 32 bytes a kernel step (one k; a k pair on bf16 panels): pf_calls calls cover a panel.
          const int64_t pf_slice = kp / U::KP * 32 / int64_t(sizeof(E)), pf_calls = NR * int64_t(sizeof(E)) * U::KP / 32;
          const bool first = pc == 0, last = pc + kc >= K;
          const KStep mode = first && last ? KStep::Only : first ? KStep::First : last ? KStep::Last : KStep::Middle;
          E* Bp = Bbase + (team ? size_t(step & 1) * bstride : 0);
          auto pack_b = [&](int64_t g) {
            int64_t p0 = g * bgrp;
            const int64_t p1 = std::min(npan, p0 + bgrp);
            if constexpr (direct_b) p0 = std::max(p0, nc / NR);  // full panels are read in place
            if (p0 < p1) packB(Dim<NR>{}, b, pc, kc, jc + p0 * NR, std::min(nc, p1 * NR) - p0 * NR, Bp + p0 * kp * NR);
          };
          auto task = [&](int64_t t) {
            const int64_t rb = t / ncb, cb = t % ncb;
            const int64_t pr = mpan * rb / nrb, pr_end = mpan * (rb + 1) / nrb;
            const int64_t q0 = npan * cb / ncb, q1 = npan * (cb + 1) / ncb;
            const int64_t i0 = ib + pr * MR;
            const int64_t mc = std::min(pr_end * MR, mrows) - pr * MR;
            const E* Ablk = Ap;
            int64_t astep = kp * MR;  // floats from one A panel to the next
            if constexpr (direct_a) {
              Ablk = packA.panels(Dim<MR>{}, b, i0, pc);
              astep = packA.panel_stride();
            } else {
              packA(Dim<MR>{}, b, i0, mc, pc, kc, Ap);
            }
            for (int64_t q = q0; q < q1; ++q) {
              const int nr = int(std::min<int64_t>(NR, nc - q * NR));
              const E* bp = Bp + q * kp * NR;
              const int64_t* bk = nullptr;
              if constexpr (direct_b) {
                if (nr == NR) {
                  bp = packB.rows(b, jc + q * NR);
                  bk = packB.row_offsets(pc);
                }
              }
              // The packed kernels' L2 prefetch stream: the first pf_calls A panels each fetch one slice of the next
              // packed B panel (this item's first panel after its last: the next row block's), so a panel that was
              // packed to L3 (or by the other core) is in this core's L2 when its first micro-kernel call reads it.
              const int64_t qn = q + 1 < q1 ? q + 1 : q0;
              const bool pf_next = qn != q && (!direct_b || (nc - qn * NR) < NR);
              for (int64_t p = 0; p < pr_end - pr; ++p) {
                const int mr = int(std::min<int64_t>(MR, mc - p * MR));
                const int64_t row = (pr + p) * MR;  // row inside the C chunk
                float* c = need_c ? Cb + row * nc_max + q * NR : nullptr;
                const E* pf = pf_next && p < pf_calls ? Bp + qn * kp * NR + p * pf_slice : nullptr;
                gemm_micro<U>(kc, Ablk + p * astep, bp, bk, c, nc_max, mr, nr, mode, b, i0 + p * MR, jc + q * NR, epi,
                              pf);
              }
            }
          };
          if (team) {
            // A thread that joined after `joined` barriers skips the steps before (team_sync.h, late joiners).
            const int64_t ph = 2 * step;
            if (step >= joined) {
              for (int64_t g = team->next(ph); g < ngrp; g = team->next(ph)) pack_b(g);
              team->barrier(ph);  // B(pc, jc) complete; step - 1's items all done (so the other buffer is free)
            }
            if (step + 1 >= joined)
              for (int64_t t = team->next(ph + 1); t < ntask; t = team->next(ph + 1)) task(t);
          } else {
            for (int64_t g = 0; g < ngrp; ++g) pack_b(g);
            for (int64_t t = 0; t < ntask; ++t) task(t);
          }
        }
      }
    }
  };

  if (batch_parallel) {
#pragma omp parallel
    {
      const int tid = omp_get_thread_num();
      E* Bp = bbuf.p + size_t(tid) * bstride;
      float* Cb = need_c ? cbuf + size_t(tid) * mb_max * nc_max : nullptr;
      int64_t step = 0;
#pragma omp for schedule(dynamic)
      for (int64_t b = 0; b < batch; ++b) run_one(b, 0, N, nullptr, 0, step, Bp, Cb, abuf.p + tid * astride);
    }
  } else if (col_parallel) {
#pragma omp parallel
    {
      const int tid = omp_get_thread_num();
      E* Bp = bbuf.p + size_t(tid) * bstride;
      float* Cb = need_c ? cbuf + size_t(tid) * mb_max * nc_max : nullptr;
      int64_t step = 0;
#pragma omp for schedule(dynamic)
      for (int64_t t = 0; t < batch * chunks; ++t) {
        const int64_t c = t % chunks;
        const int64_t j0 = npan_all * c / chunks * NR, j1 = std::min(N, npan_all * (c + 1) / chunks * NR);
        run_one(t / chunks, j0, j1, nullptr, 0, step, Bp, Cb, abuf.p + tid * astride);
      }
    }
  } else if (serial) {
    int64_t step = 0;
    for (int64_t b = 0; b < batch; ++b) run_one(b, 0, N, nullptr, 0, step, bbuf.p, cbuf, abuf.p);
  } else {
    TeamSync team;
#pragma omp parallel num_threads(max_thr)
    {
      const int tid = omp_get_thread_num();
      int64_t step = 0;
      if (omp_get_num_threads() == max_thr) {
        const int64_t joined = team.join(tid > 0);
        for (int64_t b = 0; b < batch; ++b) run_one(b, 0, N, &team, joined, step, bbuf.p, cbuf, abuf.p + tid * astride);
      } else if (tid == 0) {  // the runtime gave fewer threads (nested region, thread limit): run alone
        for (int64_t b = 0; b < batch; ++b) run_one(b, 0, N, nullptr, 0, step, bbuf.p, cbuf, abuf.p);
      }
    }
  }
}

// Runs the GEMM on the path cpu_isa() picked (the same for every call in the process).
template <class PackA, class PackB, class Epi>
void gemm_packed_f32(int64_t batch, int64_t M, int64_t N, int64_t K, PackA packA, PackB packB, Epi epi,
                     GemmSplit split = GemmSplit::Auto) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  if (K <= 0) {
#pragma omp parallel for collapse(2) schedule(static) if (par_elems(double(batch) * double(M) * double(N)))
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j0 = 0; j0 < N; j0 += 64) {
          const float zero[64] = {};
          epi_run(epi, b, i, j0, int(std::min<int64_t>(64, N - j0)), zero);
        }
    return;
  }
  // The bf16 path needs packers that write bf16 pair panels (StridedPackA/B on bf16 words) and bf16_dot (cpu_isa.h);
  // others run avx512.
  constexpr bool bf16_packers =
      std::is_invocable<PackA&, Dim<gemm_cfg::Avx512Bf16::MR>, int64_t, int64_t, int64_t, int64_t, int64_t, uint16_t*>::value &&
      std::is_invocable<PackB&, Dim<gemm_cfg::Avx512Bf16::NR>, int64_t, int64_t, int64_t, int64_t, int64_t, uint16_t*>::value;
  switch (cpu_isa()) {
    case Isa::Avx512Bf16:
      if constexpr (bf16_packers) {
        if (cpu_isa_state().bf16_dot) {  // else (auto on Intel) the panels are converted for the f32 kernel
          gemm_packed_path<gemm_cfg::Avx512Bf16>(batch, M, N, K, packA, packB, epi, split);
          break;
        }
      }
      [[fallthrough]];
    case Isa::Avx512: gemm_packed_path<gemm_cfg::Avx512>(batch, M, N, K, packA, packB, epi, split); break;
    case Isa::Avx2: gemm_packed_path<gemm_cfg::Avx2>(batch, M, N, K, packA, packB, epi, split); break;
    case Isa::Generic: gemm_packed_path<gemm_cfg::Generic>(batch, M, N, K, packA, packB, epi, split); break;
  }
}

// Element loads for the strided packers: f32 as is; bf16 / f16 words widened exactly to f32.
struct LoadF32 {
  using T = float;
  float operator()(float x) const { return x; }
};
// One bf16 panel of W lanes in k-pairs, the layout vdpbf16ps reads: d[(k/2)*2W + 2*lane + k%2] = x(lane, k) =
// base[lane*ls + k*ks] for lane < n and k < kc, zero elsewhere. The A packer (lanes = rows) and the B packer
// (lanes = columns) both use it.
template <int W>
inline void pack_kpairs(const uint16_t* base, int64_t ls, int64_t ks, int n, int64_t kc, uint16_t* d) {
  const int64_t kp = (kc + 1) / 2 * 2;
  for (int64_t k2 = 0; k2 < kp; k2 += 2) {
    uint16_t* dk = d + k2 * W;
    const uint16_t* s0 = base + k2 * ks;
    const uint16_t* s1 = k2 + 1 < kc ? s0 + ks : nullptr;
    if (n == W && ls == 1 && s1) {
#pragma omp simd
      for (int c = 0; c < W; ++c) {
        dk[2 * c] = s0[c];
        dk[2 * c + 1] = s1[c];
      }
      continue;
    }
    int c = 0;
    for (; c < n; ++c) {
      dk[2 * c] = s0[c * ls];
      dk[2 * c + 1] = s1 ? s1[c * ls] : 0;
    }
    for (; c < W; ++c) dk[2 * c] = dk[2 * c + 1] = 0;
  }
}

struct LoadBf16 {
  using T = uint16_t;
  float operator()(uint16_t h) const { return kiln_bf16_to_f32(h); }
};
struct LoadF16 {
  using T = uint16_t;
  float operator()(uint16_t h) const { return kiln_f16_to_f32(h); }
};

// Rows contiguous in K packed transposed into the driver's k-major panels d[k*R + r] = src[r][k0 + k] (r < R; rows
// past `rows` are zeros): the row-major A of a matmul and a conv's weights (StridedPackA), both operands of the conv
// weight gradient's GEMM (conv2d_wgrad.h). Groups of 8 full rows go through an 8x8 in-register transpose (AVX), 8 k
// at a time, a group of 4 (the avx2 / generic paths' MR) through a 4x8 one; the rest element by element.
template <int R>
inline void pack_transposed(const float* const* src, int rows, int64_t k0, int64_t kc, float* d) {
  int r0 = 0;
#if defined(__AVX__)
  for (; R % 8 == 0 && r0 + 8 <= rows; r0 += 8) {
    const float* s[8];
    for (int r = 0; r < 8; ++r) s[r] = src[r0 + r] + k0;
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
      __m256 v[8], t[8];
      for (int r = 0; r < 8; ++r) v[r] = _mm256_loadu_ps(s[r] + k);
      for (int r = 0; r < 8; r += 2) {
        t[r] = _mm256_unpacklo_ps(v[r], v[r + 1]);
        t[r + 1] = _mm256_unpackhi_ps(v[r], v[r + 1]);
      }
      for (int h = 0; h < 8; h += 4) {  // rows h..h+3: 4x4 blocks in each 128-bit half
        v[h] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);
        v[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xEE);
        v[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
        v[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
      }
      for (int q = 0; q < 4; ++q) {
        _mm256_storeu_ps(d + (k + q) * R + r0, _mm256_permute2f128_ps(v[q], v[q + 4], 0x20));
        _mm256_storeu_ps(d + (k + q + 4) * R + r0, _mm256_permute2f128_ps(v[q], v[q + 4], 0x31));
      }
    }
    for (; k < kc; ++k)
      for (int r = 0; r < 8; ++r) d[k * R + r0 + r] = s[r][k];
  }
  for (; R % 4 == 0 && r0 + 4 <= rows; r0 += 4) {
    const float* s[4];
    for (int r = 0; r < 4; ++r) s[r] = src[r0 + r] + k0;
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
      const __m256 v0 = _mm256_loadu_ps(s[0] + k), v1 = _mm256_loadu_ps(s[1] + k), v2 = _mm256_loadu_ps(s[2] + k),
                   v3 = _mm256_loadu_ps(s[3] + k);
      const __m256 t0 = _mm256_unpacklo_ps(v0, v1), t1 = _mm256_unpackhi_ps(v0, v1), t2 = _mm256_unpacklo_ps(v2, v3),
                   t3 = _mm256_unpackhi_ps(v2, v3);
      // c_q = column k+q in its low half, k+q+4 in its high half
      const __m256 c0 = _mm256_shuffle_ps(t0, t2, 0x44), c1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                   c2 = _mm256_shuffle_ps(t1, t3, 0x44), c3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      if (R == 4) {  // columns k..k+7 are 32 contiguous floats
        _mm256_storeu_ps(d + k * 4, _mm256_permute2f128_ps(c0, c1, 0x20));
        _mm256_storeu_ps(d + (k + 2) * 4, _mm256_permute2f128_ps(c2, c3, 0x20));
        _mm256_storeu_ps(d + (k + 4) * 4, _mm256_permute2f128_ps(c0, c1, 0x31));
        _mm256_storeu_ps(d + (k + 6) * 4, _mm256_permute2f128_ps(c2, c3, 0x31));
      } else {
        const __m256 c[4] = {c0, c1, c2, c3};
        for (int q = 0; q < 4; ++q) {
          _mm_storeu_ps(d + (k + q) * R + r0, _mm256_castps256_ps128(c[q]));
          _mm_storeu_ps(d + (k + q + 4) * R + r0, _mm256_extractf128_ps(c[q], 1));
        }
      }
    }
    for (; k < kc; ++k)
      for (int r = 0; r < 4; ++r) d[k * R + r0 + r] = s[r][k];
  }
#endif
  for (int r = r0; r < R; ++r)
    if (r < rows) {
      const float* s = src[r] + k0;
      for (int64_t k = 0; k < kc; ++k) d[k * R + r] = s[k];
    } else {
      for (int64_t k = 0; k < kc; ++k) d[k * R + r] = 0.0f;
    }
}

// Strided packers for gemm_f32 / gemm_half: X(b, r, c) = X[off(b) + r*rs + c*cs] of element Load::T, written
// as f32 panels (float* dst, every path) or — bf16 operands only — as the bf16 pair panels of the avx512_bf16
// path (uint16_t* dst: dst[p*kp*R + (k/2)*2R + 2*r + k%2], kp = kc rounded up to even, zero-filled).
template <class Off, class Load = LoadF32>
struct StridedPackA {
  using T = typename Load::T;
  const T* A; int64_t rs, cs; Off off; int64_t M;
  template <int MR>
  void operator()(Dim<MR>, int64_t b, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) const {
    const Load ld;
    const T* base = A + off(b) + k0 * cs;
    for (int64_t p = 0; p * MR < mc; ++p) {
      float* d = dst + p * kc * MR;
      const int64_t i = i0 + p * MR;
      const int mr = int(std::min<int64_t>(MR, mc - p * MR));
      if (mr == MR && cs == 1) {
        const T* rows[MR];
        for (int r = 0; r < MR; ++r) rows[r] = base + (i + r) * rs;
        if constexpr (std::is_same<Load, LoadF32>::value) {
          pack_transposed<MR>(rows, MR, 0, kc, d);
        } else {
          for (int64_t k = 0; k < kc; ++k)
            for (int r = 0; r < MR; ++r) d[k * MR + r] = ld(rows[r][k]);
        }
      } else {
        for (int64_t k = 0; k < kc; ++k) {
          const T* src = base + k * cs + i * rs;
          int r = 0;
          for (; r < mr; ++r) d[k * MR + r] = ld(src[r * rs]);
          for (; r < MR; ++r) d[k * MR + r] = 0.0f;
        }
      }
    }
  }
  template <int MR, class L = Load, std::enable_if_t<std::is_same<L, LoadBf16>::value, int> = 0>
  void operator()(Dim<MR>, int64_t b, int64_t i0, int64_t mc, int64_t k0, int64_t kc, uint16_t* dst) const {
    const T* base = A + off(b) + k0 * cs;
    const int64_t kp = (kc + 1) / 2 * 2;
    for (int64_t p = 0; p * MR < mc; ++p)
      pack_kpairs<MR>(base + (i0 + p * MR) * rs, rs, cs, int(std::min<int64_t>(MR, mc - p * MR)), kc, dst + p * kp * MR);
  }
};

template <class Off, class Load = LoadF32>
struct StridedPackB {
  using T = typename Load::T;
  const T* B; int64_t rs, cs; Off off;
  template <int NR>
  void operator()(Dim<NR>, int64_t b, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) const {
    const Load ld;
    const T* base = B + off(b) + k0 * rs;
    for (int64_t p = 0; p * NR < nc; ++p) {
      float* d = dst + p * kc * NR;
      const int64_t j = j0 + p * NR;
      const int nr = int(std::min<int64_t>(NR, nc - p * NR));
      if (nr == NR && cs == 1) {
        for (int64_t k = 0; k < kc; ++k) {
          const T* src = base + k * rs + j;
          if constexpr (std::is_same<Load, LoadF32>::value) {
            __builtin_memcpy(d + k * NR, src, NR * sizeof(float));
          } else {
#pragma omp simd
            for (int c = 0; c < NR; ++c) d[k * NR + c] = ld(src[c]);
          }
        }
      } else if (nr == NR && rs == 1) {
        // Transposed B: each column j is contiguous in k.
        for (int c = 0; c < NR; ++c) {
          const T* src = base + (j + c) * cs;
          for (int64_t k = 0; k < kc; ++k) d[k * NR + c] = ld(src[k]);
        }
      } else {
        for (int64_t k = 0; k < kc; ++k) {
          const T* src = base + k * rs + j * cs;
          int c = 0;
          for (; c < nr; ++c) d[k * NR + c] = ld(src[c * cs]);
          for (; c < NR; ++c) d[k * NR + c] = 0.0f;
        }
      }
    }
  }
  template <int NR, class L = Load, std::enable_if_t<std::is_same<L, LoadBf16>::value, int> = 0>
  void operator()(Dim<NR>, int64_t b, int64_t k0, int64_t kc, int64_t j0, int64_t nc, uint16_t* dst) const {
    const T* base = B + off(b) + k0 * rs;
    const int64_t kp = (kc + 1) / 2 * 2;
    for (int64_t p = 0; p * NR < nc; ++p)
      pack_kpairs<NR>(base + (j0 + p * NR) * cs, cs, rs, int(std::min<int64_t>(NR, nc - p * NR)), kc, dst + p * kp * NR);
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
  gemm_packed_f32(batch, M, N, K, StridedPackA<AOff>{A, rsA, csA, aOff, M}, StridedPackB<BOff>{B, rsB, csB, bOff}, epi);
}

}  // namespace kiln
