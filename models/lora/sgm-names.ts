/** Module paths of Kiln's (= diffusers') SDXL UNet in the original Stability (SGM / ldm) layout that kohya's
 * LoRA keys use: `down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q` ↔
 * `input_blocks.4.1.transformer_blocks.0.attn1.to_q`. Block numbers follow the config (layers per block, which
 * up blocks have attention), as diffusers v0.25.1's `_maybe_map_sgm_blocks_to_diffusers` counts them. */
import type { UnetConfig } from '../unet/config';

const RESNET: Record<string, string> = { conv1: 'in_layers.2', time_emb_proj: 'emb_layers.1', conv2: 'out_layers.3', conv_shortcut: 'skip_connection' };
const TOP: Record<string, string> = {
  conv_in: 'input_blocks.0.0', 'time_embedding.linear_1': 'time_embed.0', 'time_embedding.linear_2': 'time_embed.2',
  'add_embedding.linear_1': 'label_emb.0.0', 'add_embedding.linear_2': 'label_emb.0.2', conv_out: 'out.2',
};

const resnetRest = (rest: string) => RESNET[rest] ?? rest;

/** The SGM path of a diffusers UNet module path, or undefined when it has none. */
export function toSgmPath(path: string, c: Pick<UnetConfig, 'layersPerBlock' | 'crossAttnDown'>): string | undefined {
  if (TOP[path]) return TOP[path];
  const L = c.layersPerBlock, upAttn = [...c.crossAttnDown].reverse();
  let m = /^down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(path);
  if (m) {
    const idx = 1 + +m[1]! * (L + 1) + +m[3]!;
    return m[2] === 'resnets' ? `input_blocks.${idx}.0.${resnetRest(m[4]!)}` : `input_blocks.${idx}.1.${m[4]}`;
  }
  m = /^down_blocks\.(\d+)\.downsamplers\.0\.conv$/.exec(path);
  if (m) return `input_blocks.${(+m[1]! + 1) * (L + 1)}.0.op`;
  m = /^mid_block\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(path);
  if (m) return m[1] === 'attentions' ? `middle_block.1.${m[3]}` : `middle_block.${m[2] === '0' ? 0 : 2}.${resnetRest(m[3]!)}`;
  m = /^up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(path);
  if (m) {
    const idx = +m[1]! * (L + 1) + +m[3]!;
    return m[2] === 'resnets' ? `output_blocks.${idx}.0.${resnetRest(m[4]!)}` : `output_blocks.${idx}.1.${m[4]}`;
  }
  m = /^up_blocks\.(\d+)\.upsamplers\.0\.conv$/.exec(path);
  if (m) return `output_blocks.${+m[1]! * (L + 1) + L}.${upAttn[+m[1]!] ? 2 : 1}.conv`;
  return undefined;
}

/** kohya's name of a module: `lora_unet_` + the SGM path with `_` for `.` (the path itself where the model is
 * not a UNet, or when `sgm` is false). */
export function kohyaName(path: string, c?: Pick<UnetConfig, 'layersPerBlock' | 'crossAttnDown'>, prefix = 'lora_unet_'): string {
  const p = (c && toSgmPath(path, c)) ?? path;
  return prefix + p.replace(/\./g, '_');
}
