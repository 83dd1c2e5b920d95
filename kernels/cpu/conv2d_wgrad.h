// Conv weight gradient as register-tiled dot products along K, with no packing.
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
// dy rows stay in L2 while the xq columns stream past them. Vector width of the compile target, as attention.h.
#pragma once

#include <immintrin.h>

#include "conv2d_shift.h"

namespace kiln {

namespace wgrad {
#if defined(__AVX512F__)
constexpr int W = 16, MR = 4, NR = 6;  // 24 accumulators + 4 dy vectors + 1 x vector of 32 zmm
#elif defined(__AVX__)
constexpr int W = 8, MR = 2, NR = 6;   // 12 + 2 + 1 of 16 ymm
#else
constexpr int W = 4, MR = 2, NR = 6;
#endif
typedef float vf __attribute__((vector_size(W * 4)));
typedef float vfu __attribute__((vector_size(W * 4), aligned(4)));
static inline vf load(const float* p) { return *reinterpret_cast<const vfu*>(p); }
static inline float hsum(vf v) {
#if defined(__AVX__)
#if defined(__AVX512F__)  // halves to 8 lanes first (not with _mm512_reduce_add_ps: GCC 12 warns inside it)
  const __m256 h = (__m256)(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                            __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
#else
  const __m256 h = (__m256)v;
#endif
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
#else
  float s = 0.0f;
  for (int u = 0; u < W; ++u) s += v[u];
  return s;
#endif
}

// dw[r*ldw + c] += sum_{u < len} a[r][u] * b[c][u]  for r < mr, c < nr  (len a multiple of W).
inline void tile(int64_t len, const float* const* a, const float* const* b, float* dw, int64_t ldw, int64_t mr,
                 int64_t nr) {
  vf acc[MR][NR] = {};
  for (int64_t u = 0; u < len; u += W) {
    vf av[MR];
    for (int r = 0; r < MR; ++r) av[r] = load(a[r] + u);
    for (int c = 0; c < NR; ++c) {
      vf bv = load(b[c] + u);
      __asm__("" : "+v"(bv));  // one load of b per column (GCC would fold it into each of the MR FMAs instead)
      for (int r = 0; r < MR; ++r) acc[r][c] += av[r] * bv;
    }
  }
  for (int64_t r = 0; r < mr; ++r)
    for (int64_t c = 0; c < nr; ++c) dw[r * ldw + c] += hsum(acc[r][c]);
}
}  // namespace wgrad

// Weight gradient: dw[o, (c, kh, kw)] = sum_{n, oh, ow} dy[n, o, oh, ow] * x[n, g*Cg + c, ih, iw];
// epi(o, c, kh, kw, acc), one row segment of KW per (o, c, kh).
template <class Epi>
void conv2d_bwd_weight_dot(const Conv2dShape& s, const float* x, const float* dy, Epi& epi) {
  using namespace conv_shift;
  using wgrad::MR;
  using wgrad::NR;
  const Layout L = input_layout(s);
  const int64_t Ho = s.Ho(), Wo = s.Wo(), Wq = L.Wq, KH = s.KH, KW = s.KW, G = s.G, Og = s.Og(), Cg = s.Cg();
  // dyq rows: Tp floats of K (a multiple of W), at a stride ld that is not a multiple of 256 floats (rows 1 KiB
  // apart or a multiple of it share L1 sets: 32² images, 1x1 convs, were 10-15% slower).
  const int64_t Tp = (Ho * Wq + wgrad::W - 1) / wgrad::W * wgrad::W, ld = Tp % 256 ? Tp : Tp + wgrad::W;
  const int64_t Nc = Cg * KH * KW;
  Planes xq(s.N * s.C, L, slack(s) + wgrad::W);
  phase_split(x, s.N * s.C, s.H, s.W, s.pt, s.pl, L, xq.data());
  AlignedBuf dyqb(size_t(s.N * s.O * ld));
  const float* const xp = xq.data();
  const float* const dyq = dyqb.p;
  const std::vector<int64_t> koff = input_koff(s, L);
  AlignedBuf dwb(size_t(s.O * Nc));
  float* const dw = dwb.p;
  // Blocking: K in blocks of KB floats of one image; the columns in super-blocks of the taps of 65536 / KB input
  // channels (their xq rows over one K block, ~256 KiB, stay in L2) split into NR-wide tiles; the MR dy rows of a
  // row block over one K block (32 KiB) stay in L1 while the super-block's tiles pass.
  const int64_t KB = std::min<int64_t>(2048, Tp), nib = (Og + MR - 1) / MR, njb = (Nc + NR - 1) / NR;
  const int64_t jsb = std::max<int64_t>(1, (65536 / KB) * KH * KW / NR), nsb = (njb + jsb - 1) / jsb;
  // Work items: (g, column super-block, row chunk), the rows split only as far as keeps every thread busy.
  const int64_t want = 8 * int64_t(omp_get_max_threads());
  const int64_t nrc = std::min(nib, std::max<int64_t>(1, (want + G * nsb - 1) / (G * nsb)));
  // One parallel region for the dy copy, the tiles and the epilogue (threads wake once per call).
#pragma omp parallel if (double(s.O) * double(Nc) * double(s.N * Tp) > 1e6)
  {
#pragma omp for schedule(static)
    for (int64_t p = 0; p < s.N * s.O; ++p) {
      float* d = dyqb.p + p * ld;
      for (int64_t oh = 0; oh < Ho; ++oh) {
        std::memcpy(d + oh * Wq, dy + (p * Ho + oh) * Wo, size_t(Wo) * sizeof(float));
        std::fill(d + oh * Wq + Wo, d + (oh + 1) * Wq, 0.0f);
      }
      std::fill(d + Ho * Wq, d + Tp, 0.0f);
    }
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
              wgrad::tile(len, a, b, dw + (g * Og + i0) * Nc + j0, Nc, mr, nr);
            }
          }
        }
    }
#pragma omp for schedule(static)
    for (int64_t o = 0; o < s.O; ++o)
      for (int64_t ckh = 0; ckh < Cg * KH; ++ckh) conv_emit(epi, o, ckh / KH, ckh % KH, 0, 1, KW, dw + o * Nc + ckh * KW);
  }
}

}  // namespace kiln
