/** LoRA files: kohya (SDXL's original block names), diffusers (.lora.down/.up and the older attention-processor
 * keys) and PEFT (lora_A/lora_B): every key round-trips; bad files are named errors. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ParamStore } from '../../compiler/index';
import { readSafetensors, writeSafetensors, type TensorInput } from '../../models/io/safetensors';
import { ATTENTION_TARGETS, attachLora, attentionProcessorPaths, findLayers, keyOf, LoraError } from '../../models/nn/lora';
import { loadLora, readLora, saveLora, type LoraFormat } from '../../models/lora/formats';
import { kohyaName } from '../../models/lora/sgm-names';
import { UNet2DConditionModel, sdxlUnetConfig, tinyUnetConfig } from '../../models/unet/index';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-lora-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("kohya names: SDXL's original (SGM) block layout", () => {
  const unet = new UNet2DConditionModel(sdxlUnetConfig);
  const layers = findLayers(unet);
  test.each([
    ['down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q', 'lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q'],
    ['down_blocks.2.attentions.1.transformer_blocks.9.ff.net.2', 'lora_unet_input_blocks_8_1_transformer_blocks_9_ff_net_2'],
    ['mid_block.attentions.0.transformer_blocks.3.attn2.to_out.0', 'lora_unet_middle_block_1_transformer_blocks_3_attn2_to_out_0'],
    ['up_blocks.0.attentions.2.proj_out', 'lora_unet_output_blocks_2_1_proj_out'],
    ['up_blocks.0.upsamplers.0.conv', 'lora_unet_output_blocks_2_2_conv'],
    ['up_blocks.1.upsamplers.0.conv', 'lora_unet_output_blocks_5_2_conv'],
    ['down_blocks.0.downsamplers.0.conv', 'lora_unet_input_blocks_3_0_op'],
    ['down_blocks.1.resnets.0.conv_shortcut', 'lora_unet_input_blocks_4_0_skip_connection'],
    ['up_blocks.2.resnets.2.conv2', 'lora_unet_output_blocks_8_0_out_layers_3'],
    ['mid_block.resnets.1.time_emb_proj', 'lora_unet_middle_block_2_emb_layers_1'],
    ['conv_in', 'lora_unet_input_blocks_0_0'],
    ['add_embedding.linear_2', 'lora_unet_label_emb_0_2'],
  ])('%s ↔ %s', (p, k) => {
    expect(layers.has(p)).toBe(true);
    expect(kohyaName(p, sdxlUnetConfig)).toBe(k);
  });
  test('every Linear / Conv2d of the SDXL UNet has its own kohya name (a bijection)', () => {
    const names = new Set([...layers.keys()].map((p) => kohyaName(p, sdxlUnetConfig)));
    expect(names.size).toBe(layers.size);
    expect(layers.size).toBe(794);
    expect([...layers.keys()].filter((p) => /\.attn[12]\.to_(q|k|v|out\.0)$/.test(p)).length).toBe(4 * 140);
  });
  test("every module of the down, mid and up blocks: diffusers v0.25.1's kohya converter maps Kiln's kohya name back to the module (test/fixtures/lora/kohya_names.py)", () => {
    const fx = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/lora');
    const names = JSON.parse(fs.readFileSync(path.join(fx, 'sdxl-kohya-names.json'), 'utf8')) as string[];
    const mapped = JSON.parse(fs.readFileSync(path.join(fx, 'sdxl-kohya-diffusers.json'), 'utf8')) as Record<string, string>;
    const blockPaths = [...layers.keys()].filter((p) => /^(down_blocks|mid_block|up_blocks)\./.test(p));
    expect(names).toEqual(blockPaths.map((p) => kohyaName(p, sdxlUnetConfig)));
    const wrong = blockPaths.filter((p) => mapped[kohyaName(p, sdxlUnetConfig)] !== p);
    expect(wrong).toEqual([]);
    expect(blockPaths.length).toBe(788);
  });
  test("attention processors in diffusers' attn_processors order (down, up, mid; attn1 then attn2): IP-Adapter's numbering", () => {
    const procs = attentionProcessorPaths(layers);
    expect(procs.length).toBe(140);
    expect(procs.slice(0, 2)).toEqual(['down_blocks.1.attentions.0.transformer_blocks.0.attn1', 'down_blocks.1.attentions.0.transformer_blocks.0.attn2']);
    expect(procs[2 * (2 * 2 + 2 * 10) + 1]).toBe('up_blocks.0.attentions.0.transformer_blocks.0.attn2'); // after 4 + 20 down transformer blocks
    expect(procs.slice(-1)).toEqual(['mid_block.attentions.0.transformer_blocks.9.attn2']);
    expect(procs.filter((p) => p.startsWith('mid_block.')).length).toBe(20);
  });
});

/** A tiny UNet with a LoRA on the attention projections (and, except for diffusers-old, conv1 of every resnet
 * and the FF output), values set, α ≠ rank on some modules. */
function tinyWithLora(format: LoraFormat) {
  const unet = new UNet2DConditionModel(tinyUnetConfig);
  const targets = format === 'diffusers-old' ? ATTENTION_TARGETS : [...ATTENTION_TARGETS, 'conv1', 'ff.net.2'];
  const paths = [...findLayers(unet).keys()];
  const adapter = attachLora(unet, { name: 'src', targets, rank: 2, alphas: new Map(paths.filter((_p, i) => i % 3 === 0).map((p) => [p, 1.5])) });
  const store: ParamStore = new Map();
  let k = 0;
  for (const t of adapter.params()) store.set(keyOf(t), Float64Array.from({ length: t.size }, () => Math.fround(Math.sin(++k * 0.61))));
  return { unet, adapter, store };
}

describe('every key round-trips', () => {
  test.each(['kohya', 'diffusers', 'diffusers-old', 'peft'] as const)('%s: save → load into a fresh UNet → save gives the same keys and values; α and rank kept', (format) => {
    const a = tinyWithLora(format);
    const f1 = path.join(dir, `${format}-1.safetensors`), f2 = path.join(dir, `${format}-2.safetensors`);
    saveLora(f1, a.adapter, a.store, a.unet, { format });
    const keys1 = [...readSafetensors(f1).tensors.keys()].sort();
    expect(keys1.length).toBeGreaterThan(2 * a.adapter.layers.size - 1);
    const example = { kohya: 'lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight',
      diffusers: 'unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight',
      'diffusers-old': 'unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight',
      peft: 'base_model.model.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight' }[format];
    expect(keys1).toContain(example);

    const fresh = new UNet2DConditionModel(tinyUnetConfig);
    const store: ParamStore = new Map();
    const { adapter, weights } = loadLora(f1, fresh, store, { name: 'dst' });
    expect(weights.format).toBe(format);
    expect([...adapter.layers.keys()]).toEqual([...a.adapter.layers.keys()]);
    for (const [p, l] of adapter.layers) {
      const src = a.adapter.layers.get(p)!;
      expect([l.rank, l.alpha]).toEqual([src.rank, src.alpha]);
      expect(store.get(keyOf(l.down))).toEqual(a.store.get(keyOf(src.down)));
      expect(store.get(keyOf(l.up))).toEqual(a.store.get(keyOf(src.up)));
    }
    saveLora(f2, adapter, store, fresh, { format, prefix: weights.prefix });
    const t1 = readSafetensors(f1), t2 = readSafetensors(f2);
    expect([...t2.tensors.keys()].sort()).toEqual(keys1);
    for (const key of keys1) expect(Array.from(t2.tensors.get(key)!.data as Float32Array)).toEqual(Array.from(t1.tensors.get(key)!.data as Float32Array));
  });

  test('kohya without .alpha keys: α = rank; diffusers with and without the unet. prefix', () => {
    const a = tinyWithLora('diffusers');
    const f = path.join(dir, 'noprefix.safetensors');
    saveLora(f, a.adapter, a.store, a.unet, { format: 'diffusers', prefix: '' });
    expect(readLora(f, a.unet).prefix).toBe('');
    const raw = readSafetensors(f).tensors;
    expect([...raw.keys()].some((k) => k.startsWith('unet.'))).toBe(false);
    const fk = path.join(dir, 'kohya-noalpha.safetensors');
    saveLora(fk, a.adapter, a.store, a.unet, { format: 'kohya', alphaKeys: false });
    const w = readLora(fk, new UNet2DConditionModel(tinyUnetConfig));
    for (const m of w.modules.values()) expect(m.alpha).toBe(2);
  });
});

describe('bad files are named errors listing what was expected', () => {
  const write = (name: string, t: Record<string, { shape: number[]; v?: number }>) => {
    const f = path.join(dir, name), out: Record<string, TensorInput> = {};
    for (const [k, { shape }] of Object.entries(t)) out[k] = { dtype: 'F32', shape, data: new Float32Array(shape.reduce((x, y) => x * y, 1)).fill(0.1) };
    writeSafetensors(f, out);
    return f;
  };
  const unet = new UNet2DConditionModel(tinyUnetConfig);
  const q = 'down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q'; // [64, 64]
  test('keys that match no module', () => {
    const f = write('unmatched.safetensors', { 'unet.down_blocks.9.attn.to_q.lora.down.weight': { shape: [2, 64] }, 'unet.down_blocks.9.attn.to_q.lora.up.weight': { shape: [64, 2] } });
    expect(() => readLora(f, unet)).toThrow(LoraError);
    expect(() => readLora(f, unet)).toThrow(/2 key\(s\) match no Linear or Conv2d of the model: unet\.down_blocks\.9\.attn\.to_q\.lora\.down\.weight.*expected keys such as unet\.time_embedding\.linear_1\.lora\.down\.weight/);
    const te = write('kohya-te.safetensors', { [`${kohyaName(q, tinyUnetConfig)}.lora_down.weight`]: { shape: [2, 64] }, [`${kohyaName(q, tinyUnetConfig)}.lora_up.weight`]: { shape: [64, 2] }, 'lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight': { shape: [2, 8] } });
    expect(() => readLora(te, unet)).toThrow(/1 key\(s\) match no Linear or Conv2d of the model: lora_te1_text_model/);
    const w = readLora(te, unet, { skipKeys: /^lora_te\d?_/ });
    expect(w.skipped).toEqual(['lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight']);
    expect([...w.modules.keys()]).toEqual([q]);
  });
  test('mismatched ranks, a shape that does not fit, a lone down weight', () => {
    const r = write('rank.safetensors', { [`unet.${q}.lora.down.weight`]: { shape: [4, 64] }, [`unet.${q}.lora.up.weight`]: { shape: [64, 2] } });
    expect(() => readLora(r, unet)).toThrow(new RegExp(`${q.replace(/\./g, '\\.')}: down has rank 4 \\(\\[4,64\\]\\), up has rank 2 \\(\\[64,2\\]\\); expected down \\[r, 64\\], up \\[64, r\\] with one r`));
    const s = write('shape.safetensors', { [`unet.${q}.lora.down.weight`]: { shape: [2, 32] }, [`unet.${q}.lora.up.weight`]: { shape: [64, 2] } });
    expect(() => readLora(s, unet)).toThrow(/do not fit the module's weight \[64,64\]; expected down \[r, 64\], up \[64, r\]/);
    const lone = write('lone.safetensors', { [`unet.${q}.lora.down.weight`]: { shape: [2, 64] } });
    expect(() => readLora(lone, unet)).toThrow(/has a down weight but no up weight/);
  });
  test('PEFT without lora_alpha', () => {
    const f = write('peft.safetensors', { [`base_model.model.${q}.lora_A.weight`]: { shape: [2, 64] }, [`base_model.model.${q}.lora_B.weight`]: { shape: [64, 2] } });
    try { readLora(f, unet); throw new Error('no error'); } catch (e) {
      expect(e).toBeInstanceOf(LoraError);
      expect((e as LoraError).code).toBe('alpha-missing');
      expect((e as Error).message).toMatch(/no α for 1 module\(s\) \(down_blocks.*to_q\): PEFT keeps lora_alpha in adapter_config.json; pass \{ alpha: lora_alpha \}/);
    }
    expect(readLora(f, unet, { alpha: 8 }).modules.get(q)!.alpha).toBe(8);
  });
  test('no known layout', () => {
    const f = write('none.safetensors', { 'foo.weight': { shape: [2] } });
    expect(() => readLora(f, unet)).toThrow(/no key of a known layout .*the file has e\.g\. foo\.weight/);
  });
});
