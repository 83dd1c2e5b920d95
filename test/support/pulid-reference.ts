/** Shared by test/pulid/reference.test.ts (float64) and reference-compiled.test.ts (compiled f32): the reference
 * outputs of test/fixtures/pulid/generate.py and the Kiln graphs that must reproduce them. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { input, type ParamStore, type Tensor } from '../../compiler/index';
import { readSafetensors } from '../../models/io/safetensors';
import { Attention, Linear, ParamRegistry } from '../../models/nn/index';
import { idAttentionLayer, type IdAttentionMode } from '../../models/pulid/id-attention';
import { IdFormer } from '../../models/pulid/id-former';
import type { IdEncoderConfig } from '../../models/pulid/config';
import { EvaVisionModel, loadEvaVisionWeights, tinyEvaVisionConfig } from '../../models/clip/index';

export const fixtureDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/pulid');
export const ref = readSafetensors(path.join(fixtureDir, 'reference.safetensors')).tensors;
export const get = (k: string): Float64Array => { const t = ref.get(k); if (!t) throw new Error(`no ${k} in the fixture`); return t.data as Float64Array; };
export const shapeOf = (k: string): number[] => [...ref.get(k)!.shape];
/** max |a − b| / max |b|. */
export const relErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let d = 0, s = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i]! - b[i]!)); s = Math.max(s, Math.abs(b[i]!)); }
  return d / s;
};
/** Fixture tensors under `from.` as a ParamStore under `to.`. */
export const storeOf = (from: string, to: string): ParamStore => {
  const st: ParamStore = new Map();
  for (const [k, t] of ref) if (k.startsWith(`${from}.`) && !k.includes('.out.') && !/\.in\d\./.test(k)) st.set(`${to}.${k.slice(from.length + 1)}`, t.data as Float64Array);
  return st;
};

// ------------------------------------------------------------------ ID attention: NUM_ZERO × ortho off / v1 / v2
export const ORTHO: Record<string, IdAttentionMode> = { off: 'plain', v1: 'ortho', v2: 'ortho_v2' };
export const [B, LQ, QD] = shapeOf('attn.hidden'), [, LK, CD] = shapeOf('attn.context'), T = shapeOf('attn.id')[1]!;
export const attnStore = new Map([...storeOf('attn', 'attn')].map(([k, v]) => (k.includes('id_to_') ? [k.replace('attn.', 'ids.'), v] : [k, v])));
export function attentionGraph(numZero: number, mode: IdAttentionMode): Tensor {
  const reg = new ParamRegistry();
  const attn = new Attention(reg.scope('attn'), { queryDim: QD!, crossDim: CD!, heads: 2, headDim: 4 });
  const toK = new Linear(reg.scope('ids').child('id_to_k'), CD!, 8, { bias: false }), toV = new Linear(reg.scope('ids').child('id_to_v'), CD!, 8, { bias: false });
  const idTokens = input('id', [B!, T, CD!]);
  return attn.forward(input('hidden', [B!, LQ!, QD!]), input('context', [B!, LK!, CD!]), {
    crossAttention: (c) => idAttentionLayer(c, toK, toV, { idTokens, mode, idScale: 0.7, numZero }),
  });
}
export const attnFeeds = { hidden: get('attn.hidden'), context: get('attn.context'), id: get('attn.id') };
export const attnCases = [0, 3].flatMap((nz) => Object.keys(ORTHO).map((o) => [nz, o] as const));

// ------------------------------------------------------------------------------------------ IDFormer (v1.1)
export const W = shapeOf('idformer.in0.vit_0')[2]!, N = shapeOf('idformer.in0.vit_0')[1]!, C = shapeOf('idformer.in0.id_cond')[1]!;
export const formerConfig: IdEncoderConfig = {
  faceDim: C - 8, clipEmbedDim: 8, vitWidth: W, bodyTokens: 5, vitLayers: 5, contextDim: 12, bodyHidden: [W, W],
  former: { dim: 16, depth: 10, heads: 2, dimHead: 4, numQueries: 6, mappingHidden: W, ffMult: 2 },
};
export const formerStore = storeOf('idformer', 'id_adapter');
export const feats = (p: string) => ({ idCond: input(`${p}id_cond`, [B!, C]), vitHidden: Array.from({ length: 5 }, (_v, i) => input(`${p}vit_${i}`, [B!, N, W])) });
export const formerFeeds: Record<string, Float64Array> = {};
for (const r of [0, 1]) {
  formerFeeds[`p${r}_id_cond`] = get(`idformer.in${r}.id_cond`);
  for (let i = 0; i < 5; i++) formerFeeds[`p${r}_vit_${i}`] = get(`idformer.in${r}.vit_${i}`);
}
export function formerOutputs(): Record<string, Tensor> {
  const reg = new ParamRegistry({ trainable: true });
  const f = new IdFormer(reg.scope('id_adapter'), formerConfig);
  return { one: f.forward(feats('p0_')), two: f.tokensFor([feats('p0_'), feats('p1_')]), zeros: f.unconditional(B!, N, { references: 2 }) };
}


// ------------------------------------------------------------------------------------------ EVA02-CLIP tower
export const evaWeights = path.join(fixtureDir, 'eva.safetensors');
export const EVA_HIDDEN = [4, 8, 12, 16, 20];
export function evaGraph(model: EvaVisionModel): Record<string, Tensor> {
  const out = model.forward(input('pixels', [2, 3, 16, 16]), { hiddenStates: EVA_HIDDEN });
  return { embeds: out.imageEmbeds, ...Object.fromEntries(out.hidden.map((h, i) => [`hidden_${i}`, h])) };
}
export function evaModel(): { model: EvaVisionModel; store: ParamStore; loaded: string[] } {
  const model = new EvaVisionModel(tinyEvaVisionConfig), store: ParamStore = new Map();
  return { model, store, loaded: loadEvaVisionWeights(store, evaWeights, model) };
}
