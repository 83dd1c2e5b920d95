/** The precompiled CPU kernel library (kernels/cpu/lib.cpp: GEMM, conv, attention, scatter), built once into
 * the kernel cache and linked by every generated program (see kernels/cpu/kiln_lib.h for why). */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { buildCpp } from './cpu';
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
