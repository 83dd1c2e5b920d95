/** A conv's result for one image does not depend on how many images share the batch: the kernel library picks its
 * algorithm (shift GEMM, Winograd, few-pixel paths) from per-image sizes. Image 0's forward output and input gradient
 * in a batch of 2 are bitwise those of the same image alone. When Winograd was chosen from the tiles over the batch, a
 * 64-channel 16x16 conv ran the shift GEMM alone and Winograd in pairs, and PuLID's data-parallel run (2 ranks x batch
 * 1) missed the single process (batch 2) by 2e-5 on the ID adapter's weights after 5 steps. Shapes at the thresholds
 * of both ISA families: 64 channels 16x16 (64 tiles an image; AVX-512 from 128), 32 channels 8x16 (32 tiles; AVX2
 * from 64), and a few-pixel 256-channel 4x4. */
import { compile, conv2d, grad, input, param } from '../../compiler/index';
import { normalFill } from '../../compiler/ir/philox';

const cases: [string, number, number, number][] = [['64 ch 16x16', 64, 16, 16], ['32 ch 8x16', 32, 8, 16], ['256 ch 4x4', 256, 4, 4]];

describe('conv results per image are independent of the batch size', () => {
  test.each(cases)('%s: forward and input gradient, batch 1 vs batch 2', async (_name, C, H, W) => {
    const run = async (n: number) => {
      const x = input('x', [n, C, H, W]), r = input('r', [n, C, H, W]);
      const w = param('w', [C, C, 3, 3], { init: { kind: 'normal', std: 0.05, seed: 7 } });
      const y = conv2d(x, w, undefined, { padding: 1 });
      const [dx] = grad(y.mul(r).sum(), [x]);
      const prog = await compile({ outputs: { y, dx } });
      const one = C * H * W;
      const xs = normalFill(2 * one, 11), rs = normalFill(2 * one, 12);
      return prog.run({ x: xs.subarray(0, n * one), r: rs.subarray(0, n * one) });
    };
    const a = await run(1), b = await run(2);
    const one = C * H * W;
    for (const k of ['y', 'dx'] as const) {
      const first = (b[k] as Float32Array).subarray(0, one);
      let diff = 0;
      for (let i = 0; i < one; i++) if (first[i] !== (a[k] as Float32Array)[i]) diff++;
      expect(`${k}: ${diff} of ${one} elements differ`).toBe(`${k}: 0 of ${one} elements differ`);
    }
  }, 120_000);
});
