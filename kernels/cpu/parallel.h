// When a CPU kernel opens an OpenMP parallel region: only for work that pays for waking the other threads.
//
// The runtime sets OMP_WAIT_POLICY=passive (runtime/native.ts: spinning workers lose whole scheduler slices when
// another process shares the cores), so every region wakes workers that sleep in the kernel. On the 2-vCPU VMs we
// build and test on, that wake costs 40-90 us per region (a sleeping vCPU is halted; the hypervisor has to run it
// again), against ~1 us with spinning workers on bare metal: the tiny-UNet training step, ~3400 kernels, took
// 54-63 ms with regions from 16384 elements / 1.5e5 multiply-adds up, 15 ms with spinning workers (bench/README.md
// "Parallel regions"). So a kernel goes parallel only when one core would need ~100 us or more:
//   KILN_PAR_MIN_ELEMS   elements of an elementwise pass or a reduction's input (~1 ns each on one core);
//   KILN_PAR_MIN_COPY    elements of a plain copy or repacking (a conv's padded input, its packed weights: ~0.2 ns
//                        each, so 4x as many for the same ~100 us);
//   KILN_PAR_MIN_MACS    multiply-adds of a GEMM, convolution or attention.
// Generated programs ask through prelude.h (`#pragma omp parallel for if(kiln::par_elems(n))`); the same loop runs
// on one thread or several with the same per-element arithmetic (parallel reductions aside: a long reduction of few
// rows sums per thread, so whether it went parallel changes its rounding, not its meaning). The environment
// variables of the same names override the defaults (the kernel tests set the thresholds they were written for, so
// their mid-size cases keep running the drivers' multi-threaded paths).
#pragma once

#include <cstdlib>

#define KILN_PAR_MIN_ELEMS 131072
#define KILN_PAR_MIN_COPY 524288
#define KILN_PAR_MIN_MACS 4.0e6

namespace kiln {
// `name` from the environment when set to a number >= 0, else `dflt` (read once per name by the callers' statics).
inline double par_threshold(const char* name, double dflt) {
  const char* e = std::getenv(name);
  if (!e || !*e) return dflt;
  char* end = nullptr;
  const double v = std::strtod(e, &end);
  return end && *end == 0 && v >= 0 ? v : dflt;
}
// A forcing switch from the environment: 0 or 1 when `name` is exactly "0" or "1", else -1 (unset: decide per shape).
inline int env_switch(const char* name) {
  const char* e = std::getenv(name);
  return e && (e[0] == '0' || e[0] == '1') && e[1] == 0 ? e[0] - '0' : -1;
}
// True when `macs` multiply-adds are worth a parallel region.
inline bool par_macs(double macs) {
  static const double m = par_threshold("KILN_PAR_MIN_MACS", KILN_PAR_MIN_MACS);
  return macs >= m;
}
// True when a pass over `n` elements is worth a parallel region.
inline bool par_elems(double n) {
  static const double m = par_threshold("KILN_PAR_MIN_ELEMS", KILN_PAR_MIN_ELEMS);
  return n > m;
}
// True when copying `n` elements is worth a parallel region.
inline bool par_copy(double n) {
  static const double m = par_threshold("KILN_PAR_MIN_COPY", KILN_PAR_MIN_COPY);
  return n > m;
}
}  // namespace kiln
