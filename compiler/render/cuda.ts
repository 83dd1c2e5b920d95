/** CUDA renderer: the same kernel IR as the C++ renderer, printed as `extern "C" __global__` kernels (one
 * thread per element in a grid-stride loop for pointwise kernels; one block per row with a shared-memory
 * block reduction for reductions; the hand-written templates of kernels/cuda for GEMM, conv and attention
 * with the fused epilogue as a device lambda), plus the launch list the host runs them with. */
import { numel, type Shape } from '../ir/shape';
import type { Expr, ExternKernel, Kernel, ReduceKernel, RowKernel, Store } from '../codegen/kir';
import { buffersOf } from '../codegen/buffers';
import { localizeBuffers } from '../codegen/remap';
import { cOps, ExprPrinter, literal, printStores, type Lang } from './cstyle';
import type { BufferInfo } from './cpp';
import { templateCallCuda } from './templates-cuda';
import { renderHostLauncher } from './cuda-host';

/** Integer max/min are CUDA's device overloads, not std::. */
const cudaOps = { ...cOps,
  max: (a: string[], dt: Parameters<typeof cOps.max>[1]) => (dt === 'i32' ? `max((long long)(${a[0]}), (long long)(${a[1]}))` : cOps.max(a, dt)),
  min: (a: string[], dt: Parameters<typeof cOps.min>[1]) => (dt === 'i32' ? `min((long long)(${a[0]}), (long long)(${a[1]}))` : cOps.min(a, dt)),
};

export const cudaLang: Lang = {
  ops: cudaOps,
  valueType: (dt) => (dt === 'f32' || dt === 'f16' || dt === 'bf16' ? 'float' : dt === 'bool' ? 'bool' : 'int64_t'),
  storageType: (dt) => (dt === 'f32' ? 'float' : dt === 'bool' ? 'uint8_t' : dt === 'i32' ? 'int32_t' : dt === 'f16' ? '__half' : '__nv_bfloat16'),
  literal,
  philox: (k, c, s) => `kiln_philox_uniform((uint32_t)(${k}), (uint32_t)(${c}), ${s}u)`,
  fromStorage: (v, dt) => (dt === 'bool' ? `(${v} != 0)` : dt === 'f16' ? `__half2float(${v})` : dt === 'bf16' ? `__bfloat162float(${v})` : v),
  toStorage: (v, dt) => (dt === 'bool' ? `(uint8_t)(${v})` : dt === 'f16' ? `__float2half_rn(${v})` : dt === 'bf16' ? `__float2bfloat16_rn(${v})` : v),
  round: (v, dt) => (dt === 'f16' ? `__half2float(__float2half_rn(${v}))` : `__bfloat162float(__float2bfloat16_rn(${v}))`),
};

export interface CudaLaunch {
  readonly kernel: string;
  readonly grid: readonly [number, number, number];
  readonly block: readonly [number, number, number];
  readonly smem: number;
  /** Kernel parameters after the arena pointer: the arena offsets of the kernel's buffers. */
  readonly args?: readonly number[];
  /** The buffers (plan ids) whose offsets `args` holds, in the same order. */
  readonly bufs?: readonly number[];
  /** The index of the program kernel this launch belongs to (a template may launch several kernels). */
  readonly kernelIndex?: number;
  /** A commit kernel's copies (arena byte offsets): the host launcher issues them as device-to-device memcpys. */
  readonly copies?: readonly { readonly from: number; readonly to: number; readonly bytes: number }[];
}

const THREADS = 256;
const ind = (s: string[], n = 1) => s.map((l) => '  '.repeat(n) + l);
const gridFor = (n: number) => Math.max(1, Math.min(Math.ceil(n / THREADS), 65535 * 8));

/** Buffer pointers; `at` prints a buffer's arena offset (a literal, or the kernel parameter holding it). Read-only
 * buffers are `const`; a buffer whose bytes no other buffer of the kernel overlaps (in place) is `__restrict__`. */
function pointerDecls(bufs: readonly number[], info: ReadonlyMap<number, BufferInfo>, written: ReadonlySet<number>, at: (b: number) => string): string[] {
  const overlaps = (b: number) => bufs.some((o) => {
    if (o === b) return false;
    const x = info.get(b)!, y = info.get(o)!;
    return x.offset < y.offset + y.bytes && y.offset < x.offset + x.bytes;
  });
  return bufs.map((b) => {
    const t = cudaLang.storageType(info.get(b)!.dtype), c = written.has(b) ? '' : 'const ';
    return `${c}${t}* ${overlaps(b) ? '' : '__restrict__ '}b${b} = reinterpret_cast<${c}${t}*>(A + ${at(b)});`;
  });
}

/** Binds loop variables from a flat index over `shape` (the flat index is always below numel(shape)): no division
 * by 1, no modulo on the outermost dimension, extent-1 dimensions are 0. Unused binds are dropped per kernel
 * (dropUnusedBinds). */
export function bindVars(vars: readonly Expr[], shape: Shape, flat: string): string[] {
  let st = 1;
  const out: string[] = [];
  for (let i = shape.length - 1; i >= 0; i--) {
    const name = (vars[i] as { name: string }).name;
    const q = st === 1 ? flat : `(${flat} / ${st})`;
    out.unshift(`const int64_t ${name} = ${shape[i] === 1 ? '0' : i === 0 ? q : `${q} % ${shape[i]}`};`);
    st *= shape[i];
  }
  return out;
}

/** Removes `const int64_t x = …;` binds that nothing else in the kernel reads. */
function dropUnusedBinds(lines: readonly string[]): string[] {
  const text = lines.join('\n');
  return lines.filter((l) => {
    const m = /^\s*const int64_t (\w+) = [^,;]*;$/.exec(l);
    if (!m) return true;
    const uses = text.match(new RegExp(`\\b${m[1]}\\b`, 'g'))?.length ?? 0;
    return uses > 1;
  });
}

export const storeLinesCuda = (stores: readonly Store[], p: ExprPrinter): string[] => printStores(stores, p, cudaLang);

/** How a reduction is spread over threads: one thread per row when there is nothing to reduce, a warp per row for
 * short rows (8 rows per block), a block per row otherwise. */
function reduceShape(inner: number): 'thread' | 'warp' | 'block' { return inner <= 1 ? 'thread' : inner <= 256 ? 'warp' : 'block'; }
const ROWS_PER_WARP_BLOCK = THREADS / 32;

function reduceKernel(k: ReduceKernel, decl: string[]): string[] {
  const p = new ExprPrinter(cudaLang, (b) => `b${b}`);
  const v = p.print(k.value);
  const shape = reduceShape(numel(k.inner)), rows = numel(k.outer);
  const ep = new ExprPrinter(cudaLang, (b) => `b${b}`, 'e');
  const init = k.combine === 'add' ? literal(0, k.accDtype) : literal(-Infinity, k.accDtype);
  const combine = k.combine === 'add' ? `acc += ${v};` : `acc = kiln_maxf(acc, ${v});`;
  const head = `KILN_KERNEL void __launch_bounds__(${THREADS}) ${k.name}(uint8_t* __restrict__ A KILN_OFFSETS) {`;
  if (shape === 'thread') {
    return [head, ...ind(decl),
      `  for (int64_t row = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; row < ${rows}; row += (int64_t)gridDim.x * blockDim.x) {`,
      ...ind(bindVars(k.outerVars, k.outer, 'row'), 2), `    float acc = ${init};`, '    {', '      const int64_t r = 0;',
      ...ind([...bindVars(k.innerVars, k.inner, 'r'), ...p.lines.splice(0), combine], 3), '    }',
      ...ind(storeLinesCuda(k.stores, ep), 2), '  }', '}'];
  }
  const inner = [...bindVars(k.innerVars, k.inner, 'r'), ...p.lines.splice(0), combine];
  if (shape === 'warp') {
    return [head, ...ind(decl),
      `  const int lane = threadIdx.x % WARP_SIZE;`,
      `  for (int64_t row = blockIdx.x * (int64_t)${ROWS_PER_WARP_BLOCK} + threadIdx.x / WARP_SIZE; row < ${rows}; row += (int64_t)gridDim.x * ${ROWS_PER_WARP_BLOCK}) {`,
      ...ind(bindVars(k.outerVars, k.outer, 'row'), 2), `    float acc = ${init};`,
      `    for (int64_t r = lane; r < ${numel(k.inner)}; r += WARP_SIZE) {`, ...ind(inner, 3), '    }',
      `    acc = ${k.combine === 'add' ? 'warpReduceSum' : 'warpReduceMax'}(acc);`,
      '    if (lane == 0) {', ...ind(storeLinesCuda(k.stores, ep), 3), '    }', '  }', '}'];
  }
  return [head, ...ind(decl),
    `  for (int64_t row = blockIdx.x; row < ${rows}; row += gridDim.x) {`,
    ...ind(bindVars(k.outerVars, k.outer, 'row'), 2),
    `    float acc = ${init};`,
    `    for (int64_t r = threadIdx.x; r < ${numel(k.inner)}; r += blockDim.x) {`,
    ...ind(inner, 3),
    '    }',
    `    acc = ${k.combine === 'add' ? 'blockReduceSum' : 'blockReduceMax'}(acc, true);`,
    '    if (threadIdx.x == 0) {',
    ...ind(storeLinesCuda(k.stores, ep), 3),
    '    }',
    '  }',
    '}',
  ];
}

/** Blocks for a reduction over `rows` rows of `inner` elements (reduceShape decides the threads per row). */
function reduceGrid(rows: number, inner: number): number {
  const shape = reduceShape(inner);
  const blocks = shape === 'thread' ? Math.ceil(rows / THREADS) : shape === 'warp' ? Math.ceil(rows / ROWS_PER_WARP_BLOCK) : rows;
  return Math.max(1, Math.min(blocks, 65535 * 8));
}

function rowKernel(k: RowKernel, decl: string[]): string[] {
  const stages: string[] = [];
  k.reductions.forEach((r, slot) => {
    const p = new ExprPrinter(cudaLang, (b) => `b${b}`, `t${slot}_`);
    const v = p.print(r.value), name = slot ? `acc${slot}` : 'acc';
    const inner = [...bindVars(k.innerVars, k.inner, 'r'), ...p.lines.splice(0), r.combine === 'add' ? `${name} += ${v};` : `${name} = kiln_maxf(${name}, ${v});`];
    stages.push(`float ${name} = ${r.combine === 'add' ? literal(0, r.dt) : literal(-Infinity, r.dt)};`,
      `for (int64_t r = threadIdx.x; r < ${numel(k.inner)}; r += blockDim.x) {`, ...ind(inner), '}',
      `${name} = ${r.combine === 'add' ? 'blockReduceSum' : 'blockReduceMax'}(${name}, true);`);
  });
  const ep = new ExprPrinter(cudaLang, (b) => `b${b}`, 'e');
  stages.push(`for (int64_t r = threadIdx.x; r < ${numel(k.inner)}; r += blockDim.x) {`, ...ind([...bindVars(k.innerVars, k.inner, 'r'), ...storeLinesCuda(k.stores, ep)]), '}');
  return [
    `KILN_KERNEL void __launch_bounds__(${THREADS}) ${k.name}(uint8_t* __restrict__ A KILN_OFFSETS) {`, ...ind(decl),
    `  for (int64_t row = blockIdx.x; row < ${numel(k.outer)}; row += gridDim.x) {`, ...ind(bindVars(k.outerVars, k.outer, 'row'), 2), ...ind(stages, 2), '  }', '}',
  ];
}

/** One kernel's functions (signatures end in `KILN_OFFSETS`, where the offset parameters go) and launches. */
function renderKernelCuda(k: Kernel, info: ReadonlyMap<number, BufferInfo>, at: (b: number) => string): { code: string[]; launches: CudaLaunch[]; scratch: number } {
  const { reads, writes } = buffersOf(k);
  const decl = pointerDecls([...new Set([...reads, ...writes])], info, new Set(writes), at);
  switch (k.kind) {
    case 'pointwise': {
      const n = numel(k.shape);
      const p = new ExprPrinter(cudaLang, (b) => `b${b}`);
      const body = [...bindVars(k.vars, k.shape, 'f'), ...storeLinesCuda(k.stores, p)];
      return {
        code: [`KILN_KERNEL void __launch_bounds__(${THREADS}) ${k.name}(uint8_t* __restrict__ A KILN_OFFSETS) {`, ...ind(decl),
          `  for (int64_t f = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; f < ${n}; f += (int64_t)gridDim.x * blockDim.x) {`, ...ind(body, 2), '  }', '}'],
        launches: [{ kernel: k.name, grid: [gridFor(n), 1, 1], block: [THREADS, 1, 1], smem: 0 }], scratch: 0,
      };
    }
    case 'reduce':
      return { code: reduceKernel(k, decl), launches: [{ kernel: k.name, grid: [reduceGrid(numel(k.outer), numel(k.inner)), 1, 1], block: [THREADS, 1, 1], smem: 0 }], scratch: 0 };
    case 'row': return { code: rowKernel(k, decl), launches: [{ kernel: k.name, grid: [Math.max(1, Math.min(numel(k.outer), 65535 * 8)), 1, 1], block: [THREADS, 1, 1], smem: 0 }], scratch: 0 };
    case 'extern': return templateCallCuda(k as ExternKernel, decl);
    case 'commit': {
      // Each copy moves the widest unit (16, 8, 4, 2 or 1 bytes) that divides its size and both offsets.
      const unitOf = (c: { from: number; to: number; bytes: number }) => [16, 8, 4, 2, 1].find((u) => c.bytes % u === 0 && info.get(c.from)!.offset % u === 0 && info.get(c.to)!.offset % u === 0)!;
      const T: Record<number, string> = { 16: 'uint4', 8: 'uint2', 4: 'uint32_t', 2: 'uint16_t', 1: 'uint8_t' };
      const lines = k.copies.map((c) => {
        const u = unitOf(c), t = T[u];
        return `  for (int64_t f = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; f < ${c.bytes / u}; f += (int64_t)gridDim.x * blockDim.x) reinterpret_cast<${t}*>(A + ${at(c.to)})[f] = reinterpret_cast<const ${t}*>(A + ${at(c.from)})[f];`;
      });
      const n = Math.max(...k.copies.map((c) => c.bytes / unitOf(c)));
      // `copies` names local buffers here; renderProgramCuda turns them into arena offsets.
      return { code: [`KILN_KERNEL void ${k.name}(uint8_t* __restrict__ A KILN_OFFSETS) {`, ...lines, '}'], launches: [{ kernel: k.name, grid: [gridFor(n), 1, 1], block: [THREADS, 1, 1], smem: 0, copies: k.copies }], scratch: 0 };
    }
  }
}

export interface CudaProgramSource {
  readonly source: string;
  readonly launches: readonly CudaLaunch[];
  readonly scratchBytes: number;
  /** Distinct kernels in the source (kernels differing only in buffer offsets share one). */
  readonly distinct: number;
  /** The same program as several translation units for parallel compilation (nvcc -c each, then link): kernel
   * functions split into balanced groups, and the host launcher in a unit of its own that declares them. */
  units(count: number): string[];
}

const HEADERS = ['// Generated by Kiln. Do not edit.', '#include "prelude.cuh"', '#include "philox.cuh"', '#include "gemm.cuh"', '#include "conv2d.cuh"',
  '#include "attention.cuh"', '#include "attention_small.cuh"', '#include "scatter_add.cuh"', ''];
/** The template headers a unit's kernels call (nvcc's time per unit is mostly template headers). */
function headersFor(code: readonly string[]): string[] {
  const text = code.join('\n'), uses = (re: RegExp) => re.test(text);
  return ['// Generated by Kiln. Do not edit.', '#include "prelude.cuh"',
    ...(uses(/kiln_philox_/) ? ['#include "philox.cuh"'] : []),
    ...(uses(/kiln::gemm_tile/) ? ['#include "gemm.cuh"'] : []),
    ...(uses(/kiln::conv2d_/) ? ['#include "conv2d.cuh"'] : []),
    ...(uses(/kiln::attn_/) ? ['#include "attention.cuh"'] : []),
    ...(uses(/kiln::small_attn::/) ? ['#include "attention_small.cuh"'] : []),
    ...(uses(/kiln::scatter_/) ? ['#include "scatter_add.cuh"'] : []), ''];
}

/** The whole program as one .cu translation unit. Templates that need a workspace get it at `scratchOffset`
 * (the end of the planned arena). As in the C++ renderer, kernels that differ only in where their buffers live
 * share their functions: buffers are renamed to their local position, and their arena offsets are kernel
 * parameters (`o0`, `o1`, …) that each launch passes. */
export function renderProgramCuda(kernels: readonly Kernel[], info: ReadonlyMap<number, BufferInfo>, scratchOffset: number): CudaProgramSource {
  const shared = new Map<string, { name: string; launches: CudaLaunch[] }>();
  const code: string[] = [], launches: CudaLaunch[] = [], declared: string[] = [];
  let scratchBytes = 0;
  for (const [kernelIndex, k] of kernels.entries()) {
    const { kernel, bufs } = localizeBuffers(k, 'KILN_FN');
    const rendered = renderKernelCuda(kernel, new Map(bufs.map((b, i) => [i, info.get(b)!])), (i) => `o${i}`);
    const part = { ...rendered, code: dropUnusedBinds(rendered.code) };
    const params = bufs.map((_b, i) => `, int64_t o${i}`).join('');
    const text = part.code.join('\n').replaceAll('KILN_SCRATCH', `(A + ${scratchOffset})`).replaceAll('KILN_OFFSETS', params);
    const key = text + JSON.stringify(part.launches);
    let fn = shared.get(key);
    if (!fn) {
      fn = { name: k.name, launches: part.launches.map((l) => ({ ...l, kernel: l.kernel.replace('KILN_FN', k.name) })) };
      shared.set(key, fn);
      code.push(text.replaceAll('KILN_FN', k.name) + '\n');
      declared.push(...fn.launches.map((l) => `KILN_KERNEL void ${l.kernel}(uint8_t* __restrict__ A${params});`));
    }
    const args = bufs.map((b) => info.get(b)!.offset);
    launches.push(...fn.launches.map((l) => ({ ...l, args, bufs, kernelIndex, copies: l.copies?.map((c) => ({ from: args[c.from], to: args[c.to], bytes: c.bytes })) })));
    scratchBytes = Math.max(scratchBytes, part.scratch);
  }
  const launcher = renderHostLauncher(launches);
  const units = (count: number): string[] => {
    // Greedy by size: each kernel to the lightest unit, so the compile times come out close.
    const groups = Array.from({ length: Math.max(1, Math.min(count, code.length)) }, () => ({ size: 0, code: [] as string[] }));
    [...code].sort((a, b) => b.length - a.length).forEach((c) => {
      const g = groups.reduce((m, x) => (x.size < m.size ? x : m));
      g.code.push(c);
      g.size += c.length;
    });
    return [...groups.map((g, i) => [...headersFor(g.code), `// unit ${i + 1} of ${groups.length}: ${g.code.length} kernels`, ...g.code].join('\n')),
      ['// Generated by Kiln. Do not edit. The host launcher of a program split into units.', '#include "prelude.cuh"', '', ...new Set(declared), '', launcher].join('\n')];
  };
  return {
    source: [...HEADERS, `// ${kernels.length} kernels, ${shared.size} distinct.`, ...code, launcher].join('\n'),
    launches,
    scratchBytes,
    distinct: shared.size,
    units,
  };
}
