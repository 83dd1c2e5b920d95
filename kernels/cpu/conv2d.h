// kiln conv2d (NCHW x, OIHW w) as implicit GEMM: forward and input gradient on the packed driver of gemm.h, the
// weight gradient on register-tiled dot products along its long K, or (O/G >= 128) a packed GEMM
// whose packers transpose both operands (conv2d_wgrad.h).
//
// Nothing of size C*KH*KW x Ho*Wo is materialised, except by the few-pixel paths (conv2d_small.h: Ho*Wo <= 256).
// Which packer, per shape: 1x1 stride 1 unpadded -> plain strided GEMM; otherwise the "shift" formulation of
// conv2d_shift.h (input copied once into a padded, stride-phase-split layout where each im2col row is a
// contiguous run, so a B panel packs with memcpy; bwd_data runs one such GEMM per output stride phase).
// Depthwise (C/G = O/G = 1) forward is a direct loop. 3x3 stride-1 ungrouped forward and input-gradient convs with
// enough channels and tiles (conv_winograd) run Winograd F(2x2, 3x3) (conv2d_winograd.h) instead, and 3x3 stride-2
// ones its stride-2 form (25 products for 36 multiply-adds a tile; the input gradient with odd padding); convs with few output
// pixels (conv_arows_fwd, conv_small_fwd / conv_small_bwd) read w in place instead of packing it (conv2d_small.h):
// the forward up to 256 pixels with many weights as an outer product over w's rows, fewer weights or pixels as dot
// tiles. The GEMMs:
//   forward      per (n, g):  y[o, p]      = sum_{c,kh,kw} w[o, c,kh,kw] * x[c, ih(p,kh), iw(p,kw)]
//                M = O/G, N = Ho*Wo, K = C/G*KH*KW, batch = N*G.   1x1 / stride 1 / no pad -> plain strided GEMM.
//   bwd_data     per (n, g):  dx[c, q]     = sum_{o,kh,kw} w[o, c,kh,kw] * dy[o, oh, ow]  (oh*sh = ih+pt-kh*dh)
//                M = C/G, N = H*W, K = O/G*KH*KW, batch = N*G (per stride phase: its taps only).
//   bwd_weight   per g:       dw[o, c,kh,kw] = sum_{n,oh,ow} dy[n, o, oh, ow] * x[n, c, ih, iw]
//                M = O/G, N = C/G*KH*KW, K = N*Ho*Wo, batch = G (both operands contiguous in K: dot products).
// Out-of-range taps read as 0. Each epilogue is called exactly once per output element with the full sum, except the
// plain store ConvStore (conv2d_wgrad.h, the library's _out entries), into whose buffer the weight gradient sums dW.
#pragma once

#include <vector>

#include "conv2d_small.h"
#include "conv2d_wgrad.h"
#include "conv2d_winograd.h"

namespace kiln {

// The GEMM epilogue of a 1x1 stride-1 conv, whose output is exactly the GEMM's C (row (n*G + g)*M + i, M channels a
// group, N = H*W pixels a row): with the plain store (ConvStore) full tiles go straight from the micro-kernel's
// registers (DenseStore; 320->640 ch 32² forward 1.38 -> 1.24 ms), with any other epilogue the row runs `out`.
template <class Epi, class Out>
auto dense_or(const Epi& epi, int64_t M, int64_t N, Out out) {
  if constexpr (std::is_same_v<Epi, ConvStore>) return DenseStore{epi.out, M, N};
  else return out;
}

// y[n,o,oh,ow]: epi(int64_t n, int64_t o, int64_t oh, int64_t ow, float acc).
template <class Epi>
void conv2d_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t sh,
                int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr, int64_t dh, int64_t dw, int64_t groups,
                const float* x, const float* w, Epi epi) {
  const Conv2dShape s{N, C, H, W, O, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, groups};
  const int64_t Ho = s.Ho(), Wo = s.Wo(), Cg = s.Cg(), Og = s.Og(), G = groups;
  if (Ho <= 0 || Wo <= 0) return;
  if (Cg == 1 && Og == 1) {
    // Depthwise (MobileNet): one tiny GEMM per channel would waste the micro-kernel; a direct loop over each
    // output row, vectorized along it, is several times faster. Rows of partial sums stay in registers/L1.
#pragma omp parallel if (par_macs(double(N * C * Ho * Wo * KH * KW)))
    {
      std::vector<float> row(static_cast<size_t>(Wo));
#pragma omp for collapse(2) schedule(static)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) {
          const float* xc = x + (n * C + c) * H * W;
          const float* wc = w + c * KH * KW;
          for (int64_t oh = 0; oh < Ho; ++oh) {
            std::fill(row.begin(), row.end(), 0.0f);
            for (int64_t kh = 0; kh < KH; ++kh) {
              const int64_t ih = oh * sh - pt + kh * dh;
              if (ih < 0 || ih >= H) continue;
              const float* xr = xc + ih * W;
              for (int64_t kw = 0; kw < KW; ++kw) {
                const float wv = wc[kh * KW + kw];
                const int64_t off = kw * dw - pl;
                // valid ow: 0 <= ow*sw + off < W
                int64_t lo, hi;
                valid_span(off, sw, W, Wo, lo, hi);
                float* r = row.data();
                if (sw == 1) {
#pragma omp simd
                  for (int64_t ow = lo; ow < hi; ++ow) r[ow] += wv * xr[ow + off];
                } else {
                  for (int64_t ow = lo; ow < hi; ++ow) r[ow] += wv * xr[ow * sw + off];
                }
              }
            }
            conv_emit(epi, n, c, oh, 0, 1, Wo, row.data());
          }
        }
    }
    return;
  }
  if (KH == 3 && KW == 3 && sh == sw && sh <= 2 && dh == 1 && dw == 1 && G == 1 &&
      conv_winograd(C, O, ((Ho + 1) / 2) * ((Wo + 1) / 2), sh == 2, conv_arows_fwd(s))) {
    if (sh == 1) conv3x3_winograd<wino::F23>(N, C, H, W, O, Ho, Wo, pt, pl, x, w, false, epi);
    else conv3x3_winograd<wino::S2>(N, C, H, W, O, Ho, Wo, pt, pl, x, w, false, epi);
    return;
  }
  if (conv_arows_fwd(s)) {  // few output pixels, many weights: w read in place by an outer-product kernel (conv2d_small.h)
    conv2d_fwd_arows(s, x, w, epi);
    return;
  }
  if (conv_small_fwd(Ho * Wo, Og * Cg * KH * KW)) {  // few output pixels: w read in place, not packed (conv2d_small.h)
    conv2d_fwd_small(s, x, w, epi);
    return;
  }
  auto out = row_split([&](int64_t b, int64_t i, int64_t oh, int64_t ow, int64_t len, const float* acc) {
    conv_emit(epi, b / G, (b % G) * Og + i, oh, ow, 1, len, acc);
  }, Wo, Wo);
  const int64_t Kd = Cg * KH * KW;
  auto aOff = [=](int64_t b) { return (b % G) * Og * Kd; };
  StridedPackA<decltype(aOff)> packA{w, Kd, 1, aOff, Og};
  if (KH == 1 && KW == 1 && sh == 1 && sw == 1 && pt == 0 && pb == 0 && pl == 0 && pr == 0) {
    // 1x1 stride 1: B is x[n, g*Cg + c, :] with row stride H*W — a plain strided GEMM (w packed once).
    auto bOff = [=](int64_t b) { return ((b / G) * C + (b % G) * Cg) * H * W; };
    auto pre = prepack_a(packA, G, [](int64_t g) { return g; }, Og, Cg, [G](int64_t b) { return b % G; });
    gemm_packed_f32(N * G, Og, H * W, Cg, pre.packer, StridedPackB<decltype(bOff)>{x, H * W, 1, bOff},
                    dense_or(epi, Og, H * W, out), GemmSplit::Columns);
    return;
  }
  conv2d_fwd_shift(s, x, packA, epi);
}

// dx[n,c,ih,iw] = sum over taps of dy * w: epi(int64_t n, int64_t c, int64_t ih, int64_t iw, float acc).
template <class Epi>
void conv2d_bwd_data_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t sh,
                         int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr, int64_t dh, int64_t dw,
                         int64_t groups, const float* dy, const float* w, Epi epi) {
  const Conv2dShape s{N, C, H, W, O, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, groups};
  const int64_t Ho = s.Ho(), Wo = s.Wo(), Cg = s.Cg(), Og = s.Og(), G = groups;
  if (Ho <= 0 || Wo <= 0) {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t i = 0; i < H * W; ++i) {
          const float z = 0.0f;
          conv_emit(epi, n, c, i / W, i % W, 1, 1, &z);
        }
    return;
  }
  if (KH == 3 && KW == 3 && sh == 1 && sw == 1 && dh == 1 && dw == 1 && G == 1 &&
      conv_winograd(O, C, ((H + 1) / 2) * ((W + 1) / 2))) {
    // A correlation of dy with the flipped, transposed kernel: input offsets 2 - pt, 2 - pl.
    conv3x3_winograd<wino::F23>(N, O, Ho, Wo, C, H, W, 2 - pt, 2 - pl, dy, w, true, epi);
    return;
  }
  if (KH == 3 && KW == 3 && sh == 2 && sw == 2 && dh == 1 && dw == 1 && G == 1 && pt % 2 == 1 && pl % 2 == 1 &&
      conv_winograd(O, C, ((H + 3) / 4) * ((W + 3) / 4), true)) {
    // The stride-2 transposed conv of dy, 4x4 dx tiles each from a 3x3 window of dy starting (pt - 1)/2 in.
    conv3x3_winograd<wino::S2T>(N, O, Ho, Wo, C, H, W, -(pt - 1) / 2, -(pl - 1) / 2, dy, w, true, epi);
    return;
  }
  if (conv_small_bwd(Ho * Wo, Og * Cg * KH * KW)) {  // few dy pixels: w read in place (conv2d_small.h)
    conv_small::bwd_data(s, dy, w, epi);
    return;
  }
  if (KH == 1 && KW == 1 && sh == 1 && sw == 1 && pt == 0 && pb == 0 && pl == 0 && pr == 0) {
    // 1x1 stride 1: dx[c, :] = sum_o w[o, c] dy[o, :], A = w transposed (w[g*Og + o][c]).
    auto out = row_split([&](int64_t b, int64_t i, int64_t ih, int64_t iw, int64_t len, const float* acc) {
      conv_emit(epi, b / G, (b % G) * Cg + i, ih, iw, 1, len, acc);
    }, W, W);
    auto aOff = [=](int64_t b) { return (b % G) * Og * Cg; };
    auto bOff = [=](int64_t b) { return ((b / G) * O + (b % G) * Og) * H * W; };
    auto pre = prepack_a(StridedPackA<decltype(aOff)>{w, 1, Cg, aOff, Cg}, G, [](int64_t g) { return g; }, Cg, Og,
                         [G](int64_t b) { return b % G; });
    gemm_packed_f32(N * G, Cg, H * W, Og, pre.packer, StridedPackB<decltype(bOff)>{dy, H * W, 1, bOff},
                    dense_or(epi, Cg, H * W, out), GemmSplit::Columns);
    return;
  }
  conv2d_bwd_data_phases(s, dy, w, epi);
}

// dw[o,ci,kh,kw] = sum_{n,oh,ow} dy[n,o,oh,ow] * x[n, g*Cg+ci, ih, iw]: epi(int64_t o, int64_t ci, int64_t kh,
// int64_t kw, float acc) with ci the channel index inside the group (w is [O, C/G, KH, KW]).
template <class Epi>
void conv2d_bwd_weight_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW,
                           int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr, int64_t dh,
                           int64_t dw, int64_t groups, const float* x, const float* dy, Epi epi) {
  const Conv2dShape s{N, C, H, W, O, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, groups};
  const int64_t Ho = s.Ho(), Wo = s.Wo(), Cg = s.Cg(), KHW = KH * KW;
  if (Ho <= 0 || Wo <= 0) {
    for (int64_t o = 0; o < O; ++o)
      for (int64_t j = 0; j < Cg * KHW; ++j) {
        const float z = 0.0f;
        conv_emit(epi, o, j / KHW, (j / KW) % KH, j % KW, 1, 1, &z);
      }
    return;
  }
  // Packed GEMM when O/G is large enough to pay for transposing both operands ((Og + Nc)*K copies against Og*Nc*K
  // FMAs). Measured: 1x1 320->640 and stride 2 at 320 ch faster than the dot tiles, 32-64 channels 1.2-1.6x slower.
  // 3x3 stride 1 at 320 ch 64^2: no faster on Zen 5 before the GEMM's next-panel L2 prefetch (bimodal, 25-32 vs 28
  // ms); with it, on an Intel Xeon (2 vCPU, AVX-512), 26.1-27.9 vs 30.7-32.1 ms native and 39.6-41.4 vs 42.3-43.4
  // AVX2-capped (the dot tiles' 10 vector loads per 24 FMAs, two thirds of the x loads split across cache lines,
  // bind on the load ports there; kernels/README.md "Measured: the next B panel's L2 prefetch").
  if (conv_arows_wgrad(s))  // few output pixels: the outer product over dy in place (conv2d_small.h)
    conv2d_bwd_weight_arows(s, x, dy, epi);
  else if (s.Og() >= 128)
    conv2d_bwd_weight_gemm(s, x, dy, epi);
  else
    conv2d_bwd_weight_dot(s, x, dy, epi);
}

}  // namespace kiln
