/** FaceID's LoRA applied (models/ip-adapter/lora.ts): against the reference's LoRAIPAttnProcessor2_0 /
 * LoRAAttnProcessor2_0 outputs (test/fixtures/ip-adapter/generate.py: `lora.out2`, `lora.out1`, rank 4, lora_scale 1
 * and 0), loadIpAdapter attaching it on a micro UNet (= the base weights with up·down merged in), lora_scale as a
 * run-time value, and the named errors. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compile, evaluate, input, type ParamStore } from '../../compiler/index';
import { normalFill } from '../../compiler/ir/philox';
import { writeSafetensors, type TensorInput } from '../../models/io/safetensors';
import { Attention, ParamRegistry } from '../../models/nn/index';
import { UNet2DConditionModel } from '../../models/unet/index';
import { materialize } from '../../models/weights';
import {
  IpAdapter, IpAdapterCheckpointError, IpAttention, attachFaceIdLora, loadIpAdapter, tinyIpAdapterConfigs, type FaceIdLoraEntry, type LoraModule,
} from '../../models/ip-adapter/index';
import { fullTest } from '../support/full';
import { get, ipMicroUnet, relErr, shapeOf, storeFrom } from './fixture';

const MODULES: LoraModule[] = ['to_q', 'to_k', 'to_v', 'to_out.0'];
const fileModule = (m: LoraModule) => (m === 'to_out.0' ? 'to_out' : m);
const tensor = (k: string) => ({ shape: shapeOf(k), data: Float64Array.from(get(k)) });
const inp = (k: string) => input(k.replace(/\./g, '_'), [...shapeOf(k)]);
const feedsOf = (keys: string[]) => Object.fromEntries(keys.map((k) => [k.replace(/\./g, '_'), get(k)]));

/** The fixture processor's LoRA pairs as loader entries for the attention module `layer`. */
const entriesOf = (proc: string, layer: string, index: number): FaceIdLoraEntry[] => MODULES.map((module) => ({
  index, layer, module, rank: shapeOf(`${proc}.${fileModule(module)}_lora.down.weight`)[0],
  down: tensor(`${proc}.${fileModule(module)}_lora.down.weight`), up: tensor(`${proc}.${fileModule(module)}_lora.up.weight`),
}));

/** attn2 (query 16, 2 heads of 8, text 12 wide) with IP scale 0.6 and the fixture's LoRA, or attn1 (self). */
function fixtureCase(kind: 'cross' | 'self', mode: 'operand' | 'epilogue' = 'operand') {
  const reg = new ParamRegistry();
  if (kind === 'self') {
    const attn = new Attention(reg.scope('attn1'), { queryDim: 16, heads: 2, headDim: 8 });
    const store = storeFrom('lora.attn1', 'attn1.');
    const lora = attachFaceIdLora(attn, store, entriesOf('lora.proc1', 'attn1', 0), { mode });
    return { y: attn.forward(inp('attn.hidden')), store, lora, feeds: feedsOf(['attn.hidden']) };
  }
  const attn = new Attention(reg.scope('attn'), { queryDim: 16, crossDim: 12, heads: 2, headDim: 8 });
  const ip = new IpAttention(new ParamRegistry().scope('ip_adapter'), [{ index: 1, layer: 'attn', kind: 'cross', width: 16, kvInput: 12 }], 12);
  const store = storeFrom('attn.attn', 'attn.');
  store.set('ip_adapter.1.to_k_ip.weight', get('lora.proc2.to_k_ip.weight'));
  store.set('ip_adapter.1.to_v_ip.weight', get('lora.proc2.to_v_ip.weight'));
  const lora = attachFaceIdLora(attn, store, entriesOf('lora.proc2', 'attn', 1), { mode });
  const y = attn.forward(inp('attn.hidden'), inp('attn.text'), { crossAttention: ip.hook({ tokens: inp('attn.ip'), scale: 0.6 }) });
  return { y, store, lora, feeds: feedsOf(['attn.hidden', 'attn.text', 'attn.ip']) };
}

describe('vs the reference processors (float64 evaluator)', () => {
  test.each([
    ['LoRAIPAttnProcessor2_0 (attn2, IP scale 0.6), lora_scale 1', 'cross', 'operand', 1, 'lora.out2'],
    ['the same, epilogue lowering', 'cross', 'epilogue', 1, 'lora.out2'],
    ['the same with lora_scale 0 (the run-time scale)', 'cross', 'operand', 0, 'lora.out2_nolora'],
    ['LoRAAttnProcessor2_0 (attn1, self-attention), lora_scale 1', 'self', 'operand', 1, 'lora.out1'],
  ])('%s', (_n, kind, mode, scale, out) => {
    const c = fixtureCase(kind as 'cross' | 'self', mode as 'operand' | 'epilogue');
    expect([...c.lora.layers.values()].map((l) => [l.rank, l.alpha])).toEqual(MODULES.map(() => [4, 4])); // network_alpha None: α = r
    c.lora.setScale(c.store, scale as number);
    const y = evaluate({ outputs: { y: c.y } }, c.feeds, c.store).outputs.y;
    expect(relErr(y.data, get(out as string))).toBeLessThan(1e-12);
  });
});

// ----- loadIpAdapter on a micro UNet -----

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-ipa-lora-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A FaceID checkpoint for `a` (F64, random values), LoRA of rank `rank` on every processor; `edit` changes the key map. */
function faceIdFile(name: string, a: IpAdapter, rank = 4, edit?: (m: Map<string, readonly number[]>) => void): string {
  const shapes = new Map<string, readonly number[]>([...a.registry.params].map(([k, t]) => [k, t.shape]));
  for (const p of a.processors) for (const m of MODULES) {
    shapes.set(`ip_adapter.${p.index}.${fileModule(m)}_lora.down.weight`, [rank, m === 'to_k' || m === 'to_v' ? p.kvInput : p.width]);
    shapes.set(`ip_adapter.${p.index}.${fileModule(m)}_lora.up.weight`, [p.width, rank]);
  }
  edit?.(shapes);
  const out: Record<string, TensorInput> = {};
  let seed = 100;
  for (const [k, shape] of shapes) out[k] = { dtype: 'F64', shape, data: Float64Array.from(normalFill(shape.reduce((x, y) => x * y, 1), seed++), (v) => v * 0.3) };
  const f = path.join(tmp, name);
  writeSafetensors(f, out);
  return f;
}

describe('loadIpAdapter applies FaceID\'s LoRA', () => {
  const unet = new UNet2DConditionModel(ipMicroUnet);
  const ad = new IpAdapter(tinyIpAdapterConfigs.faceid, unet, { seed: 3 });
  const file = faceIdFile('faceid.safetensors', ad);
  const S = ipMicroUnet.sampleSize;
  const base = { sample: input('x', [1, 4, S, S]), timestep: input('t', [1]), encoderHiddenStates: input('ctx', [1, 3, 16]), textEmbeds: input('pooled', [1, 8]), timeIds: input('ids', [1, 6]) };
  const feeds = { x: normalFill(4 * S * S, 1), t: [500], ctx: normalFill(48, 2), pooled: normalFill(8, 3), ids: [64, 64, 0, 0, 64, 64], face: normalFill(8, 4) };
  const eps = () => unet.forward({ ...base, hooks: { crossAttention: ad.hook(ad.imageTokens({ faceEmbeds: input('face', [1, 8]) })) } });
  const run = (store: ParamStore) => evaluate({ outputs: { y: eps() } }, feeds, store).outputs.y.data;

  test('= the UNet with W + up·down merged into every q, k, v, out of all 14 processors; lora_scale 0 = no LoRA, exactly; loading again replaces it', () => {
    const store = materialize(new Map(), unet.registry);
    const r = loadIpAdapter(store, file, ad);
    expect(r.problems).toEqual([]);
    expect(ad.lora).toBe(r.loraAdapter);
    expect(ad.lora!.layers.size).toBe(56);
    expect([...ad.lora!.groups].sort()).toEqual(['down_blocks.1', 'down_blocks.2', 'mid_block', 'up_blocks.0', 'up_blocks.1']);
    const withLora = run(store);
    // the reference's arithmetic, done here in float64: each module's weight plus up·down, no LoRA attached
    const merged = new Map(store);
    for (const e of r.lora) {
      const key = `${e.layer}.${e.module}.weight`, W = Float64Array.from(merged.get(key)!);
      const [out, rank] = e.up.shape, inF = e.down.shape[1];
      for (let i = 0; i < out; i++) for (let j = 0; j < inF; j++) for (let k = 0; k < rank; k++) W[i * inF + j] += e.up.data[i * rank + k] * e.down.data[k * inF + j];
      merged.set(key, W);
    }
    ad.lora!.detach();
    const mergedOut = run(merged), without = run(store);
    expect(relErr(withLora, mergedOut)).toBeLessThan(1e-12);
    expect(relErr(withLora, without)).toBeGreaterThan(1e-3); // the LoRA matters
    // again, with lora_scale 0: the first adapter is replaced (not added to), and the output is the UNet's own
    const r2 = loadIpAdapter(store, file, ad, { lora: { scale: 0 } });
    expect(r2.loraAdapter).not.toBe(r.loraAdapter);
    expect(unet.down[1].attentions[0].blocks[0].attn1.toQ.adapters.length).toBe(1);
    expect(Array.from(run(store))).toEqual(Array.from(without));
    ad.lora!.setScale(store, 1); // a run-time value: the same graph with the scale changed
    expect(relErr(run(store), withLora)).toBeLessThan(1e-12);
    ad.lora!.detach();
    // lora: false validates and returns the entries without attaching them
    const r3 = loadIpAdapter(store, file, ad, { lora: false });
    expect(r3.lora.length).toBe(56);
    expect(r3.loraAdapter).toBeUndefined();
    expect(ad.lora).toBeUndefined();
    expect(unet.down[1].attentions[0].blocks[0].attn1.toQ.adapters.length).toBe(0);
  });

  test('a UNet under a key prefix (the pipelines\' `unet.`): block groups and keys read from down_blocks on', () => {
    const pu = new UNet2DConditionModel(ipMicroUnet, { prefix: 'unet' });
    const pa = new IpAdapter(tinyIpAdapterConfigs.faceid, pu);
    const store = new Map<string, Float64Array>();
    const r = loadIpAdapter(store, file, pa, { lora: { scale: 0.5, blocks: { mid_block: 0 } } });
    expect(r.lora[0].layer).toBe('unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1');
    expect([...r.loraAdapter!.groups].sort()).toEqual(['down_blocks.1', 'down_blocks.2', 'mid_block', 'up_blocks.0', 'up_blocks.1']);
    expect(store.has('faceid_lora.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight')).toBe(true);
    expect(Array.from(store.get(r.loraAdapter!.scaleKey)!)).toEqual(r.loraAdapter!.groups.map((g) => (g === 'mid_block' ? 0 : 0.5)));
    expect(pu.mid.attention.blocks[0].attn1.toOut.adapters.length).toBe(1);
  });

  test('named errors: a rank other than the declared one, a processor index that does not exist, a layer the model lacks; portrait has no LoRA', () => {
    const err = (f: () => unknown) => { try { f(); } catch (e) { return e as Error; } throw new Error('expected an error'); };
    const rank8 = err(() => loadIpAdapter(new Map(), faceIdFile('rank8.safetensors', ad, 8), ad));
    expect(rank8).toBeInstanceOf(IpAdapterCheckpointError);
    expect(rank8.message).toMatch(/ip_adapter\.0\.to_k_lora\.down\.weight has shape \[8, 16\], processor 0 \(down_blocks\.1\.attentions\.0\.transformer_blocks\.0\.attn1, width 16\) with LoRA rank 4 expects \[4, 16\]/);
    const upOnly = err(() => loadIpAdapter(new Map(), faceIdFile('up3.safetensors', ad, 4, (m) => m.set('ip_adapter.3.to_v_lora.up.weight', [16, 3])), ad));
    expect(upOnly.message).toMatch(/ip_adapter\.3\.to_v_lora\.up\.weight has shape \[16, 3\], processor 3 .* with LoRA rank 4 expects \[16, 4\]/);
    const extra = err(() => loadIpAdapter(new Map(), faceIdFile('idx.safetensors', ad, 4, (m) => m.set('ip_adapter.14.to_q_lora.down.weight', [4, 16])), ad));
    expect(extra).toBeInstanceOf(IpAdapterCheckpointError);
    expect(extra.message).toMatch(/ip_adapter\.14\.to_q_lora\.down\.weight: this UNet has 14 attention processors \(indices 0–13\)/);
    expect(unet.mid.attention.blocks[0].attn2.toV.adapters.length).toBe(0); // nothing attached by a refused file
    const e = entriesOf('lora.proc2', 'down_blocks.7.attentions.0.transformer_blocks.0.attn2', 1);
    const lacks = err(() => attachFaceIdLora(unet, new Map(), e));
    expect(lacks).toBeInstanceOf(IpAdapterCheckpointError);
    expect(lacks.message).toMatch(/LoRA for down_blocks\.7\.attentions\.0\.transformer_blocks\.0\.attn2\.to_q \(processor 1\): the model has no such Linear/);
    // the reference's portrait adapter (ip_adapter_faceid_separate.py) uses IPAttnProcessor: no LoRA keys
    const portrait = new IpAdapter(tinyIpAdapterConfigs.portrait, unet);
    expect(err(() => loadIpAdapter(new Map(), faceIdFile('portrait.safetensors', portrait), portrait)).message).toMatch(/unmatched 112: .*\(LoRA keys, but the portrait config has no loraRank\)/);
  });
});

// ~30 s with a cold kernel cache: full run only
fullTest('compiled (C++, f32): attn2 with the LoRA ≤ 1e-4 vs LoRAIPAttnProcessor2_0; lora_scale 0 through setParam, no recompile', async () => {
  const c = fixtureCase('cross');
  const prog = await compile({ outputs: { y: c.y } });
  prog.loadParams(c.store);
  const e1 = relErr(prog.run(c.feeds).y as ArrayLike<number>, get('lora.out2'));
  prog.setParam(c.lora.scaleKey, c.lora.scaleValues(0));
  const e0 = relErr(prog.run(c.feeds).y as ArrayLike<number>, get('lora.out2_nolora'));
  console.log(`FaceID LoRA compiled f32 vs reference: lora_scale 1 ${e1.toExponential(1)}, 0 ${e0.toExponential(1)}`);
  expect(e1).toBeLessThan(1e-4);
  expect(e0).toBeLessThan(1e-4);
}, 600_000);
