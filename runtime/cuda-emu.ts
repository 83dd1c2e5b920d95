/**
 * The CUDA emulator's build side (kernels/cuda/emu/README.md). Two artifacts, both in the kernel cache:
 *
 * - the emulator driver, `libkiln_cuda_emu` (driver.cc, sched.cc, check.cc): a stand-in for libcuda.so.1 that
 *   the addon loads like the real driver, so launches go through the same host code as on a GPU;
 * - emulated modules: the exact CUDA source nvcc compiles, built by g++ with kiln_emu.h force-included and a
 *   table of its kernels appended, linked against the driver. `read()` gives the "image" the driver loads.
 *
 * With `checks`, the module is built with -fsanitize=thread instrumentation whose hooks the driver defines:
 * every load and store is bounds-checked (memcheck) and shared memory is race- and init-checked.
 */
import path from 'node:path';
import { buildCached, cacheKey, includeDirsDigest, type CachedArtifact } from './cache';
import { cudaKernelsDir } from './paths';
import { runCompiler, toolVersion } from './toolchain';
import { rmSync } from 'node:fs';
import { CudaDevice } from './cuda';

export const emuDir = path.join(cudaKernelsDir, 'emu');
const emuInclude = path.join(emuDir, 'include');
const DRIVER_SOURCES = ['driver.cc', 'sched.cc', 'fiber_switch.cc', 'ptx_semantics.cc', 'check.cc'];

const cxx = () => process.env.KILN_CXX || 'g++';

export interface CompiledEmuModule extends CachedArtifact {
  /** The image cuModuleLoadData takes from the emulator driver: a header and the library's path. */
  read(): Buffer;
  readonly checked: boolean;
}

let driver: Promise<string> | undefined;

/** Builds (once per process, cached on disk) the emulator driver library and returns its path. */
export function emulatorDriverPath(): Promise<string> {
  driver ??= (async () => {
    const flags = ['-O2', '-std=c++17', '-fPIC', '-shared', '-fno-strict-aliasing', '-Wl,-soname,libkiln_cuda_emu.so'];
    const key = cacheKey(['kiln-cuda-emu-driver-v1', cxx(), await toolVersion(cxx(), 'KILN_CXX'), flags.join(' '), includeDirsDigest([emuDir, emuInclude])]);
    // The cache's copy of the "source" is a list of the files compiled; their bytes are in the key.
    const source = DRIVER_SOURCES.map((f) => `// ${path.join(emuDir, f)}`).join('\n') + '\n';
    const a = await buildCached({
      key, source, sourceExt: 'cc', artifactExt: 'emu-driver.so',
      compile: (src, out) => runCompiler(cxx(), [...flags, '-I', emuDir, '-I', emuInclude, ...DRIVER_SOURCES.map((f) => path.join(emuDir, f)), '-ldl', '-o', out], src, 'KILN_CXX'),
    });
    return a.artifactPath;
  })();
  driver.catch(() => { driver = undefined; });
  return driver;
}

/** `extern "C" __global__` kernel names in a CUDA source (KILN_KERNEL or spelled out, with launch bounds). */
export function kernelNames(source: string): string[] {
  const re = /(?:KILN_KERNEL|extern\s+"C"\s+__global__)\s+void\s+(?:__launch_bounds__\s*\((?:[^()]|\([^()]*\))*\)\s*)?([A-Za-z_]\w*)\s*\(/g;
  // A kernel spelled inside a macro can defeat the pattern (it then catches a keyword): pass `kernels` for those.
  return [...new Set([...source.matchAll(re)].map((m) => m[1]).filter((n) => !n.startsWith('__')))];
}

export interface EmuCompileOptions {
  /** memcheck / racecheck / initcheck instrumentation (slower: one call per load and store). */
  readonly checks?: boolean;
  /** Kernels to register; default: every `extern "C" __global__` / KILN_KERNEL found in the source. */
  readonly kernels?: readonly string[];
  readonly extraFlags?: readonly string[];
  readonly includeDirs?: readonly string[];
}

/** Builds `source` (the .cu nvcc would compile) as an emulated module. */
export async function compileCudaEmu(source: string, opts: EmuCompileOptions = {}): Promise<CompiledEmuModule> {
  const driverPath = await emulatorDriverPath();
  const checks = opts.checks ?? false;
  const names = opts.kernels ?? kernelNames(source);
  const includeDirs = [cudaKernelsDir, ...(opts.includeDirs ?? [])];
  const flags = [
    '-std=c++17', '-O1', '-fPIC', '-fno-strict-aliasing', '-Wno-unknown-pragmas', '-Wno-attributes', '-DKILN_EMU=1',
    ...(checks ? ['-DKILN_EMU_CHECK=1', '-fsanitize=thread', '--param=tsan-instrument-func-entry-exit=0', '-fno-tree-vectorize', '-g1'] : []),
    ...(opts.extraFlags ?? []),
  ];
  const full = `${source}\n// ---- CUDA emulator: the module's kernels (appended by runtime/cuda-emu.ts) ----\nKILN_EMU_KERNELS_BEGIN\n${names.map((n) => `KILN_EMU_KERNEL(${n})`).join('\n')}\nKILN_EMU_KERNELS_END\n`;
  const key = cacheKey(['kiln-cuda-emu-module-v1', cxx(), await toolVersion(cxx(), 'KILN_CXX'), flags.join(' '), driverPath,
    includeDirsDigest([emuDir, emuInclude, ...includeDirs]), full]);
  const a = await buildCached({
    key, source: full, sourceExt: 'emu.cu', artifactExt: checks ? 'emu-checked.so' : 'emu.so',
    compile: async (src, out) => {
      const obj = `${out}.o`;
      try {
        await runCompiler(cxx(), [...flags, '-include', path.join(emuDir, 'kiln_emu.h'), '-I', emuInclude, ...includeDirs.flatMap((d) => ['-I', d]), '-x', 'c++', '-c', src, '-o', obj], src, 'KILN_CXX');
        await runCompiler(cxx(), ['-shared', obj, driverPath, '-o', out], src, 'KILN_CXX');
      } finally {
        rmSync(obj, { force: true });
      }
    },
  });
  return { ...a, checked: checks, read: () => Buffer.from(`KILNEMU1\n${a.artifactPath}\0`, 'utf8') };
}

/** The emulated device: the emulator driver loaded beside (not instead of) any real one. */
export async function openEmulatedDevice(): Promise<CudaDevice> {
  const dev = CudaDevice.open(0, { driver: await emulatorDriverPath(), emulated: true });
  // The settings as this process sees them (a test runner's process.env may never reach the native environment).
  for (const key of ['KILN_EMU_SCHEDULE', 'KILN_EMU_CHECKS'] as const) dev.configureEmulator(key, process.env[key] ?? '');
  return dev;
}
