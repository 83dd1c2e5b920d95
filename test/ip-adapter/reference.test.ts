/** The IP-Adapter family against tencent-ailab/IP-Adapter @62e4af9 (fixture: test/fixtures/ip-adapter/generate.py):
 * every projection model and the decoupled attention processor, float64 evaluator ≤ 1e-6 relative (≤ 1e-12 but for the
 * perceiver's float32 softmax in the reference) and compiled C++ f32 ≤ 1e-4. */
import { compile, evaluate, input, type Tensor } from '../../compiler/index';
import { Attention, ParamRegistry } from '../../models/nn/index';
import { UNet2DConditionModel } from '../../models/unet/index';
import { IpAdapter, IpAttention, tinyIpAdapterConfigs, type AttentionProcessor } from '../../models/ip-adapter/index';
import { fullTest } from '../support/full';
import { get, ipMicroUnet, relErr, shapeOf, storeFrom } from './fixture';

const unet = new UNet2DConditionModel(ipMicroUnet);
const kinds = {
  plain: new IpAdapter(tinyIpAdapterConfigs.plain, unet),
  plus: new IpAdapter(tinyIpAdapterConfigs.plus, unet),
  faceid: new IpAdapter(tinyIpAdapterConfigs.faceid, unet),
  faceidplus: new IpAdapter(tinyIpAdapterConfigs.faceidPlus, unet),
  portrait: new IpAdapter(tinyIpAdapterConfigs.portrait, unet),
};
const inp = (k: string) => input(k.replace(/\./g, '_'), [...shapeOf(k)]);
const feedsOf = (keys: string[]) => Object.fromEntries(keys.map((k) => [k.replace(/\./g, '_'), get(k)]));

/** Every case: the Kiln graph, the fixture output and the store of its weights. */
function cases() {
  const outputs: Record<string, Tensor> = {}, expected: Record<string, Float64Array> = {};
  const feeds: string[] = [];
  const add = (name: string, t: Tensor, ref: string) => { outputs[name] = t; expected[name] = get(ref); };
  add('plain', kinds.plain.imageTokens({ imageEmbeds: inp('plain.embeds') }), 'plain.out');
  add('plain_uncond', kinds.plain.unconditionalTokens(2), 'plain.uncond');
  add('plus', kinds.plus.imageTokens({ clipHidden: inp('plus.hidden') }), 'plus.out');
  add('faceid', kinds.faceid.imageTokens({ faceEmbeds: inp('faceid.embeds') }), 'faceid.out');
  add('faceid_uncond', kinds.faceid.unconditionalTokens(2), 'faceid.uncond');
  add('portrait', kinds.portrait.imageTokens({ faceEmbeds: inp('portrait.embeds') }), 'portrait.out');
  add('faceidplus', kinds.faceidplus.imageTokens({ faceEmbeds: inp('faceidplus.embeds'), clipHidden: inp('faceidplus.hidden') }), 'faceidplus.out');
  add('faceidplus_v2', kinds.faceidplus.imageTokens({ faceEmbeds: inp('faceidplus.embeds'), clipHidden: inp('faceidplus.hidden'), shortcut: true, sScale: 0.7 }), 'faceidplus.out_v2');
  feeds.push('plain.embeds', 'plus.hidden', 'faceid.embeds', 'portrait.embeds', 'faceidplus.embeds', 'faceidplus.hidden');
  return { outputs, expected, feeds };
}

/** The adapters share parameter names (image_proj.*), so each is evaluated against its own store. */
const storeOf: Record<string, Map<string, Float64Array>> = {
  plain: storeFrom('plain'), plus: storeFrom('plus'), faceid: storeFrom('faceid'), faceidplus: storeFrom('faceidplus'), portrait: storeFrom('faceid'),
};
const groupOf = (name: string) => (name.startsWith('faceidplus') ? 'faceidplus' : name.split('_')[0]);

describe('projection models vs the reference (float64 evaluator)', () => {
  const { outputs, expected, feeds } = cases();
  test.each(Object.keys(outputs))('%s', (name) => {
    const r = evaluate({ outputs: { y: outputs[name] } }, feedsOf(feeds), new Map(storeOf[groupOf(name)])).outputs.y;
    expect(r.data.length).toBe(expected[name].length);
    const e = relErr(r.data, expected[name]);
    expect(e).toBeLessThan(1e-6);
    // float64 on both sides, except that PerceiverAttention takes its softmax in float32 (`weight.float()`): the
    // resampler cases agree to ~2e-7, the others to summation order.
    if (!/plus/.test(name)) expect(e).toBeLessThan(1e-12);
  });
  test('the reference ProjPlusModel cannot be built below width 64 (the trap the headDim option avoids)', () => {
    expect(get('faceidplus.width_trap')[0]).toBe(1);
  });
});

/** One attn2 with the fixture's weights (query 16, 2 heads of 8, text context 12) and the IP processor at index 1. */
function attentionCase(procPrefix: string, scale: number) {
  const reg = new ParamRegistry();
  const attn = new Attention(reg.scope('attn'), { queryDim: 16, crossDim: 12, heads: 2, headDim: 8 });
  const proc: AttentionProcessor = { index: 1, layer: 'attn', kind: 'cross', width: 16, kvInput: 12 };
  const ipReg = new ParamRegistry();
  const ip = new IpAttention(ipReg.scope('ip_adapter'), [proc], 12);
  const store = storeFrom('attn.attn', 'attn.');
  store.set('ip_adapter.1.to_k_ip.weight', get(`${procPrefix}.to_k_ip.weight`));
  store.set('ip_adapter.1.to_v_ip.weight', get(`${procPrefix}.to_v_ip.weight`));
  const y = attn.forward(inp('attn.hidden'), inp('attn.text'), { crossAttention: ip.hook({ tokens: inp('attn.ip'), scale }) });
  return { y, store, feeds: feedsOf(['attn.hidden', 'attn.text', 'attn.ip']) };
}

describe('decoupled cross-attention vs IPAttnProcessor2_0 / LoRAIPAttnProcessor2_0', () => {
  test.each([
    ['IPAttnProcessor2_0, scale 0.6', 'attn.proc', 0.6, 'attn.out'],
    ['IPAttnProcessor2_0, scale 0 (text attention only)', 'attn.proc', 0, 'attn.out_scale0'],
    ['LoRAIPAttnProcessor2_0 with lora_scale 0 (FaceID without its LoRA)', 'lora.proc2', 0.6, 'lora.out2_nolora'],
  ])('%s', (_n, proc, scale, out) => {
    const c = attentionCase(proc as string, scale as number);
    const y = evaluate({ outputs: { y: c.y } }, c.feeds, c.store).outputs.y;
    expect(relErr(y.data, get(out as string))).toBeLessThan(1e-12);
  });
  test('the fixture LoRA is not a no-op (lora.test.ts matches lora.out2 with the LoRA applied)', () => {
    expect(relErr(get('lora.out2'), get('lora.out2_nolora'))).toBeGreaterThan(1e-3);
  });
});

// ~55 s with a cold kernel cache (two busy cores): full run only
fullTest('compiled (C++, f32): every projection and the attention processor ≤ 1e-4', async () => {
  const { outputs, expected, feeds } = cases();
  // one program per store group keeps parameter names unique per program
  const groups = new Map<string, string[]>();
  for (const n of Object.keys(outputs)) groups.set(groupOf(n), [...(groups.get(groupOf(n)) ?? []), n]);
  const worst: Record<string, number> = {};
  for (const [g, names] of groups) {
    const prog = await compile({ outputs: Object.fromEntries(names.map((n) => [n, outputs[n]])) });
    prog.loadParams(storeOf[g], { strict: false });
    const wanted = new Set(prog.parts.inputs.map((n) => n.attrs.name));
    const res = prog.run(Object.fromEntries(Object.entries(feedsOf(feeds)).filter(([k]) => wanted.has(k))));
    for (const n of names) worst[n] = relErr(res[n] as ArrayLike<number>, expected[n]);
  }
  const a = attentionCase('attn.proc', 0.6);
  const prog = await compile({ outputs: { y: a.y } });
  prog.loadParams(a.store);
  worst.attention = relErr(prog.run(a.feeds).y as ArrayLike<number>, get('attn.out'));
  console.log(`IP-Adapter compiled f32 vs reference (max |Δ| / max |ref|): ${Object.entries(worst).map(([k, v]) => `${k} ${v.toExponential(1)}`).join(', ')}`);
  for (const v of Object.values(worst)) expect(v).toBeLessThan(1e-4);
}, 600_000);
