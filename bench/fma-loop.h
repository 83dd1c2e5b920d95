// One core's FMA throughput probe, shared by bench/peak.cpp and bench/kernels/gemm-peak.cpp: 12 independent FMA
// chains in inline asm (enough to cover FMA latency x pipes; a C++ loop lets the compiler merge identical chains) on
// the widest vectors the build targets: zmm when it has AVX-512 (the avx512 GEMM / conv path runs there), else ymm.
// Each iteration is 12 x FMA_LANES lanes x 2 flops.
#pragma once
#include <cstdint>

#if defined(__AVX512F__)
constexpr int FMA_LANES = 16;
#define KILN_FMA_REG(i) "%%zmm" #i
#else
constexpr int FMA_LANES = 8;
#define KILN_FMA_REG(i) "%%ymm" #i
#endif

__attribute__((noinline)) static void fma_loop(int64_t iters) {
  __asm__ volatile(
      "vxorps " KILN_FMA_REG(12) ", " KILN_FMA_REG(12) ", " KILN_FMA_REG(12) "\n\t"
      "vxorps " KILN_FMA_REG(13) ", " KILN_FMA_REG(13) ", " KILN_FMA_REG(13) "\n\t"
      "1:\n\t"
      "vfmadd231ps " KILN_FMA_REG(13) ", " KILN_FMA_REG(12) ", " KILN_FMA_REG(0) "\n\t"
      "vfmadd231ps " KILN_FMA_REG(13) ", " KILN_FMA_REG(12) ", " KILN_FMA_REG(1) "\n\t"
      "vfmadd231ps " KILN_FMA_REG(13) ", " KILN_FMA_REG(12) ", " KILN_FMA_REG(2) "\n\t"
      "vfmadd231ps " KILN_FMA_REG(13) ", " KILN_FMA_REG(12) ", " KILN_FMA_REG(3) "\n\t"
      "vfmadd231ps " KILN_FMA_REG(13) ", " KILN_FMA_REG(12) ", " KILN_FMA_REG(4) "\n\t"
      "vfmadd231ps " KILN_FMA_REG(13) ", " KILN_FMA_REG(12) ", " KILN_FMA_REG(5) "\n\t"
      "vfmadd231ps " KILN_FMA_REG(13) ", " KILN_FMA_REG(12) ", " KILN_FMA_REG(6) "\n\t"
      "vfmadd231ps " KILN_FMA_REG(13) ", " KILN_FMA_REG(12) ", " KILN_FMA_REG(7) "\n\t"
      "vfmadd231ps " KILN_FMA_REG(13) ", " KILN_FMA_REG(12) ", " KILN_FMA_REG(8) "\n\t"
      "vfmadd231ps " KILN_FMA_REG(13) ", " KILN_FMA_REG(12) ", " KILN_FMA_REG(9) "\n\t"
      "vfmadd231ps " KILN_FMA_REG(13) ", " KILN_FMA_REG(12) ", " KILN_FMA_REG(10) "\n\t"
      "vfmadd231ps " KILN_FMA_REG(13) ", " KILN_FMA_REG(12) ", " KILN_FMA_REG(11) "\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      : [n] "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "cc");
}
