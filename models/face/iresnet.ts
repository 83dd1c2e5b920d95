/**
 * ArcFace's IResNet (insightface recognition/arcface_torch backbones/iresnet.py; antelopev2's `glintr100.onnx` is
 * the iresnet100 = layers [3, 13, 30, 3]) as a Kiln graph: 112×112 RGB → 512-d embedding (insightface's
 * `embedding`, not normalized).
 *
 *   x ∈ [0, 255] RGB ─ (x − 127.5) / 127.5                     (insightface ArcFaceONNX: input_mean = input_std = 127.5)
 *   conv1 3×3 (+ bn1 folded) → PReLU                           112
 *   layer1..4: IBasicBlock × layers[i], the first with stride 2 and a 1×1/2 conv (+BN) shortcut
 *     block: BN → conv 3×3 (+BN folded) → PReLU → conv 3×3/stride (+BN folded) → + shortcut
 *   bn2 → flatten (C·7·7) → fc (+bias) → features (BatchNorm1d)
 *
 * Parameters are in the *folded* layout an ONNX export has: every conv that a BN follows carries a bias and the BN
 * is gone; a BN that follows no conv (the block's first, bn2, features) is a per-channel `scale` and `shift`
 * (scale = γ/√(var+ε), shift = β − mean·scale, computed in float64 by the loader, onnxIResNet.ts). Names follow the
 * PyTorch module names: `conv1.weight`, `layer2.0.conv2.bias`, `layer2.0.downsample.0.weight`, `layer1.0.bn1.scale`,
 * `prelu.weight`, `fc.weight` ([out, in]), `features.shift`.
 */
import { conv2d, input, linear, type Tensor } from '../../compiler/index';
import { channelwise, FrozenParams } from './layers';

export interface IResNetConfig {
  /** Stem width (64). */
  stem: number;
  /** Widths of layer1..4 (64, 128, 256, 512). */
  widths: readonly [number, number, number, number];
  /** Blocks per layer: iresnet100 [3, 13, 30, 3], iresnet50 [3, 4, 14, 3]. */
  layers: readonly [number, number, number, number];
  /** Embedding width (512). */
  embedding: number;
}

export const IRESNET100: IResNetConfig = { stem: 64, widths: [64, 128, 256, 512], layers: [3, 13, 30, 3], embedding: 512 };
export const IRESNET50: IResNetConfig = { stem: 64, widths: [64, 128, 256, 512], layers: [3, 4, 14, 3], embedding: 512 };
/** The input side; the trunk halves it four times to 7. */
export const ARCFACE_INPUT_SIZE = 112;
export const ARCFACE_MEAN = 127.5;
export const ARCFACE_STD = 127.5;

/** The parameters of one block, in order: what the ONNX loader fills. */
export interface IResNetBlockNames { prefix: string; inC: number; outC: number; stride: number; downsample: boolean }

/** Every block of a config with its widths and stride (layerL.B). */
export function iresnetBlocks(c: IResNetConfig): IResNetBlockNames[] {
  const out: IResNetBlockNames[] = [];
  let inC = c.stem;
  c.layers.forEach((n, l) => {
    for (let b = 0; b < n; b++) {
      const stride = b === 0 ? 2 : 1, outC = c.widths[l];
      out.push({ prefix: `layer${l + 1}.${b}`, inC, outC, stride, downsample: b === 0 && (stride !== 1 || inC !== outC) });
      inC = outC;
    }
  });
  return out;
}

const affine = (p: FrozenParams, x: Tensor, name: string): Tensor => {
  const c = x.shape[1];
  const s = p.get(`${name}.scale`, [c]), t = p.get(`${name}.shift`, [c]);
  return x.rank === 4 ? x.mul(channelwise(s)).add(channelwise(t)) : x.mul(s).add(t);
};
const conv = (p: FrozenParams, x: Tensor, name: string, out: number, k: number, stride: number): Tensor =>
  conv2d(x, p.get(`${name}.weight`, [out, x.shape[1], k, k]), p.get(`${name}.bias`, [out]), { stride, padding: (k - 1) / 2 });
/** PReLU with one slope per channel: max(x, 0) + slope·min(x, 0). */
const prelu = (p: FrozenParams, x: Tensor, name: string): Tensor => {
  const a = channelwise(p.get(`${name}.weight`, [x.shape[1]]));
  return x.gt(0).select(x, x.mul(a));
};

/** images [N, 3, 112, 112], RGB 0..255 → [N, embedding]. */
export function iresnetGraph(images: Tensor, config: IResNetConfig, params = new FrozenParams()): Tensor {
  const [, ch, h, w] = images.shape;
  if (images.rank !== 4 || ch !== 3 || h !== ARCFACE_INPUT_SIZE || w !== ARCFACE_INPUT_SIZE) {
    throw new Error(`iresnetGraph: images must be [N,3,112,112], got [${images.shape.join(',')}]`);
  }
  let x = images.sub(ARCFACE_MEAN).div(ARCFACE_STD);
  x = prelu(params, conv(params, x, 'conv1', config.stem, 3, 1), 'prelu');
  for (const b of iresnetBlocks(config)) {
    let y = affine(params, x, `${b.prefix}.bn1`);
    y = prelu(params, conv(params, y, `${b.prefix}.conv1`, b.outC, 3, 1), `${b.prefix}.prelu`);
    y = conv(params, y, `${b.prefix}.conv2`, b.outC, 3, b.stride);
    x = y.add(b.downsample ? conv(params, x, `${b.prefix}.downsample.0`, b.outC, 1, b.stride) : x);
  }
  x = affine(params, x, 'bn2').flatten(1);
  const fcIn = x.shape[1];
  x = linear(x, params.get('fc.weight', [config.embedding, fcIn]), params.get('fc.bias', [config.embedding]));
  return affine(params, x, 'features');
}

/** The declared parameter shapes of a config, by name. */
export function iresnetParamShapes(config: IResNetConfig, declared = new FrozenParams()): ReadonlyMap<string, readonly number[]> {
  // A shape-only build: the graph is not evaluated.
  iresnetGraph(shapeInput(), config, declared);
  return declared.declared;
}

const shapeInput = (): Tensor => input('shape_check', [1, 3, ARCFACE_INPUT_SIZE, ARCFACE_INPUT_SIZE]);
