/** The host side of a generated CUDA program, llm.c-style: one `kiln_run` that launches every kernel of the
 * program in order on one stream (grid, block and shared memory fixed here at code generation), so a training
 * step is one native call instead of one N-API call per launch. The launch list is data (a table of launches
 * and one of their offset arguments) walked by a short loop, so the host code stays small for programs with tens
 * of thousands of launches. Kernels above 48 KiB of dynamic shared memory get the attribute once.
 *
 * ABI (runtime/README.md, the CPU entry point): `int kiln_run(uint8_t* msg, const int64_t* args)`, args[0] the
 * device arena, args[1] the stream; on failure it returns the CUDA error and writes its text into `msg`
 * (KILN_MSG_BYTES bytes). The same source builds against the CUDA emulator (kernels/cuda/emu/kiln_emu.h). */
import type { CudaLaunch } from './cuda';

export const KILN_MSG_BYTES = 4096;

export function renderHostLauncher(launches: readonly CudaLaunch[]): string {
  const names = [...new Set(launches.map((l) => l.kernel))];
  const index = new Map(names.map((n, i) => [n, i]));
  const smemMax = names.map((n) => Math.max(...launches.filter((l) => l.kernel === n).map((l) => l.smem)));
  const args: number[] = [];
  const rows = launches.map((l) => {
    const start = args.length;
    args.push(...(l.args ?? []));
    return `  {${index.get(l.kernel)}, ${l.grid.join(', ')}, ${l.block.join(', ')}, ${l.smem}, ${l.args?.length ?? 0}, ${start}},`;
  });
  const maxArgs = Math.max(0, ...launches.map((l) => l.args?.length ?? 0));
  const wrap = (xs: readonly string[], per = 8) => Array.from({ length: Math.ceil(xs.length / per) }, (_, i) => `  ${xs.slice(i * per, i * per + per).join(', ')},`);
  return [
    '// ---- host side: every launch of the program, in order, on one stream (render/cuda-host.ts) ----',
    '#include <cuda_runtime.h>',
    '#include <stdio.h>',
    `static const void* const kiln_fns[${names.length}] = {`, ...wrap(names.map((n) => `(const void*)&${n}`), 4), '};',
    `static const char* const kiln_fn_names[${names.length}] = {`, ...wrap(names.map((n) => `"${n}"`), 4), '};',
    `static const unsigned kiln_fn_smem[${names.length}] = {`, ...wrap(smemMax.map(String), 16), '};',
    'struct KilnLaunch { int fn; unsigned gx, gy, gz, bx, by, bz, smem; int nargs, arg; };',
    `static const KilnLaunch kiln_launches[${Math.max(launches.length, 1)}] = {`, ...(rows.length ? rows : ['  {0, 1, 1, 1, 1, 1, 1, 0, 0, 0},']), '};',
    `static const int64_t kiln_args[${Math.max(args.length, 1)}] = {`, ...(args.length ? wrap(args.map(String), 12) : ['  0,']), '};',
    '',
    'extern "C" __attribute__((visibility("default"))) int kiln_run(uint8_t* msg, const int64_t* a) {',
    '  uint8_t* A = reinterpret_cast<uint8_t*>(a[0]);',
    '  cudaStream_t stream = reinterpret_cast<cudaStream_t>(a[1]);',
    `  for (int i = 0; i < ${names.length}; ++i)`,
    '    if (kiln_fn_smem[i] > 48 * 1024) {',
    '      const cudaError_t e = cudaFuncSetAttribute(kiln_fns[i], cudaFuncAttributeMaxDynamicSharedMemorySize, int(kiln_fn_smem[i]));',
    `      if (e != cudaSuccess) { snprintf(reinterpret_cast<char*>(msg), ${KILN_MSG_BYTES}, "kiln_run: cudaFuncSetAttribute for '%s': %s", kiln_fn_names[i], cudaGetErrorString(e)); return int(e); }`,
    '    }',
    `  void* params[${1 + maxArgs}];`,
    '  params[0] = &A;',
    `  for (int n = 0; n < ${launches.length}; ++n) {`,
    '    const KilnLaunch& l = kiln_launches[n];',
    '    for (int i = 0; i < l.nargs; ++i) params[1 + i] = const_cast<int64_t*>(&kiln_args[l.arg + i]);',
    '    const cudaError_t e = cudaLaunchKernel(kiln_fns[l.fn], dim3(l.gx, l.gy, l.gz), dim3(l.bx, l.by, l.bz), params, l.smem, stream);',
    `    if (e != cudaSuccess) { snprintf(reinterpret_cast<char*>(msg), ${KILN_MSG_BYTES}, "kiln_run: launch %d of '%s': %s", n, kiln_fn_names[l.fn], cudaGetErrorString(e)); return int(e); }`,
    '  }',
    '  return 0;',
    '}',
    '',
  ].join('\n');
}
