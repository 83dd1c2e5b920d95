/** The training step's gradients for the ID encoder (through L_diff, both Lightning paths over all 4 steps and the
 * alignment losses; with PULID_FULL_GRADCHECK=1 also the VAE decode, φ at 150×150 and L_id, which takes several
 * minutes on the float64 evaluator) against central finite differences, on the micro config with the reference
 * evaluator: one random direction over every id_adapter.* parameter. */
import { evaluate, grad, type ParamStore, type Tensor } from '../../compiler/index';
import { normalFill } from '../../compiler/ir/philox';
import { microPulidConfig } from '../../models/pulid/config';
import { PulidModel, trainStepGraph } from '../../models/pulid/model';
import { materialize } from '../../models/weights';
import { loadFaceRecognizerParams } from '../../models/face/recognizer';

const full = process.env.PULID_FULL_GRADCHECK === '1';

test(`d loss / d ID-encoder params vs central differences (stage 3 loss${full ? ' with L_id' : ' without L_id'}, micro config, all 4 Lightning steps)`, () => {
  const m = new PulidModel({ ...microPulidConfig, gradSteps: 4 }, { seed: 1 });
  const g = trainStepGraph(m, { stage: 3, idLoss: full });
  const enc = [...m.trainable.params].filter(([k]) => k.startsWith('id_adapter.'));
  const grads = grad(g.outputs.loss, enc.map(([, t]) => t));
  const store: ParamStore = materialize(materialize(full ? new Map(loadFaceRecognizerParams()) : new Map(), m.base), m.trainable);
  // larger ID-attention weights so the ID path matters at micro scale
  for (const [k, v] of store) if (k.includes('id_to_')) store.set(k, v.map((x) => x * 8));
  const S = m.latentSize, c = m.config, e = c.idEncoder;
  let seed = 40;
  const r = (n: number, s = 1) => normalFill(n, seed++).map((x) => x * s);
  const feeds: Record<string, ArrayLike<number>> = {
    latents: r(4 * S * S), noise: r(4 * S * S), alpha: [0.6], sigma: [0.8], timestep: [500],
    context: r(c.textLength * c.unet.crossAttentionDim), pooled: r(m.pooledDim), time_ids: [64, 64, 0, 0, 64, 64],
    id_cond: r(e.faceDim + e.clipEmbedDim), t2i_noise: r(4 * S * S), t2i_context: r(c.textLength * c.unet.crossAttentionDim), t2i_pooled: r(m.pooledDim),
    t2i_time_ids: [64, 64, 0, 0, 64, 64], face_ref: r(128), lambda_id: [1], lambda_sem: [0.6], lambda_layout: [0.1],
  };
  for (let i = 0; i < 5; i++) feeds[`vit_${i}`] = r(m.vitTokens * e.vitWidth);
  const outs: Record<string, Tensor> = { loss: g.outputs.loss, l_sem: g.outputs.l_sem, l_layout: g.outputs.l_layout, ...(full ? { l_id: g.outputs.l_id } : {}) };
  grads.forEach((gr, i) => { outs[`g${i}`] = gr; });
  const res = evaluate({ outputs: outs }, feeds, store).outputs;
  const dirs = enc.map(([, t]) => r(t.size));
  const analytic = dirs.reduce((a, d, i) => a + d.reduce((s, x, j) => s + x * res[`g${i}`].data[j], 0), 0);
  const h = 1e-5;
  const lossAt = (sign: number) => {
    const st: ParamStore = new Map(store);
    enc.forEach(([k], i) => st.set(k, store.get(k)!.map((x, j) => x + sign * h * dirs[i][j])));
    return evaluate({ outputs: { loss: g.outputs.loss } }, feeds, st).outputs.loss.data[0];
  };
  const numeric = (lossAt(1) - lossAt(-1)) / (2 * h);
  const rel = Math.abs(analytic - numeric) / Math.abs(numeric);
  console.log(`PuLID step gradient check: analytic ${analytic.toExponential(6)} numeric ${numeric.toExponential(6)} rel err ${rel.toExponential(2)}; loss ${res.loss.data[0].toFixed(5)} l_sem ${res.l_sem.data[0].toExponential(3)} l_layout ${res.l_layout.data[0].toExponential(3)}${full ? ` l_id ${res.l_id.data[0].toFixed(5)}` : ''}`);
  expect(Math.abs(numeric)).toBeGreaterThan(1e-8);
  expect(rel).toBeLessThan(1e-5);
}, 600_000);
