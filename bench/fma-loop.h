// One core's FMA throughput probe, shared by bench/peak.cpp and bench/kernels/gemm-peak.cpp: 12 independent ymm
// FMA chains in inline asm (enough to cover FMA latency x pipes; a C++ loop lets the compiler merge identical
// chains). Each iteration is 12 x 8 lanes x 2 flops = 192 flops.
#pragma once
#include <cstdint>

__attribute__((noinline)) static void fma_loop(int64_t iters) {
  __asm__ volatile(
      "vxorps %%ymm12, %%ymm12, %%ymm12\n\t"
      "vxorps %%ymm13, %%ymm13, %%ymm13\n\t"
      "1:\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm0\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm1\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm2\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm3\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm4\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm5\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm6\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm7\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm8\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm9\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm10\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm11\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      : [n] "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "cc");
}
