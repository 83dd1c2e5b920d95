/** The host side of a generated CUDA program, llm.c-style: one `kiln_run` that launches every kernel of the
 * program in order on one stream (grid, block and shared memory fixed here at code generation), so a training
 * step is one native call instead of one N-API call per launch. The launch list is data (a table of launches
 * and one of their offset arguments) walked by a short loop, so the host code stays small for programs with tens
 * of thousands of launches. Kernels above 48 KiB of dynamic shared memory get the attribute once. Parameter
 * commits are device-to-device memcpys (the copy engine), not kernels.
 *
 * ABI (runtime/README.md, the CPU entry point): `int kiln_run(uint8_t* msg, const int64_t* args)`, args[0] the
 * device arena, args[1] the stream, args[2] 1 to run through a CUDA Graph (the launch sequence captured once per
 * (arena, stream), then replayed by one cudaGraphLaunch); on failure it returns the CUDA error and writes its text into `msg`
 * (KILN_MSG_BYTES bytes). The same source builds against the CUDA emulator (kernels/cuda/emu/kiln_emu.h). */
import type { CudaLaunch } from './cuda';

export const KILN_MSG_BYTES = 4096;

export function renderHostLauncher(launches: readonly CudaLaunch[]): string {
  const names = [...new Set(launches.map((l) => l.kernel))];
  const index = new Map(names.map((n, i) => [n, i]));
  const smemMax = names.map((n) => Math.max(...launches.filter((l) => l.kernel === n).map((l) => l.smem)));
  const args: number[] = [], copies: number[] = [];
  const rows = launches.map((l) => {
    if (l.copies) {  // a parameter commit: device-to-device copies (fn -1; nargs copies from kiln_copies[arg])
      const start = copies.length / 3;
      for (const c of l.copies) copies.push(c.to, c.from, c.bytes);
      return `  {-1, 1, 1, 1, 1, 1, 1, 0, ${l.copies.length}, ${start}},`;
    }
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
    `static const int64_t kiln_copies[${Math.max(copies.length, 3)}] = {  // to, from, bytes`, ...(copies.length ? wrap(copies.map(String), 12) : ['  0, 0, 0,']), '};',
    '',
    `#define KILN_FAIL(e, ...) do { snprintf(reinterpret_cast<char*>(msg), ${KILN_MSG_BYTES}, __VA_ARGS__); return int(e); } while (0)`,
    'static int kiln_launch_all(uint8_t* msg, uint8_t* A, cudaStream_t stream) {',
    `  void* params[${1 + maxArgs}];`,
    '  params[0] = &A;',
    `  for (int n = 0; n < ${launches.length}; ++n) {`,
    '    const KilnLaunch& l = kiln_launches[n];',
    '    if (l.fn < 0) {',
    '      for (int i = 0; i < l.nargs; ++i) {',
    '        const int64_t* c = &kiln_copies[3 * (l.arg + i)];',
    '        const cudaError_t e = cudaMemcpyAsync(A + c[0], A + c[1], size_t(c[2]), cudaMemcpyDeviceToDevice, stream);',
    '        if (e != cudaSuccess) KILN_FAIL(e, "kiln_run: launch %d (parameter commit): cudaMemcpyAsync: %s", n, cudaGetErrorString(e));',
    '      }',
    '      continue;',
    '    }',
    '    for (int i = 0; i < l.nargs; ++i) params[1 + i] = const_cast<int64_t*>(&kiln_args[l.arg + i]);',
    '    const cudaError_t e = cudaLaunchKernel(kiln_fns[l.fn], dim3(l.gx, l.gy, l.gz), dim3(l.bx, l.by, l.bz), params, l.smem, stream);',
    `    if (e != cudaSuccess) KILN_FAIL(e, "kiln_run: launch %d of '%s': %s", n, kiln_fn_names[l.fn], cudaGetErrorString(e));`,
    '  }',
    '  return 0;',
    '}',
    '',
    '// Graphs captured so far, by (arena, stream): a replay skips the per-launch host work entirely.',
    'struct KilnGraph { uint8_t* A; cudaStream_t stream; cudaGraphExec_t exec; };',
    'static KilnGraph kiln_graphs[8];',
    'static int kiln_graph_count = 0;',
    '',
    'extern "C" __attribute__((visibility("default"))) int kiln_run(uint8_t* msg, const int64_t* a) {',
    '  uint8_t* A = reinterpret_cast<uint8_t*>(a[0]);',
    '  cudaStream_t stream = reinterpret_cast<cudaStream_t>(a[1]);',
    '  // Shared memory above 48 KiB needs the attribute: set before any launch (and outside a capture).',
    `  for (int i = 0; i < ${names.length}; ++i)`,
    '    if (kiln_fn_smem[i] > 48 * 1024) {',
    '      const cudaError_t e = cudaFuncSetAttribute(kiln_fns[i], cudaFuncAttributeMaxDynamicSharedMemorySize, int(kiln_fn_smem[i]));',
    `      if (e != cudaSuccess) KILN_FAIL(e, "kiln_run: cudaFuncSetAttribute for '%s': %s", kiln_fn_names[i], cudaGetErrorString(e));`,
    '    }',
    '  if (a[2] == 0) return kiln_launch_all(msg, A, stream);',
    '  for (int i = 0; i < kiln_graph_count; ++i)',
    '    if (kiln_graphs[i].A == A && kiln_graphs[i].stream == stream) {',
    '      const cudaError_t e = cudaGraphLaunch(kiln_graphs[i].exec, stream);',
    '      if (e != cudaSuccess) KILN_FAIL(e, "kiln_run: cudaGraphLaunch: %s", cudaGetErrorString(e));',
    '      return 0;',
    '    }',
    '  if (kiln_graph_count == 8) return kiln_launch_all(msg, A, stream);  // more arenas than slots: launch directly',
    '  cudaError_t e = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);',
    '  if (e != cudaSuccess) KILN_FAIL(e, "kiln_run: cudaStreamBeginCapture: %s", cudaGetErrorString(e));',
    '  const int r = kiln_launch_all(msg, A, stream);',
    '  cudaGraph_t graph = nullptr;',
    '  e = cudaStreamEndCapture(stream, &graph);',
    '  if (r != 0) return r;',
    '  if (e != cudaSuccess) KILN_FAIL(e, "kiln_run: cudaStreamEndCapture: %s", cudaGetErrorString(e));',
    '  cudaGraphExec_t exec = nullptr;',
    '  e = cudaGraphInstantiate(&exec, graph, 0);',
    '  cudaGraphDestroy(graph);',
    '  if (e != cudaSuccess) KILN_FAIL(e, "kiln_run: cudaGraphInstantiate: %s", cudaGetErrorString(e));',
    '  kiln_graphs[kiln_graph_count++] = KilnGraph{A, stream, exec};',
    '  e = cudaGraphLaunch(exec, stream);',
    '  if (e != cudaSuccess) KILN_FAIL(e, "kiln_run: cudaGraphLaunch: %s", cudaGetErrorString(e));',
    '  return 0;',
    '}',
    '',
  ].join('\n');
}
