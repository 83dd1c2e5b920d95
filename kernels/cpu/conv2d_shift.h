// Implicit GEMM for conv2d over a padded, phase-split copy of one operand ("shift" formulation).
//
// The input is copied once per call (outside the GEMM's hot loop) into a layout where every im2col row is a
// contiguous run: the plane is padded and split into sh x sw stride phases,
//     q[c][a][b][r][col] = x[c, r*sh + a - pt, col*sw + b - pl]   (0 outside x),  each phase Hq x Wq,
// so for tap (kh, kw) and output (oh, ow) the input element sits at
//     koff(c, kh, kw) + oh*Wq + ow,   koff = c*plane + phase(kh*dh % sh, kw*dw % sw) + (kh*dh/sh)*Wq + kw*dw/sw.
// The GEMM then runs over columns j = oh*Wq + ow with ow in [0, Wq): the Wq - Wo columns past the output row
// are computed and dropped (2 of 66 for a 3x3 pad-1 conv on 64²), and packing a B panel is one memcpy of NR
// floats per k. The same layout serves the weight gradient (conv2d_wgrad.h: dot products along t, dy copied
// to rows of Wq with zeros in the dropped columns) and the input gradient (per output stride phase, a correlation of
// a zero-margined dy with that phase's flipped taps).
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "gemm.h"

namespace kiln {

struct Conv2dShape {
  int64_t N, C, H, W, O, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, G;
  int64_t Ho() const { return (H + pt + pb - dh * (KH - 1) - 1) / sh + 1; }
  int64_t Wo() const { return (W + pl + pr - dw * (KW - 1) - 1) / sw + 1; }
  int64_t Cg() const { return C / G; }
  int64_t Og() const { return O / G; }
};

// A conv epilogue is either per element, epi(q0, q1, q2, q3, acc), or per row: epi.row(q0, q1, q2, q3, step, len,
// acc) for the elements (q0, q1, q2, q3 + r*step), r < len, with values acc[r] (the library's function-pointer
// epilogue is per row, so its indirect call and index arithmetic are paid once per output row segment).
template <class E, class = void>
struct has_conv_row : std::false_type {};
template <class E>
struct has_conv_row<E, std::void_t<decltype(std::declval<E&>().row(int64_t(), int64_t(), int64_t(), int64_t(), int64_t(),
                                                                     int64_t(), static_cast<const float*>(nullptr)))>>
    : std::true_type {};
template <class Epi>
inline void conv_emit(Epi& epi, int64_t q0, int64_t q1, int64_t q2, int64_t q3, int64_t step, int64_t len,
                      const float* acc) {
  if constexpr (has_conv_row<Epi>::value) {
    epi.row(q0, q1, q2, q3, step, len, acc);
  } else {
    for (int64_t r = 0; r < len; ++r) epi(q0, q1, q2, q3 + r * step, acc[r]);
  }
}

// The GEMM epilogue of a conv whose GEMM columns are j = u*Wq + v with only v < Wv kept: splits each finished tile
// row at the u boundaries and hands each kept run to emit(b, i, u, v0, len, acc) (gemm.h has_row_epi).
template <class F>
struct RowSplit {
  F f; int64_t Wq, Wv;
  void row(int64_t b, int64_t i, int64_t j0, int n, const float* acc) const {
    int64_t u = j0 / Wq, v = j0 - u * Wq;
    while (n > 0) {
      const int64_t seg = std::min<int64_t>(n, Wq - v);
      if (v < Wv) f(b, i, u, v, std::min(seg, Wv - v), acc);
      acc += seg;
      n -= int(seg);
      ++u;
      v = 0;
    }
  }
  void operator()(int64_t b, int64_t i, int64_t j, float acc) const { row(b, i, j, 1, &acc); }
};
template <class F>
RowSplit<F> row_split(F f, int64_t Wq, int64_t Wv) { return RowSplit<F>{f, Wq, Wv}; }

// A packed once per call: the driver packs its MC x KC block of A again for every column block (and in the
// column split, every thread for its own chunks), a transposing gather each time. This packs each distinct A
// (`na` of them; batch element b uses A number which(b)) once into the driver's own panel layout with kc = K,
// [panel p][k < K][r < MR] (the inner packer's output for the whole matrix), which the driver reads in place.
// MR is the running path's (cpu_isa()), known before the driver is called; these packers write f32 panels, so
// on an avx512_bf16 CPU the driver runs the f32 Avx512 path (gemm_packed_f32).
inline int gemm_path_mr() {
  switch (cpu_isa()) {
    case Isa::Avx512Bf16:
    case Isa::Avx512: return gemm_cfg::Avx512::MR;
    case Isa::Avx2: return gemm_cfg::Avx2::MR;
    default: return gemm_cfg::Generic::MR;
  }
}
template <class Which>
struct PrepackedA {
  const float* p; int64_t M, K; int mr; Which which;
  int64_t per() const { return (M + mr - 1) / mr * mr * K; }
  // The driver reads the panels in place (gemm.h has_direct_a): panel of rows i0.. at k0, panels K*MR apart.
  template <int MR>
  const float* panels(Dim<MR>, int64_t b, int64_t i0, int64_t k0) const {
    if (MR != mr || i0 % MR) {  // the driver runs the path gemm_path_mr() named; its blocks start on panels
      std::fprintf(stderr, "kiln: prepacked A has MR %d, the GEMM path MR %d at row %lld\n", mr, MR, (long long)i0);
      std::abort();
    }
    return p + which(b) * per() + i0 * K + k0 * MR;
  }
  int64_t panel_stride() const { return K * mr; }
};
template <class PackA, class Which>
struct PrepackA {
  PrepackedA<Which> packer;
  AlignedBuf buf;
  // inner(Dim<MR>, b, i0, mc, k0, kc, dst) packs A number a from batch element first(a).
  template <class First>
  PrepackA(const PackA& inner, int64_t na, First first, int64_t M, int64_t K, Which which)
      : packer{nullptr, M, K, gemm_path_mr(), which}, buf(size_t(na * packer.per())) {
    packer.p = buf.p;
    const int mr = packer.mr;
    const int64_t panels = (M + mr - 1) / mr, per = packer.per();
    float* dst = buf.p;
#pragma omp parallel for collapse(2) schedule(static) if (par_copy(double(na * M * K)))
    for (int64_t a = 0; a < na; ++a)
      for (int64_t q = 0; q < panels; ++q) {
        const int64_t i0 = q * mr, mc = std::min<int64_t>(mr, M - i0);
        float* d = dst + a * per + i0 * K;
        if (mr == 8) inner(Dim<8>{}, first(a), i0, mc, 0, K, d);
        else if (mr == 6) inner(Dim<6>{}, first(a), i0, mc, 0, K, d);
        else inner(Dim<4>{}, first(a), i0, mc, 0, K, d);
      }
  }
};
template <class PackA, class First, class Which>
PrepackA<PackA, Which> prepack_a(const PackA& inner, int64_t na, First first, int64_t M, int64_t K, Which which) {
  return PrepackA<PackA, Which>(inner, na, first, M, K, which);
}

// The indices t < n with 0 <= t*step + off < len, as [lo, hi) (lo <= hi): the output columns whose tap lands inside a
// row of `len` input columns.
inline void valid_span(int64_t off, int64_t step, int64_t len, int64_t n, int64_t& lo, int64_t& hi) {
  lo = std::min(n, off >= 0 ? int64_t(0) : (-off + step - 1) / step);
  hi = std::max(lo, std::min(n, (len - off + step - 1) / step));
}

namespace conv_shift {

struct Layout {
  int64_t sh, sw, Hq, Wq;
  int64_t phase() const { return Hq * Wq; }
  int64_t plane() const { return sh * sw * Hq * Wq; }
};

// Scratch that holds `planes` phase-split planes (phase_split writes every element) plus `slack` zero floats past
// the end (the dropped columns of the last rows read up to (KW-1)*dw/sw floats beyond their plane).
struct Planes {
  AlignedBuf buf;
  Planes(int64_t planes, const Layout& L, int64_t slack) : buf(size_t(planes * L.plane() + slack)) {
    std::fill(buf.p + planes * L.plane(), buf.p + planes * L.plane() + slack, 0.0f);
  }
  float* data() { return buf.p; }
};

// d[c] = s[c * step] for c in [lo, hi); step S when S > 0 (a constant, so the loop vectorizes), else `step`.
template <int S>
inline void gather_every(const float* __restrict__ s, int64_t lo, int64_t hi, float* __restrict__ d, int64_t step = S) {
  if constexpr (S > 0) {
#pragma omp simd
    for (int64_t c = lo; c < hi; ++c) d[c] = s[c * S];
  } else {
    for (int64_t c = lo; c < hi; ++c) d[c] = s[c * step];
  }
}

// dst plane p = phase split of src plane p (rows x cols), source origin at (-top, -left) of the padded plane.
inline void phase_split(const float* src, int64_t planes, int64_t rows, int64_t cols, int64_t top, int64_t left,
                        const Layout& L, float* dst) {
#pragma omp parallel for schedule(static) if (par_copy(double(planes * L.plane())))
  for (int64_t p = 0; p < planes; ++p) {
    const float* s = src + p * rows * cols;
    float* d = dst + p * L.plane();
    for (int64_t a = 0; a < L.sh; ++a)
      for (int64_t b = 0; b < L.sw; ++b) {
        float* dq = d + (a * L.sw + b) * L.phase();
        // columns c with 0 <= c*sw + b - left < cols
        const int64_t off = b - left;
        int64_t lo, hi;
        valid_span(off, L.sw, cols, L.Wq, lo, hi);
        for (int64_t r = 0; r < L.Hq; ++r) {
          float* drow = dq + r * L.Wq;
          const int64_t ih = r * L.sh + a - top;
          if (ih < 0 || ih >= rows) {
            std::fill(drow, drow + L.Wq, 0.0f);
            continue;
          }
          const float* srow = s + ih * cols + off;
          std::fill(drow, drow + lo, 0.0f);
          if (L.sw == 1) __builtin_memcpy(drow + lo, srow + lo, size_t(hi - lo) * sizeof(float));
          else if (L.sw == 2) gather_every<2>(srow, lo, hi, drow);  // compile-time stride: vectorized
          else gather_every<0>(srow, lo, hi, drow, L.sw);
          std::fill(drow + hi, drow + L.Wq, 0.0f);
        }
      }
  }
}

// B(b, k, j) = src[(b/G)*per_n + (b%G)*per_g + koff[k] + j]: one memcpy of NR floats per k and panel; on the avx2 / avx512
// paths the GEMM reads full panels in place through rows / row_offsets (gemm.h has_direct_b) and packs only the last.
struct ShiftPackB {
  const float* src; const int64_t* koff; int64_t per_n, per_g, G;
  const float* rows(int64_t b, int64_t j0) const { return src + (b / G) * per_n + (b % G) * per_g + j0; }
  const int64_t* row_offsets(int64_t k0) const { return koff + k0; }
  template <int NR>
  void operator()(Dim<NR>, int64_t b, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) const {
    const float* base = rows(b, j0);
    for (int64_t p = 0; p * NR < nc; ++p) {
      float* d = dst + p * kc * NR;
      const float* bp = base + p * NR;
      const int nr = int(std::min<int64_t>(NR, nc - p * NR));
      if (nr == NR) {
        for (int64_t k = 0; k < kc; ++k) __builtin_memcpy(d + k * NR, bp + koff[k0 + k], NR * sizeof(float));
      } else {
        for (int64_t k = 0; k < kc; ++k) {
          const float* s = bp + koff[k0 + k];
          int c = 0;
          for (; c < nr; ++c) d[k * NR + c] = s[c];
          for (; c < NR; ++c) d[k * NR + c] = 0.0f;
        }
      }
    }
  }
};

// Input gradient, one stride phase with taps tap[t] = kh*KW + kw, t < T:  A(g, c, k = (o, t)) =
// w[((g*Og + o)*Cg + c)*KHW + tap[t]], gathered from w by prepack_a's threads (a panel's MR channels of one
// (o, t) are KHW floats apart, one w row block for all of that o's taps).
struct DgradPackA {
  const float* w; const int64_t* tap; int64_t Og, Cg, KHW, T;
  template <int MR>
  void operator()(Dim<MR>, int64_t g, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) const {
    for (int64_t p = 0; p * MR < mc; ++p) {
      float* d = dst + p * kc * MR;
      const int mr = int(std::min<int64_t>(MR, mc - p * MR));
      for (int64_t k = 0; k < kc; ++k) {
        const int64_t o = (k0 + k) / T, t = (k0 + k) % T;
        const float* src = w + ((g * Og + o) * Cg + i0 + p * MR) * KHW + tap[size_t(t)];
        int r = 0;
        for (; r < mr; ++r) d[k * MR + r] = src[r * KHW];
        for (; r < MR; ++r) d[k * MR + r] = 0.0f;
      }
    }
  }
};

// The input layout of the forward pass and the weight gradient, and koff over k = (c, kh, kw), c < Cg.
inline Layout input_layout(const Conv2dShape& s) {
  return Layout{s.sh, s.sw, s.Ho() + (s.KH - 1) * s.dh / s.sh, s.Wo() + (s.KW - 1) * s.dw / s.sw};
}
inline std::vector<int64_t> input_koff(const Conv2dShape& s, const Layout& L) {
  std::vector<int64_t> koff(size_t(s.Cg() * s.KH * s.KW));
  for (int64_t c = 0; c < s.Cg(); ++c)
    for (int64_t kh = 0; kh < s.KH; ++kh)
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        const int64_t a = kh * s.dh % s.sh, b = kw * s.dw % s.sw;
        koff[size_t((c * s.KH + kh) * s.KW + kw)] =
            c * L.plane() + (a * s.sw + b) * L.phase() + (kh * s.dh / s.sh) * L.Wq + kw * s.dw / s.sw;
      }
  return koff;
}
inline int64_t slack(const Conv2dShape& s) { return s.KW * s.dw + 64; }

}  // namespace conv_shift

// The most floats the forward pass copies its input into at once (16 Mi = 64 MiB): a larger input runs image by
// image in bands of output rows, so a 1024² VAE layer does not double its memory. KILN_CONV_SCRATCH_FLOATS
// overrides it (the tests force bands of one and of a few rows with it).
inline int64_t conv_scratch_floats() {
  static const int64_t v = [] {
    const char* e = std::getenv("KILN_CONV_SCRATCH_FLOATS");
    const long long x = e ? std::atoll(e) : 0;
    return x > 0 ? int64_t(x) : int64_t(16) << 20;
  }();
  return v;
}

// Forward: per (n, g) y[o, (oh, ow)] = sum_k w[o, k] * B(k, oh*Wq + ow);  epi(n, o, oh, ow, acc).
template <class PackA, class Epi>
void conv2d_fwd_shift(const Conv2dShape& s, const float* x, PackA& packW, Epi& epi) {
  using namespace conv_shift;
  const Layout L = input_layout(s);
  const int64_t Ho = s.Ho(), Wo = s.Wo(), Wq = L.Wq, G = s.G, Og = s.Og(), Kd = s.Cg() * s.KH * s.KW;
  auto pre = prepack_a(packW, G, [](int64_t g) { return g; }, Og, Kd, [G](int64_t b) { return b % G; });
  auto& packA = pre.packer;
  if (s.N * s.C * L.plane() <= conv_scratch_floats()) {
    Planes xq(s.N * s.C, L, slack(s));
    phase_split(x, s.N * s.C, s.H, s.W, s.pt, s.pl, L, xq.data());
    const std::vector<int64_t> koff = input_koff(s, L);
    auto out = row_split([&](int64_t b, int64_t i, int64_t oh, int64_t ow, int64_t len, const float* acc) {
      conv_emit(epi, b / G, (b % G) * Og + i, oh, ow, 1, len, acc);
    }, Wq, Wo);
    gemm_packed_f32(s.N * G, Og, Ho * Wq, Kd, packA,
                    ShiftPackB{xq.data(), koff.data(), s.C * L.plane(), s.Cg() * L.plane(), G}, out, GemmSplit::Columns);
    return;
  }
  // Bands: output rows [oh0, oh0 + rows) of image n read padded rows from oh0*sh on; the band's layout has
  // rows + (KH-1)*dh/sh rows per phase.
  const int64_t extra = (s.KH - 1) * s.dh / s.sh, perRow = s.C * s.sh * s.sw * Wq;
  const int64_t hb = std::max<int64_t>(1, conv_scratch_floats() / perRow - extra);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t oh0 = 0; oh0 < Ho; oh0 += hb) {
      const int64_t rows = std::min(hb, Ho - oh0);
      const Layout Lb{s.sh, s.sw, rows + extra, Wq};
      Planes xq(s.C, Lb, slack(s));
      phase_split(x + n * s.C * s.H * s.W, s.C, s.H, s.W, s.pt - oh0 * s.sh, s.pl, Lb, xq.data());
      const std::vector<int64_t> koff = input_koff(s, Lb);
      auto out = row_split([&](int64_t g, int64_t i, int64_t oh, int64_t ow, int64_t len, const float* acc) {
        conv_emit(epi, n, g * Og + i, oh0 + oh, ow, 1, len, acc);
      }, Wq, Wo);
      gemm_packed_f32(G, Og, rows * Wq, Kd, packA, ShiftPackB{xq.data(), koff.data(), 0, s.Cg() * Lb.plane(), G}, out, GemmSplit::Columns);
    }
}

// Input gradient, split by output stride phase: dx[c, ih = u*sh + a, iw = v*sw + b] takes the taps with
// (a + pt - kh*dh) % sh == 0 and (b + pl - kw*dw) % sw == 0 only, each reading dy at (u + eh, v + ew) with
// eh = (a + pt - kh*dh)/sh, ew = (b + pl - kw*dw)/sw. So each of the sh*sw phases is a stride-1 correlation of a
// zero-margined copy of dy (rows of Wq) with its own taps, one GEMM each: M = C/G, N = Hu*Wq, K = O/G*taps.
// Stride 1 is the single phase with every tap (a correlation with the flipped kernel); no tap multiplies a
// zero that the stride inserted.  epi(n, c, ih, iw, acc).
template <class Epi>
void conv2d_bwd_data_phases(const Conv2dShape& s, const float* dy, const float* w, Epi& epi) {
  using namespace conv_shift;
  const int64_t Ho = s.Ho(), Wo = s.Wo(), G = s.G, Og = s.Og(), Cg = s.Cg(), KH = s.KH, KW = s.KW;
  auto floordiv = [](int64_t x, int64_t d) { return x >= 0 ? x / d : -((-x + d - 1) / d); };
  // Margins covering every phase's taps: eh ranges over [(0 + pt - (KH-1)*dh)/sh, (sh-1 + pt)/sh].
  const int64_t ehMin = floordiv(s.pt - (KH - 1) * s.dh, s.sh), ehMax = floordiv(s.sh - 1 + s.pt, s.sh);
  const int64_t ewMin = floordiv(s.pl - (KW - 1) * s.dw, s.sw), ewMax = floordiv(s.sw - 1 + s.pl, s.sw);
  const int64_t Pt = std::max<int64_t>(0, -ehMin), Pl = std::max<int64_t>(0, -ewMin);
  const int64_t Hu0 = (s.H + s.sh - 1) / s.sh, Wv0 = (s.W + s.sw - 1) / s.sw;
  const Layout L{1, 1, Pt + std::max(Ho, Hu0 + std::max<int64_t>(ehMax, 0)), Pl + std::max(Wo, Wv0 + std::max<int64_t>(ewMax, 0))};
  const int64_t Wq = L.Wq;
  Planes dyq(s.N * s.O, L, 2 * Wq + 64);
  phase_split(dy, s.N * s.O, Ho, Wo, Pt, Pl, L, dyq.data());
  for (int64_t a = 0; a < s.sh; ++a)
    for (int64_t b = 0; b < s.sw; ++b) {
      const int64_t Hu = (s.H - a + s.sh - 1) / s.sh, Wv = (s.W - b + s.sw - 1) / s.sw;
      if (Hu <= 0 || Wv <= 0) continue;
      std::vector<int64_t> th, tw;  // this phase's taps
      for (int64_t kh = 0; kh < KH; ++kh)
        if ((a + s.pt - kh * s.dh) % s.sh == 0) th.push_back(kh);
      for (int64_t kw = 0; kw < KW; ++kw)
        if ((b + s.pl - kw * s.dw) % s.sw == 0) tw.push_back(kw);
      const int64_t nth = int64_t(th.size()), ntw = int64_t(tw.size()), T = nth * ntw, Kd = Og * T;
      // koff over k = (o, t); A(g, c, (o, t)) = w[g*Og + o, c, th, tw], packed once straight from w (DgradPackA).
      std::vector<int64_t> koff(size_t(std::max<int64_t>(1, Kd))), tap(size_t(std::max<int64_t>(1, T)));
      for (int64_t i = 0; i < nth; ++i)
        for (int64_t k = 0; k < ntw; ++k) tap[size_t(i * ntw + k)] = th[size_t(i)] * KW + tw[size_t(k)];
      for (int64_t o = 0; o < Og; ++o)
        for (int64_t i = 0; i < nth; ++i)
          for (int64_t k = 0; k < ntw; ++k) {
            const int64_t kh = th[size_t(i)], kw = tw[size_t(k)];
            koff[size_t(o * T + i * ntw + k)] = o * L.plane() + (floordiv(a + s.pt - kh * s.dh, s.sh) + Pt) * Wq +
                                                floordiv(b + s.pl - kw * s.dw, s.sw) + Pl;
          }
      auto pre = prepack_a(conv_shift::DgradPackA{w, tap.data(), Og, Cg, KH * KW, T}, G, [](int64_t g) { return g; },
                           Cg, Kd, [G](int64_t bb) { return bb % G; });
      auto& packA = pre.packer;
      auto out = row_split([&](int64_t bb, int64_t i, int64_t u, int64_t v, int64_t len, const float* acc) {
        conv_emit(epi, bb / G, (bb % G) * Cg + i, u * s.sh + a, v * s.sw + b, s.sw, len, acc);
      }, Wq, Wv);
      gemm_packed_f32(s.N * G, Cg, Hu * Wq, Kd, packA,
                      ShiftPackB{dyq.data(), koff.data(), s.O * L.plane(), Og * L.plane(), G}, out, GemmSplit::Columns);
    }
}

}  // namespace kiln
