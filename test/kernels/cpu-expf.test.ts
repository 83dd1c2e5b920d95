/** kiln_expf (kernels/cpu/mathfun.h) and kiln_maxf / kiln_minf (prelude.h) as the compiler sees them: its clamp compiles to vmaxps / vminps, not to
 * compares and blends after the polynomial (which g++ emits for literal limits: 32 vector operations a vector on
 * AVX2 instead of 20, softmax's exp stage 1.3x slower); and kiln_expv, the same function on GCC vectors
 * (attention.h), gives the same bits as kiln_expf in an `omp simd` loop, on xmm, ymm and zmm widths. The accuracy
 * against float64 is test/backend/mathfun.test.ts's. kiln_maxf / kiln_minf (built from both orders of vmaxps /
 * vminps) against JavaScript's Math.max / Math.min, the reference's semantics, on every pair of special values. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildDriver, ROOT } from './harness';

/** The `omp simd` loop a generated softmax's exp stage is, compiled as generated programs are (runtime/cpu.ts's
 * flags and compile.ts's extra ones), for one target; returns the loop's assembly. */
function expLoopAsm(march: string, extra: string[] = []): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kiln-expf-'));
  try {
    const src = path.join(dir, 'e.cpp');
    writeFileSync(src, `#include "mathfun.h"
void kiln_exp_loop(const float* __restrict__ a, float* __restrict__ b, long n) {
  #pragma omp simd
  for (long i = 0; i < n; ++i) b[i] = kiln_expf(a[i]);
}
`);
    const r = spawnSync('g++', ['-O3', `-march=${march}`, ...extra, '-fopenmp', '-std=c++17', '-fno-math-errno', '-fno-trapping-math',
      '-I', path.join(ROOT, 'kernels/cpu'), '-S', '-o', '-', src], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`g++ failed: ${r.stderr}`);
    return r.stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test.each([
  ['AVX2 (x86-64-v3)', 'x86-64-v3', 'ymm'],
  ['AVX-512 (x86-64-v4)', 'x86-64-v4', 'zmm'],
])('the clamp is vmaxps / vminps on %s', (_name, march, reg) => {
  const asm = expLoopAsm(march, march === 'x86-64-v4' ? ['-mprefer-vector-width=512'] : []);
  const ops = (re: RegExp) => (asm.match(re) ?? []).length;
  expect(ops(new RegExp(`vmaxps\\s[^\\n]*%${reg}`, 'g'))).toBeGreaterThan(0);
  expect(ops(new RegExp(`vminps\\s[^\\n]*%${reg}`, 'g'))).toBeGreaterThan(0);
  expect({ blends: ops(/vblendvps|vblendmps/g), compares: ops(/vcmp\w*ps/g) }).toEqual({ blends: 0, compares: 0 });
}, 60_000);

test('kiln_expv gives kiln_expf\'s bits on 4, 8 and 16 lanes (every 4099th float and the special values)', () => {
  const r = spawnSync(buildDriver('expv'), ['4099'], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  const m = /^differ (\d+) (\d+) (\d+) of (\d+)$/m.exec(r.stdout);
  expect(m).not.toBeNull();
  expect(Number(m![4])).toBeGreaterThan(1_000_000);
  expect([m![1], m![2], m![3]]).toEqual(['0', '0', '0']);
}, 120_000);

test('kiln_maxf / kiln_minf say what Math.max / Math.min say (NaN, ±0, ±Inf, subnormals), vectorized and scalar', () => {
  const vals = ['nan', '-nan', 'inf', '-inf', '0', '-0', '1', '-1', '1e-45', '-1e-45', '3.4e38', '-3.4e38', '0.5', '1.5', '-2.5', '7', '1e-40', '-3e-39'];
  const r = spawnSync(buildDriver('maxmin'), vals, { encoding: 'utf8' });
  expect(r.status).toBe(0);
  const num = (v: string) => Number(v.replace('inf', 'Infinity').replace('nan', 'NaN'));  // printf's and strtof's spellings
  const x = vals.map((v) => Math.fround(num(v)));
  const line = (name: string) => (new RegExp(`^${name} \\d+ (.*)$`, 'm').exec(r.stdout)?.[1] ?? '').split(' ').map((v) => Math.fround(num(v)));  // %.9g round-trips f32
  const bad: string[] = [];
  const same = (g: number, w: number) => (Number.isNaN(w) ? Number.isNaN(g) : Object.is(g, w));
  const [mx, mn] = [line('max'), line('min')];
  expect(mx.length).toBe(x.length * x.length);
  for (let i = 0; i < x.length; i++)
    for (let j = 0; j < x.length; j++) {
      const k = i * x.length + j;
      if (!same(mx[k], Math.max(x[i], x[j]))) bad.push(`max(${vals[i]}, ${vals[j]}) = ${mx[k]}`);
      if (!same(mn[k], Math.min(x[i], x[j]))) bad.push(`min(${vals[i]}, ${vals[j]}) = ${mn[k]}`);
    }
  const p = (x.length * x.length) / 2 + 1, [si, sj] = [Math.floor(p / x.length), p % x.length];
  if (!same(line('smax')[0], Math.max(x[si], x[sj]))) bad.push(`scalar max(${vals[si]}, ${vals[sj]})`);
  if (!same(line('smin')[0], Math.min(x[si], x[sj]))) bad.push(`scalar min(${vals[si]}, ${vals[sj]})`);
  expect(bad).toEqual([]);
}, 120_000);
