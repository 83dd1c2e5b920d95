// Included by every generated C++ program (`#include "prelude.h"`; the runtime passes -I kernels/cpu).
// Its bytes are part of the kernel-cache key, so editing it recompiles every cached program.
//
// Entry-point ABI, which runtime/native/src/cpu.cc calls through dlsym:
//   KILN_ENTRY int name(uint8_t* arena, const int64_t* args)   // 0 = success
// Tensors live at byte offsets inside `arena` (64-byte aligned base); `args` holds 8-byte slots
// (int64 sizes and offsets, or doubles bit-cast with kiln_arg_f64).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <omp.h>

#include "parallel.h"  // kiln::par_elems: whether a kernel loop is worth all threads

// Kernels index disjoint ranges of one arena, which the compiler cannot prove; the renderer marks
// pointers that the memory planner guarantees do not alias.
#define KILN_RESTRICT __restrict__

// Kernel functions: called once each from the entry points, where inlining thousands of them gains nothing at
// run time and doubles g++'s time (tiny PuLID step: 56 s -> 27 s).
#define KILN_NOINLINE __attribute__((noinline))

// Exported, unmangled, and visible even if the caller builds with -fvisibility=hidden.
#define KILN_ENTRY extern "C" __attribute__((visibility("default")))

// Pointer to a tensor at a byte offset in the arena.
template <typename T>
static inline T* kiln_at(uint8_t* arena, int64_t byte_offset) {
  return reinterpret_cast<T*>(arena + byte_offset);
}

// Float max/min with the reference's IEEE 754-2019 semantics (JavaScript's Math.max/min, PyTorch's
// maximum/minimum): NaN in either operand gives NaN, and -0 < +0. fmaxf/fminf would drop a NaN. Written as
// selects so `omp simd` loops vectorize them. `kiln_max` is the matching OpenMP reduction.
static inline float kiln_maxf(float a, float b) { return (a != a || a > b || (a == b && !std::signbit(a))) ? a : b; }
static inline float kiln_minf(float a, float b) { return (a != a || a < b || (a == b && std::signbit(a))) ? a : b; }
#pragma omp declare reduction(kiln_max : float : omp_out = kiln_maxf(omp_out, omp_in)) initializer(omp_priv = -INFINITY)

static inline int64_t kiln_ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A double passed through an int64 slot of `args` (JS writes it through a Float64Array view).
static inline double kiln_arg_f64(const int64_t* args, int i) {
  double d;
  std::memcpy(&d, &args[i], sizeof d);
  return d;
}
