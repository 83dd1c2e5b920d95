/**
 * The CUDA path. nvcc compiles everywhere it is installed; launching needs a GPU and its driver, which CI
 * does not have, so there the tests check that the runtime says so clearly.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cacheStats } from '../../runtime/cache';
import { compileCuda, CudaDevice, cudaAvailable, f32Param, KernelCompileError, nvccAvailable } from '../../runtime/cuda';
import { native } from '../../runtime/native';

process.env.KILN_CACHE = mkdtempSync(path.join(tmpdir(), 'kiln-cache-'));

const SOFTMAX = `
#include "prelude.cuh"

// One block per row: out = softmax(in) along the row.
KILN_KERNEL void softmax_rows(float* __restrict__ out, const float* __restrict__ in, int64_t cols) {
  const float* row = in + blockIdx.x * cols;
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) m = fmaxf(m, row[i]);
  m = blockReduceMax(m, true);
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) s += expf(row[i] - m);
  s = blockReduceSum(s);
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) out[blockIdx.x * cols + i] = expf(row[i] - m) / s;
}

KILN_KERNEL void scale(float* __restrict__ x, float a, int64_t n) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n) x[i] *= a;
}
`;

const gpu = cudaAvailable();
const withNvcc = nvccAvailable() ? it : it.skip;
const withGpu = gpu.ok ? it : it.skip;
const withoutGpu = gpu.ok ? it.skip : it;
if (!nvccAvailable()) console.warn('nvcc not found (set KILN_NVCC): skipping the CUDA compile tests');

describe('compileCuda', () => {
  withNvcc('compiles a kernel using the prelude to a cached cubin', async () => {
    const cubin = await compileCuda(SOFTMAX);
    expect(cubin.artifactPath).toMatch(/\.cubin$/);
    expect([...cubin.read().subarray(0, 4)]).toEqual([0x7f, 0x45, 0x4c, 0x46]); // an ELF image

    const before = cacheStats().compiles;
    const again = await compileCuda(SOFTMAX);
    expect(again.cacheHit).toBe(true);
    expect(again.artifactPath).toBe(cubin.artifactPath);
    expect(cacheStats().compiles).toBe(before);
  });

  withNvcc('reports a compile error with the source path and the nvcc log', async () => {
    const bad = '#include "prelude.cuh"\nKILN_KERNEL void broken(float* x) { x[0] = missing_value; }\n';
    const err: unknown = await compileCuda(bad).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KernelCompileError);
    const e = err as KernelCompileError;
    expect(e.sourcePath).toMatch(/\.cu$/);
    expect(e.message).toContain(e.sourcePath);
    expect(e.message).toMatch(/identifier "missing_value" is undefined/);
  });
});

describe('CUDA driver', () => {
  withoutGpu('reports why it is unavailable without throwing', () => {
    expect(gpu.reason).toMatch(/libcuda/);
  });

  withoutGpu('refuses to open a device with the same clear reason', () => {
    expect(() => CudaDevice.open()).toThrow(/CUDA is unavailable: .*libcuda/);
    expect(() => native().cudaInit()).toThrow(/no NVIDIA driver/);
    expect(() => native().cudaMalloc(undefined as never, 16)).toThrow(/not a CUDA session handle/);
  });

  withGpu('runs a kernel on the device arena', async () => {
    const device = CudaDevice.open();
    const rows = 4;
    const cols = 1000;
    const bytes = rows * cols * 4;
    device.allocArena(2 * bytes);
    const input = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i));
    device.upload(0, input);

    const module = device.loadModule(await compileCuda(SOFTMAX));
    const softmax = module.kernel('softmax_rows');
    const ms = device.time(() => device.launch(softmax, [rows, 1, 1], [256, 1, 1], 0, [device.ptr(bytes), device.ptr(0), cols]));
    expect(ms).toBeGreaterThanOrEqual(0);
    device.launch(module.kernel('scale'), [Math.ceil((rows * cols) / 256), 1, 1], [256, 1, 1], 0, [
      device.ptr(bytes),
      f32Param(2),
      rows * cols,
    ]);
    device.sync();

    const out = new Float32Array(rows * cols);
    device.download(out, bytes);
    for (let r = 0; r < rows; r++) {
      const row = input.subarray(r * cols, (r + 1) * cols);
      const max = Math.max(...row);
      const sum = row.reduce((s, v) => s + Math.exp(v - max), 0);
      for (let c = 0; c < cols; c++) expect(out[r * cols + c]).toBeCloseTo((2 * Math.exp(row[c] - max)) / sum, 6);
    }
    module.unload();
    device.freeArena();
  });
});
