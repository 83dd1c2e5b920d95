/** The precompiled CPU kernel library (kernels/cpu/lib.cpp: GEMM, conv, attention, scatter), built once into
 * the kernel cache and linked by every generated program (see kernels/cpu/kiln_lib.h for why). */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { buildCpp } from './cpu';
import { native } from './native';
import { cpuKernelsDir } from './paths';

let pending: Promise<string> | null = null;

/** Path of the built library (.so), building it on first use. */
export function cpuKernelLibrary(): Promise<string> {
  pending ??= buildCpp(readFileSync(path.join(cpuKernelsDir, 'lib.cpp'), 'utf8')).then((a) => a.artifactPath);
  return pending;
}

/** g++ flags that link a program against the library and let the loader find it at run time. */
export async function linkKernelLibrary(): Promise<string[]> {
  const lib = await cpuKernelLibrary();
  const dir = path.dirname(lib);
  // The library comes before the program source on the command line, so it must not be dropped as unneeded.
  return [`-L${dir}`, "-Wl,--no-as-needed", `-l:${path.basename(lib)}`, `-Wl,-rpath,${dir}`];
}

/** The CPU kernel paths, slowest first (kernels/cpu/cpu_isa.h). */
export const CPU_ISA_PATHS = ['generic', 'avx2', 'avx512', 'avx512_bf16'] as const;
export type CpuIsaPath = (typeof CPU_ISA_PATHS)[number];

/** Which GEMM micro-kernel the library runs in this process, and why. */
export interface CpuIsa {
  /** The path taken: the best one, or the one KILN_CPU_ISA forced. */
  readonly path: CpuIsaPath;
  /** The best path this CPU (and OS) can run. */
  readonly best: CpuIsaPath;
  readonly model: string;
  /** Detected and OS-enabled: avx2 fma avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni amx_*. */
  readonly features: readonly string[];
  /** The detected caches and the GEMM blocking derived from them, e.g. "L1d 48 KiB, L2 1024 KiB, L3 … (cpuid
   * 0x80000005/6); blocking KC 256 MC 192 NC 1536" (kernels/cpu/cpu_cache.h, gemm.h gemm_blocking). */
  readonly caches?: string;
}

/** KILN_CPU_ISA names no path, or one this CPU cannot run. */
export class CpuIsaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CpuIsaError';
  }
}

let isaPending: Promise<CpuIsa> | null = null;

/** Asks the library (kiln_cpu_isa) once per process; KILN_CPU_ISA is read then, so set it before the first
 * compile. Rejects with CpuIsaError when KILN_CPU_ISA is refused. Needs the addon. */
export function cpuKernelIsa(): Promise<CpuIsa> {
  isaPending ??= cpuKernelLibrary().then((lib) => {
    // Stays loaded: programs link the same library, and the choice lives in it for the process's lifetime.
    const handle = native().cpuLoad(lib);
    const msg = new Uint8Array(1024);
    let ok = true;
    try {
      native().cpuCall(handle, 'kiln_cpu_isa', msg);
    } catch {
      ok = false;
    }
    const text = new TextDecoder().decode(msg.subarray(0, Math.max(0, msg.indexOf(0))));
    if (!ok) throw new CpuIsaError(`kiln: ${text}`);
    const [path, best, model, features, caches] = text.split('\n');
    return { path: path as CpuIsaPath, best: best as CpuIsaPath, model, features: features ? features.split(' ') : [], ...(caches ? { caches } : {}) };
  });
  return isaPending;
}

/** One line for explain(): "CPU kernels: avx512 (AMD EPYC …, detected: avx2 fma avx512f …)". */
export function describeCpuIsa(isa: CpuIsa): string {
  const forced = isa.path !== isa.best ? `, forced by KILN_CPU_ISA; best here: ${isa.best}` : '';
  return `CPU kernels: ${isa.path} (${isa.model}, detected: ${isa.features.join(' ') || 'none'}${forced})${isa.caches ? `; caches ${isa.caches}` : ''}`;
}
