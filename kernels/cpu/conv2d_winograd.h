// Winograd F(2x2, 3x3) for 3x3, stride-1, dilation-1, ungrouped convolutions (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016). Each 2x2 block of output (a "tile") comes from the 4x4 block of input under
// it through 16 products in the transformed domain, so the GEMM does 16*C*O multiply-adds per tile where the direct
// (shift) GEMM does 36*C*O: 2.25x fewer. Per chunk of tiles:
//   V[xi][c][t] = (B^T d_t B)[xi]                     input transform, d_t the tile's 4x4 input block (0 outside x)
//   U[xi][o][c] = (G g_oc G^T)[xi]                    weight transform, once per call, written as the GEMM's A panels
//   M[xi][o][t] = sum_c U[xi][o][c] * V[xi][c][t]    16 GEMMs (batch 16) on gemm.h's driver, V read in place
//   y[tile]     = A^T M_t A                           output transform, handed to the epilogue as output row runs
// with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
// A^T = [1 1 1 0; 0 1 -1 -1]. Every coefficient is 0, +-1 or +-0.5, so the transforms only add sums of at most 4
// (input), 9 (weights, halved exactly) and 9 (output) terms to the GEMM's rounding; F(4x4, 3x3) would save 4x but
// its coefficients (1/4, 1/6, 1/24, ...) amplify rounding ~10-100x, which the f32 bound of the kernel tests (1e-5 of
// the sum of |x*w|) does not allow.
//
// The input gradient of such a conv is the same kind of conv (a correlation of dy with the flipped, transposed
// kernel, offsets 2 - pt, 2 - pl), so both run here. When: conv_winograd() (per shape; KILN_CONV_WINOGRAD=0 never,
// =1 whenever the shape allows, for the tests).
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "conv2d_shift.h"

namespace kiln {

// Use Winograd for this 3x3 stride-1 conv? ch_in / ch_out: the channels the GEMM sums over / produces; tiles: the
// number of 2x2 output tiles of one image. Per image, not over the batch: the choice must not depend on the batch
// size, or one image's result would (Winograd rounds differently), and a data-parallel run (2 ranks x batch 1)
// would not reproduce the single process (batch 2): it did not, by 2e-5 on the ID adapter's weights after 5 PuLID
// steps, when 64 tiles an image took the shift GEMM and 2 x 64 over a batch took Winograd. Its fixed cost is the
// weight transform (16*C*O floats written and read again, ~7 ns per channel pair on 2 cores, bench/README.md "Winograd"), its gain ~20 multiply-adds per tile and
// channel pair, so it pays from a few dozen tiles up, later where the GEMM is faster: AVX-512 paths from 128 tiles
// and 64 channels each way, the others (half the FMA width) from 64 tiles and 32 channels.
// KILN_CONV_WINOGRAD=0: never; =1: whenever the shape allows (the tests force both).
inline bool conv_winograd(int64_t ch_in, int64_t ch_out, int64_t tiles) {
  static const int mode = env_switch("KILN_CONV_WINOGRAD");
  if (mode >= 0) return mode == 1;
  const bool wide = cpu_isa() == Isa::Avx512 || cpu_isa() == Isa::Avx512Bf16;
  const int64_t min_ch = wide ? 64 : 32, min_tiles = wide ? 128 : 64;
  return ch_in >= min_ch && ch_out >= min_ch && tiles >= min_tiles;
}

namespace wino {

struct Ident {
  int64_t operator()(int64_t b) const { return b; }
};

constexpr int KB = 32;  // columns (k) per block of the weight transform

template <int N> struct VecOf;
template <> struct VecOf<4> {
  typedef float type __attribute__((vector_size(16)));
  static type lanes(const float* const* p, int64_t o) { return type{p[0][o], p[1][o], p[2][o], p[3][o]}; }
};
template <> struct VecOf<8> {
  typedef float type __attribute__((vector_size(32)));
  static type lanes(const float* const* p, int64_t o) {
    return type{p[0][o], p[1][o], p[2][o], p[3][o], p[4][o], p[5][o], p[6][o], p[7][o]};
  }
};

// U = G g G^T for the MR rows i0 + r of one panel and columns k0 .. k0 + KB, into the driver's panel layout
// (PrepackedA: u[xi*per + k*MR + r]); rows past M are zero. Row i, column k's kernel: g[(i*K + k)*9 + e] (forward),
// or with `Transposed` g[(k*M + i)*9 + 8 - e] (the input gradient's flipped [K, M] kernel). Vectorized across the
// panel's rows: 9 lane-inserted loads and ~5 vector operations per kernel (per-kernel scalar code with 16 scattered
// stores, and GCC's gathers, each cost more than the GEMM at 640 channels). The block goes through a local buffer,
// so the 16 destinations (per floats apart, often a multiple of 4 KiB: the same L1 sets) take one memcpy each.
template <int MR, bool Transposed>
void weight_block(const float* g, int64_t M, int64_t K, int64_t i0, int64_t k0, int64_t per, float* u) {
  using vec = typename VecOf<MR>::type;  // one lane per row of the panel: ymm / xmm for the MR of 8 / 4
  const int rows = int(std::min<int64_t>(MR, M - i0)), kb = int(std::min<int64_t>(KB, K - k0));
  alignas(64) float blk[16][KB * MR];
  const float* gr[MR];  // row r's kernels (rows past M repeat row M - 1; zeroed below)
  for (int r = 0; r < MR; ++r) {
    const int64_t i = i0 + std::min(r, rows - 1);
    gr[r] = Transposed ? g + i * 9 : g + i * K * 9;
  }
  const int64_t kstep = Transposed ? M * 9 : 9;  // from one k to the next
  const vec half = vec{} + 0.5f;
  for (int kk = 0; kk < kb; ++kk) {
    const int64_t off = (k0 + kk) * kstep;
    vec w[9];
    for (int e = 0; e < 9; ++e) w[e] = VecOf<MR>::lanes(gr, off + (Transposed ? 8 - e : e));  // lane inserts
    vec t[4][3];
    for (int j = 0; j < 3; ++j) {
      t[0][j] = w[j];
      t[1][j] = half * (w[j] + w[3 + j] + w[6 + j]);
      t[2][j] = half * (w[j] - w[3 + j] + w[6 + j]);
      t[3][j] = w[6 + j];
    }
    for (int a = 0; a < 4; ++a) {
      const vec q[4] = {t[a][0], half * (t[a][0] + t[a][1] + t[a][2]), half * (t[a][0] - t[a][1] + t[a][2]), t[a][2]};
      for (int b = 0; b < 4; ++b) std::memcpy(&blk[a * 4 + b][kk * MR], &q[b], sizeof(vec));
    }
    for (int xi = 0; xi < 16; ++xi)
      for (int r = rows; r < MR; ++r) blk[xi][kk * MR + r] = 0.0f;
  }
  for (int xi = 0; xi < 16; ++xi) std::memcpy(u + xi * per + k0 * MR, blk[xi], size_t(kb) * MR * sizeof(float));
}

// Every panel of U. The forward kernel's rows are contiguous along k, so each item is a panel; the transposed
// kernel's are contiguous along the rows, so each item is a block of k for every panel (a panel's walk down k
// would read 9*MR floats every 9*M).
template <int MR>
void weight_panels(const float* g, int64_t M, int64_t K, bool transposed, int64_t per, float* u) {
  const int64_t np = (M + MR - 1) / MR, nk = (K + KB - 1) / KB;
  if (!transposed) {
#pragma omp parallel for schedule(static) if (par_copy(double(16 * M * K)))
    for (int64_t q = 0; q < np; ++q)
      for (int64_t kq = 0; kq < nk; ++kq) weight_block<MR, false>(g, M, K, q * MR, kq * KB, per, u + q * MR * K);
  } else {
#pragma omp parallel for schedule(static) if (par_copy(double(16 * M * K)))
    for (int64_t kq = 0; kq < nk; ++kq)
      for (int64_t q = 0; q < np; ++q) weight_block<MR, true>(g, M, K, q * MR, kq * KB, per, u + q * MR * K);
  }
}

// A row stride of at least n floats that is an odd number of 64-byte lines: rows read together (a GEMM panel's k
// rows of V, a tile's 16 values of M) then fall in different L1 sets; at n = 1024 tiles (a 64x64 output) a stride
// of n put every row of a panel in the same sets, and the GEMM ran at half speed.
inline int64_t odd_lines(int64_t n) {
  const int64_t l = (n + 15) / 16;
  return (l | 1) * 16;
}

}  // namespace wino

// y[n, o, oh, ow] = sum_{c, kh, kw} g(o, c, kh, kw) * x[n, c, oh - pt + kh, ow - pl + kw] (0 outside the H x W
// input) for oh < Ho, ow < Wo; epi(n, o, oh, ow, ...) as conv_emit. The weights: w[(o*C + c)*9 + kh*3 + kw]
// (forward, w is [O, C, 3, 3]) or, with `transposed`, the input gradient's w[(c*O + o)*9 + (2-kh)*3 + (2-kw)] (w is
// the forward conv's [C, O, 3, 3] kernel, flipped).
template <class Epi>
void conv3x3_winograd(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t Ho, int64_t Wo, int64_t pt,
                      int64_t pl, const float* x, const float* w, bool transposed, Epi& epi) {
  const int64_t th = (Ho + 1) / 2, tw = (Wo + 1) / 2;
  // Weights: U in the driver's prepacked panel layout (PrepackedA: panel q of mr rows at q*mr*C, [k < C][r < mr]).
  const int mr = gemm_path_mr();
  PrepackedA<wino::Ident> U{nullptr, O, C, mr, wino::Ident{}};
  const int64_t per = U.per();
  AlignedBuf ubuf(size_t(16 * per));
  U.p = ubuf.p;
  if (mr == 8) wino::weight_panels<8>(w, O, C, transposed, per, ubuf.p);
  else wino::weight_panels<4>(w, O, C, transposed, per, ubuf.p);  // every other path's MR (gemm_cfg)
  // Chunks of whole tile rows (n, ty) whose V and M fit the conv's scratch limit (conv_scratch_floats()).
  const int64_t rows_all = N * th;
  const int64_t per_row = 16 * (C + O) * tw;
  const int64_t chunk = std::max<int64_t>(1, std::min(rows_all, conv_scratch_floats() / per_row));
  const int64_t Tmax = wino::odd_lines(chunk * tw);
  AlignedBuf vbuf(size_t(16 * C * Tmax)), mbuf(size_t(16 * O * Tmax));
  std::vector<int64_t> koff(static_cast<size_t>(C));
  const int64_t wb = 2 * tw + 2;  // input columns a tile row reads: [-pl, 2*tw + 2 - pl)
  for (int64_t r0 = 0; r0 < rows_all; r0 += chunk) {
    const int64_t nr = std::min(chunk, rows_all - r0), T = nr * tw, Tp = wino::odd_lines(T);  // Tp: row stride
    float* V = vbuf.p;
    float* M = mbuf.p;
    // Input transform: one (c, tile row) per item; the 4 input rows padded into d, their row combinations into e.
#pragma omp parallel if (par_copy(double(16 * C * T)))
    {
      std::vector<float> d(size_t(4 * wb)), e(size_t(4 * wb));
#pragma omp for collapse(2) schedule(static)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t r = 0; r < nr; ++r) {
          const int64_t n = (r0 + r) / th, ty = (r0 + r) % th;
          const float* xc = x + (n * C + c) * H * W;
          const int64_t lo = std::min(wb, std::max<int64_t>(0, pl)), hi = std::max(lo, std::min(wb, W + pl));
          for (int s = 0; s < 4; ++s) {
            float* ds = d.data() + s * wb;
            const int64_t ih = 2 * ty - pt + s;
            if (ih < 0 || ih >= H) {
              std::fill(ds, ds + wb, 0.0f);
              continue;
            }
            std::fill(ds, ds + lo, 0.0f);
            std::memcpy(ds + lo, xc + ih * W + (lo - pl), size_t(hi - lo) * sizeof(float));
            std::fill(ds + hi, ds + wb, 0.0f);
          }
          const float *d0 = d.data(), *d1 = d0 + wb, *d2 = d1 + wb, *d3 = d2 + wb;
          float *e0 = e.data(), *e1 = e0 + wb, *e2 = e1 + wb, *e3 = e2 + wb;
#pragma omp simd
          for (int64_t q = 0; q < wb; ++q) {
            e0[q] = d0[q] - d2[q];
            e1[q] = d1[q] + d2[q];
            e2[q] = d2[q] - d1[q];
            e3[q] = d1[q] - d3[q];
          }
          const float* ea[4] = {e0, e1, e2, e3};
          for (int a = 0; a < 4; ++a) {
            const float* ev = ea[a];
            float* v0 = V + ((4 * a + 0) * C + c) * Tp + r * tw;
            float* v1 = v0 + C * Tp;
            float* v2 = v1 + C * Tp;
            float* v3 = v2 + C * Tp;
#pragma omp simd
            for (int64_t t = 0; t < tw; ++t) {
              const float p0 = ev[2 * t], p1 = ev[2 * t + 1], p2 = ev[2 * t + 2], p3 = ev[2 * t + 3];
              v0[t] = p0 - p2;
              v1[t] = p1 + p2;
              v2[t] = p2 - p1;
              v3[t] = p1 - p3;
            }
          }
        }
    }
    for (int64_t c = 0; c < C; ++c) koff[size_t(c)] = c * Tp;
    gemm_packed_f32(16, O, T, C, U, conv_shift::ShiftPackB{V, koff.data(), C * Tp, 0, 1}, DenseStore{M, O, Tp}, GemmSplit::Columns);  // M[xi][o][t]
    // Output transform: one (o, tile row) per item, its two output rows handed over as runs of Wo.
#pragma omp parallel if (par_copy(double(16 * O * T)))
    {
      std::vector<float> y(size_t(4 * tw));
#pragma omp for collapse(2) schedule(static)
      for (int64_t o = 0; o < O; ++o)
        for (int64_t r = 0; r < nr; ++r) {
          const int64_t n = (r0 + r) / th, ty = (r0 + r) % th;
          const float* m = M + o * Tp + r * tw;
          const int64_t xs = O * Tp;  // from one xi to the next
          float* y0 = y.data();
          float* y1 = y0 + 2 * tw;
#pragma omp simd
          for (int64_t t = 0; t < tw; ++t) {
            float f0[4], f1[4];
            for (int b = 0; b < 4; ++b) {
              const float m0 = m[(0 + b) * xs + t], m1 = m[(4 + b) * xs + t], m2 = m[(8 + b) * xs + t],
                          m3 = m[(12 + b) * xs + t];
              f0[b] = m0 + m1 + m2;
              f1[b] = m1 - m2 - m3;
            }
            y0[2 * t] = f0[0] + f0[1] + f0[2];
            y0[2 * t + 1] = f0[1] - f0[2] - f0[3];
            y1[2 * t] = f1[0] + f1[1] + f1[2];
            y1[2 * t + 1] = f1[1] - f1[2] - f1[3];
          }
          conv_emit(epi, n, o, 2 * ty, 0, 1, Wo, y0);
          if (2 * ty + 1 < Ho) conv_emit(epi, n, o, 2 * ty + 1, 0, 1, Wo, y1);
        }
    }
  }
}

}  // namespace kiln
