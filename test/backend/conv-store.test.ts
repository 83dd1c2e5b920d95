/** Compiled conv2d and its gradients on the C++ back end: a kernel whose epilogue is only the plain f32 store hands
 * the library its output buffer (kiln_conv2d*_out_f32: dW summed in place, rows stored inline, no epilogue call); a
 * fused epilogue (bias, scale, a gradient sum) still goes through the epilogue function. Every kind against the
 * float64 reference, stride 1 and stride 2, ragged sizes. */
import { conv2d, grad, input } from '../../compiler/index';
import { lowerProgram } from '../../compiler/compile';
import { renderProgramCpp } from '../../compiler/render/cpp';
import { expectMatchesReference, vals } from '../support/store-check';


test('conv2d: plain outputs stored directly, fused epilogues through the epilogue function, both match', async () => {
  const spec = () => {
    const x = input('x', [2, 7, 9, 11]), w = input('w', [5, 7, 3, 3]), b = input('b', [5]), x2 = input('x2', [1, 7, 9, 11]);
    const y = input('y', [2, 5, 9, 11]), w2 = input('w2', [17, 5, 3, 3]), x3 = input('x3', [1, 3, 13, 17]), w3 = input('w3', [6, 3, 3, 3]);
    // The gradients flowing into the convs are inputs (g*), so each output is one conv deep (no f32 chain to amplify).
    const g1 = input('g1', [2, 5, 9, 11]), g2 = input('g2', [2, 17, 5, 6]), g3 = input('g3', [1, 6, 7, 9]);
    const yx = conv2d(x, w, undefined, { padding: 1 });                  // plain forward
    const z = conv2d(y, w2, undefined, { stride: 2, padding: 1 });       // plain forward, stride 2
    const v = conv2d(x3, w3, undefined, { stride: 2, padding: 1 });
    const loss = yx.mul(g1).sum().add(z.mul(g2).sum()).add(y.square().sum()).add(v.mul(g3).sum());
    const [dx, dw, dy, dw2, dx3, dw3] = grad(loss, [x, w, y, w2, x3, w3]);
    // dy = stride-2 input gradient + 2y (fused add); dx (stride 1) and dW3 scaled (fused); dW, dW2, dx3 plain.
    return { outputs: { yx, z, biased: conv2d(x2, w, b, { padding: 1 }), vScaled: v.mul(0.5).add(2), dxScaled: dx.mul(3).add(1), dw, dy, dw2, dx3, dw3x2: dw3.mul(2) } };
  };
  const low = lowerProgram(spec());
  const src = renderProgramCpp(low.kernels, low.info);
  const calls: Record<string, number> = {};
  for (const m of src.matchAll(/(kiln_conv2d\w*)\(/g)) calls[m[1]] = (calls[m[1]] ?? 0) + 1;
  expect(calls).toEqual({
    kiln_conv2d_out_f32: 2, kiln_conv2d_f32: 2,
    kiln_conv2d_bwd_data_out_f32: 1, kiln_conv2d_bwd_data_f32: 2,
    kiln_conv2d_bwd_weight_out_f32: 2, kiln_conv2d_bwd_weight_f32: 1,
  });
  const feeds = { x: vals(2 * 7 * 9 * 11, 1), w: vals(5 * 7 * 9, 2), b: vals(5, 3), x2: vals(7 * 9 * 11, 5),
    y: vals(2 * 5 * 9 * 11, 8), w2: vals(17 * 5 * 9, 4), x3: vals(3 * 13 * 17, 6), w3: vals(6 * 3 * 9, 7),
    g1: vals(2 * 5 * 9 * 11, 9), g2: vals(2 * 17 * 5 * 6, 10), g3: vals(6 * 7 * 9, 11) };
  await expectMatchesReference(spec, feeds);
}, 240_000);
