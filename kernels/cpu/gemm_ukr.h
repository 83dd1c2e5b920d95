// kiln GEMM micro-kernels, one per ISA path (see cpu_isa.h). Each computes one full tile
//   t[r * NR + c] = sum_k Ap[k * MR + r] * Bp[k * NR + c]     (r < MR, c < NR; t 64-byte aligned)
// (the bf16 kernel on k-pair-interleaved panels: Ap[(k/2)*2MR + 2r + k%2], Bp[(k/2)*2NR + 2c + k%2])
// from packed panels (the AVX2 and AVX-512 ones: D = C + that, to strided rows, and one each reads B in place); the driver
// (gemm.h) applies the K-step mode and the epilogue. Each kernel carries its own
// target attribute, so this header compiles to the same code under any -march: the library holds all three
// and cpu_isa() picks one at run time. The inner loops are inline asm: GCC spills accumulators when they are
// written with intrinsics (12 of 16 ymm, 24 of 32 zmm are accumulators).
#pragma once

#include <cstdint>
#include <cstdlib>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace kiln {

#if defined(__x86_64__)
// AVX2 + FMA, 4x24: ymm0..11 = 4x24 accumulators (row r in ymm3r..3r+2), ymm12..14 = B row, ymm15 = A broadcast.
// 12 FMAs per 3 B loads + 4 broadcasts (BLIS Haswell's 6x16 needs 2 + 6). 4 rows rather than 6: the channel counts
// the models use (32, 64, 320, ...) fill 4-row tiles exactly, where 6 rows pad 32 channels to 36; measured in the
// same process on the Zen 5 machine capped at AVX2 (kernels/README.md): conv 32 ch 64^2 forward 10% faster, 320 ch
// 64^2 and its stride-2 downsample 7%, the matmul equal. Like the AVX-512 kernels below, D = C + tile from
// registers, and one variant reads conv's B rows in place.
// B from a packed panel: the row at B offsets o0..o2 (bytes).
#define KA_LOADB(o0, o1, o2) \
  "vmovaps " o0 "(%[b]), %%ymm12\n\t" "vmovaps " o1 "(%[b]), %%ymm13\n\t" "vmovaps " o2 "(%[b]), %%ymm14\n\t"
// B rows read in place (ukr_avx2_4x24_rows): row k starts %[bk][k] floats past %[b], at any alignment; ko is the
// byte offset of that row's entry in %[bk].
#define KA_LOADB_ROW(ko)                                                                                      \
  "mov " ko "(%[bk]), %[r]\n\t" "vmovups 0(%[b],%[r],4), %%ymm12\n\t" "vmovups 32(%[b],%[r],4), %%ymm13\n\t"    \
  "vmovups 64(%[b],%[r],4), %%ymm14\n\t"
#define KA_ROW(ao, c0, c1, c2)                                                                                 \
  "vbroadcastss " ao "(%[a]), %%ymm15\n\t" "vfmadd231ps %%ymm12, %%ymm15, %%ymm" c0 "\n\t"                   \
  "vfmadd231ps %%ymm13, %%ymm15, %%ymm" c1 "\n\t" "vfmadd231ps %%ymm14, %%ymm15, %%ymm" c2 "\n\t"
// One step of the 4x24 tile: the 3 B vectors LOADB loads, 4 A broadcasts at A offsets a0..a3.
#define KA_STEP(LOADB, a0, a1, a2, a3) \
  LOADB KA_ROW(a0, "0", "1", "2") KA_ROW(a1, "3", "4", "5") KA_ROW(a2, "6", "7", "8") KA_ROW(a3, "9", "10", "11")
// The end of a kernel, one tile row of 3 vectors at a time (register kind R and the byte offsets o1 / o2 of the
// row's 2nd / 3rd vector: "ymm" 32 64, "zmm" 64 128): add row r of C (%[c], rows %[ldc] bytes apart) / store the row
// to D (%[d], rows %[ldd] bytes apart). Shared by the AVX2 (KA_) and AVX-512 (KY_) kernels.
#define K3_ADDC(R, o1, o2, r0, r1, r2)                                                                        \
  "vaddps 0(%[c]), %%" R r0 ", %%" R r0 "\n\t" "vaddps " o1 "(%[c]), %%" R r1 ", %%" R r1 "\n\t"             \
  "vaddps " o2 "(%[c]), %%" R r2 ", %%" R r2 "\n\t" "add %[ldc], %[c]\n\t"
#define K3_STORED(R, o1, o2, r0, r1, r2)                                                                      \
  "vmovups %%" R r0 ", 0(%[d])\n\t" "vmovups %%" R r1 ", " o1 "(%[d])\n\t" "vmovups %%" R r2 ", " o2 "(%[d])\n\t" \
  "add %[ldd], %[d]\n\t"
// The packed kernels' L2 prefetch stream (2 cache lines per 4 k steps, at %[pf], which advances 128 bytes): the
// driver points it at a slice of the B panel the next calls read (gemm.h, gemm_cfg PfBytesPerK). Without it, on an
// Intel Xeon with AVX-512 (2 vCPU, 2 MiB L2, a far L3) the 8x48 kernel ran 154-172 GFLOP/s instead of 194-205 when
// each B panel came from L3 (kernels/README.md "Measured: the next B panel's L2 prefetch").
#define K3_PF "prefetcht1 0(%[pf])\n\t" "prefetcht1 64(%[pf])\n\t" "add $128, %[pf]\n\t"
// The loop of a kernel: STEP4 (4 steps) then NEXT4 while k4 > 0, STEP1 then NEXT1 while k1 > 0; then ADDC (the tile
// rows' C adds) unless %[c] is null, STORE (the D stores), vzeroupper. Shared by the AVX2 (KA_) and AVX-512 (KY_)
// kernels.
#define K3_LOOP(STEP4, NEXT4, STEP1, NEXT1, ADDC, STORE)                                                      \
  "test %[k4], %[k4]\n\t" "jz 2f\n\t" "1:\n\t" STEP4 NEXT4 "dec %[k4]\n\t" "jnz 1b\n\t"                            \
  "2:\n\t" "test %[k1], %[k1]\n\t" "jz 4f\n\t" "3:\n\t" STEP1 NEXT1 "dec %[k1]\n\t" "jnz 3b\n\t"                 \
  "4:\n\t" "test %[c], %[c]\n\t" "jz 5f\n\t" ADDC "5:\n\t" STORE "vzeroupper\n\t"
#define KA_ADDC(r0, r1, r2) K3_ADDC("ymm", "32", "64", r0, r1, r2)
#define KA_STORED(r0, r1, r2) K3_STORED("ymm", "32", "64", r0, r1, r2)
// The whole 4x24 kernel for one way to read B (L0..L3: the B loads of the 4 steps of an unrolled iteration; P0 / P1:
// prefetches before steps 0 / 2; B4 / B1: how B advances after 4 steps / 1 step): a step reads 16 bytes of A and 96
// of B, unrolled by 4 (k4 = steps / 4, k1 = steps % 4); then D = C + tile (C == nullptr: D = tile).
#define KA_KERNEL(L0, L1, L2, L3, P0, P1, B4, B1, PF)                                                         \
  "vxorps %%ymm0, %%ymm0, %%ymm0\n\t" "vxorps %%ymm1, %%ymm1, %%ymm1\n\t" "vxorps %%ymm2, %%ymm2, %%ymm2\n\t"      \
  "vxorps %%ymm3, %%ymm3, %%ymm3\n\t" "vxorps %%ymm4, %%ymm4, %%ymm4\n\t" "vxorps %%ymm5, %%ymm5, %%ymm5\n\t"      \
  "vxorps %%ymm6, %%ymm6, %%ymm6\n\t" "vxorps %%ymm7, %%ymm7, %%ymm7\n\t" "vxorps %%ymm8, %%ymm8, %%ymm8\n\t"      \
  "vxorps %%ymm9, %%ymm9, %%ymm9\n\t" "vxorps %%ymm10, %%ymm10, %%ymm10\n\t" "vxorps %%ymm11, %%ymm11, %%ymm11\n\t" \
  K3_LOOP(P0 KA_STEP(L0, "0", "4", "8", "12") KA_STEP(L1, "16", "20", "24", "28")                             \
          P1 KA_STEP(L2, "32", "36", "40", "44") PF KA_STEP(L3, "48", "52", "56", "60"),                      \
          "add $64, %[a]\n\t" B4, KA_STEP(L0, "0", "4", "8", "12"), "add $16, %[a]\n\t" B1,                   \
          KA_ADDC("0", "1", "2") KA_ADDC("3", "4", "5") KA_ADDC("6", "7", "8") KA_ADDC("9", "10", "11"),      \
          KA_STORED("0", "1", "2") KA_STORED("3", "4", "5") KA_STORED("6", "7", "8") KA_STORED("9", "10", "11"))
#define KA_CLOBBERS                                                                                           \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",   \
      "xmm13", "xmm14", "xmm15", "memory", "cc"

// D = C + Ap.Bp (C == nullptr: D = Ap.Bp), rows ldc / ldd floats apart (gemm.h gemm_micro adds the K blocks'
// partial sums from registers); C and D may be one tile. Two lines of the packed B panel are prefetched two
// iterations (8 k) ahead.
__attribute__((target("avx2,fma"))) inline void ukr_avx2_4x24(int64_t kc, const float* Ap, const float* Bp,
                                                               const float* C, int64_t ldc, float* D, int64_t ldd,
                                                               const float* pf = nullptr) {
  int64_t k4 = kc >> 2, k1 = kc & 3, ldcb = ldc * 4, lddb = ldd * 4;
  if (!pf) pf = Bp;  // no stream: the lines this call reads anyway
  __asm__ volatile(KA_KERNEL(KA_LOADB("0", "32", "64"), KA_LOADB("96", "128", "160"), KA_LOADB("192", "224", "256"),
                             KA_LOADB("288", "320", "352"), "prefetcht0 768(%[b])\n\t", "prefetcht0 832(%[b])\n\t",
                             "add $384, %[b]\n\t", "add $96, %[b]\n\t", K3_PF)
                   : [a] "+r"(Ap), [b] "+r"(Bp), [k4] "+r"(k4), [k1] "+r"(k1), [c] "+r"(C), [d] "+r"(D), [pf] "+r"(pf)
                   : [ldc] "r"(ldcb), [ldd] "r"(lddb)
                   : KA_CLOBBERS);
}

// The same with B read in place, not packed: row k of the 24-column panel is the 24 floats at B + koff[k] (any
// alignment; conv2d_shift.h's input layout, where every row of the implicit im2col matrix is a contiguous run).
__attribute__((target("avx2,fma"))) inline void ukr_avx2_4x24_rows(int64_t kc, const float* Ap, const float* B,
                                                                    const int64_t* koff, const float* C, int64_t ldc,
                                                                    float* D, int64_t ldd) {
  int64_t k4 = kc >> 2, k1 = kc & 3, ldcb = ldc * 4, lddb = ldd * 4, r;
  __asm__ volatile(KA_KERNEL(KA_LOADB_ROW("0"), KA_LOADB_ROW("8"), KA_LOADB_ROW("16"), KA_LOADB_ROW("24"), "", "",
                             "add $32, %[bk]\n\t", "add $8, %[bk]\n\t", "")
                   : [a] "+r"(Ap), [bk] "+r"(koff), [k4] "+r"(k4), [k1] "+r"(k1), [c] "+r"(C), [d] "+r"(D),
                     [r] "=&r"(r)
                   : [b] "r"(B), [ldc] "r"(ldcb), [ldd] "r"(lddb)
                   : KA_CLOBBERS);
}
#undef KA_LOADB
#undef KA_LOADB_ROW
#undef KA_ROW
#undef KA_STEP
#undef KA_ADDC
#undef KA_STORED
#undef KA_KERNEL
#undef KA_CLOBBERS

// AVX-512 helpers: zero four / eight zmm registers.
#define KZ_ZERO4(r0, r1, r2, r3)                                                                              \
  "vpxord %%zmm" r0 ", %%zmm" r0 ", %%zmm" r0 "\n\t" "vpxord %%zmm" r1 ", %%zmm" r1 ", %%zmm" r1 "\n\t"       \
  "vpxord %%zmm" r2 ", %%zmm" r2 ", %%zmm" r2 "\n\t" "vpxord %%zmm" r3 ", %%zmm" r3 ", %%zmm" r3 "\n\t"
#define KZ_ZERO8(r0, r1, r2, r3, r4, r5, r6, r7) KZ_ZERO4(r0, r1, r2, r3) KZ_ZERO4(r4, r5, r6, r7)

// AVX-512 F, 8x48: zmm0..23 = 8x48 accumulators (row r in zmm3r..3r+2), zmm24..26 = B row, zmm27/28 = A
// broadcasts (alternating, so a broadcast never waits for the FMAs of the previous row). 24 FMAs per 3 B loads
// + 8 broadcasts (0.46 loads per FMA: two FMA pipes stay fed with two loads per cycle). 8x48 rather than 14x32
// (28 accumulators): the channel counts the models use (32, 64, 320, ...) fill 8-row tiles exactly, and on a
// Zen 5 core 8x48 measured equal at 1024^3 and 1.2-1.3x faster at M = 64 (bench/kernels/gemm-isa.cpp).
// B from a packed panel: the row at B offsets o0..o2 (bytes).
#define KY_LOADB(o0, o1, o2) \
  "vmovaps " o0 "(%[b]), %%zmm24\n\t" "vmovaps " o1 "(%[b]), %%zmm25\n\t" "vmovaps " o2 "(%[b]), %%zmm26\n\t"
// B rows read in place (ukr_avx512_8x48_rows): row k starts %[bk][k] floats past %[b], at any alignment; ko is the
// byte offset of that row's entry in %[bk].
#define KY_LOADB_ROW(ko)                                                                                      \
  "mov " ko "(%[bk]), %[r]\n\t" "vmovups 0(%[b],%[r],4), %%zmm24\n\t" "vmovups 64(%[b],%[r],4), %%zmm25\n\t"    \
  "vmovups 128(%[b],%[r],4), %%zmm26\n\t"
#define KY_ROW(BC, OP, ao, br, c0, c1, c2)                                                                    \
  BC " " ao "(%[a]), %%zmm" br "\n\t" OP " %%zmm24, %%zmm" br ", %%zmm" c0 "\n\t"                            \
  OP " %%zmm25, %%zmm" br ", %%zmm" c1 "\n\t" OP " %%zmm26, %%zmm" br ", %%zmm" c2 "\n\t"
// One step of the 8x48 tile: the 3 B vectors LOADB loads, 8 A broadcasts from A offset a0 on (4 bytes apart).
#define KY_STEP(BC, OP, LOADB, a0, a1, a2, a3, a4, a5, a6, a7)                                                \
  LOADB                                                                                                       \
  KY_ROW(BC, OP, a0, "27", "0", "1", "2") KY_ROW(BC, OP, a1, "28", "3", "4", "5")                            \
  KY_ROW(BC, OP, a2, "27", "6", "7", "8") KY_ROW(BC, OP, a3, "28", "9", "10", "11")                          \
  KY_ROW(BC, OP, a4, "27", "12", "13", "14") KY_ROW(BC, OP, a5, "28", "15", "16", "17")                      \
  KY_ROW(BC, OP, a6, "27", "18", "19", "20") KY_ROW(BC, OP, a7, "28", "21", "22", "23")
#define KY_ADDC(r0, r1, r2) K3_ADDC("zmm", "64", "128", r0, r1, r2)
#define KY_STORED(r0, r1, r2) K3_STORED("zmm", "64", "128", r0, r1, r2)
// The whole 8x48 kernel for one broadcast / multiply-add pair and one way to read B (L0..L3: the B loads of the 4
// steps of an unrolled iteration; B4 / B1: how B advances after 4 steps / 1 step): a step reads 32 bytes of A and
// 192 of B, unrolled by 4 (k4 = steps / 4, k1 = steps % 4); then D = C + tile (C == nullptr: D = tile).
#define KY_KERNEL(BC, OP, L0, L1, L2, L3, B4, B1, PF)                                                         \
  KZ_ZERO8("0", "1", "2", "3", "4", "5", "6", "7") KZ_ZERO8("8", "9", "10", "11", "12", "13", "14", "15")     \
  KZ_ZERO8("16", "17", "18", "19", "20", "21", "22", "23")                                                    \
  K3_LOOP("prefetcht0 256(%[a])\n\t"                                                                          \
          KY_STEP(BC, OP, L0, "0", "4", "8", "12", "16", "20", "24", "28")                                    \
          KY_STEP(BC, OP, L1, "32", "36", "40", "44", "48", "52", "56", "60") PF                              \
          KY_STEP(BC, OP, L2, "64", "68", "72", "76", "80", "84", "88", "92")                                 \
          KY_STEP(BC, OP, L3, "96", "100", "104", "108", "112", "116", "120", "124"),                         \
          "add $128, %[a]\n\t" B4, KY_STEP(BC, OP, L0, "0", "4", "8", "12", "16", "20", "24", "28"),          \
          "add $32, %[a]\n\t" B1,                                                                             \
          KY_ADDC("0", "1", "2") KY_ADDC("3", "4", "5") KY_ADDC("6", "7", "8") KY_ADDC("9", "10", "11")       \
          KY_ADDC("12", "13", "14") KY_ADDC("15", "16", "17") KY_ADDC("18", "19", "20") KY_ADDC("21", "22", "23"),\
          KY_STORED("0", "1", "2") KY_STORED("3", "4", "5") KY_STORED("6", "7", "8") KY_STORED("9", "10", "11")\
          KY_STORED("12", "13", "14") KY_STORED("15", "16", "17") KY_STORED("18", "19", "20") KY_STORED("21", "22", "23"))
// Packed B panels (4 steps are 768 bytes), for KY_KERNEL_PACKED (which expands it into KY_KERNEL's arguments).
#define KY_KERNEL_PACKED(...) KY_KERNEL(__VA_ARGS__)
#define KY_PACKED_B                                                                                           \
  KY_LOADB("0", "64", "128"), KY_LOADB("192", "256", "320"), KY_LOADB("384", "448", "512"),                   \
      KY_LOADB("576", "640", "704"), "add $768, %[b]\n\t", "add $192, %[b]\n\t", K3_PF
#define KY_CLOBBERS                                                                                           \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",   \
      "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",      \
      "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "memory", "cc"

// The AVX-512 kernels write D = C + Ap.Bp (C == nullptr: D = Ap.Bp), rows ldc / ldd floats apart, so the driver's
// K blocks add their partial sums to its C buffer from registers (gemm.h gemm_micro); C and D may be one tile.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) inline void ukr_avx512_8x48(
    int64_t kc, const float* Ap, const float* Bp, const float* C, int64_t ldc, float* D, int64_t ldd,
    const float* pf = nullptr) {
  int64_t k4 = kc >> 2, k1 = kc & 3, ldcb = ldc * 4, lddb = ldd * 4;
  if (!pf) pf = Bp;  // no stream: the lines this call reads anyway
  __asm__ volatile(KY_KERNEL_PACKED("vbroadcastss", "vfmadd231ps", KY_PACKED_B)
                   : [a] "+r"(Ap), [b] "+r"(Bp), [k4] "+r"(k4), [k1] "+r"(k1), [c] "+r"(C), [d] "+r"(D), [pf] "+r"(pf)
                   : [ldc] "r"(ldcb), [ldd] "r"(lddb)
                   : KY_CLOBBERS);
}

// The same with B read in place, not packed: row k of the 48-column panel is the 48 floats at B + koff[k] (any
// alignment; conv2d_shift.h's input layout, where every row of the implicit im2col matrix is a contiguous run).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) inline void ukr_avx512_8x48_rows(
    int64_t kc, const float* Ap, const float* B, const int64_t* koff, const float* C, int64_t ldc, float* D,
    int64_t ldd) {
  int64_t k4 = kc >> 2, k1 = kc & 3, ldcb = ldc * 4, lddb = ldd * 4, r;
  __asm__ volatile(KY_KERNEL("vbroadcastss", "vfmadd231ps", KY_LOADB_ROW("0"), KY_LOADB_ROW("8"), KY_LOADB_ROW("16"),
                             KY_LOADB_ROW("24"), "add $32, %[bk]\n\t", "add $8, %[bk]\n\t", "")
                   : [a] "+r"(Ap), [bk] "+r"(koff), [k4] "+r"(k4), [k1] "+r"(k1), [c] "+r"(C), [d] "+r"(D),
                     [r] "=&r"(r)
                   : [b] "r"(B), [ldc] "r"(ldcb), [ldd] "r"(lddb)
                   : KY_CLOBBERS);
}

// AVX-512 BF16, 8x48 on bf16 pair panels (gemm.h StridedPack* with uint16_t* dst): per step, one k pair —
// B row pair [48 columns][2] (3 zmm of 16 column pairs), A [8 rows][2] broadcast as 32-bit pairs — and
// vdpbf16ps adds both products to the f32 accumulators (bf16 x bf16 is exact in f32). Twice the k per
// instruction of the f32 kernel, at the same bytes per step. kc: k rounded up to even (the packers zero-pad).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16"))) inline void ukr_avx512bf16_8x48(
    int64_t kc, const uint16_t* Ap, const uint16_t* Bp, const float* C, int64_t ldc, float* D, int64_t ldd,
    const uint16_t* pf = nullptr) {
  const int64_t pairs = (kc + 1) >> 1;
  int64_t k4 = pairs >> 2, k1 = pairs & 3, ldcb = ldc * 4, lddb = ldd * 4;
  if (!pf) pf = Bp;
  __asm__ volatile(KY_KERNEL_PACKED("vpbroadcastd", "vdpbf16ps", KY_PACKED_B)
                   : [a] "+r"(Ap), [b] "+r"(Bp), [k4] "+r"(k4), [k1] "+r"(k1), [c] "+r"(C), [d] "+r"(D), [pf] "+r"(pf)
                   : [ldc] "r"(ldcb), [ldd] "r"(lddb)
                   : KY_CLOBBERS);
}
#undef KY_LOADB
#undef KY_LOADB_ROW
#undef KY_ROW
#undef KY_STEP
#undef KY_ADDC
#undef KY_STORED
#undef KY_KERNEL
#undef KY_PACKED_B
#undef KY_KERNEL_PACKED
#undef KY_CLOBBERS
#undef K3_ADDC
#undef K3_STORED
#undef K3_LOOP
#undef K3_PF
#undef KZ_ZERO4
#undef KZ_ZERO8

// Narrow tails: the last column block of a GEMM whose N is not a multiple of NR (a 16-column tail of N = 1024 on
// the 8x48 kernel, 256 Winograd tiles, ...) ran the full-width kernel on a zero-padded panel: 3x the work for 16
// columns. These compute only the first NV vectors of each row of the packed panel (rows ldb floats apart):
// t[r * ldt + c] = sum_k Ap[k * MR + r] * Bp[k * ldb + c], c < NV * lanes. 8 x 16 / 8 x 32 on AVX-512 (8 / 16
// accumulators: two FMA pipes of latency 4 stay busy from 8), 4 x 8 / 4 x 16 on AVX2. Intrinsics: at 8-16
// accumulators GCC keeps them in registers (checked with objdump: no spills in the k loop).
// One body for both ISAs (the target attribute cannot be a template parameter): NAME<NV>, MR rows, vectors of type
// V with LANES floats and their set-zero / load / broadcast / multiply-add / store intrinsics.
#define K_NARROW(NAME, TARGET, MR, V, LANES, ZERO, LOAD, SET1, FMA, STORE)                                    \
  template <int NV>                                                                                           \
  __attribute__((target(TARGET))) inline void NAME(int64_t kc, const float* Ap, const float* Bp, int64_t ldb,  \
                                                   float* t, int64_t ldt) {                                   \
    V acc[MR][NV];                                                                                            \
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; ++r)                                                     \
      _Pragma("GCC unroll 2") for (int v = 0; v < NV; ++v) acc[r][v] = ZERO();                               \
    for (int64_t k = 0; k < kc; ++k) {                                                                        \
      V b[NV];                                                                                                \
      _Pragma("GCC unroll 2") for (int v = 0; v < NV; ++v) b[v] = LOAD(Bp + k * ldb + LANES * v);            \
      _Pragma("GCC unroll 8") for (int r = 0; r < MR; ++r) {                                                 \
        const V a = SET1(Ap[k * MR + r]);                                                                     \
        _Pragma("GCC unroll 2") for (int v = 0; v < NV; ++v) acc[r][v] = FMA(a, b[v], acc[r][v]);            \
      }                                                                                                       \
    }                                                                                                         \
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; ++r)                                                     \
      _Pragma("GCC unroll 2") for (int v = 0; v < NV; ++v) STORE(t + r * ldt + LANES * v, acc[r][v]);        \
  }
K_NARROW(ukr_avx512_8xn, "avx512f,avx512bw,avx512vl,avx512dq", 8, __m512, 16, _mm512_setzero_ps, _mm512_load_ps,
         _mm512_set1_ps, _mm512_fmadd_ps, _mm512_store_ps)
K_NARROW(ukr_avx2_4xn, "avx2,fma", 4, __m256, 8, _mm256_setzero_ps, _mm256_load_ps, _mm256_set1_ps, _mm256_fmadd_ps,
         _mm256_store_ps)
#undef K_NARROW

// Few-pixel convs (conv2d_small.h): y(MR x NV vectors) (+)= A . B with A's MR rows read in place (row r at a[r],
// consecutive in k: the forward's weights, the weight gradient's dy) and B's rows ldb floats apart, 64-byte aligned (a
// patch matrix). Each k: NV vector loads of B, MR broadcasts of A, MR*NV FMAs; y rows ldy apart (any alignment),
// added to (acc) or overwritten. Callers keep MR * NV at most 24 (AVX-512) / 12 (AVX2), so nothing spills; not inlined
// (inlined into the callers' loops, GCC stored the B vectors to the stack every k).
#define K_AROWS(NAME, TARGET, V, LANES, ZERO, LOAD, SET1, FMA, LOADU, STOREU, ADD)                                         \
  template <int MR, int NV>                                                                                       \
  __attribute__((target(TARGET), noinline)) void NAME(int64_t kc, const float* const* a, const float* b, int64_t ldb, \
                                                   float* y, int64_t ldy, bool acc_in) {                          \
    V acc[MR][NV];                                                                                                \
    _Pragma("GCC unroll 12") for (int r = 0; r < MR; ++r)                                                        \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) acc[r][v] = ZERO();                                   \
    const float* ar[MR];                                                                                          \
    _Pragma("GCC unroll 12") for (int r = 0; r < MR; ++r) ar[r] = a[r];                                          \
    for (int64_t k = 0; k < kc; ++k) {                                                                            \
      V bv[NV];                                                                                                   \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) {                                                     \
        bv[v] = LOAD(b + k * ldb + LANES * v);                                                                    \
        __asm__("" : "+v"(bv[v])); /* in a register: not re-read by each row's FMA (GCC folds it otherwise) */   \
      }                                                                                                           \
      _Pragma("GCC unroll 12") for (int r = 0; r < MR; ++r) {                                                    \
        const V av = SET1(ar[r][k]);                                                                              \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) acc[r][v] = FMA(av, bv[v], acc[r][v]);              \
      }                                                                                                           \
    }                                                                                                             \
    _Pragma("GCC unroll 12") for (int r = 0; r < MR; ++r)                                                        \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) {                                                     \
        float* d = y + r * ldy + LANES * v;                                                                       \
        STOREU(d, acc_in ? ADD(LOADU(d), acc[r][v]) : acc[r][v]);                                                 \
      }                                                                                                           \
  }
K_AROWS(ukr_avx512_arows, "avx512f,avx512bw,avx512vl,avx512dq", __m512, 16, _mm512_setzero_ps, _mm512_load_ps,
        _mm512_set1_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_add_ps)
K_AROWS(ukr_avx2_arows, "avx2,fma", __m256, 8, _mm256_setzero_ps, _mm256_load_ps, _mm256_set1_ps, _mm256_fmadd_ps,
        _mm256_loadu_ps, _mm256_storeu_ps, _mm256_add_ps)
#undef K_AROWS

#else
// Not x86: cpu_isa() never picks these paths (detection reports generic); they exist so the dispatch compiles.
inline void ukr_avx2_4x24(int64_t, const float*, const float*, const float*, int64_t, float*, int64_t,
                          const float* = nullptr) {
  std::abort();
}
inline void ukr_avx2_4x24_rows(int64_t, const float*, const float*, const int64_t*, const float*, int64_t, float*,
                               int64_t) {
  std::abort();
}
inline void ukr_avx512_8x48(int64_t, const float*, const float*, const float*, int64_t, float*, int64_t,
                            const float* = nullptr) {
  std::abort();
}
inline void ukr_avx512_8x48_rows(int64_t, const float*, const float*, const int64_t*, const float*, int64_t, float*,
                                 int64_t) {
  std::abort();
}
inline void ukr_avx512bf16_8x48(int64_t, const uint16_t*, const uint16_t*, const float*, int64_t, float*, int64_t,
                                const uint16_t* = nullptr) {
  std::abort();
}
template <int NV>
inline void ukr_avx512_8xn(int64_t, const float*, const float*, int64_t, float*, int64_t) { std::abort(); }
template <int NV>
inline void ukr_avx2_4xn(int64_t, const float*, const float*, int64_t, float*, int64_t) { std::abort(); }
template <int MR, int NV>
inline void ukr_avx512_arows(int64_t, const float* const*, const float*, int64_t, float*, int64_t, bool) { std::abort(); }
template <int MR, int NV>
inline void ukr_avx2_arows(int64_t, const float* const*, const float*, int64_t, float*, int64_t, bool) { std::abort(); }
#endif  // x86-64

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

// The portable form of ukr_*_arows (conv2d_small.h ArowsGeneric): MR rows of A in place x NV groups of 4 columns.
template <int MR, int NV>
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target("arch=x86-64")))
#endif
inline void ukr_generic_arows(int64_t kc, const float* const* a, const float* b, int64_t ldb, float* y, int64_t ldy,
                              bool acc_in) {
  float acc[MR][NV * 4] = {};
  for (int64_t k = 0; k < kc; ++k)
    for (int r = 0; r < MR; ++r) {
      const float av = a[r][k];
      for (int c = 0; c < NV * 4; ++c) acc[r][c] += av * b[k * ldb + c];
    }
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NV * 4; ++c) y[r * ldy + c] = acc_in ? y[r * ldy + c] + acc[r][c] : acc[r][c];
}

}  // namespace kiln
