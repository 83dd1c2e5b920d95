/** Shared by the kernel tests: builds a C++ driver from test/kernels/cpu (cached by content hash in the
 * OS temp dir), runs it on one case, parses its output, and mirrors the drivers' seeded generator. */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CPU_KERNELS = path.join(ROOT, 'kernels/cpu');
const DRIVERS = path.join(ROOT, 'test/kernels/cpu');
const FLAGS = ['-O2', '-march=native', '-fopenmp', '-std=c++17', '-I', CPU_KERNELS];

/** Compiles test/kernels/cpu/<name>.cpp unless a binary for the same sources and flags exists. `march`
 * replaces -march=native (e.g. 'x86-64-v3', 'x86-64') for kernels whose vector width is the compile target's. */
export function buildDriver(name: string, march = 'native'): string {
  const flags = FLAGS.map((f) => (f === '-march=native' ? `-march=${march}` : f));
  const h = createHash('sha256');
  h.update(flags.join(' '));
  for (const dir of [CPU_KERNELS, DRIVERS])
    for (const f of readdirSync(dir).sort())
      if (/\.(h|cpp)$/.test(f)) h.update(f).update(readFileSync(path.join(dir, f)));
  const bin = path.join(tmpdir(), `kiln-kt-${name}${march === 'native' ? '' : `-${march}`}-${h.digest('hex').slice(0, 16)}`);
  if (existsSync(bin)) return bin;
  const tmp = `${bin}.${process.pid}.tmp`;
  const r = spawnSync('g++', [...flags, path.join(DRIVERS, `${name}.cpp`), '-o', tmp], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`g++ failed for ${name}.cpp:\n${r.stderr}`);
  renameSync(tmp, bin);
  return bin;
}

export interface DriverOutput {
  callsOnce: boolean | undefined;
  /** The GEMM path the driver ran (a `path <isa>` line; drivers that print none leave it undefined). */
  path: string | undefined;
  arrays: Record<string, Float64Array>;
}

/** The parallel-region thresholds (kernels/cpu/parallel.h) the cases were sized for: a GEMM or conv from 1.5e5
 * multiply-adds, a pass from 16384 elements and a copy from 32768 runs multi-threaded, so the mid-size cases keep
 * testing the drivers' thread splits (team, column chunks, batch) that the defaults keep for larger work. */
export const PAR_TEST_ENV = { KILN_PAR_MIN_MACS: '150000', KILN_PAR_MIN_ELEMS: '16384', KILN_PAR_MIN_COPY: '32768' };

/** Runs one case; `env` is added to this process's environment and PAR_TEST_ENV (e.g. { KILN_CPU_ISA: 'avx2' }). */
export function runDriver(bin: string, args: number[], env: Record<string, string> = {}): DriverOutput {
  const r = spawnSync(bin, args.map(String), { encoding: 'utf8', maxBuffer: 1 << 28, env: { ...process.env, ...PAR_TEST_ENV, ...env } });
  if (r.status !== 0) throw new Error(`${path.basename(bin)} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  const out: DriverOutput = { callsOnce: undefined, path: undefined, arrays: {} };
  for (const line of r.stdout.split('\n')) {
    if (!line) continue;
    const parts = line.split(' ');
    if (parts[0] === 'calls_once') out.callsOnce = parts[1] === '1';
    else if (parts[0] === 'path') out.path = parts[1];
    else out.arrays[parts[0]] = Float64Array.from(parts.slice(2), Number);
  }
  return out;
}

/** The GEMM paths (KILN_CPU_ISA, kernels/cpu/cpu_isa.h) this CPU runs, slowest first, and the best one, as the
 * gemm driver's `isa` probe reports them. */
export function cpuGemmPaths(): { paths: string[]; best: string; features: string[] } {
  const r = spawnSync(buildDriver('gemm'), ['isa'], { encoding: 'utf8', env: { ...process.env, KILN_CPU_ISA: '' } });
  const best = /^best (\w+)$/m.exec(r.stdout)?.[1] ?? 'unknown';
  const order = ['generic', 'avx2', 'avx512', 'avx512_bf16'];
  return { paths: order.slice(0, order.indexOf(best) + 1), best, features: (/^features (.*)$/m.exec(r.stdout)?.[1] ?? '').split(' ') };
}

/** Whether /proc/cpuinfo names an Intel CPU (vendor_id GenuineIntel; cpu_isa.h reads the same from cpuid); null where
 * there is no /proc/cpuinfo (not Linux). */
export function intelCpu(): boolean | null {
  try {
    return /^vendor_id\s*:\s*GenuineIntel$/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return null;
  }
}

/** xorshift32, identical to Rng in test/kernels/cpu/common.h. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  next(): number {
    let s = this.s;
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    this.s = s >>> 0;
    return this.s;
  }
  uniform(): number {
    return (this.next() >>> 8) / 8388608 - 1;
  }
  fill(n: number): Float64Array {
    const v = new Float64Array(n);
    for (let i = 0; i < n; i++) v[i] = this.uniform();
    return v;
  }
}

/** The bound every f32 kernel test uses: |got - ref| <= REL * mag + 1e-30 per element, where ref is the
 * float64 result and mag the float64 sum of |terms| that produce the element. f32 summation of K terms is
 * off by at most ~K * 2^-24 * mag in the worst case and ~sqrt(K) * 2^-24 * mag typically, so 1e-5 leaves
 * room for the reduction orders the kernels use and still catches any wrong or missing term. */
export const REL = 1e-5;

export function expectClose(got: Float64Array, ref: Float64Array, mag: Float64Array, what: string): void {
  if (got.length !== ref.length) throw new Error(`${what}: length ${got.length}, expected ${ref.length}`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < ref.length; i++) {
    const err = Math.abs(got[i] - ref[i]);
    const ratio = err / (REL * mag[i] + 1e-30);
    if (!(ratio <= worst)) {
      worst = ratio;
      at = i;
    }
  }
  if (!(worst <= 1))
    throw new Error(`${what}: element ${at} = ${got[at]}, reference ${ref[at]} (mag ${mag[at]}), ${worst.toFixed(2)}x the bound`);
}
