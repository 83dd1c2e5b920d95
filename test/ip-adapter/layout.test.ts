/** Checkpoints written by the reference itself (test/fixtures/ip-adapter/generate.py): its own set_ip_adapter on a
 * stand-in UNet with the attention processors of a micro UNet whose blocks differ in width (8, 16, 24), saved as the
 * released .bin files are. Kiln's numbering must put every key on the processor of the right width. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openTensorFile } from '../../models/io/tensorFile';
import { UNet2DConditionModel } from '../../models/unet/index';
import { IpAdapter, IpAdapterCheckpointError, loadIpAdapter, tinyIpAdapterConfigs } from '../../models/ip-adapter/index';
import { ipMicroUnet } from './fixture';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/ip-adapter');
const unet = new UNet2DConditionModel({ ...ipMicroUnet, blockOutChannels: [8, 16, 24] });

test('plain: the reference .bin loads by key, every tensor on a cross-attention processor of its width', () => {
  const a = new IpAdapter(tinyIpAdapterConfigs.plain, unet);
  expect(a.processors.map((p) => p.width)).toEqual([16, 16, 24, 24, 24, 24, 24, 24, 16, 16, 16, 16, 24, 24]);
  const store = new Map<string, Float64Array>();
  const file = path.join(dir, 'plain-micro.bin');
  const r = loadIpAdapter(store, file, a);
  expect(r.problems).toEqual([]);
  expect(r.loaded.length).toBe(4 + 14);
  const f = openTensorFile(file);
  try {
    const names = f.names();
    expect(names.filter((n) => n.startsWith('ip_adapter.')).map((n) => Number(n.split('.')[1])).every((i) => i % 2 === 1)).toBe(true);
    expect(f.header.get('ip_adapter.5.to_k_ip.weight')!.shape).toEqual([24, 16]);
    expect(Array.from(store.get('ip_adapter.5.to_k_ip.weight')!)).toEqual(Array.from(f.readAsFloat32('ip_adapter.5.to_k_ip.weight')));
  } finally { f.close(); }
});

test('faceid: LoRA on all 14 processors (self-attention k/v read the layer width, cross-attention the context width)', () => {
  const a = new IpAdapter(tinyIpAdapterConfigs.faceid, unet);
  const store = new Map<string, Float64Array>();
  const r = loadIpAdapter(store, path.join(dir, 'faceid-micro.bin'), a);
  expect(r.problems).toEqual([]);
  // applied: each pair on the Linear of its processor (attachFaceIdLora checks the shapes against that layer's weight)
  expect(r.loraAdapter!.layers.size).toBe(14 * 4);
  const l = r.loraAdapter!.layers.get('down_blocks.2.attentions.0.transformer_blocks.0.attn1.to_k')!;
  expect(l.layer.weight.shape).toEqual([24, 24]);
  expect(Array.from(store.get('faceid_lora.down_blocks.2.attentions.0.transformer_blocks.0.attn1.to_k.lora.down.weight')!)).toEqual(Array.from(r.lora.find((e) => e.index === 2 && e.module === 'to_k')!.down.data));
  a.lora!.detach();
  expect(r.lora.length).toBe(14 * 4);
  const at = (i: number, m: string) => r.lora.find((e) => e.index === i && e.module === m)!;
  expect(at(2, 'to_k')).toMatchObject({ layer: 'down_blocks.2.attentions.0.transformer_blocks.0.attn1', rank: 4 });
  expect(at(2, 'to_k').down.shape).toEqual([4, 24]);
  expect(at(3, 'to_k').down.shape).toEqual([4, 16]);
  expect(at(13, 'to_out.0').up.shape).toEqual([24, 4]);
  expect(at(13, 'to_out.0').layer).toBe('mid_block.attentions.0.transformer_blocks.0.attn2');
});

test('the same file against a UNet of other widths is refused by name', () => {
  const a = new IpAdapter(tinyIpAdapterConfigs.plain, new UNet2DConditionModel(ipMicroUnet));
  expect(() => loadIpAdapter(new Map(), path.join(dir, 'plain-micro.bin'), a)).toThrow(IpAdapterCheckpointError);
  expect(() => loadIpAdapter(new Map(), path.join(dir, 'plain-micro.bin'), a)).toThrow(/ip_adapter\.5\.to_k_ip\.weight has shape \[24, 16\], this UNet's processor 5 \(up_blocks\.0\.attentions\.0\.transformer_blocks\.0\.attn2, width 16, context 16\) expects \[16, 16\]: a checkpoint for another UNet width/);
});
