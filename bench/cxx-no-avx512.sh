#!/bin/sh
# g++ with AVX-512 off, for `bench/run.ts --isa avx2` (KILN_CXX): -mno-avx512f after the runtime's -march=native
# turns off every AVX-512 subset for the generated programs and the kernel library, so their auto-vectorized loops
# use ymm as on an AVX2-only CPU (the GEMM's target-attribute micro-kernels are chosen by KILN_CPU_ISA=avx2).
exec g++ "$@" -mno-avx512f
