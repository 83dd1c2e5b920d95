import { evaluate, input, type ParamStore } from '../../compiler/index';
import { normalFill } from '../../compiler/ir/philox';
import { Attention, Conv2d, FeedForward, GroupNorm, LayerNorm, Linear, ParamRegistry, ResnetBlock2D, Transformer2DModel, hashKey, timestepEmbedding } from '../../models/nn/index';
import { attentionJS, conv2dJS, geluJS, groupNormJS, layerNormJS, linearJS, maxRelErr, siluJS } from './ref';

const randn = (n: number, seed: number, scale = 1) => normalFill(n, seed).map((v) => v * scale);
const run = (out: ReturnType<typeof input>, feeds: Record<string, Float64Array>, store: ParamStore = new Map()) => ({ y: evaluate({ outputs: { out } }, feeds, store).outputs.out.data, store });
/** Random values for every parameter (norm weights included), so no formula term is trivially 1 or 0. */
function randomStore(reg: ParamRegistry, seed = 5): ParamStore {
  const s: ParamStore = new Map();
  let i = 0;
  for (const [k, t] of reg.params) s.set(k, randn(t.size, seed + i++, 0.3).map((v) => (/norm[^.]*\.weight$/.test(k) ? 1 + v : v)));
  return s;
}

describe('module system', () => {
  test('keys, shapes, per-key seeds, frozen by default', () => {
    const reg = new ParamRegistry();
    const s = reg.scope('down_blocks.1').child('attentions.0');
    new Linear(s.child('proj_in'), 4, 6);
    expect([...reg.shapes()]).toEqual([['down_blocks.1.attentions.0.proj_in.weight', [6, 4]], ['down_blocks.1.attentions.0.proj_in.bias', [6]]]);
    const w = reg.params.get('down_blocks.1.attentions.0.proj_in.weight')!;
    const a = (w.node as never as { attrs: { trainable: boolean; init: { kind: string; seed: number; low: number } } }).attrs;
    expect(a.trainable).toBe(false);
    expect(a.init).toEqual({ kind: 'uniform', low: -0.5, high: 0.5, seed: hashKey('down_blocks.1.attentions.0.proj_in.weight') });
    expect(() => new Linear(s.child('proj_in'), 4, 6)).toThrow(/created twice/);
    const n = new ParamRegistry({ init: 'normal', trainable: true, seed: 3 });
    new Linear(n.scope('x'), 4, 6);
    expect((n.params.get('x.bias')!.node as never as { attrs: { init: object } }).attrs.init).toEqual({ kind: 'zeros' });
    expect((n.params.get('x.weight')!.node as never as { attrs: { init: { kind: string; std: number } } }).attrs.init).toMatchObject({ kind: 'normal', std: 0.02 });
  });
});

describe('leaf modules vs formulas', () => {
  test('Linear, LayerNorm, GroupNorm, Conv2d', () => {
    const reg = new ParamRegistry();
    const lin = new Linear(reg.scope('lin'), 5, 3), ln = new LayerNorm(reg.scope('ln'), 5), gn = new GroupNorm(reg.scope('gn'), 2, 4, 1e-6);
    const conv = new Conv2d(reg.scope('conv'), 4, 3, { stride: 2 });
    const x = input('x', [2, 5]), img = input('img', [1, 4, 5, 5]);
    const st = randomStore(reg);
    const feeds = { x: randn(10, 1), img: randn(100, 2) };
    const g = (k: string) => st.get(k)!;
    const r = evaluate({ outputs: { lin: lin.forward(x), ln: ln.forward(x), gn: gn.forward(img), conv: conv.forward(img) } }, feeds, st).outputs;
    expect(maxRelErr(r.lin.data, linearJS(feeds.x, g('lin.weight'), g('lin.bias'), 2, 5, 3))).toBeLessThan(1e-13);
    expect(maxRelErr(r.ln.data, layerNormJS(feeds.x, 2, 5, g('ln.weight'), g('ln.bias'), 1e-5))).toBeLessThan(1e-12);
    expect(maxRelErr(r.gn.data, groupNormJS(feeds.img, 1, 4, 25, 2, g('gn.weight'), g('gn.bias'), 1e-6))).toBeLessThan(1e-12);
    const cj = conv2dJS(feeds.img, g('conv.weight'), g('conv.bias'), 1, 4, 5, 5, 3, 3, 2, 1);
    expect(r.conv.shape).toEqual([1, 3, 3, 3]);
    expect(maxRelErr(r.conv.data, cj.y)).toBeLessThan(1e-13);
  });
});

describe('attention', () => {
  test.each([['self', undefined], ['cross', 6]] as const)('%s multi-head attention vs the softmax formula', (_n, crossDim) => {
    const reg = new ParamRegistry();
    const att = new Attention(reg.scope('attn'), { queryDim: 8, crossDim, heads: 2, headDim: 3 });
    const x = input('x', [2, 5, 8]), ctx = input('ctx', [2, 4, crossDim ?? 8]);
    const feeds = { x: randn(80, 1), ctx: randn(2 * 4 * (crossDim ?? 8), 2) };
    const { y, store } = run(att.forward(x, crossDim ? ctx : undefined), feeds);
    const g = (k: string) => store.get(`attn.${k}`)!;
    const c = crossDim ? feeds.ctx : feeds.x, lk = crossDim ? 4 : 5;
    expect(maxRelErr(y, attentionJS(feeds.x, c, 2, 5, lk, 8, crossDim ?? 8, 2, 3, g('to_q.weight'), g('to_k.weight'), g('to_v.weight'), g('to_out.0.weight'), g('to_out.0.bias')))).toBeLessThan(1e-12);
    expect([...reg.params.keys()]).toEqual(['attn.to_q.weight', 'attn.to_k.weight', 'attn.to_v.weight', 'attn.to_out.0.weight', 'attn.to_out.0.bias']);
  });

  test('cross-attention hook: sees q/k/v after projection and adds an ID term before to_out', () => {
    const reg = new ParamRegistry();
    const att = new Attention(reg.scope('blk.attn2'), { queryDim: 8, crossDim: 6, heads: 2, headDim: 3 });
    const idReg = new ParamRegistry();
    const idK = new Linear(idReg.scope('blk.attn2.id_to_k'), 6, 6, { bias: false }), idV = new Linear(idReg.scope('blk.attn2.id_to_v'), 6, 6, { bias: false });
    const x = input('x', [1, 5, 8]), ctx = input('ctx', [1, 4, 6]), ids = input('ids', [1, 3, 6]);
    const seen: string[] = [];
    const out = att.forward(x, ctx, {
      crossAttention: (c) => {
        seen.push(`${c.layer} q${c.q.shape} k${c.k.shape} ${c.heads}x${c.headDim}`);
        return c.out.add(c.attend(c.splitHeads(idK.forward(ids)), c.splitHeads(idV.forward(ids))).mul(0.7));
      },
    });
    expect(seen).toEqual(['blk.attn2 q1,2,5,3 k1,2,4,3 2x3']);
    const feeds = { x: randn(40, 1), ctx: randn(24, 2), ids: randn(18, 3) };
    const { y, store } = run(out, feeds);
    const g = (k: string) => store.get(`blk.attn2.${k}`)!;
    // Attn(Q,K,V)W_o + b + 0.7 Attn(Q,K',V')W_o == the formula with to_out applied to the sum.
    const txt = attentionJS(feeds.x, feeds.ctx, 1, 5, 4, 8, 6, 2, 3, g('to_q.weight'), g('to_k.weight'), g('to_v.weight'), null, null);
    const idt = attentionJS(feeds.x, feeds.ids, 1, 5, 3, 8, 6, 2, 3, g('to_q.weight'), store.get('blk.attn2.id_to_k.weight')!, store.get('blk.attn2.id_to_v.weight')!, null, null);
    const sum = txt.map((v, i) => v + 0.7 * idt[i]);
    expect(maxRelErr(y, linearJS(sum, g('to_out.0.weight'), g('to_out.0.bias'), 5, 6, 8))).toBeLessThan(1e-12);
  });

  test('GEGLU feed-forward vs h * gelu(g)', () => {
    const reg = new ParamRegistry();
    const ff = new FeedForward(reg.scope('ff'), 4, 2);
    const x = input('x', [3, 4]);
    const feeds = { x: randn(12, 4) };
    const { y, store } = run(ff.forward(x), feeds);
    const p = linearJS(feeds.x, store.get('ff.net.0.proj.weight')!, store.get('ff.net.0.proj.bias')!, 3, 4, 16);
    const hid = new Float64Array(24);
    for (let r = 0; r < 3; r++) for (let i = 0; i < 8; i++) hid[r * 8 + i] = p[r * 16 + i] * geluJS(p[r * 16 + 8 + i]);
    expect(maxRelErr(y, linearJS(hid, store.get('ff.net.2.weight')!, store.get('ff.net.2.bias')!, 3, 8, 4))).toBeLessThan(1e-11);
  });
});

describe('resnet and transformer blocks', () => {
  test('ResnetBlock2D with shortcut and time embedding vs the composed formula', () => {
    const reg = new ParamRegistry();
    const blk = new ResnetBlock2D(reg.scope('r'), { inChannels: 4, outChannels: 6, tembChannels: 5, groups: 2 });
    const x = input('x', [2, 4, 3, 3]), t = input('t', [2, 5]);
    const st = randomStore(reg);
    const feeds = { x: randn(72, 1), t: randn(10, 2) };
    const y = evaluate({ outputs: { out: blk.forward(x, t) } }, feeds, st).outputs.out.data;
    const g = (k: string) => st.get(`r.${k}`)!;
    let h = siluJS(groupNormJS(feeds.x, 2, 4, 9, 2, g('norm1.weight'), g('norm1.bias'), 1e-5));
    h = conv2dJS(h, g('conv1.weight'), g('conv1.bias'), 2, 4, 3, 3, 6, 3, 1, 1).y;
    const te = linearJS(siluJS(feeds.t), g('time_emb_proj.weight'), g('time_emb_proj.bias'), 2, 5, 6);
    h = h.map((v, i) => v + te[Math.floor(i / 54) * 6 + (Math.floor(i / 9) % 6)]);
    h = conv2dJS(siluJS(groupNormJS(h, 2, 6, 9, 2, g('norm2.weight'), g('norm2.bias'), 1e-5)), g('conv2.weight'), g('conv2.bias'), 2, 6, 3, 3, 6, 3, 1, 1).y;
    const sc = conv2dJS(feeds.x, g('conv_shortcut.weight'), g('conv_shortcut.bias'), 2, 4, 3, 3, 6, 1, 1, 0).y;
    expect(maxRelErr(y, h.map((v, i) => v + sc[i]))).toBeLessThan(1e-12);
  });

  test('Transformer2DModel keys (linear projection, SDXL layout)', () => {
    const reg = new ParamRegistry();
    const tr = new Transformer2DModel(reg.scope('mid_block.attentions.0'), { channels: 8, heads: 2, headDim: 4, crossDim: 6, layers: 1, groups: 2 });
    const out = tr.forward(input('x', [1, 8, 2, 2]), input('c', [1, 3, 6]));
    expect(out.shape).toEqual([1, 8, 2, 2]);
    const keys = [...reg.params.keys()].map((k) => k.replace('mid_block.attentions.0.', ''));
    expect(keys).toEqual(['norm.weight', 'norm.bias', 'proj_in.weight', 'proj_in.bias',
      ...['norm1.weight', 'norm1.bias', 'attn1.to_q.weight', 'attn1.to_k.weight', 'attn1.to_v.weight', 'attn1.to_out.0.weight', 'attn1.to_out.0.bias',
        'norm2.weight', 'norm2.bias', 'attn2.to_q.weight', 'attn2.to_k.weight', 'attn2.to_v.weight', 'attn2.to_out.0.weight', 'attn2.to_out.0.bias',
        'norm3.weight', 'norm3.bias', 'ff.net.0.proj.weight', 'ff.net.0.proj.bias', 'ff.net.2.weight', 'ff.net.2.bias'].map((k) => `transformer_blocks.0.${k}`),
      'proj_out.weight', 'proj_out.bias']);
    expect(reg.params.get('mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight')!.shape).toEqual([8, 6]);
  });
});

describe('timestep embedding', () => {
  test('matches diffusers get_timestep_embedding(flip_sin_to_cos=True, shift=0)', () => {
    const t = input('t', [2]);
    const y = evaluate({ outputs: { e: timestepEmbedding(t, 6) } }, { t: [999, 1] }).outputs.e.data;
    // half = 3, freqs = exp(-ln(1e4)·i/3) (numpy values); layout [cos | sin].
    const f = [1, 0.046415888336127774, 0.0021544346900318825];
    const expected = [999, 1].flatMap((tv) => [...f.map((v) => Math.cos(tv * v)), ...f.map((v) => Math.sin(tv * v))]);
    expect(maxRelErr(y, expected)).toBeLessThan(1e-12);
    // numpy: cos(999) = 0.9996498529808264, sin(999 · 0.0021544346900318825) = 0.835648500885845.
    expect(y[0]).toBeCloseTo(0.9996498529808264, 12);
    expect(y[5]).toBeCloseTo(0.835648500885845, 12);
  });
});
