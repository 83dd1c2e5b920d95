// The CPU kernel library: each template instantiated once with a function-pointer epilogue (see kiln_lib.h).
#include "kiln_lib.h"
#include "gemm.h"
#include "gemm_half.h"
#include "conv2d.h"
#include "attention.h"
#include "scatter_add.h"

#include <cstdio>

namespace {
struct Epi3 {
  kiln_epi3 f;
  const kiln_frame* fr;
  void operator()(int64_t a, int64_t b, int64_t c, float v) const { f(fr, a, b, c, v); }
};
// Row epilogues (gemm.h has_row_epi, conv2d_shift.h has_conv_row): one indirect call per run of an output row.
struct EpiRow {
  kiln_epi3r f;
  const kiln_frame* fr;
  void row(int64_t b, int64_t i, int64_t j0, int n, const float* v) const { f(fr, b, i, j0, n, v); }
};
struct Epi4Row {
  kiln_epi4r f;
  const kiln_frame* fr;
  void row(int64_t a, int64_t b, int64_t c, int64_t d, int64_t step, int64_t n, const float* v) const {
    f(fr, a, b, c, d, step, n, v);
  }
};
struct BatchOff {
  const kiln_batch* bt;
  bool second;
  int64_t operator()(int64_t b) const {
    int64_t off = 0;
    for (int i = bt->rank - 1; i >= 0; --i) {
      const int64_t n = bt->shape[i];
      off += (b % n) * (second ? bt->strideB[i] : bt->strideA[i]);
      b /= n;
    }
    return off;
  }
};
int64_t batch_count(const kiln_batch* bt) {
  int64_t n = 1;
  for (int i = 0; i < bt->rank; ++i) n *= bt->shape[i];
  return n;
}
}  // namespace

extern "C" {
#define KILN_EXPORT __attribute__((visibility("default")))

KILN_EXPORT void kiln_gemm_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t rsA, int64_t csA,
                               const float* B, int64_t rsB, int64_t csB, const kiln_batch* bt, kiln_epi3r epi, const kiln_frame* fr) {
  kiln::gemm_f32(batch_count(bt), M, N, K, A, rsA, csA, BatchOff{bt, false}, B, rsB, csB, BatchOff{bt, true}, EpiRow{epi, fr});
}

// The plain store (the epilogue only writes C, row-major, batch-major): full tiles go from the micro-kernel's registers
// to C (kiln::DenseStore), no epilogue call per tile row.
KILN_EXPORT void kiln_gemm_out_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t rsA, int64_t csA,
                                   const float* B, int64_t rsB, int64_t csB, const kiln_batch* bt, float* C) {
  kiln::gemm_f32(batch_count(bt), M, N, K, A, rsA, csA, BatchOff{bt, false}, B, rsB, csB, BatchOff{bt, true}, kiln::DenseStore{C, M, N});
}

// bf16 / f16 operands, converted to f32 while packing (gemm_half.h).
KILN_EXPORT void kiln_gemm_bf16(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t rsA, int64_t csA,
                                const uint16_t* B, int64_t rsB, int64_t csB, const kiln_batch* bt, kiln_epi3r epi, const kiln_frame* fr) {
  kiln::gemm_half<kiln::LoadBf16>(batch_count(bt), M, N, K, A, rsA, csA, BatchOff{bt, false}, B, rsB, csB, BatchOff{bt, true}, EpiRow{epi, fr});
}
KILN_EXPORT void kiln_gemm_f16(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t rsA, int64_t csA,
                               const uint16_t* B, int64_t rsB, int64_t csB, const kiln_batch* bt, kiln_epi3r epi, const kiln_frame* fr) {
  kiln::gemm_half<kiln::LoadF16>(batch_count(bt), M, N, K, A, rsA, csA, BatchOff{bt, false}, B, rsB, csB, BatchOff{bt, true}, EpiRow{epi, fr});
}

#define KILN_CONV_DIMS d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], d[12], d[13], d[14], d[15]
KILN_EXPORT void kiln_conv2d_f32(const int64_t* d, const float* x, const float* w, kiln_epi4r epi, const kiln_frame* fr) {
  kiln::conv2d_f32(KILN_CONV_DIMS, x, w, Epi4Row{epi, fr});
}
KILN_EXPORT void kiln_conv2d_bwd_data_f32(const int64_t* d, const float* dy, const float* w, kiln_epi4r epi, const kiln_frame* fr) {
  kiln::conv2d_bwd_data_f32(KILN_CONV_DIMS, dy, w, Epi4Row{epi, fr});
}
KILN_EXPORT void kiln_conv2d_bwd_weight_f32(const int64_t* d, const float* x, const float* dy, kiln_epi4r epi, const kiln_frame* fr) {
  kiln::conv2d_bwd_weight_f32(KILN_CONV_DIMS, x, dy, Epi4Row{epi, fr});
}
// Plain stores (kiln::ConvStore): dW / strided dx written in place, rows of y and stride-1 dx copied as they finish.
KILN_EXPORT void kiln_conv2d_out_f32(const int64_t* d, const float* x, const float* w, float* y) {
  const kiln::Conv2dShape s{KILN_CONV_DIMS};
  kiln::conv2d_f32(KILN_CONV_DIMS, x, w, kiln::ConvStore{y, s.O, s.Ho(), s.Wo()});
}
KILN_EXPORT void kiln_conv2d_bwd_data_out_f32(const int64_t* d, const float* dy, const float* w, float* dx) {
  kiln::conv2d_bwd_data_f32(KILN_CONV_DIMS, dy, w, kiln::ConvStore{dx, d[1], d[2], d[3]});
}
KILN_EXPORT void kiln_conv2d_bwd_weight_out_f32(const int64_t* d, const float* x, const float* dy, float* dw) {
  kiln::conv2d_bwd_weight_f32(KILN_CONV_DIMS, x, dy, kiln::ConvStore{dw, d[1] / d[15], d[5], d[6]});
}

KILN_EXPORT void kiln_sdpa_f32(int64_t nb, int64_t lq, int64_t lk, int64_t d, int64_t dv, const float* q,
                               const float* k, const float* v, float scale, int causal, kiln_epi3 epi, const kiln_frame* fr) {
  kiln::sdpa_f32(nb, lq, lk, d, dv, q, k, v, scale, causal != 0, Epi3{epi, fr});
}
KILN_EXPORT void kiln_sdpa_out_f32(int64_t nb, int64_t lq, int64_t lk, int64_t d, int64_t dv, const float* q,
                                   const float* k, const float* v, float scale, int causal, float* out) {
  kiln::sdpa_f32(nb, lq, lk, d, dv, q, k, v, scale, causal != 0,
                 [=](int64_t b, int64_t i, int64_t t, float acc) { out[(b * lq + i) * dv + t] = acc; });
}
KILN_EXPORT void kiln_sdpa_grad_f32(int64_t nb, int64_t lq, int64_t lk, int64_t d, int64_t dv, const float* q,
                                    const float* k, const float* v, const float* dout, float scale, int causal,
                                    int wrt, kiln_epi3 epi, const kiln_frame* fr) {
  kiln::sdpa_grad_f32(nb, lq, lk, d, dv, q, k, v, dout, scale, causal != 0, wrt, Epi3{epi, fr});
}

KILN_EXPORT void kiln_scatter_add_f32(int64_t outer, int64_t n_idx, int64_t inner, int64_t size, const float* upd,
                                      const int32_t* idx, float* out) {
  kiln::scatter_add_f32(outer, n_idx, inner, size, upd, idx, out);
}

KILN_EXPORT int kiln_cpu_isa(uint8_t* msg, const int64_t*) {
  const kiln::CpuIsaState& s = kiln::cpu_isa_state();
  char* out = reinterpret_cast<char*>(msg);
  if (!s.ok) {
    std::snprintf(out, 1024, "%s", s.error);
    return 1;
  }
  char caches[256];
  kiln::describe_blocking(s.isa, caches, sizeof caches, s.bf16_dot);
  std::snprintf(out, 1024, "%s\n%s\n%s\n%s\n%s", kiln::isa_name(s.isa), kiln::isa_name(s.best), s.model, s.features, caches);
  return 0;
}
}
