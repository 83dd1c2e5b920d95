/** Where the runtime finds the repository's own files, independent of the process's working directory. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: this file lives in <repo>/runtime/. */
export const repoRoot: string = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Hand-written headers that generated code includes: kernels/cpu/prelude.h, kernels/cuda/prelude.cuh. */
export const cpuKernelsDir: string = path.join(repoRoot, 'kernels', 'cpu');
export const cudaKernelsDir: string = path.join(repoRoot, 'kernels', 'cuda');

/** build/native/Release/kiln_native.node, written by `npm install` (cmake-js). */
export const addonPath: string = path.join(repoRoot, 'build', 'native', 'Release', 'kiln_native.node');
