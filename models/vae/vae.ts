/** AutoencoderKL (diffusers keys: encoder.*, quant_conv, post_quant_conv, decoder.*): the encoder makes
 * training latents, the decoder turns sampled latents into images. */
import type { Tensor } from '../../compiler/index';
import { Attention, Conv2d, Downsample2D, GroupNorm, ParamRegistry, ResnetBlock2D, Upsample2D, type ParamScope, type RegistryOptions } from '../nn/index';

export interface VaeConfig {
  inChannels: number;
  outChannels: number;
  latentChannels: number;
  blockOutChannels: readonly number[];
  layersPerBlock: number;
  normGroups: number;
  /** Latents are multiplied by this after encoding and divided by it before decoding. */
  scalingFactor: number;
}

/** SDXL's VAE (sdxl-vae / the base model's vae/ folder). */
export const sdxlVaeConfig: VaeConfig = { inChannels: 3, outChannels: 3, latentChannels: 4, blockOutChannels: [128, 256, 512, 512], layersPerBlock: 2, normGroups: 32, scalingFactor: 0.13025 };
/** Same structure, small: 8× downsampling, like the real one. */
export const tinyVaeConfig: VaeConfig = { inChannels: 3, outChannels: 3, latentChannels: 4, blockOutChannels: [8, 16, 16, 16], layersPerBlock: 1, normGroups: 4, scalingFactor: 0.13025 };

const EPS = 1e-6;

/** The VAE's single-head spatial self-attention: group_norm → to_q/k/v (with biases) → to_out.0, residual. */
class VaeAttention {
  readonly norm: GroupNorm;
  readonly attn: Attention;
  constructor(s: ParamScope, channels: number, groups: number) {
    this.norm = new GroupNorm(s.child('group_norm'), groups, channels, EPS);
    this.attn = new Attention(s, { queryDim: channels, heads: 1, headDim: channels, qkvBias: true });
  }
  forward(x: Tensor): Tensor {
    const [b, c, h, w] = x.shape;
    const t = this.norm.forward(x).reshape([b, c, h * w]).permute([0, 2, 1]);
    return this.attn.forward(t).permute([0, 2, 1]).reshape([b, c, h, w]).add(x);
  }
}

class MidBlock {
  readonly resnets: ResnetBlock2D[];
  readonly attention: VaeAttention;
  constructor(s: ParamScope, ch: number, groups: number) {
    const r = (i: number) => new ResnetBlock2D(s.child(`resnets.${i}`), { inChannels: ch, outChannels: ch, tembChannels: null, groups, eps: EPS });
    this.resnets = [r(0), r(1)];
    this.attention = new VaeAttention(s.child('attentions.0'), ch, groups);
  }
  forward(x: Tensor): Tensor { return this.resnets[1].forward(this.attention.forward(this.resnets[0].forward(x))); }
}

export class VaeEncoder {
  readonly convIn: Conv2d;
  readonly blocks: { resnets: ResnetBlock2D[]; down?: Downsample2D }[] = [];
  readonly mid: MidBlock;
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;
  readonly quantConv: Conv2d;
  constructor(root: ParamScope, readonly config: VaeConfig) {
    const c = config, s = root.child('encoder'), ch = c.blockOutChannels;
    this.convIn = new Conv2d(s.child('conv_in'), c.inChannels, ch[0]);
    let out = ch[0];
    ch.forEach((o, i) => {
      const bs = s.child(`down_blocks.${i}`), inC = out;
      out = o;
      const resnets = Array.from({ length: c.layersPerBlock }, (_v, j) =>
        new ResnetBlock2D(bs.child(`resnets.${j}`), { inChannels: j === 0 ? inC : o, outChannels: o, tembChannels: null, groups: c.normGroups, eps: EPS }));
      this.blocks.push({ resnets, down: i < ch.length - 1 ? new Downsample2D(bs.child('downsamplers.0'), o, { vaePadding: true }) : undefined });
    });
    const top = ch[ch.length - 1];
    this.mid = new MidBlock(s.child('mid_block'), top, c.normGroups);
    this.normOut = new GroupNorm(s.child('conv_norm_out'), c.normGroups, top, EPS);
    this.convOut = new Conv2d(s.child('conv_out'), top, 2 * c.latentChannels);
    this.quantConv = new Conv2d(root.child('quant_conv'), 2 * c.latentChannels, 2 * c.latentChannels, { kernel: 1 });
  }
  /** Image [B, 3, H, W] in [-1, 1] → the posterior's moments [B, 2·latent, H/8, W/8] (mean, logvar). */
  moments(x: Tensor): Tensor {
    let h = this.convIn.forward(x);
    for (const b of this.blocks) {
      for (const r of b.resnets) h = r.forward(h);
      if (b.down) h = b.down.forward(h);
    }
    h = this.convOut.forward(this.normOut.forward(this.mid.forward(h)).silu());
    return this.quantConv.forward(h);
  }
  /** Scaled latents: the posterior mean, or mean + std·noise when `noise` is given, times scalingFactor. */
  encode(x: Tensor, noise?: Tensor): Tensor {
    const m = this.moments(x), L = this.config.latentChannels;
    let z = m.narrow(1, 0, L);
    if (noise) z = z.add(m.narrow(1, L, L).maximum(-30).minimum(20).mul(0.5).exp().mul(noise));
    return z.mul(this.config.scalingFactor);
  }
}

export class VaeDecoder {
  readonly postQuantConv: Conv2d;
  readonly convIn: Conv2d;
  readonly mid: MidBlock;
  readonly blocks: { resnets: ResnetBlock2D[]; up?: Upsample2D }[] = [];
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;
  constructor(root: ParamScope, readonly config: VaeConfig) {
    const c = config, s = root.child('decoder'), rch = [...c.blockOutChannels].reverse();
    this.postQuantConv = new Conv2d(root.child('post_quant_conv'), c.latentChannels, c.latentChannels, { kernel: 1 });
    this.convIn = new Conv2d(s.child('conv_in'), c.latentChannels, rch[0]);
    this.mid = new MidBlock(s.child('mid_block'), rch[0], c.normGroups);
    let prev = rch[0];
    rch.forEach((o, i) => {
      const bs = s.child(`up_blocks.${i}`);
      const resnets = Array.from({ length: c.layersPerBlock + 1 }, (_v, j) =>
        new ResnetBlock2D(bs.child(`resnets.${j}`), { inChannels: j === 0 ? prev : o, outChannels: o, tembChannels: null, groups: c.normGroups, eps: EPS }));
      this.blocks.push({ resnets, up: i < rch.length - 1 ? new Upsample2D(bs.child('upsamplers.0'), o) : undefined });
      prev = o;
    });
    const last = rch[rch.length - 1];
    this.normOut = new GroupNorm(s.child('conv_norm_out'), c.normGroups, last, EPS);
    this.convOut = new Conv2d(s.child('conv_out'), last, c.outChannels);
  }
  /** Scaled latents [B, 4, h, w] → image [B, 3, 8h, 8w], roughly in [-1, 1]. */
  /** `unit` wraps each resnet block, the mid block's attention and each upsampler (e.g. in a checkpoint segment,
   * models/pulid/losses.ts); the identity when absent. */
  decode(z: Tensor, opts: { unit?: (body: () => Tensor, inputs: readonly Tensor[]) => Tensor } = {}): Tensor {
    const unit = opts.unit ?? ((body: () => Tensor, _inputs: readonly Tensor[]) => body());
    let h = this.convIn.forward(this.postQuantConv.forward(z.mul(1 / this.config.scalingFactor)));
    { const x0 = h; h = unit(() => this.mid.resnets[0].forward(x0), [x0]); }
    { const x0 = h; h = unit(() => this.mid.attention.forward(x0), [x0]); }
    { const x0 = h; h = unit(() => this.mid.resnets[1].forward(x0), [x0]); }
    for (const b of this.blocks) {
      for (const r of b.resnets) { const x0 = h; h = unit(() => r.forward(x0), [x0]); }
      if (b.up) { const up = b.up, x0 = h; h = unit(() => up.forward(x0), [x0]); }
    }
    const x0 = h;
    return unit(() => this.convOut.forward(this.normOut.forward(x0).silu()), [x0]);
  }
}

/** Encoder and decoder under one registry (keys as in diffusers' vae/diffusion_pytorch_model.safetensors).
 * For decoding only, build `new VaeDecoder(new ParamRegistry().scope(), config)` alone. */
export class AutoencoderKL {
  readonly registry: ParamRegistry;
  readonly encoder: VaeEncoder;
  readonly decoder: VaeDecoder;
  constructor(readonly config: VaeConfig, opts: RegistryOptions = {}) {
    this.registry = new ParamRegistry(opts);
    this.encoder = new VaeEncoder(this.registry.scope(), config);
    this.decoder = new VaeDecoder(this.registry.scope(), config);
  }
  paramCount(): number { return this.registry.count(); }
}
