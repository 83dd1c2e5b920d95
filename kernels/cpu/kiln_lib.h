// The precompiled CPU kernel library (kernels/cpu/lib.cpp): the GEMM, conv, attention and scatter templates
// instantiated once, behind plain C entry points whose epilogue is a function pointer. Generated programs
// include only this header and link the library, so a program with hundreds of GEMM and conv calls compiles
// in seconds instead of instantiating the templates at every call site. The epilogue is called once per
// output element (an indirect call costs about a nanosecond, small next to the K-long dot product behind it),
// except the GEMM's and the conv's: they call theirs once per run of an output row (kiln_epi3r, kiln_epi4r), because
// at K = 512 the per-element call was a quarter of the GEMM's time, and with its index arithmetic a third of a
// conv's with a short K (3x3 at 32-64 channels).
#pragma once
#include <cstdint>

extern "C" {
// What an epilogue needs to find its buffers: the running program's arena and the running kernel's offset
// table. The library passes it through untouched, so two programs (or two runs of one) can run at once: no
// mutable globals.
struct kiln_frame {
  uint8_t* A;
  const int64_t* O;
};
typedef void (*kiln_epi3)(const kiln_frame*, int64_t, int64_t, int64_t, float);
// Row epilogues: acc[t] is the value of output element (b, i, j0 + t), t < n (the GEMM), or of the conv's element
// (q0, q1, q2, q3 + t*step), t < n (a strided row for the input gradient of a strided conv).
typedef void (*kiln_epi3r)(const kiln_frame*, int64_t b, int64_t i, int64_t j0, int64_t n, const float* acc);
typedef void (*kiln_epi4r)(const kiln_frame*, int64_t q0, int64_t q1, int64_t q2, int64_t q3, int64_t step, int64_t n,
                           const float* acc);

// Batch dims of a batched GEMM: batch element b unflattens over `shape`; the operands' offsets for it are
// sum_i index_i * strideA[i] (and strideB[i]); a broadcast dim has stride 0.
struct kiln_batch {
  int32_t rank;
  int64_t shape[8];
  int64_t strideA[8];
  int64_t strideB[8];
};

// C(b,i,j) = sum_k A(b,i,k) B(b,k,j), A(b,i,k) = A[offA(b) + i*rsA + k*csA], B likewise; epi(b, i, j0, n, acc)
// with runs of each output row (every element in exactly one run).
void kiln_gemm_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t rsA, int64_t csA, const float* B,
                   int64_t rsB, int64_t csB, const kiln_batch* batch, kiln_epi3r epi, const kiln_frame* fr);

// The same GEMM on bf16 / f16 operands (raw 16-bit words), converted to f32 while packing; f32 accumulation.
void kiln_gemm_bf16(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t rsA, int64_t csA, const uint16_t* B,
                    int64_t rsB, int64_t csB, const kiln_batch* batch, kiln_epi3r epi, const kiln_frame* fr);
void kiln_gemm_f16(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t rsA, int64_t csA, const uint16_t* B,
                   int64_t rsB, int64_t csB, const kiln_batch* batch, kiln_epi3r epi, const kiln_frame* fr);

// The same with the plain store: C(b,i,j) written to C[(b*M + i)*N + j], no epilogue call.
void kiln_gemm_out_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t rsA, int64_t csA, const float* B,
                       int64_t rsB, int64_t csB, const kiln_batch* batch, float* C);

// NCHW x, OIHW w; padding [top, bottom, left, right].
void kiln_conv2d_f32(const int64_t* dims /* N,C,H,W,O,KH,KW,sh,sw,pt,pb,pl,pr,dh,dw,groups */, const float* x,
                     const float* w, kiln_epi4r epi, const kiln_frame* fr);                     // epi(n, o, oh, ow, acc)
void kiln_conv2d_bwd_data_f32(const int64_t* dims, const float* dy, const float* w, kiln_epi4r epi, const kiln_frame* fr);   // epi(n, c, ih, iw, acc)
void kiln_conv2d_bwd_weight_f32(const int64_t* dims, const float* x, const float* dy, kiln_epi4r epi, const kiln_frame* fr); // epi(o, ci, kh, kw, acc)
// The same with no epilogue: the result stored into a contiguous f32 output, y [N,O,Ho,Wo], dx [N,C,H,W],
// dw [O,C/G,KH,KW] (the renderer passes it when the fused epilogue is that plain store). The weight gradient sums into
// dw itself instead of a scratch copy handed out in one indirect call per KW-long dW row (a quarter of a 1x1 weight
// gradient's time); the others store each row segment inline (kiln::ConvStore) instead of calling the epilogue.
void kiln_conv2d_out_f32(const int64_t* dims, const float* x, const float* w, float* y);
void kiln_conv2d_bwd_data_out_f32(const int64_t* dims, const float* dy, const float* w, float* dx);
void kiln_conv2d_bwd_weight_out_f32(const int64_t* dims, const float* x, const float* dy, float* dw);

// q [nb,lq,d], k [nb,lk,d], v [nb,lk,dv] contiguous; epi(b, i, t, acc).
void kiln_sdpa_f32(int64_t nb, int64_t lq, int64_t lk, int64_t d, int64_t dv, const float* q, const float* k,
                   const float* v, float scale, int causal, kiln_epi3 epi, const kiln_frame* fr);
// The same with no epilogue: out [nb,lq,dv] contiguous f32 gets the result (the renderer passes it when the fused
// epilogue is that plain store; an indirect call per element cost 40% of cross attention 8x1024x77x64).
void kiln_sdpa_out_f32(int64_t nb, int64_t lq, int64_t lk, int64_t d, int64_t dv, const float* q, const float* k,
                       const float* v, float scale, int causal, float* out);
// wrt 0: dQ, 1: dK, 2: dV; epi(b, row, t, acc).
void kiln_sdpa_grad_f32(int64_t nb, int64_t lq, int64_t lk, int64_t d, int64_t dv, const float* q, const float* k,
                        const float* v, const float* dout, float scale, int causal, int wrt, kiln_epi3 epi, const kiln_frame* fr);

void kiln_scatter_add_f32(int64_t outer, int64_t n_idx, int64_t inner, int64_t size, const float* upd,
                          const int32_t* idx, float* out);

// The GEMM path this process runs (kernels/cpu/cpu_isa.h), in the entry-point ABI (runtime/README.md) so the
// runtime can call it through cpuCall: writes "path\nbest path\nCPU model\ndetected features" (NUL-terminated,
// at most 1024 bytes) to msg and returns 0, or writes the reason KILN_CPU_ISA was refused and returns 1.
int kiln_cpu_isa(uint8_t* msg, const int64_t* args);
}
