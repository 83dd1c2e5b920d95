// Times one call of the kernel library's conv entry points (kernels/cpu/lib.cpp, what compiled programs call)
// with a store epilogue through the library's function-pointer ABI; loaded by bench/kernels/conv-ab.py.
// ROW=1: the row-segment epilogue (kiln_epi4r); ROW=0: the per-element one of earlier library versions.
// OUT=1: kb_conv_out times the plain-store entries (kiln_conv2d_*_out_f32), what the renderer calls for a lone conv.
#include <chrono>
#include <cstdint>
#include "kiln_lib.h"
static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
#if ROW
static void epi(const kiln_frame* fr, int64_t q0, int64_t q1, int64_t q2, int64_t q3, int64_t step, int64_t len, const float* acc) {
  float* y = reinterpret_cast<float*>(fr->A); const int64_t* d = fr->O;
  for (int64_t r = 0; r < len; ++r) y[((q0 * d[0] + q1) * d[1] + q2) * d[2] + q3 + r * step] = acc[r];
}
#else
static void epi(const kiln_frame* fr, int64_t q0, int64_t q1, int64_t q2, int64_t q3, float acc) {
  float* y = reinterpret_cast<float*>(fr->A); const int64_t* d = fr->O;
  y[((q0 * d[0] + q1) * d[1] + q2) * d[2] + q3] = acc;
}
#endif
// mode 0 forward, 1 bwd_data, 2 bwd_weight; y is [*, D1, D2, D3]; returns seconds.
extern "C" double kb_conv(int mode, const int64_t* dims, const float* a, const float* b, float* y, int64_t D1, int64_t D2, int64_t D3) {
  const int64_t d[3] = {D1, D2, D3};
  kiln_frame fr{reinterpret_cast<uint8_t*>(y), d};
  const double t0 = now();
  if (mode == 0) kiln_conv2d_f32(dims, a, b, epi, &fr);
  else if (mode == 1) kiln_conv2d_bwd_data_f32(dims, a, b, epi, &fr);
  else kiln_conv2d_bwd_weight_f32(dims, a, b, epi, &fr);
  return now() - t0;
}
#if OUT
// The same through the plain-store entries: the result written straight into y (no epilogue).
extern "C" double kb_conv_out(int mode, const int64_t* dims, const float* a, const float* b, float* y, int64_t, int64_t, int64_t) {
  const double t0 = now();
  if (mode == 0) kiln_conv2d_out_f32(dims, a, b, y);
  else if (mode == 1) kiln_conv2d_bwd_data_out_f32(dims, a, b, y);
  else kiln_conv2d_bwd_weight_out_f32(dims, a, b, y);
  return now() - t0;
}
#endif
