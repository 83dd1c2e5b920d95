/** ID encoder and ID attention (all modes) against direct float64 formulas in plain JS. */
import { evaluate, input, type ParamStore, type Tensor } from '../../compiler/index';
import { normalFill } from '../../compiler/ir/philox';
import { ParamRegistry } from '../../models/nn/index';
import { UNet2DConditionModel, sdxlUnetConfig } from '../../models/unet/index';
import { microPulidConfig, sdxlPulidConfig, idTokens } from '../../models/pulid/config';
import { IdEncoder } from '../../models/pulid/id-encoder';
import { IdAttention, idAttentionOutput, ID_ATTENTION_MODES, type IdAttentionMode } from '../../models/pulid/id-attention';
import { materialize } from '../../models/weights';
import { linearJS } from '../models/ref';

type Arr = Float64Array;
const M = Math;
const randn = (n: number, seed: number, scale = 1) => normalFill(n, seed).map((v) => v * scale);
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => { let m = 0; for (let i = 0; i < a.length; i++) m = M.max(m, M.abs(a[i] - b[i])); return m; };

function layerNormJS(x: Arr, g: Arr, b: Arr, rows: number, d: number): Arr {
  const y = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) {
    let mu = 0, v = 0;
    for (let i = 0; i < d; i++) mu += x[r * d + i] / d;
    for (let i = 0; i < d; i++) v += (x[r * d + i] - mu) ** 2 / d;
    for (let i = 0; i < d; i++) y[r * d + i] = ((x[r * d + i] - mu) / M.sqrt(v + 1e-5)) * g[i] + b[i];
  }
  return y;
}
const leaky = (x: Arr) => x.map((v) => (v > 0 ? v : 0.01 * v));
function mlpJS(store: ParamStore, pre: string, x: Arr, rows: number, dims: number[]): Arr {
  const w = (k: string) => store.get(`${pre}.${k}`)!;
  let h = linearJS(x, w('0.weight'), w('0.bias'), rows, dims[0], dims[1]);
  h = leaky(layerNormJS(h, w('1.weight'), w('1.bias'), rows, dims[1]));
  h = linearJS(h, w('3.weight'), w('3.bias'), rows, dims[1], dims[2]);
  h = leaky(layerNormJS(h, w('4.weight'), w('4.bias'), rows, dims[2]));
  return linearJS(h, w('6.weight'), w('6.bias'), rows, dims[2], dims[3]);
}

describe('ID encoder', () => {
  const c = microPulidConfig.idEncoder, B = 2, T = 5, W = c.vitWidth, F = c.faceDim + c.clipEmbedDim, D = c.contextDim;
  const reg = new ParamRegistry({ seed: 3, trainable: true });
  const enc = new IdEncoder(reg.scope('id_adapter'), c);
  const store = materialize(new Map(), reg);
  const feats = (p: string) => ({ idCond: input(`${p}id_cond`, [B, F]), vitHidden: Array.from({ length: 5 }, (_v, i) => input(`${p}vit_${i}`, [B, T, W])) });
  const feedsOf = (p: string, seed: number) => {
    const f: Record<string, Arr> = { [`${p}id_cond`]: randn(B * F, seed) };
    for (let i = 0; i < 5; i++) f[`${p}vit_${i}`] = randn(B * T * W, seed + 1 + i);
    return f;
  };
  const tokensJS = (f: Record<string, Arr>, p: string): Arr => {
    const out = new Float64Array(B * 10 * D);
    const body = mlpJS(store, 'id_adapter.body', f[`${p}id_cond`], B, [F, c.bodyHidden[0], c.bodyHidden[1], D * 5]);
    for (let b = 0; b < B; b++) out.set(body.subarray(b * 5 * D, (b + 1) * 5 * D), b * 10 * D);
    for (let i = 0; i < 5; i++) {
      const h = f[`${p}vit_${i}`];
      for (let b = 0; b < B; b++) {
        const cls = mlpJS(store, `id_adapter.mapping_${i}`, h.slice(b * T * W, b * T * W + W), 1, [W, W, W, D]);
        const patch = mlpJS(store, `id_adapter.mapping_patch_${i}`, h.slice(b * T * W + W, (b + 1) * T * W), T - 1, [W, W, W, D]);
        for (let d = 0; d < D; d++) {
          let m = 0;
          for (let t = 0; t < T - 1; t++) m += patch[t * D + d] / (T - 1);
          out[(b * 10 + 5 + i) * D + d] = cls[d] + m;
        }
      }
    }
    return out;
  };

  test('keys follow the reference checkpoint layout (id_adapter.body.{0,1,3,4,6}, mapping_i, mapping_patch_i)', () => {
    const keys = [...reg.params.keys()];
    for (const k of ['id_adapter.body.0.weight', 'id_adapter.body.1.weight', 'id_adapter.body.3.bias', 'id_adapter.body.4.bias', 'id_adapter.body.6.weight',
      'id_adapter.mapping_0.0.weight', 'id_adapter.mapping_4.6.bias', 'id_adapter.mapping_patch_0.1.weight', 'id_adapter.mapping_patch_4.6.weight']) expect(keys).toContain(k);
    expect(keys.length).toBe(10 * 11);
    // the paper's widths: 1280 → 1024 → 1024 → 2048·5; mappings 1024 → 1024 → 1024 → 2048
    const big = new ParamRegistry();
    new IdEncoder(big.scope('id_adapter'), sdxlPulidConfig.idEncoder);
    const sh = big.shapes();
    expect(sh.get('id_adapter.body.0.weight')).toEqual([1024, 1280]);
    expect(sh.get('id_adapter.body.6.weight')).toEqual([10240, 1024]);
    expect(sh.get('id_adapter.mapping_3.6.weight')).toEqual([2048, 1024]);
    expect(idTokens(sdxlPulidConfig.idEncoder)).toBe(10);
  });

  test('forward = body MLP → 5 tokens ++ mapping_i(cls) + mean(mapping_patch_i(patches)), vs plain JS', () => {
    const f = feedsOf('', 10);
    const y = evaluate({ outputs: { y: enc.forward(feats('')) } }, f, store).outputs.y;
    expect(y.shape).toEqual([B, 10, D]);
    expect(maxDiff(y.data, tokensJS(f, ''))).toBeLessThan(1e-10);
  });

  test('multi-reference concatenates token sets; unconditional = encoder of zeros', () => {
    const f = { ...feedsOf('a_', 20), ...feedsOf('b_', 30) };
    const r = evaluate({ outputs: { y: enc.forwardMulti([feats('a_'), feats('b_')]), u: enc.unconditional(B, T) } }, f, store).outputs;
    expect(r.y.shape).toEqual([B, 20, D]);
    const a = tokensJS(f, 'a_'), b = tokensJS(f, 'b_');
    for (let bi = 0; bi < B; bi++) {
      expect(maxDiff(r.y.data.slice(bi * 20 * D, bi * 20 * D + 10 * D), a.slice(bi * 10 * D, (bi + 1) * 10 * D))).toBeLessThan(1e-10);
      expect(maxDiff(r.y.data.slice(bi * 20 * D + 10 * D, (bi + 1) * 20 * D), b.slice(bi * 10 * D, (bi + 1) * 10 * D))).toBeLessThan(1e-10);
    }
    const z: Record<string, Arr> = { id_cond: new Float64Array(B * F) };
    for (let i = 0; i < 5; i++) z[`vit_${i}`] = new Float64Array(B * T * W);
    expect(maxDiff(r.u.data, tokensJS(z, ''))).toBeLessThan(1e-10);
  });
});

describe('ID attention', () => {
  const B = 1, H = 2, Lq = 6, T = 10, d = 3;
  // plain-JS reference: out [B,H,Lq,d], q, kId, vId
  function refJS(out: Arr, q: Arr, k: Arr, v: Arr, mode: IdAttentionMode, s: number): Arr {
    const scale = 1 / M.sqrt(d), res = new Float64Array(out.length), idOut = new Float64Array(out.length), mass = new Float64Array(B * Lq);
    for (let h = 0; h < H; h++) for (let i = 0; i < Lq; i++) {
      const logits = Array.from({ length: T }, (_v, j) => { let a = 0; for (let c = 0; c < d; c++) a += q[(h * Lq + i) * d + c] * k[(h * T + j) * d + c]; return a; });
      const sm = (z: number[]) => { const mx = M.max(...z), e = z.map((x) => M.exp(x - mx)), sum = e.reduce((a, b) => a + b, 0); return e.map((x) => x / sum); };
      const p = sm(logits.map((x) => x * scale));
      for (let c = 0; c < d; c++) idOut[(h * Lq + i) * d + c] = p.reduce((a, pj, j) => a + pj * v[(h * T + j) * d + c], 0);
      const pu = sm(logits);
      mass[i] += pu.slice(0, 5).reduce((a, b) => a + b, 0) / H;
    }
    for (let h = 0; h < H; h++) for (let c = 0; c < d; c++) {
      let num = 0, den = 0;
      for (let i = 0; i < Lq; i++) { const o = out[(h * Lq + i) * d + c]; num += o * idOut[(h * Lq + i) * d + c]; den += o * o; }
      for (let i = 0; i < Lq; i++) {
        const at = (h * Lq + i) * d + c, proj = (num / den) * out[at];
        const term = mode === 'plain' ? idOut[at] : mode === 'ortho' ? idOut[at] - proj : idOut[at] + (mass[i] - 1) * proj;
        res[at] = out[at] + s * term;
      }
    }
    return res;
  }
  test.each(ID_ATTENTION_MODES)('%s vs plain JS', (mode) => {
    const t = (n: string, L: number) => input(n, [B, H, L, d]);
    const f = { out: randn(H * Lq * d, 1), q: randn(H * Lq * d, 2), k: randn(H * T * d, 3), v: randn(H * T * d, 4) };
    const y = evaluate({ outputs: { y: idAttentionOutput(t('out', Lq), t('q', Lq), t('k', T), t('v', T), 1 / M.sqrt(d), mode, 0.7) } }, f, new Map()).outputs.y;
    expect(maxDiff(y.data, refJS(f.out, f.q, f.k, f.v, mode, 0.7))).toBeLessThan(1e-10);
  });

  test('per-layer id_to_k / id_to_v keys index diffusers attn_processors (attn2 = odd), SDXL: 70 layers', () => {
    const unet = new UNet2DConditionModel(sdxlUnetConfig);
    const reg = new ParamRegistry({ trainable: true });
    const ia = new IdAttention(reg.scope('id_adapter_attn_layers'), unet);
    expect(ia.layers.length).toBe(70);
    expect(ia.layers[0].layer).toBe('down_blocks.1.attentions.0.transformer_blocks.0.attn2');
    expect(ia.layers[24].layer).toBe('up_blocks.0.attentions.0.transformer_blocks.0.attn2');
    expect(ia.layers[69].layer).toBe('mid_block.attentions.0.transformer_blocks.9.attn2');
    const sh = reg.shapes();
    expect(sh.get('id_adapter_attn_layers.1.id_to_k.weight')).toEqual([640, 2048]);
    expect(sh.get('id_adapter_attn_layers.139.id_to_v.weight')).toEqual([1280, 2048]);
    expect(reg.params.size).toBe(140);
  });

  test('hook with id_scale 0 leaves the layer unchanged; with s it adds s·Attn(Q, K′, V′)', () => {
    const q = input('q', [B, H, Lq, d]), k = input('k', [B, H, T, d]), v = input('v', [B, H, T, d]), out = input('out', [B, H, Lq, d]);
    const f = { out: randn(H * Lq * d, 5), q: randn(H * Lq * d, 6), k: randn(H * T * d, 7), v: randn(H * T * d, 8) };
    const r = evaluate({ outputs: { a: idAttentionOutput(out, q, k, v, 0.5, 'plain', 0) as Tensor } }, f, new Map()).outputs;
    expect(maxDiff(r.a.data, f.out)).toBe(0);
  });
});
