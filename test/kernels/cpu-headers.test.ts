/** The CPU kernel headers build with glibc's fortified string functions, as g++ does by default on Ubuntu
 * (_FORTIFY_SOURCE=3 from g++ 13 on). Fortification turns memcpy / memset / memmove into always_inline wrappers
 * compiled for the translation unit's target; g++ 13 refuses to inline those into a function carrying its own
 * `__attribute__((target("arch=...")))` ("inlining failed in call to 'always_inline' 'memcpy': target specific
 * option mismatch"), so every C++ program failed to compile on the GPU machine (Ubuntu 24.04, g++ 13.3) in the first
 * lent session. A header with ISA-targeted functions therefore calls the compiler's builtins (__builtin_memcpy ...),
 * which fortification leaves alone. g++ 12 (Debian 12, where CI runs) does not refuse the inline, so the first test
 * reads the headers; the second builds all of them fortified, which is what catches it where g++ is 13 or newer. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT } from './harness';

const dir = path.join(ROOT, 'kernels/cpu');
const headers = readdirSync(dir).filter((f) => f.endsWith('.h')).sort();

test('headers with ISA-targeted functions call no fortifiable string function by name', () => {
  const bad: string[] = [];
  for (const h of headers) {
    const text = readFileSync(path.join(dir, h), 'utf8');
    if (!/\btarget\s*\(\s*"/.test(text)) continue;
    text.split('\n').forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, '');
      if (/(?<![\w_])(std::)?(memcpy|memset|memmove)\s*\(/.test(code)) bad.push(`${h}:${i + 1}: ${line.trim()}`);
    });
  }
  expect(bad).toEqual([]);
});

test('every header compiles with _FORTIFY_SOURCE=3 at -O3 -march=native (what Ubuntu g++ does by default)', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'kiln-fortify-'));
  try {
    const src = path.join(tmp, 'all.cpp');
    writeFileSync(src, headers.map((h) => `#include "${h}"\n`).join(''));
    const r = spawnSync('g++', ['-O3', '-march=native', '-fopenmp', '-std=c++17', '-D_FORTIFY_SOURCE=3', '-fsyntax-only', '-I', dir, src], { encoding: 'utf8' });
    expect(r.stderr.split('\n').filter((l) => l.includes('error')).slice(0, 5)).toEqual([]);
    expect(r.status).toBe(0);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}, 120_000);
