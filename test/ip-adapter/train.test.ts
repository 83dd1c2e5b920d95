/** IP-Adapter training: the reference's condition-drop rule, the dropped branch = the inference unconditional branch,
 * adapter parameter gradients against central finite differences (float64 evaluator, micro UNet), and a few trainer
 * steps lowering the loss. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { evaluate, input, type ParamStore, type Tensor } from '../../compiler/index';
import { normalFill, uniformFill } from '../../compiler/ir/philox';
import { ClipVisionModel, tinyClipVisionConfig } from '../../models/clip/index';
import { UNet2DConditionModel } from '../../models/unet/index';
import { materialize } from '../../models/weights';
import { IpAdapter, IpAdapterTrainer, conditionDrop, loadIpAdapter, saveIpAdapter, ipAdapterTrainStep, tinyIpAdapterConfigs, type IpAdapterConfig } from '../../models/ip-adapter/index';
import { fullTest } from '../support/full';
import { ipMicroUnet } from './fixture';

const unet = new UNet2DConditionModel(ipMicroUnet);
const clip = new ClipVisionModel(tinyClipVisionConfig);
const S = ipMicroUnet.sampleSize, L = 3, B = 2;

function batchFor(a: IpAdapter, seed: number): Record<string, Float64Array | number[]> {
  let s = seed;
  const r = (n: number) => normalFill(n, s++);
  const f: Record<string, Float64Array | number[]> = {
    latents: r(B * 4 * S * S), noise: r(B * 4 * S * S), alpha: [0.8, 0.6], sigma: [0.6, 0.8], timestep: [300, 700],
    context: r(B * L * 16), pooled: r(B * 8), empty_context: r(L * 16), empty_pooled: r(8), time_ids: [32, 32, 0, 0, 32, 32, 32, 32, 0, 0, 32, 32],
  };
  const c = a.config;
  if (c.kind === 'plain') f.image_embeds = r(B * c.imageEmbedDim!);
  if (c.kind === 'faceid' || c.kind === 'faceid-plus') f.face_embeds = r(B * c.faceDim!);
  if (c.kind === 'plus' || c.kind === 'faceid-plus') f.pixels = r(B * 3 * 16 * 16);
  return f;
}

/** Store with the ip weights enlarged so the image path matters at micro scale. */
function storeFor(a: IpAdapter): ParamStore {
  const st = materialize(materialize(materialize(new Map(), unet.registry), clip.registry), a.registry);
  for (const k of a.registry.params.keys()) if (k.includes('_ip')) st.set(k, st.get(k)!.map((x) => x * 10));
  return st;
}

test('condition drops follow the reference rule (one uniform per sample: image, text, both at 5 % each)', () => {
  expect([0.01, 0.07, 0.12, 0.2].map((u) => conditionDrop(u))).toEqual([
    { image: true, text: false }, { image: false, text: true }, { image: true, text: true }, { image: false, text: false }]);
  const n = 40000, counts = { image: 0, text: 0, both: 0 };
  for (const u of uniformFill(n, 7, 0)) {
    const d = conditionDrop(u);
    if (d.image && d.text) counts.both++; else if (d.image) counts.image++; else if (d.text) counts.text++;
  }
  for (const v of Object.values(counts)) expect(Math.abs(v / n - 0.05)).toBeLessThan(0.005);
});

test('a dropped image is the unconditional branch inference uses (plain: projection of zeros; plus: encoder on zero pixels)', () => {
  for (const cfg of [tinyIpAdapterConfigs.plain, { ...tinyIpAdapterConfigs.plus, resampler: { ...tinyIpAdapterConfigs.plus.resampler, embeddingDim: 16 } }] as IpAdapterConfig[]) {
    const a = new IpAdapter(cfg, unet, { seed: 3 });
    const g = ipAdapterTrainStep(a, unet, { batch: B, textLength: L, clip: cfg.kind === 'plus' ? clip : undefined });
    const f = batchFor(a, 10);
    const x = (n: string, sh: number[]) => input(n, sh);
    const al = x('alpha', [B]).reshape([B, 1, 1, 1]), si = x('sigma', [B]).reshape([B, 1, 1, 1]);
    const noisy = x('latents', [B, 4, S, S]).mul(al as never).add(x('noise', [B, 4, S, S]).mul(si as never) as never) as Tensor;
    const uncond = unet.forward({ sample: noisy, timestep: x('timestep', [B]), encoderHiddenStates: x('context', [B, L, 16]), textEmbeds: x('pooled', [B, 8]),
      timeIds: x('time_ids', [B, 6]), hooks: { crossAttention: a.hook(a.unconditionalTokens(B, { clip })) } });
    const r = evaluate({ outputs: { eps: g.outputs.eps, uncond } }, { ...f, drop_image: [1, 1], drop_text: [0, 0], lr: [0] }, storeFor(a)).outputs;
    const d = r.eps.data.reduce((m, v, i) => Math.max(m, Math.abs(v - r.uncond.data[i])), 0);
    expect(d).toBeLessThan(1e-12);
  }
});

describe('d loss / d adapter parameters vs central differences (micro UNet, float64, one random direction)', () => {
  const cases: [string, IpAdapterConfig][] = [
    ['plain', tinyIpAdapterConfigs.plain],
    ['faceid-plus V2 (perceiver, CLIP on pixels, shortcut)', { ...tinyIpAdapterConfigs.faceidPlus, clipHiddenDim: 16 }],
  ];
  test.each(cases)('%s', (_n, cfg) => {
    const a = new IpAdapter(cfg, unet, { seed: 9 });
    const g = ipAdapterTrainStep(a, unet, { batch: B, textLength: L, clip, shortcut: true, sScale: 0.7 });
    const store = storeFor(a);
    const feeds = { ...batchFor(a, 20), drop_image: [0, 1], drop_text: [1, 0], lr: [0] };
    const outs: Record<string, Tensor> = { loss: g.outputs.loss };
    g.grads.forEach((t, i) => { outs[`g${i}`] = t; });
    const res = evaluate({ outputs: outs }, feeds, new Map(store)).outputs;
    const dirs = g.params.map((k, i) => normalFill(store.get(k)!.length, 100 + i));
    const analytic = dirs.reduce((acc, d, i) => acc + d.reduce((s, x, j) => s + x * res[`g${i}`].data[j], 0), 0);
    // the difference error scales as h² here (h 1e-4: 5e-3, 1e-5: 5e-5, 1e-6: 5e-7 for plain); round-off stays ~1e-10
    const h = 1e-6;
    const lossAt = (sign: number) => {
      const st = new Map(store);
      g.params.forEach((k, i) => st.set(k, store.get(k)!.map((x, j) => x + sign * h * dirs[i][j])));
      return evaluate({ outputs: { loss: g.outputs.loss } }, feeds, st).outputs.loss.data[0];
    };
    const numeric = (lossAt(1) - lossAt(-1)) / (2 * h);
    const rel = Math.abs(analytic - numeric) / Math.abs(numeric);
    console.log(`IP-Adapter ${cfg.kind} gradient check: analytic ${analytic.toExponential(6)} numeric ${numeric.toExponential(6)} rel ${rel.toExponential(2)} (${g.params.length} tensors)`);
    expect(Math.abs(numeric)).toBeGreaterThan(1e-6);
    expect(rel).toBeLessThan(2e-6);
    // every adapter tensor gets a gradient (the dropped-text sample still sees the image; the dropped-image one does not)
    for (let i = 0; i < g.params.length; i++) expect(res[`g${i}`].data.some((v) => v !== 0)).toBe(true);
  }, 300_000);
});

test('trainer: a few AdamW steps on one batch lower the loss; the UNet stays frozen', async () => {
  const a = new IpAdapter(tinyIpAdapterConfigs.plain, unet, { seed: 1 });
  const store = storeFor(a);
  const before = store.get('down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_q.weight')!.slice();
  const tr = await IpAdapterTrainer.create(a, unet, store, { batch: B, textLength: L, lr: 3e-3, rates: { image: 0, text: 0, both: 0 } });
  const batch = batchFor(a, 30);
  const losses = Array.from({ length: 4 }, () => tr.step(batch).loss);
  console.log(`IP-Adapter trainer losses: ${losses.map((l) => l.toFixed(6)).join(' → ')}`);
  expect(losses[3]).toBeLessThan(losses[0]);
  expect(Array.from(tr.store.get('down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_q.weight')!)).toEqual(Array.from(before));
  expect(tr.adapterValues().get('image_proj.proj.weight')).not.toEqual(materialize(new Map(), a.registry).get('image_proj.proj.weight'));
  // the drops are reproducible from the seed
  expect(tr.drops(5)).toEqual(tr.drops(5));
  // the trained adapter saves in the reference layout and loads back strictly
  const file = path.join(os.tmpdir(), `kiln-ipa-train-${process.pid}.safetensors`);
  try {
    saveIpAdapter(file, tr.adapterValues(), a, { dtype: 'F64' });
    const back = new Map<string, Float64Array>();
    expect(loadIpAdapter(back, file, new IpAdapter(tinyIpAdapterConfigs.plain, unet)).problems).toEqual([]);
    expect(Array.from(back.get('ip_adapter.1.to_k_ip.weight')!)).toEqual(Array.from(tr.adapterValues().get('ip_adapter.1.to_k_ip.weight')!));
  } finally { fs.rmSync(file, { force: true }); }
}, 300_000);

fullTest('trainer, compiled (C++ f32): the first steps match the float64 evaluator to 1e-4', async () => {
  const a = new IpAdapter(tinyIpAdapterConfigs.plain, unet, { seed: 1 });
  const o = { batch: B, textLength: L, lr: 3e-3, rates: { image: 0.3, text: 0.3, both: 0.2 }, seed: 4 };
  const ref = await IpAdapterTrainer.create(a, unet, storeFor(a), o);
  const cpu = await IpAdapterTrainer.create(a, unet, storeFor(a), { ...o, backend: 'cpu' });
  const batch = batchFor(a, 30);
  for (let i = 0; i < 3; i++) {
    const r = ref.step(batch), c = cpu.step(batch);
    expect(c.drops).toEqual(r.drops);
    expect(Math.abs(c.loss - r.loss) / r.loss).toBeLessThan(1e-4);
  }
}, 600_000);
