/**
 * facexlib's face parsing BiSeNet (facexlib/parsing/bisenet.py + resnet.py @260620a; the `parsing_bisenet.pth`
 * PuLID loads through `init_parsing_model('bisenet')`) as a Kiln graph, eval mode (BatchNorm with running stats,
 * ε = 1e-5), parameter names = the state dict's keys, so the user's `.pth` loads by key through the safe torch
 * reader (models/io/torchCheckpoint.ts).
 *
 *   context path: ResNet-18 (conv 7×7/2, BN, ReLU, maxpool 3×3/2; 4 layers × 2 BasicBlocks) → feat8, feat16, feat32
 *     avg = ConvBNReLU 1×1 (global mean of feat32), broadcast back
 *     arm32(feat32) + avg → nearest ×2 → conv_head32   (= feat_cp16)
 *     arm16(feat16) + that → nearest ×2 → conv_head16  (= feat_cp8)
 *     attention refinement: ConvBNReLU 3×3 → x · sigmoid(BN(conv1×1(mean))))
 *   feature fusion (feat8 ‖ feat_cp8): ConvBNReLU 1×1 → f + f · sigmoid(conv1×1(relu(conv1×1(mean f))))
 *   conv_out: ConvBNReLU 3×3 → conv 1×1 → 19 classes at 1/8 resolution
 *
 * The graph stops at the 1/8-resolution logits; `upsampleBilinearAlignCorners` (host, float64) does the final
 * `F.interpolate(..., mode='bilinear', align_corners=True)` and `parseLabels` the argmax. The auxiliary heads
 * (conv_out16, conv_out32) do not feed the parse and are not built; their weights are ignored.
 */
import { conv2d, param, upsampleNearest, maxPool2d, type Tensor, concat } from '../../compiler/index';
import { channelwise } from './layers';

export interface BiSeNetConfig {
  /** ResNet-18 widths of layer1..4 (the stem has widths[0]): 64, 128, 256, 512. */
  widths: readonly [number, number, number, number];
  /** Context-path width (ARM outputs, conv heads): 128. */
  context: number;
  /** Feature fusion output and conv_out mid width: 256. */
  fuse: number;
  classes: number;
}
export const BISENET_FACEXLIB: BiSeNetConfig = { widths: [64, 128, 256, 512], context: 128, fuse: 256, classes: 19 };
/** The parse runs on the 512² aligned face. */
export const PARSING_INPUT_SIZE = 512;
/** ImageNet normalization PuLID applies before parsing (on 0..1 RGB). */
export const PARSING_MEAN = [0.485, 0.456, 0.406] as const;
export const PARSING_STD = [0.229, 0.224, 0.225] as const;

/** Parameters by state-dict key, shapes recorded. */
export class ParsingParams {
  readonly tensors = new Map<string, Tensor>();
  get(name: string, shape: readonly number[]): Tensor {
    const prev = this.tensors.get(name);
    if (prev) {
      if (prev.shape.join(',') !== shape.join(',')) throw new Error(`parameter '${name}' declared as [${prev.shape.join(',')}] and [${shape.join(',')}]`);
      return prev;
    }
    const t = param(name, [...shape], { trainable: false }) as Tensor;
    this.tensors.set(name, t);
    return t;
  }
}

const bn = (p: ParsingParams, x: Tensor, name: string): Tensor => {
  const c = x.shape[1];
  const g = (k: string) => channelwise(p.get(`${name}.${k}`, [c]));
  return x.sub(g('running_mean')).div(g('running_var').add(1e-5).sqrt()).mul(g('weight')).add(g('bias'));
};
const conv = (p: ParsingParams, x: Tensor, name: string, out: number, k: number, stride = 1, padding = (k - 1) / 2): Tensor =>
  conv2d(x, p.get(`${name}.weight`, [out, x.shape[1], k, k]), undefined, { stride, padding });
/** ConvBNReLU: `<name>.conv`, `<name>.bn`. */
const cbr = (p: ParsingParams, x: Tensor, name: string, out: number, k: number): Tensor => bn(p, conv(p, x, `${name}.conv`, out, k), `${name}.bn`).relu();
const gap = (x: Tensor): Tensor => x.mean([2, 3], true);

function basicBlock(p: ParsingParams, x: Tensor, name: string, out: number, stride: number): Tensor {
  let r = bn(p, conv(p, x, `${name}.conv1`, out, 3, stride), `${name}.bn1`).relu();
  r = bn(p, conv(p, r, `${name}.conv2`, out, 3), `${name}.bn2`);
  const shortcut = x.shape[1] !== out || stride !== 1 ? bn(p, conv(p, x, `${name}.downsample.0`, out, 1, stride, 0), `${name}.downsample.1`) : x;
  return shortcut.add(r).relu();
}

function arm(p: ParsingParams, x: Tensor, name: string, out: number): Tensor {
  const feat = cbr(p, x, `${name}.conv`, out, 3);
  const atten = bn(p, conv(p, gap(feat), `${name}.conv_atten`, out, 1), `${name}.bn_atten`).sigmoid();
  return feat.mul(atten);
}

/** x [N, 3, H, W] (ImageNet-normalized RGB, H and W multiples of 32) → logits [N, classes, H/8, W/8]. */
export function bisenetGraph(x: Tensor, c: BiSeNetConfig = BISENET_FACEXLIB, p = new ParsingParams()): Tensor {
  const [, ch, h, w] = x.shape;
  if (x.rank !== 4 || ch !== 3 || h % 32 || w % 32) throw new Error(`bisenetGraph: input must be [N,3,H,W] with H, W multiples of 32, got [${x.shape.join(',')}]`);
  // ResNet-18.
  let y = bn(p, conv(p, x, 'cp.resnet.conv1', c.widths[0], 7, 2, 3), 'cp.resnet.bn1').relu();
  y = maxPool2d(y, 3, 2, 1);
  const feats: Tensor[] = [];
  c.widths.forEach((width, l) => {
    for (let b = 0; b < 2; b++) y = basicBlock(p, y, `cp.resnet.layer${l + 1}.${b}`, width, b === 0 && l > 0 ? 2 : 1);
    feats.push(y);
  });
  const [, feat8, feat16, feat32] = feats;
  // Context path.
  const avg = cbr(p, gap(feat32), 'cp.conv_avg', c.context, 1); // [N, C, 1, 1]: nearest to h32×w32 is a broadcast
  const sum32 = arm(p, feat32, 'cp.arm32', c.context).add(avg);
  const cp16 = cbr(p, upsampleNearest(sum32, 2), 'cp.conv_head32', c.context, 3);
  const sum16 = arm(p, feat16, 'cp.arm16', c.context).add(cp16);
  const cp8 = cbr(p, upsampleNearest(sum16, 2), 'cp.conv_head16', c.context, 3);
  // Feature fusion.
  const feat = cbr(p, concat([feat8, cp8], 1), 'ffm.convblk', c.fuse, 1);
  let atten = conv(p, gap(feat), 'ffm.conv1', c.fuse / 4, 1).relu();
  atten = conv(p, atten, 'ffm.conv2', c.fuse, 1).sigmoid();
  const fused = feat.mul(atten).add(feat);
  return conv(p, cbr(p, fused, 'conv_out.conv', c.fuse, 3), 'conv_out.conv_out', c.classes, 1);
}

/** F.interpolate(x, (outH, outW), mode='bilinear', align_corners=True) on [C, h, w] planar float64. */
export function upsampleBilinearAlignCorners(x: ArrayLike<number>, channels: number, h: number, w: number, outH: number, outW: number): Float64Array {
  const out = new Float64Array(channels * outH * outW);
  const sy = outH > 1 ? (h - 1) / (outH - 1) : 0, sx = outW > 1 ? (w - 1) / (outW - 1) : 0;
  for (let c = 0; c < channels; c++) for (let oy = 0; oy < outH; oy++) {
    const fy = oy * sy, y0 = Math.floor(fy), y1 = Math.min(y0 + 1, h - 1), ly = fy - y0;
    for (let ox = 0; ox < outW; ox++) {
      const fx = ox * sx, x0 = Math.floor(fx), x1 = Math.min(x0 + 1, w - 1), lx = fx - x0;
      const at = (yy: number, xx: number) => x[(c * h + yy) * w + xx];
      out[(c * outH + oy) * outW + ox] = (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1));
    }
  }
  return out;
}

/** argmax over classes of [C, H, W] logits (the first maximum, as torch.argmax) → labels [H·W]. */
export function parseLabels(logits: ArrayLike<number>, classes: number, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels);
  for (let i = 0; i < pixels; i++) {
    let best = 0, bv = logits[i];
    for (let c = 1; c < classes; c++) { const v = logits[c * pixels + i]; if (v > bv) { bv = v; best = c; } }
    out[i] = best;
  }
  return out;
}
