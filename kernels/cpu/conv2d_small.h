// Convolutions with few output pixels (the last stages of a ResNet, a UNet's 4x4 and 8x8 levels), forward and input
// gradient, without packing the weights.
//
// The packed paths (conv2d_shift.h) copy the whole weight tensor into GEMM panels on every call: O*C*KH*KW floats
// against O*C*KH*KW*P multiply-adds, so with P = Ho*Wo output pixels in the single digits the copy is most of
// the call (256 ch 3x3 at 4x4: ~0.3 ms of a 0.33 ms forward; at 1x1, 0.4-0.65 ms for 1.2 MFLOP). Here w is read
// in place, once:
//   forward   with many weights (conv_arows_fwd, up to 256 pixels): y[o, j] = sum_k w[o, k] * xk[k, j], an outer-product
//   (arows)   GEMM whose micro-kernel (gemm_ukr.h ukr_*_arows) broadcasts from MR rows of w in place and multiplies NV
//             vectors of a row of the k-major patch matrix xk (the pixels of several images side by side): no weight
//             packing, and the FMA rate of the packed GEMM (measured 240-330 GFLOP/s on 2 AVX-512 cores, 8x8 to
//             16x16 outputs at 128-1280 channels, against 100-200 for the packed and dot paths);
//   forward   y[o, p]   = sum_k w[o, k] * xcol[p, k],   k = (c, kh, kw): dot products along k, both operands
//             contiguous (w's rows as they are, xcol the P x K patch matrix, small), on the weight gradient's
//             register tiles (conv2d_wgrad.h wgrad::tile_*, MR rows of w x NR pixels, lanes added once per tile);
//   input     dcol[p, j] = sum_o dy[o, p] * w[o, j],     j = (c, kh, kw): gemm.h's driver with B = w read in place
//   gradient  (row o of B is w's row o, has_direct_b) and A = dy transposed (P x O, small); then
//             dx[c, ih, iw] = sum of dcol over the taps that land on (ih, iw) (col2im, a gather).
// conv2d.h takes these per shape (conv_small_fwd / conv_small_bwd below).  Same sums, same
// float64 bound as the packed paths; the ragged tail of k (K % W) is added after the tiles, element by element.
#pragma once

#include <vector>

#include "conv2d_wgrad.h"

namespace kiln {

// When conv2d.h takes these paths: KILN_CONV_SMALL=0|1 forces them off / on (the tests), else per shape from the
// output pixels P = Ho*Wo and the weight floats of a group, Og*Cg*KH*KW (measured crossovers, kernels/README.md
// "Few output pixels"): the forward from 32 Ki weights and up to 16 pixels (below that the packing is cheap and the
// micro-kernel's tiles beat the dot tiles), the input gradient up to 16 pixels, or 196 (14x14) with 36 Ki weights (64
// channels 3x3) and up (the col2im gather and the dcol buffer grow with P, the packing it saves does not).
inline int conv_small_forced() {
  static const int v = env_switch("KILN_CONV_SMALL");
  return v;
}
inline bool conv_small_fwd(int64_t pixels, int64_t wfloats) {
  const int f = conv_small_forced();
  return f >= 0 ? f == 1 : pixels <= 16 && wfloats >= 32768;
}
// The forward on w read in place (fwd_arows below), before the dot tiles and the packed paths; Winograd yields to it
// unless forced (conv2d.h):
// KILN_CONV_AROWS=0|1 forces it off / on, else from 64 Ki weight floats a group (a 3x3 conv of 86 channels each way)
// and 17 (below, the dot tiles) to 256 (AVX-512) / 196 (AVX2) output pixels an image; measured crossovers in
// kernels/README.md "Few output pixels". Per image, not over the batch (as conv_winograd). Never by default on the
// portable path.
inline int conv_arows_forced() {
  static const int v = env_switch("KILN_CONV_AROWS");
  return v;
}
inline bool conv_arows_fwd(const Conv2dShape& s) {
  const int f = conv_arows_forced();
  if (f >= 0) return f == 1;
  const Isa isa = cpu_isa();
  const int64_t P = s.Ho() * s.Wo(), pmax = isa == Isa::Avx512 || isa == Isa::Avx512Bf16 ? 256 : isa == Isa::Avx2 ? 196 : 0;
  return P > 16 && P <= pmax && s.Og() * s.Cg() * s.KH * s.KW >= 65536;
}
// The weight gradient on dy read in place (wgrad_arows below) instead of the dot tiles or the packed GEMM
// (conv2d_wgrad.h): KILN_CONV_AROWS forces it too, else up to 256 output pixels an image with 32 Ki weight floats a
// group (64 channels 3x3) on the AVX-512 and AVX2 paths (fewer channels: the dot tiles are as fast or faster).
inline bool conv_arows_wgrad(const Conv2dShape& s) {
  const int f = conv_arows_forced();
  if (f >= 0) return f == 1;
  const Isa isa = cpu_isa();
  return isa != Isa::Generic && s.Ho() * s.Wo() <= 256 && s.Og() * s.Cg() * s.KH * s.KW >= 32768;
}
inline bool conv_small_bwd(int64_t pixels, int64_t wfloats) {
  const int f = conv_small_forced();
  return f >= 0 ? f == 1 : pixels <= 16 || (pixels <= 196 && wfloats >= 36864);
}

namespace conv_small {

// xcol[p, k] for one (n, g): the input patch of output pixel p = oh*Wo + ow, k = (c, kh, kw) < Cg*KH*KW, 0 outside x.
// Column by column (k outer): each (k, oh) is a run of ow with one bounds test per run, not per element.
// Channels c0 .. c1-1 (default all; threads split them).
inline void im2col_rows(const Conv2dShape& s, const float* x, int64_t n, int64_t g, int64_t ld, float* xcol,
                        int64_t c0 = 0, int64_t c1 = -1) {
  const int64_t Ho = s.Ho(), Wo = s.Wo(), Cg = s.Cg();
  for (int64_t c = c0; c < (c1 < 0 ? Cg : c1); ++c) {
    const float* xc = x + ((n * s.C + g * Cg + c) * s.H) * s.W;
    for (int64_t kh = 0; kh < s.KH; ++kh)
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        float* d = xcol + (c * s.KH + kh) * s.KW + kw;
        const int64_t off = kw * s.dw - s.pl;  // iw = ow*sw + off; valid ow in [lo, hi)
        int64_t lo, hi;
        valid_span(off, s.sw, s.W, Wo, lo, hi);
        for (int64_t oh = 0; oh < Ho; ++oh) {
          float* dr = d + oh * Wo * ld;
          const int64_t ih = oh * s.sh - s.pt + kh * s.dh;
          if (ih < 0 || ih >= s.H) {
            for (int64_t ow = 0; ow < Wo; ++ow) dr[ow * ld] = 0.0f;
            continue;
          }
          const float* xr = xc + ih * s.W + off;
          for (int64_t ow = 0; ow < lo; ++ow) dr[ow * ld] = 0.0f;
          for (int64_t ow = lo; ow < hi; ++ow) dr[ow * ld] = xr[ow * s.sw];
          for (int64_t ow = hi; ow < Wo; ++ow) dr[ow * ld] = 0.0f;
        }
      }
  }
}

template <class P, class Epi>
void fwd_path(const Conv2dShape& s, const float* x, const float* w, Epi& epi) {
  constexpr int W = P::W, MR = P::MR, NR = P::NR;
  const int64_t Ho = s.Ho(), Wo = s.Wo(), Pn = Ho * Wo, G = s.G, Og = s.Og();
  const int64_t K = s.Cg() * s.KH * s.KW, Kf = K / W * W, ld = (K + 15) / 16 * 16;
  const int64_t mblk = (Og + MR - 1) / MR;
  AlignedBuf xcol(size_t(Pn * ld)), acc(size_t(Og * Pn));
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t g = 0; g < G; ++g) {
      im2col_rows(s, x, n, g, ld, xcol.p);
      const float* wg = w + g * Og * K;
#pragma omp parallel for schedule(static) if (par_macs(double(Og) * double(Pn) * double(K)))
      for (int64_t ib = 0; ib < mblk; ++ib) {
        const int64_t o0 = ib * MR, mr = std::min<int64_t>(MR, Og - o0);
        float* y = acc.p + o0 * Pn;
        std::fill(y, y + mr * Pn, 0.0f);
        const float* a[MR];
        for (int r = 0; r < MR; ++r) a[r] = wg + (o0 + std::min<int64_t>(r, mr - 1)) * K;
        if (Kf > 0)
          for (int64_t p0 = 0; p0 < Pn; p0 += NR) {
            const int64_t nr = std::min<int64_t>(NR, Pn - p0);
            const float* b[NR];
            for (int c = 0; c < NR; ++c) b[c] = xcol.p + (p0 + std::min<int64_t>(c, nr - 1)) * ld;
            P::tile(Kf, a, b, y + p0, Pn, mr, nr);
          }
        for (int64_t r = 0; r < mr && Kf < K; ++r)  // the ragged tail of k
          for (int64_t p = 0; p < Pn; ++p) {
            float t = 0.0f;
            for (int64_t k = Kf; k < K; ++k) t += a[r][k] * xcol.p[p * ld + k];
            y[r * Pn + p] += t;
          }
        for (int64_t r = 0; r < mr; ++r)
          for (int64_t oh = 0; oh < Ho; ++oh) conv_emit(epi, n, g * Og + o0 + r, oh, 0, 1, Wo, y + r * Pn + oh * Wo);
      }
    }
}

// The patch matrix k-major for images n0 .. n0+nb-1 of group g: xk[k * ld + j * P + p] (k = (c, kh, kw), p = oh*Wo + ow
// of image n0 + j), 0 outside x and in the pad columns nb*P .. ld-1. Channels c0 .. c1-1 (threads split them).
inline void im2col_kmajor(const Conv2dShape& s, const float* x, int64_t n0, int64_t nb, int64_t g, int64_t c0,
                          int64_t c1, int64_t ld, float* xk) {
  const int64_t Ho = s.Ho(), Wo = s.Wo(), P = Ho * Wo, Cg = s.Cg();
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t kh = 0; kh < s.KH; ++kh)
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        float* d = xk + ((c * s.KH + kh) * s.KW + kw) * ld;
        const int64_t off = kw * s.dw - s.pl;  // iw = ow*sw + off; valid ow in [lo, hi)
        int64_t lo, hi;
        valid_span(off, s.sw, s.W, Wo, lo, hi);
        for (int64_t j = 0; j < nb; ++j) {
          const float* xc = x + (((n0 + j) * s.C + g * Cg + c) * s.H) * s.W;
          for (int64_t oh = 0; oh < Ho; ++oh) {
            float* dr = d + j * P + oh * Wo;
            const int64_t ih = oh * s.sh - s.pt + kh * s.dh;
            if (ih < 0 || ih >= s.H) {
              std::fill(dr, dr + Wo, 0.0f);
              continue;
            }
            const float* xr = xc + ih * s.W + off;
            std::fill(dr, dr + lo, 0.0f);
            if (s.sw == 1) __builtin_memcpy(dr + lo, xr + lo, size_t(hi - lo) * sizeof(float));
            else for (int64_t ow = lo; ow < hi; ++ow) dr[ow] = xr[ow * s.sw];
            std::fill(dr + hi, dr + Wo, 0.0f);
          }
        }
        std::fill(d + nb * P, d + ld, 0.0f);
      }
}

// The forward as an outer-product GEMM y[o, j] = sum_k w[o, k] * xk[k, j] whose A (w) is read in place: the micro-kernel
// (gemm_ukr.h ukr_*_arows) broadcasts from MR rows of w and loads NV vectors of a row of the patch matrix, which holds
// the pixels of as many images as fit Pmax columns side by side. Per path P: LANES, ACC (accumulators), kernel<MR, NV>.
// K runs in blocks whose patch rows take half the L2; the threads split the row blocks of w (and the patch matrix's
// channels while it is built). NVMAX * MR accumulators + NVMAX B vectors + a broadcast fit the register file: 32 zmm,
// and 16 ymm on an AVX2-only CPU.
struct ArowsAvx512 {
  static constexpr int LANES = 16, ACC = 24, NVMAX = 4;
  template <int MR, int NV>
  static void ukr(int64_t kc, const float* const* a, const float* b, int64_t ldb, float* y, int64_t ldy, bool acc) {
    ukr_avx512_arows<MR, NV>(kc, a, b, ldb, y, ldy, acc);
  }
};
struct ArowsAvx2 {
  static constexpr int LANES = 8, ACC = 12, NVMAX = 3;
  template <int MR, int NV>
  static void ukr(int64_t kc, const float* const* a, const float* b, int64_t ldb, float* y, int64_t ldy, bool acc) {
    ukr_avx2_arows<MR, NV>(kc, a, b, ldb, y, ldy, acc);
  }
};
struct ArowsGeneric {
  static constexpr int LANES = 4, ACC = 24, NVMAX = 4;
  template <int MR, int NV>
  static void ukr(int64_t kc, const float* const* a, const float* b, int64_t ldb, float* y, int64_t ldy, bool acc) {
    ukr_generic_arows<MR, NV>(kc, a, b, ldb, y, ldy, acc);
  }
};
// Rows of w per tile for tiles NV vectors wide: as many as the accumulators allow, at most 12.
template <class P>
constexpr int arows_mr(int nv) { return std::min(12, P::ACC / nv); }

template <class P, int MR>
void arows_tile(int nv, int64_t kc, const float* const* a, const float* b, int64_t ldb, float* y, int64_t ldy, bool acc) {
  switch (nv) {  // NV <= 4 and MR * NV within the accumulators (the caller's tiles never ask for more)
    case 1: return P::template ukr<MR, 1>(kc, a, b, ldb, y, ldy, acc);
    case 2: if constexpr (MR * 2 <= P::ACC) return P::template ukr<MR, 2>(kc, a, b, ldb, y, ldy, acc); break;
    case 3: if constexpr (MR * 3 <= P::ACC) return P::template ukr<MR, 3>(kc, a, b, ldb, y, ldy, acc); break;
    case 4: if constexpr (MR * 4 <= P::ACC) return P::template ukr<MR, 4>(kc, a, b, ldb, y, ldy, acc); break;
  }
  std::abort();
}

// f(Dim<MR>{}) with the rows per tile of tiles nvt vectors wide (arows_mr as a compile-time constant).
template <class P, class F>
void with_arows_mr(int nvt, F&& f) {
  switch (arows_mr<P>(nvt)) {
    case 12: return f(Dim<12>{});
    case 8: return f(Dim<8>{});
    case 6: return f(Dim<6>{});
    case 4: return f(Dim<4>{});
    default: return f(Dim<3>{});
  }
}

template <class P, int MR, class Epi>
void fwd_arows_mr(const Conv2dShape& s, const float* x, const float* w, int nvt, int64_t nbimg, Epi& epi) {
  constexpr int L = P::LANES;
  const int64_t Ho = s.Ho(), Wo = s.Wo(), Pn = Ho * Wo, G = s.G, Og = s.Og();
  const int64_t K = s.Cg() * s.KH * s.KW, ld = (nbimg * Pn + L - 1) / L * L, nvec = ld / L;
  // K blocks from the columns of one call at most (256, or one image's), not from this call's batch: each output's sum
  // then runs in the same order whatever the batch size (a data-parallel run must reproduce the single process).
  const int64_t kcb = std::max<int64_t>(64, cpu_caches().l2 / 2 / (std::max<int64_t>(256, Pn) * int64_t(sizeof(float))));
  const int64_t mblk = (Og + MR - 1) / MR;
  AlignedBuf xk(size_t(K * ld)), yb(size_t(mblk * MR * ld));
  for (int64_t n0 = 0; n0 < s.N; n0 += nbimg)
    for (int64_t g = 0; g < G; ++g) {
      const int64_t nb = std::min(nbimg, s.N - n0);
      const float* wg = w + g * Og * K;
#pragma omp parallel if (par_macs(double(Og) * double(ld) * double(K)))
      {
        const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
        const int64_t cg = s.Cg();
        im2col_kmajor(s, x, n0, nb, g, cg * tid / nt, cg * (tid + 1) / nt, ld, xk.p);
#pragma omp barrier
        const int64_t b0 = mblk * tid / nt, b1 = mblk * (tid + 1) / nt;
        for (int64_t k0 = 0; k0 < K; k0 += kcb) {
          const int64_t kc = std::min(kcb, K - k0);
          for (int64_t ib = b0; ib < b1; ++ib) {
            const int64_t o0 = ib * MR, mr = std::min<int64_t>(MR, Og - o0);
            const float* a[MR];
            for (int r = 0; r < MR; ++r) a[r] = wg + (o0 + std::min<int64_t>(r, mr - 1)) * K + k0;
            for (int64_t v0 = 0; v0 < nvec; v0 += nvt) {
              const int nv = int(std::min<int64_t>(nvt, nvec - v0));
              arows_tile<P, MR>(nv, kc, a, xk.p + k0 * ld + v0 * L, ld, yb.p + o0 * ld + v0 * L, ld, k0 > 0);
            }
          }
        }
        for (int64_t ib = b0; ib < b1; ++ib)
          for (int64_t o = ib * MR; o < std::min(Og, (ib + 1) * MR); ++o)
            for (int64_t j = 0; j < nb; ++j)
              for (int64_t oh = 0; oh < Ho; ++oh)
                conv_emit(epi, n0 + j, g * Og + o, oh, 0, 1, Wo, yb.p + o * ld + j * Pn + oh * Wo);
      }
    }
}

// Images side by side up to 256 columns; tiles of the widest NV <= NVMAX vectors, MR rows as the accumulators allow.
template <class P, class Epi>
void fwd_arows(const Conv2dShape& s, const float* x, const float* w, Epi& epi) {
  constexpr int L = P::LANES;
  const int64_t Pn = s.Ho() * s.Wo();
  const int64_t nbimg = std::max<int64_t>(1, std::min<int64_t>(s.N, 256 / Pn));
  const int nvt = int(std::min<int64_t>(P::NVMAX, (nbimg * Pn + L - 1) / L));
  with_arows_mr<P>(nvt, [&](auto mr) { fwd_arows_mr<P, decltype(mr)::value>(s, x, w, nvt, nbimg, epi); });
}

// The weight gradient as the same outer product, A = dy in place: dw[o, j] = sum_{n, p} dy[n, o, p] * xcol_n[p, j], j =
// (c, kh, kw), xcol_n the pixel-major patch matrix of image n (rows ld floats apart, ld = K rounded up to the
// vectors; built k-major by im2col_kmajor and transposed in blocks: im2col_rows' writes ld apart took half the call at
// 14x14), for a group of images at a time (as many as fit 2 Mi floats, or KILN_CONV_SCRATCH_FLOATS: the tests). Per tile of dw (MR rows x NV
// vectors) the images add their P pixels in order (one micro-kernel call each; the tile stays in L1 between them), so
// the sums do not depend on the batch size. The threads split the column tiles; NV is chosen so that a tile of B
// (P x NV vectors) stays in L1 while every row block of dy passes it. dw is the plain-store epilogue's output itself
// when its rows are whole vectors (conv_out, K % LANES == 0), else a buffer emitted at the end; a last row block with
// fewer than MR rows goes through a tile buffer.
template <class P, int MR, class Epi>
void wgrad_arows_mr(const Conv2dShape& s, const float* x, const float* dy, int nvt, Epi& epi) {
  constexpr int L = P::LANES;
  const int64_t Pn = s.Ho() * s.Wo(), G = s.G, Og = s.Og(), Cg = s.Cg(), KH = s.KH, KW = s.KW;
  const int64_t K = Cg * KH * KW, ld = (K + L - 1) / L * L, nvec = ld / L, ntile = (nvec + nvt - 1) / nvt;
  const int64_t mblk = (Og + MR - 1) / MR, img = Pn * ld;
  const int64_t nbimg = std::max<int64_t>(1, std::min<int64_t>(s.N, std::min<int64_t>(int64_t(1) << 21, conv_scratch_floats()) / img));
  float* const out = conv_out(epi);
  const bool direct = out && ld == K;
  const int64_t Pp = (Pn + 15) / 16 * 16;
  AlignedBuf xcol(size_t(nbimg * img)), xk(size_t(K * Pp)), dwb(size_t(direct ? 0 : s.O * ld));
  float* const dw = direct ? out : dwb.p;
#pragma omp parallel if (par_macs(double(s.N) * double(s.O) * double(Pn) * double(K)))
  {
    const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
    alignas(64) float tile[MR * 4 * L];
    for (int64_t n0 = 0; n0 < s.N; n0 += nbimg)
      for (int64_t g = 0; g < G; ++g) {
        const int64_t nb = std::min(nbimg, s.N - n0);
        for (int64_t j = 0; j < nb; ++j) {  // k-major rows of this thread's channels, then transposed in 16 x 16 blocks
          float* xc = xcol.p + j * img;
          const int64_t c0 = Cg * tid / nt, c1 = Cg * (tid + 1) / nt, k0 = c0 * KH * KW, k1 = c1 * KH * KW;
          im2col_kmajor(s, x, n0 + j, 1, g, c0, c1, Pp, xk.p);
          for (int64_t kb = k0; kb < k1; kb += 16)
            for (int64_t pb = 0; pb < Pn; pb += 16)
              for (int64_t k = kb; k < std::min(kb + 16, k1); ++k)
                for (int64_t p = pb; p < std::min(pb + 16, Pn); ++p) xc[p * ld + k] = xk.p[k * Pp + p];
          for (int64_t p = Pn * tid / nt; p < Pn * (tid + 1) / nt; ++p) std::fill(xc + p * ld + K, xc + (p + 1) * ld, 0.0f);
        }
#pragma omp barrier
        for (int64_t t = ntile * tid / nt; t < ntile * (tid + 1) / nt; ++t) {
          const int64_t v0 = t * nvt;
          const int nv = int(std::min<int64_t>(nvt, nvec - v0));
          for (int64_t ib = 0; ib < mblk; ++ib) {
            const int64_t o0 = ib * MR, mr = std::min<int64_t>(MR, Og - o0);
            float* d = dw + (g * Og + o0) * ld + v0 * L;
            const bool whole = mr == MR;  // else through `tile` (rows past the group's end are not dw's)
            for (int64_t j = 0; j < nb; ++j) {
              const int64_t n = n0 + j;
              const float* a[MR];
              for (int r = 0; r < MR; ++r) a[r] = dy + (n * s.O + g * Og + o0 + std::min<int64_t>(r, mr - 1)) * Pn;
              if (whole) arows_tile<P, MR>(nv, Pn, a, xcol.p + j * img + v0 * L, ld, d, ld, n > 0);
              else arows_tile<P, MR>(nv, Pn, a, xcol.p + j * img + v0 * L, ld, tile, nv * L, j > 0);
            }
            if (!whole)
              for (int64_t r = 0; r < mr; ++r)
                for (int64_t c = 0; c < nv * L; ++c) d[r * ld + c] = n0 > 0 ? d[r * ld + c] + tile[r * nv * L + c] : tile[r * nv * L + c];
          }
        }
#pragma omp barrier
      }
    if (!direct) {
#pragma omp for schedule(static)
      for (int64_t o = 0; o < s.O; ++o)
        for (int64_t c = 0; c < Cg; ++c)
          for (int64_t kh = 0; kh < KH; ++kh) conv_emit(epi, o, c, kh, 0, 1, KW, dw + o * ld + (c * KH + kh) * KW);
    }
  }
}

template <class P, class Epi>
void wgrad_arows(const Conv2dShape& s, const float* x, const float* dy, Epi& epi) {
  constexpr int L = P::LANES;
  // NV: a tile of B (P rows of NV vectors) in 32 KiB of L1, at most the vectors of a row.
  const int64_t fit = std::max<int64_t>(1, 32768 / (s.Ho() * s.Wo() * L * int64_t(sizeof(float))));
  const int nvt = int(std::min<int64_t>({P::NVMAX, fit, (s.Cg() * s.KH * s.KW + L - 1) / L}));
  with_arows_mr<P>(nvt, [&](auto mr) { wgrad_arows_mr<P, decltype(mr)::value>(s, x, dy, nvt, epi); });
}

template <class Epi>
void bwd_data(const Conv2dShape& s, const float* dy, const float* w, Epi& epi) {
  const int64_t Ho = s.Ho(), Wo = s.Wo(), Pn = Ho * Wo, G = s.G, Og = s.Og(), Cg = s.Cg(), KH = s.KH, KW = s.KW;
  const int64_t K = Cg * KH * KW;
  AlignedBuf dcol(size_t(G * Pn * K));  // one image at a time
  std::vector<int64_t> koff(static_cast<size_t>(Og));
  for (int64_t o = 0; o < Og; ++o) koff[size_t(o)] = o * K;
  for (int64_t n = 0; n < s.N; ++n) {
    // A(g, p, o) = dy[n, g*Og + o, p]; B(g, o, j) = w[g*Og + o, j], rows read in place (koff[o] = o*K).
    auto aOff = [=](int64_t g) { return (n * s.O + g * Og) * Pn; };
    gemm_packed_f32(G, Pn, K, Og, StridedPackA<decltype(aOff)>{dy, 1, Pn, aOff, Pn},
                    conv_shift::ShiftPackB{w, koff.data(), 0, Og * K, G}, DenseStore{dcol.p, Pn, K});  // dcol[g][p][j]
    // col2im: dx[n, g*Cg + c, ih, iw] = sum over (kh, kw) with ih = oh*sh - pt + kh*dh, iw = ow*sw - pl + kw*dw.
#pragma omp parallel if (par_elems(double(s.C * s.H * s.W * KH * KW)))
    {
      std::vector<float> row(size_t(s.W));
#pragma omp for collapse(2) schedule(static)
      for (int64_t g = 0; g < G; ++g)
        for (int64_t c = 0; c < Cg; ++c) {
          const float* d = dcol.p + g * Pn * K + c * KH * KW;
          for (int64_t ih = 0; ih < s.H; ++ih) {
            std::fill(row.begin(), row.end(), 0.0f);
            for (int64_t kh = 0; kh < KH; ++kh) {
              const int64_t th = ih + s.pt - kh * s.dh;
              if (th < 0 || th % s.sh || th / s.sh >= Ho) continue;
              const int64_t oh = th / s.sh;
              for (int64_t kw = 0; kw < KW; ++kw)
                for (int64_t ow = 0; ow < Wo; ++ow) {
                  const int64_t iw = ow * s.sw - s.pl + kw * s.dw;
                  if (iw >= 0 && iw < s.W) row[size_t(iw)] += d[(oh * Wo + ow) * K + kh * KW + kw];
                }
            }
            conv_emit(epi, n, g * Cg + c, ih, 0, 1, s.W, row.data());
          }
        }
    }
  }
}

}  // namespace conv_small

// Forward on the dot tiles of the path cpu_isa() runs (avx512_bf16 runs the f32 avx512 tiles).
template <class Epi>
void conv2d_fwd_small(const Conv2dShape& s, const float* x, const float* w, Epi& epi) {
  switch (cpu_isa()) {
    case Isa::Avx512Bf16:
    case Isa::Avx512: return conv_small::fwd_path<wgrad::Avx512>(s, x, w, epi);
    case Isa::Avx2: return conv_small::fwd_path<wgrad::Avx2>(s, x, w, epi);
    default: return conv_small::fwd_path<wgrad::Generic>(s, x, w, epi);
  }
}

// f(P{}) with the outer-product micro-kernels of the path cpu_isa() runs (avx512_bf16 runs the f32 avx512 ones).
template <class F>
void with_arows_path(F&& f) {
  switch (cpu_isa()) {
    case Isa::Avx512Bf16:
    case Isa::Avx512: return f(conv_small::ArowsAvx512{});
    case Isa::Avx2: return f(conv_small::ArowsAvx2{});
    default: return f(conv_small::ArowsGeneric{});
  }
}
// Forward on w read in place (conv_small::fwd_arows); weight gradient on dy read in place (conv_small::wgrad_arows).
template <class Epi>
void conv2d_fwd_arows(const Conv2dShape& s, const float* x, const float* w, Epi& epi) {
  with_arows_path([&](auto p) { conv_small::fwd_arows<decltype(p)>(s, x, w, epi); });
}
template <class Epi>
void conv2d_bwd_weight_arows(const Conv2dShape& s, const float* x, const float* dy, Epi& epi) {
  with_arows_path([&](auto p) { conv_small::wgrad_arows<decltype(p)>(s, x, dy, epi); });
}

}  // namespace kiln
