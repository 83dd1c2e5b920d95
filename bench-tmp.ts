import { compileCudaEmu, openEmulatedDevice } from './runtime/cuda-emu';
const SRC = `
#include "prelude.cuh"
KILN_KERNEL void red(float* out, int reps) {
  float acc = threadIdx.x;
  for (int i = 0; i < reps; ++i) acc = blockReduceSum(acc, true) * 1e-3f;
  if (threadIdx.x == 0) out[blockIdx.x] = acc;
}
KILN_KERNEL void nop(float* out) { if (threadIdx.x == 0) out[blockIdx.x] = 1; }
KILN_KERNEL void bar(float* out, int reps) { for (int i = 0; i < reps; ++i) __syncthreads(); if (threadIdx.x == 0) out[blockIdx.x] = 1; }
KILN_KERNEL void shf(float* out, int reps) { float v = threadIdx.x; for (int i = 0; i < reps; ++i) v = __shfl_xor_sync(0xffffffffu, v, 1); if (threadIdx.x == 0) out[blockIdx.x] = v; }
`;
const mod = await compileCudaEmu(SRC);
const dev = await openEmulatedDevice();
const base = dev.allocArena(1 << 20);
const m = dev.loadModule(mod);
for (const [k, grid, args] of [['nop', 1000, [base]], ['bar', 100, [base, 100]], ['shf', 100, [base, 100]], ['red', 100, [base, 10]]] as const) {
  const t = performance.now();
  dev.launch(m.kernel(k), [grid, 1, 1], [256, 1, 1], 0, args as never);
  console.log(k, ((performance.now() - t) / grid).toFixed(3), 'ms/block');
}
