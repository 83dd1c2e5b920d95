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
// maximum/minimum): NaN in either operand gives NaN, and -0 < +0. fmaxf/fminf would drop a NaN. Built from the
// two x86 orders of the same select, which `omp simd` loops turn into vmaxps / vminps (`a > b ? a : b` is
// exactly maxps(a, b): b when they are equal or either is NaN): when neither is NaN and they differ, both orders
// give the larger (smaller); when equal, one gives a and the other b, and the bitwise AND (OR) of the two keeps
// +0 over -0 (-0 over +0) and is the value otherwise. min's OR of a NaN with anything is a NaN; max adds an
// all-ones NaN where the operands are unordered. Five vector operations for max, three for min (the compare
// and select chain these replace took about ten on AVX2: softmax's max stage). The NaN that comes out may carry
// another payload. `kiln_max` is the matching OpenMP reduction.
static inline float kiln_maxf(float a, float b) {
  const float m1 = a > b ? a : b, m2 = b > a ? b : a;
  const uint32_t nan = __builtin_isunordered(a, b) ? 0xFFFFFFFFu : 0u;
  return __builtin_bit_cast(float, (__builtin_bit_cast(uint32_t, m1) & __builtin_bit_cast(uint32_t, m2)) | nan);
}
static inline float kiln_minf(float a, float b) {
  const float m1 = a < b ? a : b, m2 = b < a ? b : a;
  return __builtin_bit_cast(float, __builtin_bit_cast(uint32_t, m1) | __builtin_bit_cast(uint32_t, m2));
}
#pragma omp declare reduction(kiln_max : float : omp_out = kiln_maxf(omp_out, omp_in)) initializer(omp_priv = -INFINITY)

static inline int64_t kiln_ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A double passed through an int64 slot of `args` (JS writes it through a Float64Array view).
static inline double kiln_arg_f64(const int64_t* args, int i) {
  double d;
  __builtin_memcpy(&d, &args[i], sizeof d);
  return d;
}
