// Kiln's inline PTX, every instruction behind one named device function, so the templates never write `asm`.
// nvcc compiles the PTX; the CUDA emulator (emu/kiln_emu.h, KILN_EMU defined) runs the same operation from the
// PTX ISA's documented fragment layouts, as a warp collective.
//   mma_m16n8k16_bf16 / _f16  D(16x8, f32) = A(16x16, row) * B(16x8, col) + C   (a: 4 regs, b: 2 regs)
//   mma_m16n8k8_tf32          D(16x8, f32) = A(16x8, row) * B(8x8, col) + C     (a: 4 regs, b: 2 regs, f32 bits)
//   ldmatrix_x{1,2,4}[_trans] 8x8 b16 matrices from shared memory, one per register (lane 8j + r: row r of matrix j)
//   cp_async_{4,8,16}, cp_async_commit, cp_async_wait<N>  global -> shared copies (wait: at most N groups pending)
#pragma once

#include <stdint.h>

namespace kiln {
namespace ptx {

#ifndef KILN_EMU
__device__ __forceinline__ void mma_m16n8k16_bf16(float* d, const uint32_t* a, const uint32_t* b, const float* c) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}
__device__ __forceinline__ void mma_m16n8k16_f16(float* d, const uint32_t* a, const uint32_t* b, const float* c) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}
__device__ __forceinline__ void mma_m16n8k8_tf32(float* d, const uint32_t* a, const uint32_t* b, const float* c) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}
__device__ __forceinline__ uint32_t smem_addr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }
template <int N, bool TRANS>
__device__ __forceinline__ void ldmatrix(uint32_t* r, const void* row) {
  const uint32_t a = smem_addr(row);
  if constexpr (N == 1 && !TRANS) asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(a));
  if constexpr (N == 1 && TRANS) asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(a));
  if constexpr (N == 2 && !TRANS) asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
  if constexpr (N == 2 && TRANS) asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
  if constexpr (N == 4 && !TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
  if constexpr (N == 4 && TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}
template <int BYTES>
__device__ __forceinline__ void cp_async(void* dst, const void* src, int src_bytes = BYTES) {
  static_assert(BYTES == 4 || BYTES == 8 || BYTES == 16, "cp.async copies 4, 8 or 16 bytes");
  if constexpr (BYTES == 16)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(src_bytes));
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(smem_addr(dst)), "l"(src), "n"(BYTES), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }
#else
// The emulator: the same operations as warp collectives / per-thread copy queues (emu/sched.cc).
__device__ __forceinline__ void mma_m16n8k16_bf16(float* d, const uint32_t* a, const uint32_t* b, const float* c, KILN_EMU_SITE) {
  kiln_emu_mma(0, d, a, b, c, kiln_file, kiln_line);
}
__device__ __forceinline__ void mma_m16n8k16_f16(float* d, const uint32_t* a, const uint32_t* b, const float* c, KILN_EMU_SITE) {
  kiln_emu_mma(1, d, a, b, c, kiln_file, kiln_line);
}
__device__ __forceinline__ void mma_m16n8k8_tf32(float* d, const uint32_t* a, const uint32_t* b, const float* c, KILN_EMU_SITE) {
  kiln_emu_mma(2, d, a, b, c, kiln_file, kiln_line);
}
template <int N, bool TRANS>
__device__ __forceinline__ void ldmatrix(uint32_t* r, const void* row, KILN_EMU_SITE) {
  kiln_emu_ldmatrix(N, TRANS, r, row, kiln_file, kiln_line);
}
template <int BYTES>
__device__ __forceinline__ void cp_async(void* dst, const void* src, int src_bytes = BYTES, KILN_EMU_SITE) {
  static_assert(BYTES == 4 || BYTES == 8 || BYTES == 16, "cp.async copies 4, 8 or 16 bytes");
  kiln_emu_cp_async(dst, src, BYTES, src_bytes, kiln_file, kiln_line);
}
__device__ __forceinline__ void cp_async_commit() { kiln_emu_cp_async_commit(); }
template <int N>
__device__ __forceinline__ void cp_async_wait(KILN_EMU_SITE) { kiln_emu_cp_async_wait(N, kiln_file, kiln_line); }
#endif

}  // namespace ptx
}  // namespace kiln
