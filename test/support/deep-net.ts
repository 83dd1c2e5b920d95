/** A deep residual stack (conv, group norm + SiLU, attention, GEMMs, AdamW) whose blocks can be wrapped in
 * `checkpoint`: the memory-planning tests compare the same step with and without checkpoints and budgets. */
import * as k from '../../compiler/index';
import type { GraphSpec, Tensor } from '../../compiler/index';
import { normalFill } from '../../compiler/ir/philox';

const w = (name: string, shape: readonly number[], std: number, seed: number) => k.param(name, shape, { init: { kind: 'normal', std, seed } });

/** One block: conv → group norm + SiLU → tokens → attention + MLP (GELU) → back to an image, with residuals. */
function block(i: number, x: Tensor): Tensor {
  const C = 8, B = x.shape[0], H = x.shape[2], W = x.shape[3];
  let h = k.conv2d(x, w(`b${i}.conv.w`, [C, C, 3, 3], 0.15, 100 + i), w(`b${i}.conv.b`, [C], 0.05, 200 + i), { padding: 1 });
  h = k.groupNorm(h, 4, k.param(`b${i}.gn.w`, [C], { init: { kind: 'ones' } }), k.param(`b${i}.gn.b`, [C])).silu();
  const t = h.reshape([B, C, H * W]).permute([0, 2, 1]);
  const n = k.layerNorm(t, k.param(`b${i}.ln.w`, [C], { init: { kind: 'ones' } }), k.param(`b${i}.ln.b`, [C]));
  const q = k.linear(n, w(`b${i}.q`, [C, C], 0.3, 300 + i)), kk = k.linear(n, w(`b${i}.k`, [C, C], 0.3, 400 + i)), v = k.linear(n, w(`b${i}.v`, [C, C], 0.3, 500 + i));
  const a = k.sdpa(q, kk, v).add(t);
  const m = k.linear(k.gelu(k.linear(a, w(`b${i}.fc1`, [4 * C, C], 0.2, 600 + i))), w(`b${i}.fc2`, [C, 4 * C], 0.2, 700 + i)).add(a);
  return m.permute([0, 2, 1]).reshape([B, C, H, W]).add(x);
}

/** `blocks` residual blocks on [2, 8, size, size] images; `checkpointed`: each block is a checkpoint segment
 * ('budget': a candidate the planner recomputes only under a budget). */
export function deepNetStep(blocks: number, checkpointed: boolean | 'budget', size = 16, lr = 0.01): { spec: GraphSpec; feeds: Record<string, Float64Array> } {
  const x = k.input('x', [2, 3, size, size]), target = k.input('target', [2, 4]);
  let h = k.conv2d(x, w('stem.w', [8, 3, 3, 3], 0.2, 11), w('stem.b', [8], 0.05, 12), { padding: 1 });
  for (let i = 0; i < blocks; i++) h = checkpointed ? k.checkpoint((y: Tensor) => block(i, y), { when: checkpointed === 'budget' ? 'budget' : 'always' })(h) : block(i, h);
  const out = k.linear(h.mean([2, 3]), w('head.w', [4, 8], 0.3, 18), w('head.b', [4], 0.05, 19));
  const loss = k.mseLoss(out, target);
  const params = k.trainableParams(loss);
  return {
    spec: { outputs: { loss }, updates: k.adamw(params, k.grad(loss, params), { lr }) },
    feeds: { x: normalFill(2 * 3 * size * size, 21), target: normalFill(8, 22).map((v) => 0.5 * v) },
  };
}
