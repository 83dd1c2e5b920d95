/** The IP-Adapter checkpoint layout (processor numbering down → up → mid, attn1 and attn2 both counted), the loader's
 * errors and reports, bad inputs, per-block scales and masks. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { evaluate, input, type Tensor } from '../../compiler/index';
import { normalFill } from '../../compiler/ir/philox';
import { writeSafetensors, type TensorInput } from '../../models/io/safetensors';
import { UNet2DConditionModel, microUnetConfig, sdxlUnetConfig, tinyUnetConfig } from '../../models/unet/index';
import { crossAttentionLayers } from '../../models/pulid/id-attention';
import { materialize, saveParams } from '../../models/weights';
import {
  IpAdapter, IpAdapterCheckpointError, composeCrossAttentionHooks, IpAdapterInputError, attentionProcessors, blockScales, faceIdLoraAsDiffusers, instantStyle, layerScale,
  loadIpAdapter, maskForLayer, saveIpAdapter, sdxlIpAdapterConfigs, tinyIpAdapterConfigs,
} from '../../models/ip-adapter/index';
import { ipMicroUnet } from './fixture';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-ipa-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const unet = new UNet2DConditionModel(ipMicroUnet);

/** Writes `tensors` (key → shape; values random) plus `extra` as an F32 safetensors file. */
function writeFile(name: string, tensors: Map<string, readonly number[]>, seed = 1): string {
  const out: Record<string, TensorInput> = {};
  let s = seed;
  for (const [k, shape] of tensors) out[k] = { dtype: 'F32', shape, data: Float32Array.from(normalFill(shape.reduce((a, b) => a * b, 1), s++)) };
  const f = path.join(tmp, name);
  writeSafetensors(f, out);
  return f;
}
const shapesOf = (a: IpAdapter) => new Map([...a.registry.params].map(([k, t]) => [k, t.shape]));
const errorOf = (fn: () => unknown): Error => { try { fn(); } catch (e) { return e as Error; } throw new Error('expected an error'); };

describe('processor numbering (the reference counts every attention processor: down → up → mid, attn1 then attn2)', () => {
  test('SDXL: 140 processors, IP keys on the 70 odd ones, widths per block', () => {
    const sdxl = new UNet2DConditionModel(sdxlUnetConfig);
    const procs = attentionProcessors(sdxl);
    expect(procs.length).toBe(140);
    expect(procs.filter((p) => p.kind === 'cross').map((p) => p.index)).toEqual(Array.from({ length: 70 }, (_v, j) => 2 * j + 1));
    expect(procs[0].layer).toBe('down_blocks.1.attentions.0.transformer_blocks.0.attn1');
    expect(procs[1].layer).toBe('down_blocks.1.attentions.0.transformer_blocks.0.attn2');
    expect(procs[49].layer).toBe('up_blocks.0.attentions.0.transformer_blocks.0.attn2'); // after 24 down blocks
    expect(procs[139].layer).toBe('mid_block.attentions.0.transformer_blocks.9.attn2'); // mid last, not between
    // the same order PuLID's checkpoint uses for its id_to_k / id_to_v
    expect(procs.filter((p) => p.kind === 'cross').map((p) => p.layer)).toEqual(crossAttentionLayers(sdxl).map((l) => l.layer));
    const a = new IpAdapter(sdxlIpAdapterConfigs.plus, sdxl);
    const sh = shapesOf(a);
    expect(sh.get('ip_adapter.1.to_k_ip.weight')).toEqual([640, 2048]);
    expect(sh.get('ip_adapter.139.to_v_ip.weight')).toEqual([1280, 2048]);
    expect(sh.has('ip_adapter.0.to_k_ip.weight')).toBe(false);
    expect(sh.get('image_proj.latents')).toEqual([1, 16, 1280]);
    expect(sh.get('image_proj.layers.3.0.to_kv.weight')).toEqual([2560, 1280]);
    expect(sh.get('image_proj.proj_out.weight')).toEqual([2048, 1280]);
    // the official files' layouts: ip-adapter_sdxl 4 + 140 tensors, ip-adapter-faceid_sdxl's projection
    const pl = shapesOf(new IpAdapter(sdxlIpAdapterConfigs.plain, sdxl));
    expect(pl.size).toBe(4 + 140);
    expect(pl.get('image_proj.proj.weight')).toEqual([8192, 1280]);
    const fi = shapesOf(new IpAdapter(sdxlIpAdapterConfigs.faceid, sdxl));
    expect(fi.get('image_proj.proj.0.weight')).toEqual([1024, 512]);
    expect(fi.get('image_proj.proj.2.weight')).toEqual([8192, 1024]);
    expect(shapesOf(new IpAdapter(sdxlIpAdapterConfigs.portrait, sdxl)).get('image_proj.proj.2.weight')).toEqual([16 * 2048, 1024]);
    const fp = shapesOf(new IpAdapter(sdxlIpAdapterConfigs.faceidPlus, sdxl));
    expect(fp.get('image_proj.proj.2.weight')).toEqual([4 * 2048, 1024]);
    expect(fp.get('image_proj.perceiver_resampler.layers.0.0.to_q.weight')).toEqual([2048, 2048]);
    expect(fp.get('image_proj.perceiver_resampler.proj_in.weight')).toEqual([2048, 1280]);
  });
  test('tiny UNet: 22 processors; micro: 14', () => {
    expect(attentionProcessors(new UNet2DConditionModel(tinyUnetConfig)).length).toBe(22);
    expect(attentionProcessors(unet).map((p) => `${p.index}:${p.kind}`).slice(0, 4)).toEqual(['0:self', '1:cross', '2:self', '3:cross']);
  });
});

describe('loader', () => {
  const a = new IpAdapter(tinyIpAdapterConfigs.plain, unet, { seed: 5 });
  const good = path.join(tmp, 'good.safetensors');
  saveParams(good, materialize(new Map(), a.registry), a.registry);

  test('a prefixed adapter (a second one in the same store) loads the same unprefixed file', () => {
    const b = new IpAdapter(tinyIpAdapterConfigs.plain, unet, { prefix: 'ip1.' });
    const store = new Map<string, Float64Array>();
    const r = loadIpAdapter(store, good, b);
    expect(r.problems).toEqual([]);
    expect([...store.keys()].every((k) => k.startsWith('ip1.'))).toBe(true);
    expect(store.size).toBe(a.registry.params.size);
    // and saves without its prefix
    const back = path.join(tmp, 'prefixed.safetensors');
    saveIpAdapter(back, store, b, { dtype: 'F64' });
    const again = new Map<string, Float64Array>();
    expect(loadIpAdapter(again, back, a).problems).toEqual([]);
    expect(Array.from(again.get('image_proj.proj.weight')!)).toEqual(Array.from(store.get('ip1.image_proj.proj.weight')!));
  });

  test('round trip: every key loaded, values equal', () => {
    const store = new Map<string, Float64Array>();
    const r = loadIpAdapter(store, good, new IpAdapter(tinyIpAdapterConfigs.plain, unet));
    expect(r.loaded.sort()).toEqual([...a.registry.params.keys()].sort());
    expect(r.problems).toEqual([]);
    const want = materialize(new Map(), a.registry);
    for (const [k, v] of want) expect(Array.from(store.get(k)!)).toEqual(Array.from(Float32Array.from(v)));
  });

  test('IP keys on even (self-attention) indices: named error, and the odd ones reported missing', () => {
    const sh = new Map([...shapesOf(a)].map(([k, s]) => [k.replace(/^ip_adapter\.(\d+)\./, (_m, i) => `ip_adapter.${Number(i) - 1}.`), s]));
    const e = errorOf(() => loadIpAdapter(new Map(), writeFile('even.safetensors', sh), a));
    expect(e).toBeInstanceOf(IpAdapterCheckpointError);
    expect(e.message).toMatch(/ip_adapter\.0\.to_k_ip\.weight is on processor 0 \(down_blocks\.1\.attentions\.0\.transformer_blocks\.0\.attn1\), a self-attention/);
    expect(e.message).toMatch(/odd indices/);
    expect(e.message).toMatch(/missing 14: .*ip_adapter\.1\.to_k_ip\.weight/);
  });

  test('a checkpoint for another UNet width: named error with the expected shapes', () => {
    const other = new IpAdapter(tinyIpAdapterConfigs.plain, new UNet2DConditionModel({ ...ipMicroUnet, blockOutChannels: [8, 32, 32], heads: [1, 2, 2] }));
    const e = errorOf(() => loadIpAdapter(new Map(), writeFile('wide.safetensors', shapesOf(other)), a)) as IpAdapterCheckpointError;
    expect(e).toBeInstanceOf(IpAdapterCheckpointError);
    expect(e.message).toMatch(/ip_adapter\.1\.to_k_ip\.weight has shape \[32, 16\], this UNet's processor 1 \(down_blocks\.1\.attentions\.0\.transformer_blocks\.0\.attn2, width 16, context 16\) expects \[16, 16\]: a checkpoint for another UNet width/);
    // another context width shows up in the projection too
    const ctx = new IpAdapter(tinyIpAdapterConfigs.plain, new UNet2DConditionModel({ ...microUnetConfig, crossAttentionDim: 24 }));
    const e2 = errorOf(() => loadIpAdapter(new Map(), writeFile('ctx.safetensors', shapesOf(ctx)), a));
    expect(e2.message).toMatch(/image_proj\.proj\.weight has shape \[96, 8\], the plain adapter expects \[64, 8\]/);
  });

  test('unmatched keys are reported, never dropped (strict: thrown; otherwise listed)', () => {
    const sh = new Map([...shapesOf(a), ['image_proj.extra.weight', [2]], ['text_model.foo', [3]]] as [string, readonly number[]][]);
    const f = writeFile('extra.safetensors', sh);
    expect(errorOf(() => loadIpAdapter(new Map(), f, a)).message).toMatch(/unmatched 2: image_proj\.extra\.weight, text_model\.foo/);
    const r = loadIpAdapter(new Map(), f, a, { strict: false });
    expect(r.loaded.length).toBe(a.registry.params.size);
    expect(r.problems).toEqual(['unmatched 2: image_proj.extra.weight, text_model.foo']);
  });

  test('FaceID: LoRA on every processor (even and odd) validated and handed over in diffusers keys; wrong rank and missing listed', () => {
    const f = new IpAdapter(tinyIpAdapterConfigs.faceid, unet);
    const sh = shapesOf(f);
    for (const p of f.processors) for (const m of ['to_q', 'to_k', 'to_v', 'to_out']) {
      const inF = m === 'to_k' || m === 'to_v' ? p.kvInput : p.width;
      sh.set(`ip_adapter.${p.index}.${m}_lora.down.weight`, [4, inF]);
      sh.set(`ip_adapter.${p.index}.${m}_lora.up.weight`, [p.width, 4]);
    }
    const r = loadIpAdapter(new Map(), writeFile('faceid.safetensors', sh), f);
    expect(r.problems).toEqual([]);
    expect(r.lora.length).toBe(4 * 14);
    expect(r.lora[0]).toMatchObject({ index: 0, layer: 'down_blocks.1.attentions.0.transformer_blocks.0.attn1', module: 'to_k', rank: 4 });
    const d = faceIdLoraAsDiffusers(r.lora);
    expect(d.get('down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora.down.weight')!.shape).toEqual([4, 16]);
    expect(d.get('mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0.lora.up.weight')!.shape).toEqual([16, 4]);
    expect(d.size).toBe(112);
    expect(r.loraAdapter!.layers.size).toBe(56); // applied (test/ip-adapter/lora.test.ts checks the numbers) …
    f.lora!.detach(); // … and taken off again: the later tests share this UNet
    const bad = new Map(sh);
    bad.set('ip_adapter.2.to_q_lora.down.weight', [3, 16]);
    bad.delete('ip_adapter.5.to_v_lora.up.weight');
    const e = errorOf(() => loadIpAdapter(new Map(), writeFile('faceid-bad.safetensors', bad), f));
    expect(e.message).toMatch(/missing 1: ip_adapter\.5\.to_v_lora\.up\.weight/);
    expect(e.message).toMatch(/ip_adapter\.2\.to_q_lora\.down\.weight has shape \[3, 16\], processor 2 .* with LoRA rank 4 expects \[4, 16\]/);
    // LoRA keys in a plain checkpoint are unmatched
    expect(errorOf(() => loadIpAdapter(new Map(), writeFile('plain-lora.safetensors', new Map([...shapesOf(a), ['ip_adapter.0.to_q_lora.down.weight', [4, 16]]])), a)).message)
      .toMatch(/unmatched 1: ip_adapter\.0\.to_q_lora\.down\.weight \(LoRA keys, but the plain config has no loraRank\)/);
  });
});

describe('bad inputs', () => {
  test('face embedding of the wrong size names the expected width and embedding space', () => {
    const f = new IpAdapter(sdxlIpAdapterConfigs.faceid, new UNet2DConditionModel({ ...microUnetConfig, crossAttentionDim: 2048 }));
    const e = errorOf(() => f.imageTokens({ faceEmbeds: input('e', [1, 128]) }));
    expect(e).toBeInstanceOf(IpAdapterInputError);
    expect(e.message).toBe('IP-Adapter faceid: faceEmbeds has shape [1,128], expected rank 2 with last dimension 512 (a 512-d face embedding: insightface buffalo_l normed_embedding for the official checkpoints)');
    const p = new IpAdapter(tinyIpAdapterConfigs.portrait, unet);
    expect(errorOf(() => p.imageTokens({ faceEmbeds: input('e', [2, 2, 8]) })).message).toMatch(/portrait: faceEmbeds has 2 faces per sample, the config stacks 3/);
    expect(errorOf(() => new IpAdapter(tinyIpAdapterConfigs.plus, unet).imageTokens({ clipHidden: input('h', [2, 5, 10]) })).message).toMatch(/clipHidden has shape \[2,5,10\], expected rank 3 with last dimension 12/);
    expect(errorOf(() => new IpAdapter(tinyIpAdapterConfigs.plus, unet).unconditionalTokens(1)).message).toMatch(/all-zero image; pass \{ clip \}/);
    expect(errorOf(() => new IpAdapter({ ...tinyIpAdapterConfigs.faceidPlus, headDim: 64 }, unet)).message).toMatch(/context width 16 is not a multiple of headDim 64/);
  });
});

describe('per-block scales (InstantStyle) and masks', () => {
  test('layerScale: longest prefix wins, unnamed blocks 0; diffusers nested form', () => {
    const style = instantStyle('style'), both = instantStyle('style+layout');
    expect(layerScale(style, 'up_blocks.0.attentions.1.transformer_blocks.7.attn2')).toBe(1);
    expect(layerScale(style, 'up_blocks.0.attentions.0.transformer_blocks.0.attn2')).toBe(0);
    expect(layerScale(style, 'down_blocks.2.attentions.1.transformer_blocks.0.attn2')).toBe(0);
    expect(layerScale(style, 'unet.up_blocks.0.attentions.1.transformer_blocks.0.attn2')).toBe(1); // a model key prefix
    expect(layerScale(both, 'down_blocks.2.attentions.1.transformer_blocks.0.attn2')).toBe(1);
    expect(layerScale(blockScales({ mid: 0.3 }), 'mid_block.attentions.0.transformer_blocks.0.attn2')).toBe(0.3);
    expect(layerScale({ default: 0.5, blocks: { 'up_blocks.1': 0.2, 'up_blocks.1.attentions.2': 0.9 } }, 'up_blocks.1.attentions.2.transformer_blocks.0.attn2')).toBe(0.9);
    expect(layerScale({ default: 0.5, blocks: { 'up_blocks.1': 0.2 } }, 'up_blocks.10.attentions.0.transformer_blocks.0.attn2')).toBe(0.5); // prefix on whole names
    expect(() => blockScales({ up: { first: [1] } })).toThrow(IpAdapterInputError);
  });

  test('UNet with the adapter: scale 0 everywhere = no adapter (exactly); only the named blocks change the output', () => {
    const ad = new IpAdapter(tinyIpAdapterConfigs.plain, unet, { seed: 2 });
    const S = ipMicroUnet.sampleSize, B = 1;
    const base = { sample: input('x', [B, 4, S, S]), timestep: input('t', [1]), encoderHiddenStates: input('ctx', [B, 3, 16]), textEmbeds: input('pooled', [B, 8]), timeIds: input('ids', [B, 6]) };
    const tokens = ad.imageTokens({ imageEmbeds: input('emb', [B, 8]) });
    const seen: string[] = [];
    const outs = {
      plain: unet.forward(base),
      zero: unet.forward({ ...base, hooks: { crossAttention: ad.hook(tokens, { scale: { blocks: {} } }) } }),
      mid: unet.forward({ ...base, hooks: { crossAttention: ad.attention.hook({ tokens, scale: blockScales({ mid: 1 }), observe: (c) => seen.push(c.layer) }) } }),
      all: unet.forward({ ...base, hooks: { crossAttention: ad.hook(tokens, { scale: 1 }) } }),
    };
    const feeds = { x: normalFill(4 * S * S, 1), t: [500], ctx: normalFill(48, 2), pooled: normalFill(8, 3), ids: [64, 64, 0, 0, 64, 64], emb: normalFill(8, 4) };
    const store = materialize(new Map(), unet.registry);
    for (const [k, v] of materialize(new Map(), ad.registry)) store.set(k, k.includes('_ip') ? v.map((x) => x * 20) : v);
    const r = evaluate({ outputs: outs }, feeds, store).outputs;
    const diff = (a: Float64Array, b: Float64Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
    expect(diff(r.zero.data, r.plain.data)).toBe(0);
    expect(diff(r.mid.data, r.plain.data)).toBeGreaterThan(1e-6);
    expect(diff(r.all.data, r.mid.data)).toBeGreaterThan(1e-6);
    expect(seen.length).toBe(7); // every cross-attention layer is visited, 6 of them return nothing
  });

  test('mask: average-pooled to the layer grid; the layer output is y0 + m·(y1 − y0) per query (to_out is affine)', () => {
    // one layer with 6 queries (a 2×3 grid): a [1, 1, 4, 6] mask pools 2×2 cells
    const maskVals = Float64Array.from({ length: 24 }, (_v, i) => ((i * 7) % 5) / 4);
    const m = evaluate({ outputs: { m: maskForLayer(input('mask', [1, 1, 4, 6]), 6, 'L') } }, { mask: maskVals }).outputs.m;
    expect(m.shape).toEqual([1, 1, 6, 1]);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) {
      const want = (maskVals[(2 * i) * 6 + 2 * j] + maskVals[(2 * i) * 6 + 2 * j + 1] + maskVals[(2 * i + 1) * 6 + 2 * j] + maskVals[(2 * i + 1) * 6 + 2 * j + 1]) / 4;
      expect(m.data[i * 3 + j]).toBeCloseTo(want, 14);
    }
    expect(() => maskForLayer(input('mask', [1, 1, 5, 5]), 6, 'L')).toThrow(/does not fit layer L with 6 queries/);
    const ad = new IpAdapter(tinyIpAdapterConfigs.plain, unet, { seed: 4 });
    const hidden = input('h', [1, 4, 16]), ctx = input('c', [1, 3, 16]), tok = input('tok', [1, 4, 16]);
    const attn = unet.down[1].attentions[0].blocks[0].attn2;
    const run = (o: { scale?: number; mask?: Tensor }) => attn.forward(hidden, ctx, { crossAttention: ad.hook(tok, o) });
    const mk = input('mk', [1, 1, 2, 2]);
    const store = materialize(materialize(new Map(), unet.registry), ad.registry);
    const mv = [0, 0.25, 1, 0.6];
    const r = evaluate({ outputs: { y0: run({ scale: 0 }), y1: run({ scale: 0.8 }), ym: run({ scale: 0.8, mask: mk }) } },
      { h: normalFill(64, 1), c: normalFill(48, 2), tok: normalFill(64, 3), mk: mv }, store).outputs;
    for (let q = 0; q < 4; q++) for (let c = 0; c < 16; c++) {
      const i = q * 16 + c;
      expect(r.ym.data[i]).toBeCloseTo(r.y0.data[i] + mv[q] * (r.y1.data[i] - r.y0.data[i]), 12);
    }
  });

  test('two adapters at once (composed hooks): the IP terms add up', () => {
    const a1 = new IpAdapter(tinyIpAdapterConfigs.plain, unet, { seed: 6 }), a2 = new IpAdapter(tinyIpAdapterConfigs.faceid, unet, { seed: 7, prefix: 'ip1.' });
    expect(a2.registry.params.has('ip1.ip_adapter.1.to_k_ip.weight')).toBe(true);
    const hidden = input('h', [1, 4, 16]), ctx = input('c', [1, 3, 16]), t1 = input('t1', [1, 4, 16]), t2 = input('t2', [1, 4, 16]);
    const attn = unet.up[0].attentions[1].blocks[0].attn2;
    const y = (hook?: ReturnType<IpAdapter['hook']>) => attn.forward(hidden, ctx, hook ? { crossAttention: hook } : undefined);
    const h1 = a1.hook(t1, { scale: 0.7 }), h2 = a2.hook(t2, { scale: 1.3 });
    const outs = { y0: y(), y1: y(h1), y2: y(h2), y12: y(composeCrossAttentionHooks(h1, h2)) };
    const base = materialize(materialize(materialize(new Map(), unet.registry), a1.registry), a2.registry);
    expect(base.get('ip1.ip_adapter.1.to_k_ip.weight')).not.toEqual(base.get('ip_adapter.1.to_k_ip.weight'));
    const feeds = { h: normalFill(64, 1), c: normalFill(48, 2), t1: normalFill(64, 3), t2: normalFill(64, 4) };
    const r = evaluate({ outputs: outs }, feeds, base).outputs;
    for (let i = 0; i < 64; i++) expect(r.y12.data[i]).toBeCloseTo(r.y1.data[i] + r.y2.data[i] - r.y0.data[i], 12);
    expect(Math.abs(r.y2.data[0] - r.y0.data[0])).toBeGreaterThan(1e-9);
  });
});
