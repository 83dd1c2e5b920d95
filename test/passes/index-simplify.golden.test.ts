/** Golden tests of the index simplifier (codegen/expr.ts): index expressions as the renderers print them, and
 * "a reshape between contiguous shapes costs no division" through lowering and both renderers. */
import { input } from '../../compiler/index';
import * as E from '../../compiler/codegen/expr';
import type { Expr } from '../../compiler/codegen/kir';
import { ExprPrinter } from '../../compiler/render/cstyle';
import { cppLang, renderProgramCpp } from '../../compiler/render/cpp';
import { renderProgramCuda } from '../../compiler/render/cuda';
import { lowerProgram } from '../../compiler/compile';

const print = (e: Expr) => { const p = new ExprPrinter(cppLang, (b) => `b${b}`); const s = p.print(e); return [...p.lines, s].join(' '); };
const i0 = E.variable('i0', 2), i1 = E.variable('i1', 3), i2 = E.variable('i2', 4);
const flat = E.flatIndex([i0, i1, i2], [2, 3, 4]);

describe('codegen/expr: index simplification, before and expected after', () => {
  test.each([
    ['flat index of [2,3,4]', () => flat, '(((i0 * 12) + (i1 * 4)) + i2)'],
    ['[2,3,4] -> [6,4] row: the division by 4 drops i2', () => E.unflatten(flat, [6, 4])[0], '((i0 * 3) + i1)'],
    ['[2,3,4] -> [6,4] column: mod 4 is i2', () => E.unflatten(flat, [6, 4])[1], 'i2'],
    ['[2,3,4] -> [6,4] -> flat: put back together', () => E.flatIndex(E.unflatten(flat, [6, 4]), [6, 4]), '(((i0 * 12) + (i1 * 4)) + i2)'],
    ['[2,3,4] -> [4,6] -> flat: shared factor 2', () => E.flatIndex(E.unflatten(flat, [4, 6]), [4, 6]), '(((i0 * 12) + (i1 * 4)) + i2)'],
    ['[2,3,4] -> [4,6] row: the part divisible by 6 leaves the division', () => E.unflatten(flat, [4, 6])[0], '((i0 * 2) + (((i1 * 4) + i2) / 6))'],
    ['(12 i0 + i1) / 12 = i0 by ranges', () => E.alu('idiv', E.alu('add', E.alu('mul', i0, E.idx(12)), i1), E.idx(12)), 'i0'],
    ['(x / 4) / 3 = x / 12', () => E.alu('idiv', E.alu('idiv', flat, E.idx(4)), E.idx(3)), 'i0'],
    ['max(i1, 5) = 5 and i1 < 3 = true by ranges', () => E.alu('add', E.alu('max', i1, E.idx(5)), E.cast(E.alu('lt', i1, E.idx(3)), 'i32')), '6'],
    ['constants fold with the scalar semantics table: max(NaN, 1) = NaN', () => E.alu('max', E.cnst(NaN, 'f32'), E.cnst(1, 'f32')), 'NAN'],
    ['values get temporaries, indices stay inline', () => E.alu('add', E.alu('mul', E.cnst(2, 'f32'), E.cnst(3, 'f32')), E.load(0, flat, 'f32')),
      'const float t0 = b0[(((i0 * 12) + (i1 * 4)) + i2)]; const float t1 = (6.00000000f + t0); t1'],
  ])('%s', (_name, build, want) => expect(print(build())).toBe(want));

  test.each([
    ['[6,4] -> [2,3,4]', [6, 4], [2, 3, 4]],
    ['[24] -> [3,8]', [24], [3, 8]],
    ['[2,3,4] -> [6,4]', [2, 3, 4], [6, 4]],
  ])('a reshape between contiguous shapes costs no division, on both renderers: %s', (_name, from, to) => {
    const x = input('x', from);
    const low = lowerProgram({ outputs: { y: x.exp().reshape(to).mul(2) } });
    expect(low.kernels).toHaveLength(1);
    const k = low.kernels[0];
    if (k.kind !== 'pointwise') throw new Error(`expected a pointwise kernel, got ${k.kind}`);
    const cpp = renderProgramCpp(low.kernels, low.info);
    const body = cpp.slice(cpp.indexOf(`static void ${k.name}`), cpp.indexOf('kiln_offsets[')).split('\n').filter((l) => !l.trim().startsWith('//'));
    expect(body.filter((l) => /b\d+\[/.test(l)).length).toBeGreaterThanOrEqual(2);
    for (const l of body) expect(l).not.toMatch(/[/%]/);
    // CUDA splits its flat thread index into loop variables; the loads and stores themselves have no division
    const cu = renderProgramCuda(low.kernels, low.info, 0).source;
    const access = cu.split('\n').filter((l) => /b\d+\[/.test(l));
    expect(access.length).toBeGreaterThanOrEqual(2);
    for (const l of access) expect(l).not.toMatch(/[/%]/);
  });
});
