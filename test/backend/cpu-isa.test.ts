/** CPU kernel paths end to end: a compiled program (batched matmul, fused bias + ReLU, K > KC) run under each
 * path this CPU supports (KILN_CPU_ISA, one child process each: the choice is made once per process), checked
 * against the reference evaluator; explain() names the path; a refused KILN_CPU_ISA is a CpuIsaError at compile. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { intelCpu, ROOT } from '../kernels/harness';
import { CPU_ISA_PATHS } from '../../runtime/kernel-lib';

interface ChildResult { explain?: string; err?: number; error?: string }

function child(isa: string): ChildResult {
  const r = spawnSync(path.join(ROOT, 'node_modules/.bin/tsx'), [path.join(ROOT, 'test/support/cpu-isa-child.ts')], {
    encoding: 'utf8', env: { ...process.env, KILN_CPU_ISA: isa }, cwd: ROOT,
  });
  if (r.status !== 0) throw new Error(`cpu-isa-child (KILN_CPU_ISA=${isa}) exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult;
}

const auto = child('auto');
const intel = intelCpu() === true;
const best = /^CPU kernels: (\w+) \(/.exec(auto.explain ?? '')?.[1] ?? 'none';

describe('CPU kernel paths (compiled programs)', () => {
  test('auto: explain() names the best path, the model and the detected features', () => {
    expect(auto.error).toBeUndefined();
    expect(CPU_ISA_PATHS).toContain(best);
    expect(auto.explain).toMatch(/^CPU kernels: \w+ \(.+, detected: [\w ]+\); caches L1d \d+ KiB, L2 \d+ KiB, L3 \d+ KiB \(.+\); blocking KC \d+ MC \d+ NC \d+(; bf16 GEMMs on f32 panels \(vdpbf16ps is slower on Intel cores\))?$/);
    expect(auto.explain).not.toMatch(/forced/);
    // On an avx512_bf16 CPU auto multiplies bf16 pairs with vdpbf16ps except on Intel (kernels/cpu/cpu_isa.h bf16_dot).
    expect(auto.explain?.includes('bf16 GEMMs on f32 panels')).toBe(best === 'avx512_bf16' && intel);
    expect(auto.err).toBeLessThanOrEqual(1e-5);
  });

  test.each(CPU_ISA_PATHS.filter((p) => CPU_ISA_PATHS.indexOf(p) <= CPU_ISA_PATHS.indexOf(best as never)))(
    'KILN_CPU_ISA=%s: runs that path and matches the reference', (isa) => {
      const r = child(isa);
      expect(r.error).toBeUndefined();
      expect(r.explain?.startsWith(`CPU kernels: ${isa} (`)).toBe(true);
      if (isa !== best) expect(r.explain).toMatch(new RegExp(`forced by KILN_CPU_ISA; best here: ${best}\\); caches .*; blocking KC \\d+ MC \\d+ NC \\d+$`));
      expect(r.explain).not.toMatch(/bf16 GEMMs on f32 panels/);  // a forced path is taken as named
      expect(r.err).toBeLessThanOrEqual(1e-5);
    }, 120_000);

  test('a name that is not a path is a CpuIsaError at compile', () => {
    expect(child('avx9').error).toBe('CpuIsaError: kiln: KILN_CPU_ISA=avx9 is not a CPU kernel path: use avx512_bf16, avx512, avx2, generic or auto');
  }, 120_000);
});
