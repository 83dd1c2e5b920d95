/**
 * CPU back end: generated C++ → g++ → a cached shared object → entry points called on a host arena.
 *
 * Entry-point ABI (runtime/README.md): `extern "C" int name(uint8_t* arena, const int64_t* args)`,
 * returning 0 on success.
 */
import { cpus } from 'node:os';
import { buildCached, cacheKey, includeDirsDigest, type CachedArtifact } from './cache';
import { native, type HostBytes, type NativeHandle } from './native';
import { cpuKernelsDir } from './paths';
import { runCompiler, toolVersion } from './toolchain';

export { KernelCompileError } from './toolchain';
export { allocArena } from './native';

/** What the compiler is always given; `extraFlags` are appended. */
export const CPP_FLAGS: readonly string[] = Object.freeze(['-O3', '-march=native', '-fopenmp', '-shared', '-fPIC', '-std=c++17']);

export interface CppOptions {
  /** The C++ compiler; default $KILN_CXX, else g++. */
  readonly cxx?: string;
  readonly extraFlags?: readonly string[];
  /** Searched after kernels/cpu; their files join the cache key like the prelude's. */
  readonly includeDirs?: readonly string[];
}

/** Kernel arguments: 8-byte slots. Plain arrays hold integers (sizes, offsets) and are copied into a BigInt64Array. */
export type KernelArgs = BigInt64Array | Float64Array | readonly (number | bigint)[];

/** Compiles `source` to a shared object in the kernel cache (or finds it there). Needs no addon. */
export async function buildCpp(source: string, opts: CppOptions = {}): Promise<CachedArtifact> {
  const cxx = opts.cxx ?? (process.env.KILN_CXX || 'g++');
  const includeDirs = [cpuKernelsDir, ...(opts.includeDirs ?? [])];
  const flags = [...CPP_FLAGS, ...(opts.extraFlags ?? [])];
  const key = cacheKey([
    'kiln-cpp-v1',
    cxx,
    await toolVersion(cxx, 'KILN_CXX'),
    // -march=native makes the object specific to this CPU; a cache folder shared between machines must
    // not hand an AVX-512 build to a machine without it.
    cpus()[0]?.model ?? 'unknown cpu',
    flags.join(' '),
    includeDirsDigest(includeDirs),
    source,
  ]);
  return buildCached({
    key,
    source,
    sourceExt: 'cpp',
    artifactExt: 'so',
    compile: (src, out) =>
      runCompiler(cxx, [...flags, ...includeDirs.flatMap((d) => ['-I', d]), src, '-o', out], src, 'KILN_CXX'),
  });
}

/** Compiles (or reuses) `source` and loads it. */
export async function compileCpp(source: string, opts: CppOptions = {}): Promise<CompiledLibrary> {
  const artifact = await buildCpp(source, opts);
  return new CompiledLibrary(artifact, native().cpuLoad(artifact.artifactPath));
}

/** A loaded shared object of generated kernels. */
export class CompiledLibrary {
  readonly path: string;
  readonly sourcePath: string;
  /** True when the .so came from the cache and no compiler ran. */
  readonly cacheHit: boolean;

  constructor(
    artifact: CachedArtifact,
    private readonly handle: NativeHandle,
  ) {
    this.path = artifact.artifactPath;
    this.sourcePath = artifact.sourcePath;
    this.cacheHit = artifact.cacheHit;
  }

  has(symbol: string): boolean {
    return native().cpuHasSymbol(this.handle, symbol);
  }

  /**
   * Runs `symbol(arena, args)` synchronously on this thread (the kernel parallelises with OpenMP).
   * A non-zero return becomes an Error whose `code` is that value.
   */
  call(symbol: string, arena: HostBytes, args?: KernelArgs): void {
    native().cpuCall(this.handle, symbol, arena, toSlots(args));
  }

  /** dlclose. Later calls throw; the handle is also closed when collected. */
  close(): void {
    native().cpuClose(this.handle);
  }
}

function toSlots(args: KernelArgs | undefined): BigInt64Array | Float64Array | undefined {
  if (args === undefined || args instanceof BigInt64Array || args instanceof Float64Array) return args;
  // BigInt() rejects fractions, so a float passed where an integer slot was meant fails loudly.
  return BigInt64Array.from(args, (a) => BigInt(a));
}
