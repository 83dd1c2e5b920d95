// Conv weight gradient as register-tiled dot products along K, with no packing (or, for many outputs, a packed GEMM).
//
//   dw[g*Og + o, j] = sum_{n, t} dyq[n, g*Og + o, t] * xq[n, g*Cg, koff[j] + t],   j = (c, kh, kw) < Cg*KH*KW
//
// over the shift layout of conv2d_shift.h (x padded and stride-phase split, t = oh*Wq + ow, dyq zero in the
// dropped columns ow >= Wo). K = N*Ho*Wq is long and M = O/G, N = C/G*KH*KW are small, and *both* operands are
// contiguous in K: an outer-product GEMM would have to transpose both into panels (the B panel is C*KH*KW rows
// of the input, KH*KW shifted copies of x), which costs as much as the multiply-adds when O is 32-64. Here a
// tile of MR rows of dy x NR columns j keeps MR*NR vector accumulators of partial sums over W consecutive t and
// reads both operands straight from the copies (MR + NR vector loads per MR*NR FMAs); the lanes are added once
// per tile and K block. dyq rows are padded with zeros to a multiple of W (the xq reads past a row's end
// multiply those zeros; the planes keep W floats of slack). Tiles run row block by row block, so a block's MR
// dy rows stay in L2 while the xq columns stream past them. Vector width and tile of the path cpu_isa() runs (below).
// For convs with 128 or more output channels a group the transposing pack pays for itself:
// conv2d_bwd_weight_gemm (below) runs the same sum on gemm.h's packed driver (conv2d.h picks).
#pragma once

#include <immintrin.h>

#include "conv2d_shift.h"

namespace kiln {

// The epilogue that only stores the f32 result into a contiguous output out[q0][D1][D2][D3] (the library's `_out`
// entries, kiln_lib.h): conv_emit calls its row() inline (no indirect call per row), and a kernel that sums the whole
// output in a buffer of that layout (the weight gradient's dW) sums it there: conv_out(epi) is that buffer, nullptr for
// any other epilogue.
struct ConvStore {
  float* out; int64_t D1, D2, D3;
  void row(int64_t q0, int64_t q1, int64_t q2, int64_t q3, int64_t step, int64_t len, const float* acc) const {
    float* d = out + ((q0 * D1 + q1) * D2 + q2) * D3 + q3;
    if (step == 1) __builtin_memcpy(d, acc, size_t(len) * sizeof(float));
    else for (int64_t r = 0; r < len; ++r) d[r * step] = acc[r];
  }
};
template <class Epi>
inline float* conv_out(const Epi& epi) {
  if constexpr (std::is_same_v<Epi, ConvStore>) return epi.out;
  else return nullptr;
}

namespace wgrad {
// One tile per ISA path, chosen at run time like gemm.h's micro-kernels (cpu_isa(), KILN_CPU_ISA), each with its own
// target attribute, so the library holds every width whatever -march says:
//   avx512  16 lanes, 4 x 6 tiles (24 accumulators + 4 dy vectors + 1 x vector of 32 zmm)
//   avx2     8 lanes, 2 x 6 tiles (12 + 2 + 1 of 16 ymm)
//   generic  4 lanes (SSE2 on x86), 2 x 6   (W is 4, 8 or 16)
// Each computes dw[r*ldw + c] += sum_{u < len} a[r][u] * b[c][u] for r < mr, c < nr (len a multiple of W); rows /
// columns past mr / nr repeat real ones and are dropped. A macro because GCC inlines nothing into a function of
// another target: the body is spelled once and compiled under each path's attribute. noinline: GCC would inline a
// tile whose target is a subset of the caller's (the generic one in an AVX2 build) and compile it for the caller's,
// contracting the generic path's multiply-adds to FMAs; one call per tile and K block costs nothing.
#define KILN_WGRAD_TILE(NAME, TARGET, W_, MR_, NR_)                                                              \
  TARGET __attribute__((noinline)) inline void NAME(int64_t len, const float* const* a, const float* const* b,  \
                                                     float* dw, int64_t ldw, int64_t mr, int64_t nr) {          \
    constexpr int W = W_, MR = MR_, NR = NR_;                                                                   \
    typedef float vf __attribute__((vector_size(W * 4)));                                                       \
    typedef float vfu __attribute__((vector_size(W * 4), aligned(4)));                                          \
    vf acc[MR][NR] = {};                                                                                        \
    for (int64_t u = 0; u < len; u += W) {                                                                      \
      vf av[MR];                                                                                                \
      for (int r = 0; r < MR; ++r) av[r] = *reinterpret_cast<const vfu*>(a[r] + u);                             \
      for (int c = 0; c < NR; ++c) {                                                                            \
        vf bv = *reinterpret_cast<const vfu*>(b[c] + u);                                                        \
        __asm__("" : "+v"(bv)); /* one load of b per column (GCC would fold it into each of the MR FMAs) */     \
        for (int r = 0; r < MR; ++r) acc[r][c] += av[r] * bv;                                                   \
      }                                                                                                         \
    }                                                                                                           \
    float sum[MR][NR]; /* lanes added once per tile and K block, by halves: 16 -> 8 -> 4 -> 1 */             \
    for (int r = 0; r < MR; ++r)                                                                                \
      for (int c = 0; c < NR; ++c) {                                                                            \
        typedef float v8 __attribute__((vector_size(32)));                                                      \
        typedef float v4 __attribute__((vector_size(16)));                                                      \
        v4 q;                                                                                                   \
        if constexpr (W == 16) {                                                                                \
          v8 lo, hi;                                                                                            \
          __builtin_memcpy(&lo, &acc[r][c], 32);                                                                     \
          __builtin_memcpy(&hi, reinterpret_cast<const char*>(&acc[r][c]) + 32, 32);                                 \
          const v8 h = lo + hi;                                                                                 \
          v4 l4, h4;                                                                                            \
          __builtin_memcpy(&l4, &h, 16);                                                                             \
          __builtin_memcpy(&h4, reinterpret_cast<const char*>(&h) + 16, 16);                                         \
          q = l4 + h4;                                                                                          \
        } else if constexpr (W == 8) {                                                                          \
          v4 l4, h4;                                                                                            \
          __builtin_memcpy(&l4, &acc[r][c], 16);                                                                     \
          __builtin_memcpy(&h4, reinterpret_cast<const char*>(&acc[r][c]) + 16, 16);                                 \
          q = l4 + h4;                                                                                          \
        } else {                                                                                                \
          __builtin_memcpy(&q, &acc[r][c], 16);                                                                      \
        }                                                                                                       \
        sum[r][c] = (q[0] + q[2]) + (q[1] + q[3]);                                                              \
      }                                                                                                         \
    for (int64_t r = 0; r < mr; ++r)                                                                            \
      for (int64_t c = 0; c < nr; ++c) dw[r * ldw + c] += sum[r][c];                                            \
  }
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
KILN_WGRAD_TILE(tile_avx512, __attribute__((target("arch=x86-64-v4"))), 16, 4, 6)
KILN_WGRAD_TILE(tile_avx2, __attribute__((target("arch=x86-64-v3"))), 8, 2, 6)
KILN_WGRAD_TILE(tile_generic, __attribute__((target("arch=x86-64"))), 4, 2, 6)
#else
KILN_WGRAD_TILE(tile_avx512, , 16, 4, 6)
KILN_WGRAD_TILE(tile_avx2, , 8, 2, 6)
KILN_WGRAD_TILE(tile_generic, , 4, 2, 6)
#endif
#undef KILN_WGRAD_TILE

// The path's tile shape, kernel and K block (floats of one image's K per tile call; the driver below is instantiated
// once per path). Every K block ends in the tile's lane sums and a read-modify-write of its dw entries, so a long
// block pays on avx512: 8192 against 2048 (same process, 2 threads, median) 320 ch 64² 21.1 -> 19.4-19.7 ms, 32 ch 64²
// 0.244 -> 0.229, 64 ch 56² 0.663 -> 0.643, 64 ch 128² 3.40 -> 3.12, 128-640 ch on 32² and 16² equal; its 4 dy rows
// (128 KiB) then come from L2. The avx2 tiles measured within +-3 % both ways at 4096-8192 and keep 2048.
struct Avx512 { static constexpr int W = 16, MR = 4, NR = 6; static constexpr int64_t KB = 8192; static constexpr auto tile = tile_avx512; };
struct Avx2 { static constexpr int W = 8, MR = 2, NR = 6; static constexpr int64_t KB = 2048; static constexpr auto tile = tile_avx2; };
struct Generic { static constexpr int W = 4, MR = 2, NR = 6; static constexpr int64_t KB = 2048; static constexpr auto tile = tile_generic; };
}  // namespace wgrad

// Both weight-gradient paths, called inside a parallel region (orphaned `omp for`):
// dyq row p (stride ld) = dy plane p as Ho rows of Wq (zeros past Wo), then zeros up to Tp floats.
inline void wgrad_copy_dy(const float* dy, int64_t planes, int64_t Ho, int64_t Wo, int64_t Wq, int64_t Tp, int64_t ld,
                          float* dyq) {
#pragma omp for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    float* d = dyq + p * ld;
    for (int64_t oh = 0; oh < Ho; ++oh) {
      __builtin_memcpy(d + oh * Wq, dy + (p * Ho + oh) * Wo, size_t(Wo) * sizeof(float));
      std::fill(d + oh * Wq + Wo, d + (oh + 1) * Wq, 0.0f);
    }
    std::fill(d + Ho * Wq, d + Tp, 0.0f);
  }
}
// dw[o, (c, kh, kw)] to the epilogue, one row segment of KW per (o, c, kh).
template <class Epi>
void wgrad_emit(const Conv2dShape& s, const float* dw, Epi& epi) {
  const int64_t Cg = s.Cg(), KH = s.KH, KW = s.KW;
#pragma omp for schedule(static)
  for (int64_t o = 0; o < s.O; ++o) {
    const float* d = dw + o * Cg * KH * KW;
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t kh = 0; kh < KH; ++kh, d += KW) conv_emit(epi, o, c, kh, 0, 1, KW, d);
  }
}

// Weight gradient: dw[o, (c, kh, kw)] = sum_{n, oh, ow} dy[n, o, oh, ow] * x[n, g*Cg + c, ih, iw];
// epi(o, c, kh, kw, acc), one row segment of KW per (o, c, kh).
template <class P, class Epi>
void conv2d_bwd_weight_dot_path(const Conv2dShape& s, const float* x, const float* dy, Epi& epi) {
  using namespace conv_shift;
  constexpr int W = P::W, MR = P::MR, NR = P::NR;
  const Layout L = input_layout(s);
  const int64_t Ho = s.Ho(), Wo = s.Wo(), Wq = L.Wq, KH = s.KH, KW = s.KW, G = s.G, Og = s.Og(), Cg = s.Cg();
  // dyq rows: Tp floats of K (a multiple of W), at a stride ld that is not a multiple of 256 floats (rows 1 KiB
  // apart or a multiple of it share L1 sets: 32² images, 1x1 convs, were 10-15% slower).
  const int64_t Tp = (Ho * Wq + W - 1) / W * W, ld = Tp % 256 ? Tp : Tp + W;
  const int64_t Nc = Cg * KH * KW;
  Planes xq(s.N * s.C, L, slack(s) + W);
  phase_split(x, s.N * s.C, s.H, s.W, s.pt, s.pl, L, xq.data());
  AlignedBuf dyqb(size_t(s.N * s.O * ld));
  const float* const xp = xq.data();
  const float* const dyq = dyqb.p;
  const std::vector<int64_t> koff = input_koff(s, L);
  float* const out = conv_out(epi);  // a plain-store epilogue: the tiles sum straight into the output
  AlignedBuf dwb(size_t(out ? 0 : s.O * Nc));
  float* const dw = out ? out : dwb.p;
  // Blocking: K in blocks of KB floats of one image (P::KB); the columns in super-blocks of the taps of 65536 / KB
  // input channels (their xq rows over one K block, ~256 KiB, stay in L2) split into NR-wide tiles; the MR dy rows of
  // a row block over one K block (32 KiB at KB 2048, in L1; 128 KiB at 8192, in L2) stay while the super-block's
  // tiles pass.
  const int64_t KB = std::min<int64_t>(P::KB, Tp), nib = (Og + MR - 1) / MR, njb = (Nc + NR - 1) / NR;
  const int64_t jsb = std::max<int64_t>(1, (65536 / KB) * KH * KW / NR), nsb = (njb + jsb - 1) / jsb;
  // Work items: (g, column super-block, row chunk), the rows split only as far as keeps every thread busy.
  const int64_t want = 8 * int64_t(omp_get_max_threads());
  const int64_t nrc = std::min(nib, std::max<int64_t>(1, (want + G * nsb - 1) / (G * nsb)));
  // One parallel region for the dy copy, the tiles and the epilogue (threads wake once per call).
#pragma omp parallel if (par_macs(double(s.O) * double(Nc) * double(s.N * Tp)))
  {
    wgrad_copy_dy(dy, s.N * s.O, Ho, Wo, Wq, Tp, ld, dyqb.p);
#pragma omp for schedule(static)
    for (int64_t o = 0; o < s.O; ++o) std::fill(dw + o * Nc, dw + (o + 1) * Nc, 0.0f);
#pragma omp for schedule(dynamic)
    for (int64_t item = 0; item < G * nsb * nrc; ++item) {
      const int64_t g = item / (nsb * nrc), sb = item / nrc % nsb, rc = item % nrc;
      const int64_t jb0 = sb * jsb, jb1 = std::min(njb, jb0 + jsb);
      for (int64_t n = 0; n < s.N; ++n)
        for (int64_t k0 = 0; k0 < Tp; k0 += KB) {
          const int64_t len = std::min(KB, Tp - k0);
          for (int64_t ib = nib * rc / nrc; ib < nib * (rc + 1) / nrc; ++ib) {
            const int64_t i0 = ib * MR, mr = std::min<int64_t>(MR, Og - i0);
            const float* a[MR];  // rows past the edge repeat the last one (their sums are dropped)
            for (int r = 0; r < MR; ++r) a[r] = dyq + (n * s.O + g * Og + i0 + std::min<int64_t>(r, mr - 1)) * ld + k0;
            for (int64_t jb = jb0; jb < jb1; ++jb) {
              const int64_t j0 = jb * NR, nr = std::min<int64_t>(NR, Nc - j0);
              const float* b[NR];
              for (int c = 0; c < NR; ++c)
                b[c] = xp + (n * s.C + g * Cg) * L.plane() + koff[size_t(j0 + std::min<int64_t>(c, nr - 1))] + k0;
              P::tile(len, a, b, dw + (g * Og + i0) * Nc + j0, Nc, mr, nr);
            }
          }
        }
    }
    if (!out) wgrad_emit(s, dw, epi);
  }
}
// The dot-tile weight gradient on the path cpu_isa() picked (avx512_bf16 runs the f32 avx512 tiles).
template <class Epi>
void conv2d_bwd_weight_dot(const Conv2dShape& s, const float* x, const float* dy, Epi& epi) {
  switch (cpu_isa()) {
    case Isa::Avx512Bf16:
    case Isa::Avx512: return conv2d_bwd_weight_dot_path<wgrad::Avx512>(s, x, dy, epi);
    case Isa::Avx2: return conv2d_bwd_weight_dot_path<wgrad::Avx2>(s, x, dy, epi);
    default: return conv2d_bwd_weight_dot_path<wgrad::Generic>(s, x, dy, epi);
  }
}

// Panels of W transposed rows for the driver's packers: rows first .. first + n (those below `limit` are real,
// row q at addr(q), contiguous along k; the rest zero), each panel kc x W.
template <int W, class Addr>
inline void pack_panels_transposed(Addr addr, int64_t first, int64_t n, int64_t limit, int64_t k0, int64_t kc, float* dst) {
  for (int64_t p = 0; p * W < n; ++p) {
    const float* src[W];
    const int rows = int(std::min<int64_t>(W, std::min(n, limit - first) - p * W));
    for (int r = 0; r < rows; ++r) src[r] = addr(first + p * W + r);
    pack_transposed<W>(src, rows, k0, kc, dst + p * kc * W);
  }
}

// A panels: A(g, i, k) = dy[(g*Og + i)*ld + k];  B panels: B(g, k, j) = x[g*goff + koff[j] + k].
struct WgradPackA {
  const float* dy;
  int64_t ld, Og;
  template <int MR>
  void operator()(Dim<MR>, int64_t g, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) const {
    const float* base = dy + g * Og * ld;
    const int64_t ldr = ld;
    pack_panels_transposed<MR>([=](int64_t i) { return base + i * ldr; }, i0, mc, Og, k0, kc, dst);
  }
};
struct WgradPackB {
  const float* x;
  const int64_t* koff;
  int64_t goff, Nc;
  template <int NR>
  void operator()(Dim<NR>, int64_t g, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) const {
    const float* base = x + g * goff;
    const int64_t* ko = koff;
    pack_panels_transposed<NR>([=](int64_t j) { return base + ko[size_t(j)]; }, j0, nc, Nc, k0, kc, dst);
  }
};

// Weight gradient as a packed GEMM per image (gemm.h, batch = groups), both operands transposed by the packers:
//   dw[g*Og + o, j] += sum_t dyq[n, g*Og + o, t] * xq[n, g*Cg, koff[j] + t],   t < Ho*Wq
// over the shift layout (dyq zero in the dropped columns), or over x and dy in place for a 1x1 stride-1 unpadded
// conv (Wq = W, koff = c*H*W).
template <class Epi>
void conv2d_bwd_weight_gemm(const Conv2dShape& s, const float* x, const float* dy, Epi& epi) {
  using namespace conv_shift;
  const int64_t Ho = s.Ho(), Wo = s.Wo(), G = s.G, Og = s.Og(), Cg = s.Cg(), Nc = Cg * s.KH * s.KW;
  const bool in_place = s.KH == 1 && s.KW == 1 && s.sh == 1 && s.sw == 1 && s.pt == 0 && s.pb == 0 && s.pl == 0 && s.pr == 0;
  const Layout L = in_place ? Layout{1, 1, s.H, s.W} : input_layout(s);
  const int64_t Wq = L.Wq, T = Ho * Wq;
  Planes xq(in_place ? 0 : s.N * s.C, L, in_place ? 0 : slack(s));
  AlignedBuf dyqb(size_t(in_place ? 0 : s.N * s.O * T));
  if (!in_place) {
    phase_split(x, s.N * s.C, s.H, s.W, s.pt, s.pl, L, xq.data());
#pragma omp parallel if (par_copy(double(s.N * s.O * T)))
    wgrad_copy_dy(dy, s.N * s.O, Ho, Wo, Wq, T, T, dyqb.p);
  }
  const float* const xp = in_place ? x : xq.data();
  const float* const dyp = in_place ? dy : dyqb.p;
  const std::vector<int64_t> koff = input_koff(s, L);
  float* const out = conv_out(epi);  // a plain-store epilogue: the images sum straight into the output
  AlignedBuf dwb(size_t(out ? 0 : s.O * Nc));
  float* const dw = out ? out : dwb.p;
  for (int64_t n = 0; n < s.N; ++n) {
    struct Acc {  // the first image stores, later ones add
      float* dw; int64_t Og, Nc; bool first;
      void row(int64_t g, int64_t i, int64_t j0, int len, const float* v) {
        float* d = dw + (g * Og + i) * Nc + j0;
        if (first) __builtin_memcpy(d, v, size_t(len) * sizeof(float));
        else for (int t = 0; t < len; ++t) d[t] += v[t];
      }
    } acc{dw, Og, Nc, n == 0};
    gemm_packed_f32(G, Og, Nc, T, WgradPackA{dyp + n * s.O * T, T, Og},
                    WgradPackB{xp + n * s.C * L.plane(), koff.data(), Cg * L.plane(), Nc}, acc);
  }
  if (out) return;
#pragma omp parallel if (par_elems(double(s.O * Nc)))
  wgrad_emit(s, dw, epi);
}

}  // namespace kiln
