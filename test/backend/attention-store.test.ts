/** Compiled sdpa on the C++ back end: a kernel whose epilogue is only the plain f32 store hands the library its
 * output buffer (kiln_sdpa_out_f32, no call per element); a fused epilogue still goes through the epilogue
 * function. Both against the float64 reference, with ragged sizes and a causal case. */
import { input, sdpa } from '../../compiler/index';
import { lowerProgram } from '../../compiler/compile';
import { renderProgramCpp } from '../../compiler/render/cpp';
import { expectMatchesReference, vals } from '../support/store-check';


test('sdpa: plain output stored directly, fused epilogue through the epilogue function, both match', async () => {
  const spec = () => {
    const q = input('q', [2, 3, 65, 17]), k = input('k', [2, 3, 77, 17]), v = input('v', [2, 3, 77, 9]);
    const kc = input('kc', [1, 63, 7]), vc = input('vc', [1, 63, 1]), qc = input('qc', [1, 63, 7]);
    return { outputs: {
      plain: sdpa(q, k, v, { scale: 0.3 }),
      fused: sdpa(q.mul(0.5), k, v, { scale: 0.3 }).mul(2).add(1),
      causal: sdpa(qc, kc, vc, { scale: 0.4, causal: true }),
    } };
  };
  const low = lowerProgram(spec());
  const src = renderProgramCpp(low.kernels, low.info);
  expect((src.match(/kiln_sdpa_out_f32\(/g) ?? []).length).toBe(2);
  expect((src.match(/kiln_sdpa_f32\(/g) ?? []).length).toBe(1);
  const feeds = { q: vals(2 * 3 * 65 * 17, 1), k: vals(2 * 3 * 77 * 17, 2), v: vals(2 * 3 * 77 * 9, 3), qc: vals(63 * 7, 4), kc: vals(63 * 7, 5), vc: vals(63, 6) };
  await expectMatchesReference(spec, feeds);
}, 240_000);
