// kiln GEMM micro-kernels, one per ISA path (see cpu_isa.h). Each computes one full tile
//   t[r * NR + c] = sum_k Ap[k * MR + r] * Bp[k * NR + c]     (r < MR, c < NR; t 64-byte aligned)
// from packed panels; the driver (gemm.h) applies the K-step mode and the epilogue. Each kernel carries its own
// target attribute, so this header compiles to the same code under any -march: the library holds all three
// and cpu_isa() picks one at run time. The inner loops are inline asm: GCC spills accumulators when they are
// written with intrinsics (12 of 16 ymm, 28 of 32 zmm are accumulators).
#pragma once

#include <cstdint>

namespace kiln {

// AVX2 + FMA, 6x16: ymm0..11 = 6x16 accumulators (row r in ymm2r, ymm2r+1), ymm12/13 = B row, ymm14/15 = A
// broadcasts. 12 FMAs per 2 B loads + 6 broadcasts.
__attribute__((target("avx2,fma"))) inline void ukr_avx2_6x16(int64_t kc, const float* __restrict__ Ap,
                                                               const float* __restrict__ Bp, float* __restrict__ t) {
  int64_t k4 = kc >> 2, k1 = kc & 3;
  __asm__ volatile(
      "vxorps %%ymm0, %%ymm0, %%ymm0\n\t"
      "vxorps %%ymm1, %%ymm1, %%ymm1\n\t"
      "vxorps %%ymm2, %%ymm2, %%ymm2\n\t"
      "vxorps %%ymm3, %%ymm3, %%ymm3\n\t"
      "vxorps %%ymm4, %%ymm4, %%ymm4\n\t"
      "vxorps %%ymm5, %%ymm5, %%ymm5\n\t"
      "vxorps %%ymm6, %%ymm6, %%ymm6\n\t"
      "vxorps %%ymm7, %%ymm7, %%ymm7\n\t"
      "vxorps %%ymm8, %%ymm8, %%ymm8\n\t"
      "vxorps %%ymm9, %%ymm9, %%ymm9\n\t"
      "vxorps %%ymm10, %%ymm10, %%ymm10\n\t"
      "vxorps %%ymm11, %%ymm11, %%ymm11\n\t"
      "test %[k4], %[k4]\n\t"
      "jz 2f\n\t"
      "1:\n\t"
      "prefetcht0 512(%[b])\n\t"
      "vmovaps 0(%[b]), %%ymm12\n\t"
      "vmovaps 32(%[b]), %%ymm13\n\t"
      "vbroadcastss 0(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm0\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm1\n\t"
      "vbroadcastss 4(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm2\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm3\n\t"
      "vbroadcastss 8(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm4\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm5\n\t"
      "vbroadcastss 12(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm6\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm7\n\t"
      "vbroadcastss 16(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm8\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm9\n\t"
      "vbroadcastss 20(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm10\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm11\n\t"
      "vmovaps 64(%[b]), %%ymm12\n\t"
      "vmovaps 96(%[b]), %%ymm13\n\t"
      "vbroadcastss 24(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm0\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm1\n\t"
      "vbroadcastss 28(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm2\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm3\n\t"
      "vbroadcastss 32(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm4\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm5\n\t"
      "vbroadcastss 36(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm6\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm7\n\t"
      "vbroadcastss 40(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm8\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm9\n\t"
      "vbroadcastss 44(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm10\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm11\n\t"
      "vmovaps 128(%[b]), %%ymm12\n\t"
      "vmovaps 160(%[b]), %%ymm13\n\t"
      "vbroadcastss 48(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm0\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm1\n\t"
      "vbroadcastss 52(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm2\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm3\n\t"
      "vbroadcastss 56(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm4\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm5\n\t"
      "vbroadcastss 60(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm6\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm7\n\t"
      "vbroadcastss 64(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm8\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm9\n\t"
      "vbroadcastss 68(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm10\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm11\n\t"
      "vmovaps 192(%[b]), %%ymm12\n\t"
      "vmovaps 224(%[b]), %%ymm13\n\t"
      "vbroadcastss 72(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm0\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm1\n\t"
      "vbroadcastss 76(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm2\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm3\n\t"
      "vbroadcastss 80(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm4\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm5\n\t"
      "vbroadcastss 84(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm6\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm7\n\t"
      "vbroadcastss 88(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm8\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm9\n\t"
      "vbroadcastss 92(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm10\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm11\n\t"
      "add $96, %[a]\n\t"
      "add $256, %[b]\n\t"
      "dec %[k4]\n\t"
      "jnz 1b\n\t"
      "2:\n\t"
      "test %[k1], %[k1]\n\t"
      "jz 4f\n\t"
      "3:\n\t"
      "vmovaps 0(%[b]), %%ymm12\n\t"
      "vmovaps 32(%[b]), %%ymm13\n\t"
      "vbroadcastss 0(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm0\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm1\n\t"
      "vbroadcastss 4(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm2\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm3\n\t"
      "vbroadcastss 8(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm4\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm5\n\t"
      "vbroadcastss 12(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm6\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm7\n\t"
      "vbroadcastss 16(%[a]), %%ymm14\n\t"
      "vfmadd231ps %%ymm12, %%ymm14, %%ymm8\n\t"
      "vfmadd231ps %%ymm13, %%ymm14, %%ymm9\n\t"
      "vbroadcastss 20(%[a]), %%ymm15\n\t"
      "vfmadd231ps %%ymm12, %%ymm15, %%ymm10\n\t"
      "vfmadd231ps %%ymm13, %%ymm15, %%ymm11\n\t"
      "add $24, %[a]\n\t"
      "add $64, %[b]\n\t"
      "dec %[k1]\n\t"
      "jnz 3b\n\t"
      "4:\n\t"
      "vmovaps %%ymm0, 0(%[t])\n\t"
      "vmovaps %%ymm1, 32(%[t])\n\t"
      "vmovaps %%ymm2, 64(%[t])\n\t"
      "vmovaps %%ymm3, 96(%[t])\n\t"
      "vmovaps %%ymm4, 128(%[t])\n\t"
      "vmovaps %%ymm5, 160(%[t])\n\t"
      "vmovaps %%ymm6, 192(%[t])\n\t"
      "vmovaps %%ymm7, 224(%[t])\n\t"
      "vmovaps %%ymm8, 256(%[t])\n\t"
      "vmovaps %%ymm9, 288(%[t])\n\t"
      "vmovaps %%ymm10, 320(%[t])\n\t"
      "vmovaps %%ymm11, 352(%[t])\n\t"
      "vzeroupper\n\t"
      : [a] "+r"(Ap), [b] "+r"(Bp), [k4] "+r"(k4), [k1] "+r"(k1)
      : [t] "r"(t)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
}

// AVX-512 F, 14x32: zmm0..27 = 14x32 accumulators (row r in zmm2r, zmm2r+1), zmm28/29 = B row, zmm30/31 = A
// broadcasts (alternating, so a broadcast never waits for the FMAs of the previous row). 28 FMAs per 2 B loads +
// 14 broadcasts: two FMA pipes stay fed with two loads per cycle. 14x32 rather than 8x48 because 28 of 32
// registers accumulate (8x48 uses 24) while the loads per FMA stay under the two-per-cycle limit.
#define KZ_ZERO4(r0, r1, r2, r3)                                                                              \
  "vpxord %%zmm" r0 ", %%zmm" r0 ", %%zmm" r0 "\n\t" "vpxord %%zmm" r1 ", %%zmm" r1 ", %%zmm" r1 "\n\t"       \
  "vpxord %%zmm" r2 ", %%zmm" r2 ", %%zmm" r2 "\n\t" "vpxord %%zmm" r3 ", %%zmm" r3 ", %%zmm" r3 "\n\t"
#define KZ_ZERO8(r0, r1, r2, r3, r4, r5, r6, r7) KZ_ZERO4(r0, r1, r2, r3) KZ_ZERO4(r4, r5, r6, r7)
#define KZ_LOADB(o0, o1) "vmovaps " o0 "(%[b]), %%zmm28\n\t" "vmovaps " o1 "(%[b]), %%zmm29\n\t"
#define KZ_ROW(ao, br, c0, c1)                                                                                \
  "vbroadcastss " ao "(%[a]), %%zmm" br "\n\t" "vfmadd231ps %%zmm28, %%zmm" br ", %%zmm" c0 "\n\t"            \
  "vfmadd231ps %%zmm29, %%zmm" br ", %%zmm" c1 "\n\t"
#define KZ_STORE(r, o) "vmovaps %%zmm" r ", " o "(%[t])\n\t"
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) inline void ukr_avx512_14x32(
    int64_t kc, const float* __restrict__ Ap, const float* __restrict__ Bp, float* __restrict__ t) {
  int64_t k4 = kc >> 2, k1 = kc & 3;
  __asm__ volatile(
      KZ_ZERO8("0", "1", "2", "3", "4", "5", "6", "7") KZ_ZERO8("8", "9", "10", "11", "12", "13", "14", "15")
      KZ_ZERO8("16", "17", "18", "19", "20", "21", "22", "23") KZ_ZERO4("24", "25", "26", "27")
      "test %[k4], %[k4]\n\t"
      "jz 2f\n\t"
      "1:\n\t"
      "prefetcht0 448(%[a])\n\t"
      KZ_LOADB("0", "64")
      KZ_ROW("0", "30", "0", "1") KZ_ROW("4", "31", "2", "3")
      KZ_ROW("8", "30", "4", "5") KZ_ROW("12", "31", "6", "7")
      KZ_ROW("16", "30", "8", "9") KZ_ROW("20", "31", "10", "11")
      KZ_ROW("24", "30", "12", "13") KZ_ROW("28", "31", "14", "15")
      KZ_ROW("32", "30", "16", "17") KZ_ROW("36", "31", "18", "19")
      KZ_ROW("40", "30", "20", "21") KZ_ROW("44", "31", "22", "23")
      KZ_ROW("48", "30", "24", "25") KZ_ROW("52", "31", "26", "27")
      KZ_LOADB("128", "192")
      KZ_ROW("56", "30", "0", "1") KZ_ROW("60", "31", "2", "3")
      KZ_ROW("64", "30", "4", "5") KZ_ROW("68", "31", "6", "7")
      KZ_ROW("72", "30", "8", "9") KZ_ROW("76", "31", "10", "11")
      KZ_ROW("80", "30", "12", "13") KZ_ROW("84", "31", "14", "15")
      KZ_ROW("88", "30", "16", "17") KZ_ROW("92", "31", "18", "19")
      KZ_ROW("96", "30", "20", "21") KZ_ROW("100", "31", "22", "23")
      KZ_ROW("104", "30", "24", "25") KZ_ROW("108", "31", "26", "27")
      "prefetcht0 512(%[a])\n\t"
      KZ_LOADB("256", "320")
      KZ_ROW("112", "30", "0", "1") KZ_ROW("116", "31", "2", "3")
      KZ_ROW("120", "30", "4", "5") KZ_ROW("124", "31", "6", "7")
      KZ_ROW("128", "30", "8", "9") KZ_ROW("132", "31", "10", "11")
      KZ_ROW("136", "30", "12", "13") KZ_ROW("140", "31", "14", "15")
      KZ_ROW("144", "30", "16", "17") KZ_ROW("148", "31", "18", "19")
      KZ_ROW("152", "30", "20", "21") KZ_ROW("156", "31", "22", "23")
      KZ_ROW("160", "30", "24", "25") KZ_ROW("164", "31", "26", "27")
      KZ_LOADB("384", "448")
      KZ_ROW("168", "30", "0", "1") KZ_ROW("172", "31", "2", "3")
      KZ_ROW("176", "30", "4", "5") KZ_ROW("180", "31", "6", "7")
      KZ_ROW("184", "30", "8", "9") KZ_ROW("188", "31", "10", "11")
      KZ_ROW("192", "30", "12", "13") KZ_ROW("196", "31", "14", "15")
      KZ_ROW("200", "30", "16", "17") KZ_ROW("204", "31", "18", "19")
      KZ_ROW("208", "30", "20", "21") KZ_ROW("212", "31", "22", "23")
      KZ_ROW("216", "30", "24", "25") KZ_ROW("220", "31", "26", "27")
      "add $224, %[a]\n\t"
      "add $512, %[b]\n\t"
      "dec %[k4]\n\t"
      "jnz 1b\n\t"
      "2:\n\t"
      "test %[k1], %[k1]\n\t"
      "jz 4f\n\t"
      "3:\n\t"
      KZ_LOADB("0", "64")
      KZ_ROW("0", "30", "0", "1") KZ_ROW("4", "31", "2", "3")
      KZ_ROW("8", "30", "4", "5") KZ_ROW("12", "31", "6", "7")
      KZ_ROW("16", "30", "8", "9") KZ_ROW("20", "31", "10", "11")
      KZ_ROW("24", "30", "12", "13") KZ_ROW("28", "31", "14", "15")
      KZ_ROW("32", "30", "16", "17") KZ_ROW("36", "31", "18", "19")
      KZ_ROW("40", "30", "20", "21") KZ_ROW("44", "31", "22", "23")
      KZ_ROW("48", "30", "24", "25") KZ_ROW("52", "31", "26", "27")
      "add $56, %[a]\n\t"
      "add $128, %[b]\n\t"
      "dec %[k1]\n\t"
      "jnz 3b\n\t"
      "4:\n\t"
      KZ_STORE("0", "0") KZ_STORE("1", "64") KZ_STORE("2", "128") KZ_STORE("3", "192")
      KZ_STORE("4", "256") KZ_STORE("5", "320") KZ_STORE("6", "384") KZ_STORE("7", "448")
      KZ_STORE("8", "512") KZ_STORE("9", "576") KZ_STORE("10", "640") KZ_STORE("11", "704")
      KZ_STORE("12", "768") KZ_STORE("13", "832") KZ_STORE("14", "896") KZ_STORE("15", "960")
      KZ_STORE("16", "1024") KZ_STORE("17", "1088") KZ_STORE("18", "1152") KZ_STORE("19", "1216")
      KZ_STORE("20", "1280") KZ_STORE("21", "1344") KZ_STORE("22", "1408") KZ_STORE("23", "1472")
      KZ_STORE("24", "1536") KZ_STORE("25", "1600") KZ_STORE("26", "1664") KZ_STORE("27", "1728")
      "vzeroupper\n\t"
      : [a] "+r"(Ap), [b] "+r"(Bp), [k4] "+r"(k4), [k1] "+r"(k1)
      : [t] "r"(t)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22",
        "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "memory", "cc");
}
#undef KZ_ZERO4
#undef KZ_ZERO8
#undef KZ_LOADB
#undef KZ_ROW
#undef KZ_STORE

// Portable C++, 4x16: for CPUs with neither path (and KILN_CPU_ISA=generic). On x86 it is compiled for the
// x86-64 baseline (SSE2) whatever -march says, so the path tested here is the one such a CPU runs.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target("arch=x86-64")))
#endif
inline void ukr_generic_4x16(int64_t kc, const float* __restrict__ Ap, const float* __restrict__ Bp,
                             float* __restrict__ t) {
  float acc[4][16] = {};
  for (int64_t k = 0; k < kc; ++k)
    for (int r = 0; r < 4; ++r) {
      const float a = Ap[k * 4 + r];
      for (int c = 0; c < 16; ++c) acc[r][c] += a * Bp[k * 16 + c];
    }
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 16; ++c) t[r * 16 + c] = acc[r][c];
}

}  // namespace kiln
