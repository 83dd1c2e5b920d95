/** Running external compilers (g++, nvcc) and turning their failures into readable errors. */
import { execFile } from 'node:child_process';

/** A generated kernel that the compiler rejected. The message carries the file and the full log. */
export class KernelCompileError extends Error {
  constructor(
    readonly compiler: string,
    readonly sourcePath: string,
    readonly command: readonly string[],
    readonly log: string,
  ) {
    super(`${compiler} failed to compile ${sourcePath}\n$ ${command.join(' ')}\n${log.trimEnd()}`);
    this.name = 'KernelCompileError';
  }
}

interface RunResult {
  readonly code: number | null;
  readonly output: string; // stdout then stderr: compilers put diagnostics on either
  readonly spawnError?: NodeJS.ErrnoException;
}

function run(exe: string, args: readonly string[]): Promise<RunResult> {
  return new Promise((resolve) => {
    // Template-heavy errors can run to megabytes; losing the tail of a compiler log is worse than memory.
    execFile(exe, args, { maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: unknown }) | null;
      const spawnError = e !== null && typeof e.code === 'string' ? e : undefined;
      const code = e === null ? 0 : typeof e.code === 'number' ? e.code : null;
      resolve({ code, output: `${stdout}${stderr}`, spawnError });
    });
  });
}

function missingTool(exe: string, why: NodeJS.ErrnoException, envVar: string): Error {
  return new Error(`cannot run ${exe} (${why.code}): install it or point ${envVar} at it`);
}

/**
 * Compiles `sourcePath`. Resolves when the compiler exits with status 0; otherwise rejects with a
 * KernelCompileError carrying everything the compiler printed.
 */
export async function runCompiler(
  exe: string,
  args: readonly string[],
  sourcePath: string,
  envVar: string,
): Promise<void> {
  const r = await run(exe, args);
  if (r.spawnError !== undefined) throw missingTool(exe, r.spawnError, envVar);
  if (r.code !== 0) throw new KernelCompileError(exe, sourcePath, [exe, ...args], r.output);
}

const versions = new Map<string, Promise<string>>();

/**
 * `exe --version`, memoised per process. It goes into the cache key, so upgrading the compiler (or the
 * CUDA toolkit, whose headers the cubins include) rebuilds every kernel.
 */
export function toolVersion(exe: string, envVar: string): Promise<string> {
  let v = versions.get(exe);
  if (v === undefined) {
    v = run(exe, ['--version']).then((r) => {
      if (r.spawnError !== undefined) throw missingTool(exe, r.spawnError, envVar);
      return r.output.trim();
    });
    versions.set(exe, v);
    // A failed lookup is not remembered: the user may install the tool and retry in the same process.
    v.catch(() => versions.delete(exe));
  }
  return v;
}
