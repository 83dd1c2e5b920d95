// kiln::cpu_isa — which GEMM micro-kernel this process runs, chosen once at run time.
//
// Detection: cpuid (leaf 1: FMA, AVX, OSXSAVE; leaf 7.0: AVX2, AVX-512 F/DQ/BW/VL, VNNI, AMX; leaf 7.1:
// AVX-512 BF16) plus xgetbv(0), which says whether the OS saves the ymm (XCR0 bits 1-2), zmm/opmask
// (bits 5-7) and AMX tile (bits 17-18) state — a CPU flag without OS support is not usable.
//   avx512_bf16  avx512 plus AVX-512 BF16: bf16 x bf16 GEMMs multiply bf16 pairs with vdpbf16ps; every other
//                GEMM (f32, f16 operands, conv) runs the avx512 kernels. On an Intel CPU (cpuid vendor
//                GenuineIntel) the automatic choice converts bf16 GEMMs' panels to f32 instead (`bf16_dot` false):
//                vdpbf16ps retired about one instruction every two cycles on the Xeon measured (2 vCPU, AVX-512 BF16
//                and AMX), so the 8x48 kernel ran 110 GFLOP/s on bf16 pairs against 200 on f32 (kernels/README.md
//                "Measured: the next B panel's L2 prefetch"); on Zen 5 vdpbf16ps was 2.7x faster. KILN_CPU_ISA=avx512_bf16
//                forces vdpbf16ps anywhere.
//   avx512  needs AVX-512 F+DQ+BW+VL, AVX2, FMA and OS zmm state
//   avx2    needs AVX2, FMA and OS ymm state
//   generic anything else (portable C++)
// KILN_CPU_ISA=avx512_bf16|avx512|avx2|generic forces a path; auto or unset takes the best. Forcing a path this CPU cannot
// run, or a name that is not a path, leaves `ok` false with the reason in `error` (the TypeScript runtime asks
// through kiln_cpu_isa() and throws it; a C++ caller of the GEMM gets it on stderr and an abort).
// VNNI/AMX are detected and reported but no kernel uses them yet.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#define KILN_X86 1
#endif

namespace kiln {

enum class Isa { Generic = 0, Avx2 = 1, Avx512 = 2, Avx512Bf16 = 3 };

inline const char* isa_name(Isa i) {
  return i == Isa::Avx512Bf16 ? "avx512_bf16" : i == Isa::Avx512 ? "avx512" : i == Isa::Avx2 ? "avx2" : "generic";
}

struct CpuIsaState {
  Isa isa = Isa::Generic;  // the path taken (meaningful when ok)
  Isa best = Isa::Generic; // the best path this CPU can run
  bool ok = true;
  bool bf16_dot = false;   // bf16 x bf16 GEMMs multiply bf16 pairs (vdpbf16ps): the avx512_bf16 path, unless auto on Intel
  char model[64] = "unknown cpu";
  char features[256] = "";  // detected features usable here, space separated
  char error[256] = "";
};

namespace isa_detail {

struct Flags {
  bool fma = false, avx2 = false, f = false, dq = false, bw = false, vl = false, vnni = false, bf16 = false,
       amx_tile = false, amx_bf16 = false, amx_int8 = false, os_ymm = false, os_zmm = false, os_amx = false,
       intel = false;
};

inline Flags detect(char* model, size_t model_len) {
  Flags fl;
#ifdef KILN_X86
  unsigned a, b, c, d;
  if (__get_cpuid(0, &a, &b, &c, &d)) fl.intel = b == 0x756e6547u && d == 0x49656e69u && c == 0x6c65746eu;  // GenuineIntel
  if (!__get_cpuid(1, &a, &b, &c, &d)) return fl;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28);
  fl.fma = c & (1u << 12);
  if (osxsave) {
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    fl.os_ymm = avx && (lo & 0x6u) == 0x6u;
    fl.os_zmm = fl.os_ymm && (lo & 0xe0u) == 0xe0u;
    fl.os_amx = (lo & 0x60000u) == 0x60000u;
  }
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    fl.avx2 = b & (1u << 5);
    fl.f = b & (1u << 16);
    fl.dq = b & (1u << 17);
    fl.bw = b & (1u << 30);
    fl.vl = b & (1u << 31);
    fl.vnni = c & (1u << 11);
    fl.amx_bf16 = d & (1u << 22);
    fl.amx_tile = d & (1u << 24);
    fl.amx_int8 = d & (1u << 25);
    __cpuid_count(7, 1, a, b, c, d);
    fl.bf16 = a & (1u << 5);
  }
  if (__get_cpuid_max(0x80000000u, nullptr) >= 0x80000004u) {
    unsigned r[12];
    for (unsigned i = 0; i < 3; ++i) __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
    char s[49];
    __builtin_memcpy(s, r, 48);
    s[48] = 0;
    const char* p = s;
    while (*p == ' ') ++p;
    std::snprintf(model, model_len, "%s", p);
    for (size_t n = std::strlen(model); n > 0 && model[n - 1] == ' '; --n) model[n - 1] = 0;
  }
#else
  (void)model; (void)model_len;
#endif
  return fl;
}

inline CpuIsaState resolve() {
  CpuIsaState s;
  const Flags f = detect(s.model, sizeof s.model);
  const bool ymm = f.os_ymm, zmm = f.os_zmm;
  const struct { bool on; const char* name; } feats[] = {
      {ymm && f.avx2, "avx2"}, {ymm && f.fma, "fma"}, {zmm && f.f, "avx512f"}, {zmm && f.dq, "avx512dq"},
      {zmm && f.bw, "avx512bw"}, {zmm && f.vl, "avx512vl"}, {zmm && f.bf16, "avx512_bf16"},
      {zmm && f.vnni, "avx512_vnni"}, {f.os_amx && f.amx_tile, "amx_tile"}, {f.os_amx && f.amx_bf16, "amx_bf16"},
      {f.os_amx && f.amx_int8, "amx_int8"}};
  for (const auto& x : feats)
    if (x.on) {
      const size_t n = std::strlen(s.features);
      std::snprintf(s.features + n, sizeof s.features - n, "%s%s", n ? " " : "", x.name);
    }
  const bool can_avx2 = ymm && f.avx2 && f.fma;
  const bool can_avx512 = can_avx2 && zmm && f.f && f.dq && f.bw && f.vl;
  const bool can_bf16 = can_avx512 && f.bf16;
  s.best = can_bf16 ? Isa::Avx512Bf16 : can_avx512 ? Isa::Avx512 : can_avx2 ? Isa::Avx2 : Isa::Generic;
  s.isa = s.best;
  s.bf16_dot = s.isa == Isa::Avx512Bf16 && !f.intel;
  const char* env = std::getenv("KILN_CPU_ISA");
  if (!env || !*env || std::strcmp(env, "auto") == 0) return s;
  s.bf16_dot = false;
  if (std::strcmp(env, "generic") == 0) {
    s.isa = Isa::Generic;
  } else if (std::strcmp(env, "avx2") == 0 || std::strcmp(env, "avx512") == 0 || std::strcmp(env, "avx512_bf16") == 0) {
    const Isa want = env[3] == '2' ? Isa::Avx2 : env[6] == '_' ? Isa::Avx512Bf16 : Isa::Avx512;
    const bool can = want == Isa::Avx2 ? can_avx2 : want == Isa::Avx512 ? can_avx512 : can_bf16;
    if (!can) {
      s.ok = false;
      std::snprintf(s.error, sizeof s.error,
                    "KILN_CPU_ISA=%s, but this CPU (%s) cannot run it: it needs %s with OS support; usable here: "
                    "%s (best path: %s)",
                    env, s.model,
                    want == Isa::Avx2     ? "avx2 fma"
                    : want == Isa::Avx512 ? "avx512f avx512dq avx512bw avx512vl avx2 fma"
                                          : "avx512_bf16 avx512f avx512dq avx512bw avx512vl avx2 fma",
                    *s.features ? s.features : "none", isa_name(s.best));
      return s;
    }
    s.isa = want;
    s.bf16_dot = want == Isa::Avx512Bf16;
  } else {
    s.ok = false;
    std::snprintf(s.error, sizeof s.error,
                  "KILN_CPU_ISA=%.40s is not a CPU kernel path: use avx512_bf16, avx512, avx2, generic or auto", env);
  }
  return s;
}

}  // namespace isa_detail

// Resolved once per process (KILN_CPU_ISA is read at the first call).
inline const CpuIsaState& cpu_isa_state() {
  static const CpuIsaState s = isa_detail::resolve();
  return s;
}

// The path to run; a refused KILN_CPU_ISA ends the process with the reason.
inline Isa cpu_isa() {
  const CpuIsaState& s = cpu_isa_state();
  if (!s.ok) {
    std::fprintf(stderr, "kiln: %s\n", s.error);
    std::abort();
  }
  return s.isa;
}

}  // namespace kiln
