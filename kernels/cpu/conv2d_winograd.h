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
// kernel, offsets 2 - pt, 2 - pl), so both run here. Stride 2 has its own bilinear algorithm of the same form (S2:
// 25 products for a 2x2 tile's 36 multiply-adds, 1.44x fewer, every coefficient 0 or +-1), and so has its input
// gradient with odd padding (S2T, on 4x4 dx tiles); the three share this driver and its 16-panel weight transform.
// When: conv_winograd() (per shape; KILN_CONV_WINOGRAD=0 never, =1 whenever the shape allows, for the tests).
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "conv2d_shift.h"

namespace kiln {

// Use Winograd for this 3x3 conv? ch_in / ch_out: the channels the GEMM sums over / produces; tiles: the number of
// 2x2 output tiles of one image (of dy's 2x2 tiles for a stride-2 input gradient); strided: a stride-2 conv (S2 /
// S2T). Per image, not over the batch: the choice must not depend on the batch
// size, or one image's result would (Winograd rounds differently), and a data-parallel run (2 ranks x batch 1)
// would not reproduce the single process (batch 2): it did not, by 2e-5 on the ID adapter's weights after 5 PuLID
// steps, when 64 tiles an image took the shift GEMM and 2 x 64 over a batch took Winograd. Its fixed cost is the
// weight transform (16*C*O floats written and read again, ~7 ns per channel pair on 2 cores, bench/README.md "Winograd"), its gain ~20 multiply-adds per tile and
// channel pair, so it pays from a few dozen tiles up, later where the GEMM is faster: AVX-512 paths from 32 channels
// each way and 256 tiles (32x32 outputs; since the pipeline runs fused per thread at these channel counts,
// wino::fused_rows: 32 ch 64² forward 0.32 -> 0.24 ms, input gradient 0.39 -> 0.24, 32² 1.3-1.5x, 16x16 and 24x24
// outputs slower), from 64 channels at 128 tiles, from 128 channels at 64 tiles (16x16 outputs, 128-640 channels,
// 1.1-1.4x faster than the shift GEMM, whose weight packing is a large part of such a call); the others (half the FMA
// width) from 64 tiles and 32 channels. Stride 2 saves 11 of 36
// multiply-adds a tile, not 20, over 25 GEMMs of a quarter the columns: from 256 tiles (a 32x32 output) on every
// path (measured, bench/README.md "Stride-2 Winograd").
// yield: a path measured faster takes this shape by default (the forward on w read in place, conv2d_small.h
// conv_arows_fwd: 16x16 outputs at 128-640 channels 1.0-1.2x faster than F(2x2,3x3) on AVX-512).
// KILN_CONV_WINOGRAD=0: never; =1: whenever the shape allows (the tests force both).
inline bool conv_winograd(int64_t ch_in, int64_t ch_out, int64_t tiles, bool strided = false, bool yield = false) {
  static const int mode = env_switch("KILN_CONV_WINOGRAD");
  if (mode >= 0) return mode == 1;
  if (yield) return false;
  const bool wide = cpu_isa() == Isa::Avx512 || cpu_isa() == Isa::Avx512Bf16;
  const int64_t ch = std::min(ch_in, ch_out);
  const int64_t min_tiles = strided || (wide && ch < 64) ? 256 : wide && ch < 128 ? 128 : 64;
  return ch >= 32 && tiles >= min_tiles;
}

namespace wino {

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

// The bilinear algorithms, each y = A^T [(G g G^T) . (B^T d B)] A on OT x OT output tiles:
//   rows4       the 4 distinct rows of G applied to 3 vectors (the weight transform's building block);
//   P, R, step  transformed points (P = 16 or 25), input rows (and columns) a tile reads, and input rows (columns)
//               from one tile to the next;
//   u_of(xi)    which of the 16 transformed weights point xi multiplies;
//   input       (B^T d B) for one (channel, tile row): d = R padded input rows of step*tw + R - step floats, into
//               v[xi][t], t < tw, with scratch(tw) floats of scratch;
//   output      (A^T m A) for one (output channel, tile row): m[xi*xs + t] into the tile row's OT output rows y[i],
//               OT*tw floats each.
struct F23 {  // Winograd F(2x2, 3x3), stride 1: B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], A^T = [1 1 1 0; 0 1 -1 -1]
  static constexpr int P = 16, R = 4, step = 2, OT = 2;
  static int u_of(int xi) { return xi; }
  // G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
  template <class vec>
  static void rows4(const vec r0, const vec r1, const vec r2, vec out[4]) {
    const vec half = vec{} + 0.5f;
    out[0] = r0;
    out[1] = half * (r0 + r1 + r2);
    out[2] = half * (r0 - r1 + r2);
    out[3] = r2;
  }
  static int64_t scratch(int64_t tw) { return 4 * (2 * tw + 2); }
  static void input(const float* const* d, int64_t tw, float* tmp, float* const* v) {
    const int64_t wb = 2 * tw + 2;
    const float *d0 = d[0], *d1 = d[1], *d2 = d[2], *d3 = d[3];
    float *e0 = tmp, *e1 = e0 + wb, *e2 = e1 + wb, *e3 = e2 + wb;
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
      float *v0 = v[4 * a], *v1 = v[4 * a + 1], *v2 = v[4 * a + 2], *v3 = v[4 * a + 3];
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
  static void output(const float* m, int64_t xs, int64_t tw, float* const* y) {
    float *y0 = y[0], *y1 = y[1];
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
  }
};

// Stride 2: the two outputs y0 = g0 x0 + g1 x1 + g2 x2, y1 = g0 x2 + g1 x3 + g2 x4 of a 5-input window are the odd
// inputs' 2-tap conv (x0, x2, x4) * (g0, g2), which F(2, 2) does in 3 products, (x0 - x2) g0, x2 (g0 + g2),
// (x4 - x2) g2, plus the even inputs' 1-tap x1 g1, x3 g1: 5 products for 6 multiply-adds, so 25 for the 36 of a
// 2x2 tile (1.44x fewer). B^T = [1 0 -1 0 0; 0 0 1 0 0; 0 0 -1 0 1; 0 1 0 0 0; 0 0 0 1 0],
// A^T = [1 1 0 1 0; 0 1 1 0 1]; every coefficient 0 or +-1.
struct S2 {
  static constexpr int P = 25, R = 5, step = 4, OT = 2;
  static int u_of(int xi) { return 4 * std::min(xi / 5, 3) + std::min(xi % 5, 3); }
  // G = [1 0 0; 1 0 1; 0 0 1; 0 1 0] (the fifth row, g1 again, is the fourth's: u_of)
  template <class vec>
  static void rows4(const vec r0, const vec r1, const vec r2, vec out[4]) {
    out[0] = r0;
    out[1] = r0 + r2;
    out[2] = r2;
    out[3] = r1;
  }
  // The rows split into their 4 column phases (q[s][k][t] = d[s][4t + k]), so the column transform runs on
  // contiguous vectors; then B^T's rows on those phase planes: x0 - x2, x2, x4 - x2, x1, x3.
  static int64_t scratch(int64_t tw) { return (5 + 2) * 4 * (tw + 1); }
  static void input(const float* const* d, int64_t tw, float* tmp, float* const* v) {
    const int64_t n = tw + 1;  // phase 0 has tw + 1 entries (the last tile's x4), the others tw
    float* q = tmp;            // q[(s*4 + k)*n + t]
    for (int s = 0; s < 5; ++s) {
      const float* ds = d[s];
      for (int64_t t = 0; t < tw; ++t)
        for (int k = 0; k < 4; ++k) q[(s * 4 + k) * n + t] = ds[4 * t + k];
      q[(s * 4) * n + tw] = ds[4 * tw];
    }
    float* e = q + 5 * 4 * n;  // rows 0 and 2 of B^T d: x0 - x2 and x4 - x2, per phase
    for (int k = 0; k < 4; ++k) {
      const int64_t len = k == 0 ? n : tw;
      const float *x0 = q + k * n, *x2 = q + (8 + k) * n, *x4 = q + (16 + k) * n;
      float *e0 = e + k * n, *e2 = e + (4 + k) * n;
#pragma omp simd
      for (int64_t t = 0; t < len; ++t) {
        e0[t] = x0[t] - x2[t];
        e2[t] = x4[t] - x2[t];
      }
    }
    const float* rows[5] = {e, q + 8 * n, e + 4 * n, q + 4 * n, q + 12 * n};  // phase planes of each row of B^T d
    for (int a = 0; a < 5; ++a) {
      const float *p0 = rows[a], *p1 = p0 + n, *p2 = p1 + n, *p3 = p2 + n;
      float *v0 = v[5 * a], *v1 = v[5 * a + 1], *v2 = v[5 * a + 2], *v3 = v[5 * a + 3], *v4 = v[5 * a + 4];
#pragma omp simd
      for (int64_t t = 0; t < tw; ++t) {
        v0[t] = p0[t] - p2[t];
        v1[t] = p2[t];
        v2[t] = p0[t + 1] - p2[t];
        v3[t] = p1[t];
        v4[t] = p3[t];
      }
    }
  }
  static void output(const float* m, int64_t xs, int64_t tw, float* const* y) {
    float *y0 = y[0], *y1 = y[1];
#pragma omp simd
    for (int64_t t = 0; t < tw; ++t) {
      float f0[5], f1[5];
      for (int b = 0; b < 5; ++b) {
        const float m1 = m[(5 + b) * xs + t];
        f0[b] = m[b * xs + t] + m1 + m[(15 + b) * xs + t];
        f1[b] = m1 + m[(10 + b) * xs + t] + m[(20 + b) * xs + t];
      }
      y0[2 * t] = f0[0] + f0[1] + f0[3];
      y0[2 * t + 1] = f0[1] + f0[2] + f0[4];
      y1[2 * t] = f1[0] + f1[1] + f1[3];
      y1[2 * t + 1] = f1[1] + f1[2] + f1[4];
    }
  }
};

// The input gradient of the stride-2 conv with odd padding (dx = the stride-2 transposed conv of dy): of four
// consecutive dx positions from an even one, 4u, the odd ones are F(2, 2) over dy[2u + h .. 2u + h + 2]
// (h = (p - 1)/2) with taps (g2, g0) and the even ones one tap g1 each: dx0 = g1 e0, dx1 = g2 e0 + g0 e1,
// dx2 = g1 e1, dx3 = g2 e1 + g0 e2, in 5 products for 6 multiply-adds (25 for 36 on 4x4 tiles, 1.44x fewer).
// Points (e0 - e1) g2, e1 (g0 + g2), (e2 - e1) g0, e0 g1, e1 g1: S2's weights on the flipped kernel.
struct S2T {
  static constexpr int P = 25, R = 3, step = 2, OT = 4;
  static int u_of(int xi) { return S2::u_of(xi); }
  template <class vec>
  static void rows4(const vec r0, const vec r1, const vec r2, vec out[4]) { S2::rows4(r0, r1, r2, out); }
  static int64_t scratch(int64_t) { return 0; }
  static void input(const float* const* d, int64_t tw, float*, float* const* v) {
    for (int a = 0; a < 5; ++a) {  // rows of B^T d: d0 - d1, d1, d2 - d1, d0, d1
      const float* r0 = d[a == 2 ? 2 : a == 1 || a == 4 ? 1 : 0];
      const float* r1 = d[1];
      const bool diff = a <= 2 && a != 1;
      float *v0 = v[5 * a], *v1 = v[5 * a + 1], *v2 = v[5 * a + 2], *v3 = v[5 * a + 3], *v4 = v[5 * a + 4];
      if (diff) {
#pragma omp simd
        for (int64_t t = 0; t < tw; ++t) {
          const float p0 = r0[2 * t] - r1[2 * t], p1 = r0[2 * t + 1] - r1[2 * t + 1],
                      p2 = r0[2 * t + 2] - r1[2 * t + 2];
          v0[t] = p0 - p1;
          v1[t] = p1;
          v2[t] = p2 - p1;
          v3[t] = p0;
          v4[t] = p1;
        }
      } else {
#pragma omp simd
        for (int64_t t = 0; t < tw; ++t) {
          const float p0 = r0[2 * t], p1 = r0[2 * t + 1], p2 = r0[2 * t + 2];
          v0[t] = p0 - p1;
          v1[t] = p1;
          v2[t] = p2 - p1;
          v3[t] = p0;
          v4[t] = p1;
        }
      }
    }
  }
  static void output(const float* m, int64_t xs, int64_t tw, float* const* y) {
    float *y0 = y[0], *y1 = y[1], *y2 = y[2], *y3 = y[3];
#pragma omp simd
    for (int64_t t = 0; t < tw; ++t) {
      float f[4][5];  // rows of A^T m: m3, m0 + m1, m4, m1 + m2
      for (int b = 0; b < 5; ++b) {
        const float m1 = m[(5 + b) * xs + t];
        f[0][b] = m[(15 + b) * xs + t];
        f[1][b] = m[b * xs + t] + m1;
        f[2][b] = m[(20 + b) * xs + t];
        f[3][b] = m1 + m[(10 + b) * xs + t];
      }
      float* ys[4] = {y0, y1, y2, y3};
      for (int i = 0; i < 4; ++i) {
        ys[i][4 * t] = f[i][3];
        ys[i][4 * t + 1] = f[i][0] + f[i][1];
        ys[i][4 * t + 2] = f[i][4];
        ys[i][4 * t + 3] = f[i][1] + f[i][2];
      }
    }
  }
};

template <class G>
struct UOf {
  int64_t operator()(int64_t b) const { return G::u_of(int(b)); }
};

// U = G g G^T for the MR rows i0 + r of one panel and columns k0 .. k0 + KB, into the driver's panel layout
// (PrepackedA: u[xi*per + k*MR + r]); rows past M are zero. Row i, column k's kernel: g[(i*K + k)*9 + e] (forward),
// or with `Transposed` g[(k*M + i)*9 + 8 - e] (the input gradient's flipped [K, M] kernel). Vectorized across the
// panel's rows: 9 lane-inserted loads and ~5 vector operations per kernel (per-kernel scalar code with 16 scattered
// stores, and GCC's gathers, each cost more than the GEMM at 640 channels). The block goes through a local buffer,
// so the 16 destinations (per floats apart, often a multiple of 4 KiB: the same L1 sets) take one memcpy each.
template <class G, int MR, bool Transposed>
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
  for (int kk = 0; kk < kb; ++kk) {
    const int64_t off = (k0 + kk) * kstep;
    vec w[9];
    for (int e = 0; e < 9; ++e) w[e] = VecOf<MR>::lanes(gr, off + (Transposed ? 8 - e : e));  // lane inserts
    vec t[3][4];  // t[j][a] = (G w)[a][j]
    for (int j = 0; j < 3; ++j) G::rows4(w[j], w[3 + j], w[6 + j], t[j]);
    for (int a = 0; a < 4; ++a) {
      vec q[4];
      G::rows4(t[0][a], t[1][a], t[2][a], q);
      for (int b = 0; b < 4; ++b) __builtin_memcpy(&blk[a * 4 + b][kk * MR], &q[b], sizeof(vec));
    }
    for (int xi = 0; xi < 16; ++xi)
      for (int r = rows; r < MR; ++r) blk[xi][kk * MR + r] = 0.0f;
  }
  for (int xi = 0; xi < 16; ++xi) __builtin_memcpy(u + xi * per + k0 * MR, blk[xi], size_t(kb) * MR * sizeof(float));
}

// Every panel of U. The forward kernel's rows are contiguous along k, so each item is a panel; the transposed
// kernel's are contiguous along the rows, so each item is a block of k for every panel (a panel's walk down k
// would read 9*MR floats every 9*M).
template <class G, int MR>
void weight_panels(const float* g, int64_t M, int64_t K, bool transposed, int64_t per, float* u) {
  const int64_t np = (M + MR - 1) / MR, nk = (K + KB - 1) / KB;
  if (!transposed) {
#pragma omp parallel for schedule(static) if (par_copy(double(16 * M * K)))
    for (int64_t q = 0; q < np; ++q)
      for (int64_t kq = 0; kq < nk; ++kq) weight_block<G, MR, false>(g, M, K, q * MR, kq * KB, per, u + q * MR * K);
  } else {
#pragma omp parallel for schedule(static) if (par_copy(double(16 * M * K)))
    for (int64_t kq = 0; kq < nk; ++kq)
      for (int64_t q = 0; q < np; ++q) weight_block<G, MR, true>(g, M, K, q * MR, kq * KB, per, u + q * MR * K);
  }
}

// A row stride of at least n floats that is an odd number of 64-byte lines: rows read together (a GEMM panel's k
// rows of V, a tile's 16 values of M) then fall in different L1 sets; at n = 1024 tiles (a 64x64 output) a stride
// of n put every row of a panel in the same sets, and the GEMM ran at half speed.
inline int64_t odd_lines(int64_t n) {
  const int64_t l = (n + 15) / 16;
  return (l | 1) * 16;
}

// Tile rows per group of the fused pipeline (conv3x3_winograd), 0 for the stage-by-stage one. Stage by stage, the
// threads share each of the three stages (input transform into V, P GEMMs into M, output transform), with a barrier
// between; V and M (P*(C + O) floats a tile, 3.2 MiB each at 64 channels on a 56² image) go through L3 between them.
// Fused, each thread takes groups of tile rows and runs all three stages on a group alone (two groups a thread,
// handed out dynamically): no barrier, and larger GEMMs per call than an L2-sized group would give (groups of a
// quarter or half the L2 measured slower). But a thread reads all of U (P*C*O floats) per group, so it is taken
// where U takes at most a quarter of the L2 (64 channels each way on a 1 MiB L2; at 128-256 channels on 28²-56²
// images it measured 0.9-1.1x). Measured on Zen 5, 2 threads: 64 ch 56² 0.87 -> 0.73 ms, 64² 0.73 -> 0.65 ms,
// 28² 0.40 -> 0.32 ms; AVX2 path 32 ch 64² 0.54 -> 0.36 ms, 64 ch 56² 0.83 -> 0.85. per_row: floats of V and M a
// tile row needs; rows_all: tile rows in all; u: floats of U. A group holds at most the conv's scratch limit
// (conv_scratch_floats()) over the threads. KILN_CONV_WINO_FUSED=0|1 forces it off / on (on: groups of one tile row).
inline int64_t fused_rows(int64_t per_row, int64_t rows_all, int64_t u) {
  static const int mode = env_switch("KILN_CONV_WINO_FUSED");
  if (mode >= 0) return mode;
  const int64_t thr = omp_get_max_threads();
  if (u * int64_t(sizeof(float)) > int64_t(cpu_caches().l2) / 4 || rows_all < 2 * thr) return 0;
  return std::max<int64_t>(1, std::min(rows_all / (2 * thr), conv_scratch_floats() / thr / per_row));
}

}  // namespace wino

// F23: y[n, o, oh, ow] = sum_{c, kh, kw} g(o, c, kh, kw) * x[n, c, oh - pt + kh, ow - pl + kw]; S2: the same at
// x[n, c, 2*oh - pt + kh, 2*ow - pl + kw]; S2T: the input gradient of an S2 conv with padding 1 - 2*pt, 1 - 2*pl (x
// is its dy, y its dx). 0 outside the H x W input, for oh < Ho, ow < Wo; epi(n, o, oh, ow, ...) as conv_emit. The
// weights: w[(o*C + c)*9 + kh*3 + kw] (forward, w is [O, C, 3, 3]) or, with `transposed`, the input gradient's
// w[(c*O + o)*9 + (2-kh)*3 + (2-kw)] (w is the forward conv's [C, O, 3, 3] kernel, flipped).
template <class Scheme, class Epi>
void conv3x3_winograd(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t Ho, int64_t Wo, int64_t pt,
                      int64_t pl, const float* x, const float* w, bool transposed, Epi& epi) {
  constexpr int P = Scheme::P, R = Scheme::R, step = Scheme::step, OT = Scheme::OT;
  const int64_t th = (Ho + OT - 1) / OT, tw = (Wo + OT - 1) / OT;
  // Weights: U in the driver's prepacked panel layout (PrepackedA: panel q of mr rows at q*mr*C, [k < C][r < mr]).
  const int mr = gemm_path_mr();
  PrepackedA<wino::UOf<Scheme>> U{nullptr, O, C, mr, wino::UOf<Scheme>{}};
  const int64_t per = U.per();
  AlignedBuf ubuf(size_t(16 * per));
  U.p = ubuf.p;
  if (mr == 8) wino::weight_panels<Scheme, 8>(w, O, C, transposed, per, ubuf.p);
  else wino::weight_panels<Scheme, 4>(w, O, C, transposed, per, ubuf.p);  // every other path's MR (gemm_cfg)
  const int64_t rows_all = N * th;
  const int64_t wb = step * tw + R - step;  // input columns a tile row reads: [-pl, wb - pl)
  struct Scratch {  // one thread's input / output transform buffers: R padded input rows, the scheme's, OT output rows
    std::vector<float> d, tmp, y;
    const float* dr[R];
    float* vr[P];
    float* yr[OT];
    Scratch(int64_t tw, int64_t wb) : d(size_t(R * wb)), tmp(size_t(Scheme::scratch(tw))), y(size_t(OT * OT * tw)) {
      for (int s = 0; s < R; ++s) dr[s] = d.data() + s * wb;
      for (int i = 0; i < OT; ++i) yr[i] = y.data() + i * OT * tw;
    }
  };
  // (B^T d B) of channel c, tile row r0 + r of the (n, ty) list, into V (rows Tp floats apart).
  auto input_row = [&](int64_t c, int64_t r0, int64_t r, float* V, int64_t Tp, Scratch& sc) {
    float* d = sc.d.data();
    const int64_t n = (r0 + r) / th, ty = (r0 + r) % th;
    const float* xc = x + (n * C + c) * H * W;
    const int64_t lo = std::min(wb, std::max<int64_t>(0, pl)), hi = std::max(lo, std::min(wb, W + pl));
    for (int s = 0; s < R; ++s) {
      float* ds = d + s * wb;
      const int64_t ih = step * ty - pt + s;
      if (ih < 0 || ih >= H) {
        std::fill(ds, ds + wb, 0.0f);
        continue;
      }
      std::fill(ds, ds + lo, 0.0f);
      __builtin_memcpy(ds + lo, xc + ih * W + (lo - pl), size_t(hi - lo) * sizeof(float));
      std::fill(ds + hi, ds + wb, 0.0f);
    }
    for (int xi = 0; xi < P; ++xi) sc.vr[xi] = V + (xi * C + c) * Tp + r * tw;
    Scheme::input(sc.dr, tw, sc.tmp.data(), sc.vr);
  };
  // M[xi][o][t] = U[xi] . V[xi] for T tiles (rows of V and M Tp floats apart); koff: C entries of scratch.
  auto gemm = [&](int64_t T, int64_t Tp, const float* V, float* M, int64_t* koff) {
    for (int64_t c = 0; c < C; ++c) koff[c] = c * Tp;
    gemm_packed_f32(P, O, T, C, U, conv_shift::ShiftPackB{V, koff, C * Tp, 0, 1}, DenseStore{M, O, Tp}, GemmSplit::Columns);
  };
  // (A^T m A) of output channel o, tile row r0 + r, from M; its OT output rows handed over as runs of Wo.
  auto output_row = [&](int64_t o, int64_t r0, int64_t r, const float* M, int64_t Tp, Scratch& sc) {
    const int64_t n = (r0 + r) / th, ty = (r0 + r) % th;
    Scheme::output(M + o * Tp + r * tw, O * Tp, tw, sc.yr);
    for (int i = 0; i < OT && OT * ty + i < Ho; ++i) conv_emit(epi, n, o, OT * ty + i, 0, 1, Wo, sc.yr[i]);
  };
  const int64_t per_row = P * (C + O) * tw;  // floats of V and M a tile row needs
  const int64_t fused_rows = wino::fused_rows(per_row, rows_all, 16 * per);  // 16 * per: floats of U
  if (fused_rows > 0) {
    // Each thread runs all three stages on its own groups of tile rows (wino::fused_rows); the GEMM runs on the calling
    // thread inside the parallel region.
    const int64_t nchunk = (rows_all + fused_rows - 1) / fused_rows, Tmax = wino::odd_lines(fused_rows * tw);
#pragma omp parallel
    {
      Scratch sc(tw, wb);
      std::vector<int64_t> koff(static_cast<size_t>(C));
      AlignedBuf vbuf(size_t(P * C * Tmax)), mbuf(size_t(P * O * Tmax));
#pragma omp for schedule(dynamic)
      for (int64_t q = 0; q < nchunk; ++q) {
        const int64_t r0 = q * fused_rows, nr = std::min(fused_rows, rows_all - r0);
        for (int64_t c = 0; c < C; ++c)
          for (int64_t r = 0; r < nr; ++r) input_row(c, r0, r, vbuf.p, Tmax, sc);
        gemm(nr * tw, Tmax, vbuf.p, mbuf.p, koff.data());
        for (int64_t o = 0; o < O; ++o)
          for (int64_t r = 0; r < nr; ++r) output_row(o, r0, r, mbuf.p, Tmax, sc);
      }
    }
    return;
  }
  // Chunks of whole tile rows (n, ty) whose V and M fit the conv's scratch limit (conv_scratch_floats()), each stage
  // shared by the threads.
  const int64_t chunk = std::max<int64_t>(1, std::min(rows_all, conv_scratch_floats() / per_row));
  const int64_t Tmax = wino::odd_lines(chunk * tw);
  AlignedBuf vbuf(size_t(P * C * Tmax)), mbuf(size_t(P * O * Tmax));
  std::vector<int64_t> koff(static_cast<size_t>(C));
  for (int64_t r0 = 0; r0 < rows_all; r0 += chunk) {
    const int64_t nr = std::min(chunk, rows_all - r0), T = nr * tw, Tp = wino::odd_lines(T);  // Tp: row stride
    float* V = vbuf.p;
    float* M = mbuf.p;
    // Input transform: one (c, tile row) per item.
#pragma omp parallel if (par_copy(double(P * C * T)))
    {
      Scratch sc(tw, wb);
#pragma omp for collapse(2) schedule(static)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t r = 0; r < nr; ++r) input_row(c, r0, r, V, Tp, sc);
    }
    gemm(T, Tp, V, M, koff.data());
    // Output transform: one (o, tile row) per item.
#pragma omp parallel if (par_copy(double(P * O * T)))
    {
      Scratch sc(tw, wb);
#pragma omp for collapse(2) schedule(static)
      for (int64_t o = 0; o < O; ++o)
        for (int64_t r = 0; r < nr; ++r) output_row(o, r0, r, M, Tp, sc);
    }
  }
}

}  // namespace kiln
