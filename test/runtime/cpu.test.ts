/** The CPU path end to end: g++ through the kernel cache, dlopen, and calls on a host arena. */
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cacheStats } from '../../runtime/cache';
import { allocArena, compileCpp, KernelCompileError } from '../../runtime/cpu';

// A fresh cache per run, so the first compile below is a real miss.
const cache = mkdtempSync(path.join(tmpdir(), 'kiln-cache-'));
process.env.KILN_CACHE = cache;

const SAXPY = `
#include "prelude.h"

// y = 2.5 * x + y over n floats. args: [n, x byte offset, y byte offset].
KILN_ENTRY int saxpy(uint8_t* arena, const int64_t* args) {
  const int64_t n = args[0];
  if (n < 0) return 3;
  const float* KILN_RESTRICT x = kiln_at<float>(arena, args[1]);
  float* KILN_RESTRICT y = kiln_at<float>(arena, args[2]);
  #pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) y[i] = 2.5f * x[i] + y[i];
  return 0;
}

// Writes the arena's base address modulo 64 into its first 8 bytes.
KILN_ENTRY int arena_alignment(uint8_t* arena, const int64_t*) {
  const uint64_t rem = reinterpret_cast<uintptr_t>(arena) % 64;
  std::memcpy(arena, &rem, sizeof rem);
  return 0;
}
`;

describe('compileCpp', () => {
  it('compiles, loads and runs an OpenMP kernel on an arena', async () => {
    const lib = await compileCpp(SAXPY);
    expect(lib.cacheHit).toBe(false);
    expect(lib.has('saxpy')).toBe(true);
    expect(lib.has('nope')).toBe(false);

    const n = 1000;
    const arena = allocArena(8 * n);
    const x = new Float32Array(arena, 0, n);
    const y = new Float32Array(arena, 4 * n, n);
    for (let i = 0; i < n; i++) {
      x[i] = i;
      y[i] = 1;
    }
    lib.call('saxpy', arena, [n, 0, 4 * n]);
    for (let i = 0; i < n; i++) expect(y[i]).toBe(2.5 * i + 1);
  });

  it('surfaces a non-zero return as an Error with its code', async () => {
    const lib = await compileCpp(SAXPY);
    const arena = allocArena(64);
    let err: unknown;
    try {
      lib.call('saxpy', arena, new BigInt64Array([-1n, 0n, 0n]));
    } catch (e) {
      err = e;
    }
    // Not toBeInstanceOf(Error): the addon creates errors in Node's realm, not in jest's sandbox.
    expect((err as Error & { code: number }).code).toBe(3);
    expect((err as Error).message).toMatch(/'saxpy'.*error code 3/);
  });

  it('reuses the cached .so without running g++', async () => {
    await compileCpp(SAXPY);
    const before = cacheStats();
    const lib = await compileCpp(SAXPY);
    expect(lib.cacheHit).toBe(true);
    expect(cacheStats().compiles).toBe(before.compiles);
    expect(cacheStats().hits).toBe(before.hits + 1);
    // Only finished files under their final names: no temporaries left behind.
    expect(readdirSync(cache).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('keys the cache on the contents of included headers', async () => {
    const inc = mkdtempSync(path.join(tmpdir(), 'kiln-inc-'));
    const src = '#include "scale.h"\nKILN_ENTRY int scale(uint8_t* a, const int64_t*) { a[0] = SCALE; return 0; }\n';
    writeFileSync(path.join(inc, 'scale.h'), '#include "prelude.h"\n#define SCALE 7\n');
    const first = await compileCpp(src, { includeDirs: [inc] });
    writeFileSync(path.join(inc, 'scale.h'), '#include "prelude.h"\n#define SCALE 9\n');
    const second = await compileCpp(src, { includeDirs: [inc] });
    expect(second.cacheHit).toBe(false);
    expect(second.path).not.toBe(first.path);
    const arena = new Uint8Array(allocArena(1));
    second.call('scale', arena);
    expect(arena[0]).toBe(9);
  });

  it('reports a compile error with the source path and the full g++ log', async () => {
    const bad = '#include "prelude.h"\nKILN_ENTRY int broken(uint8_t* a, const int64_t*) { return undeclared_name; }\n';
    const err: unknown = await compileCpp(bad).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KernelCompileError);
    const e = err as KernelCompileError;
    expect(e.sourcePath).toMatch(/\.cpp$/);
    expect(e.message).toContain(e.sourcePath);
    // g++ quotes with ‘’ or '' depending on the locale.
    expect(e.message).toMatch(/error: .undeclared_name. was not declared in this scope/);
    expect(e.log).toContain('error:');
  });

  it('throws after close', async () => {
    const lib = await compileCpp(SAXPY);
    lib.close();
    expect(() => lib.call('saxpy', allocArena(8), [0, 0, 0])).toThrow(/closed/);
  });
});

describe('allocArena', () => {
  it('returns zeroed memory', () => {
    const bytes = new Uint8Array(allocArena(1 << 20));
    expect(bytes.length).toBe(1 << 20);
    expect(bytes.every((b) => b === 0)).toBe(true);
    expect(allocArena(0).byteLength).toBe(0);
  });

  it('is 64-byte aligned whatever its size', async () => {
    const lib = await compileCpp(SAXPY);
    for (const size of [8, 100, 4097, 1 << 16]) {
      const arena = allocArena(size);
      lib.call('arena_alignment', arena);
      expect(new BigUint64Array(arena, 0, 1)[0]).toBe(0n);
    }
  });

  it('rejects sizes that are not byte counts', () => {
    expect(() => allocArena(-1)).toThrow(/non-negative integer/);
    expect(() => allocArena(1.5)).toThrow(/non-negative integer/);
  });
});
