/** ResnetBlock2D, Downsample2D and Upsample2D with diffusers names. */
import { upsampleNearest, type Tensor } from '../../compiler/index';
import { Conv2d, GroupNorm, Linear } from './layers';
import type { ParamScope } from './module';

export interface ResnetOptions {
  inChannels: number;
  outChannels: number;
  /** Width of the time embedding, or null (the VAE's blocks have no time_emb_proj). */
  tembChannels: number | null;
  groups: number;
  eps?: number;
}

/** h = conv1(silu(norm1(x))) + time_emb_proj(silu(temb)); h = conv2(silu(norm2(h)));
 * out = (conv_shortcut(x) or x) + h (output_scale_factor 1, dropout 0). */
export class ResnetBlock2D {
  readonly norm1: GroupNorm; readonly conv1: Conv2d;
  readonly timeEmbProj?: Linear;
  readonly norm2: GroupNorm; readonly conv2: Conv2d;
  readonly convShortcut?: Conv2d;
  constructor(s: ParamScope, o: ResnetOptions) {
    const eps = o.eps ?? 1e-5;
    this.norm1 = new GroupNorm(s.child('norm1'), o.groups, o.inChannels, eps);
    this.conv1 = new Conv2d(s.child('conv1'), o.inChannels, o.outChannels);
    if (o.tembChannels !== null) this.timeEmbProj = new Linear(s.child('time_emb_proj'), o.tembChannels, o.outChannels);
    this.norm2 = new GroupNorm(s.child('norm2'), o.groups, o.outChannels, eps);
    this.conv2 = new Conv2d(s.child('conv2'), o.outChannels, o.outChannels);
    if (o.inChannels !== o.outChannels) this.convShortcut = new Conv2d(s.child('conv_shortcut'), o.inChannels, o.outChannels, { kernel: 1 });
  }
  forward(x: Tensor, temb?: Tensor): Tensor {
    let h = this.conv1.forward(this.norm1.forward(x).silu());
    if (this.timeEmbProj) {
      if (!temb) throw new Error('ResnetBlock2D: this block needs a time embedding');
      const t = this.timeEmbProj.forward(temb.silu());
      h = h.add(t.reshape([t.shape[0], t.shape[1], 1, 1]));
    }
    h = this.conv2.forward(this.norm2.forward(h).silu());
    return (this.convShortcut ? this.convShortcut.forward(x) : x).add(h);
  }
}

/** `downsamplers.0.conv`: 3×3 stride 2. The UNet pads 1 on every side; the VAE encoder pads (0,1,0,1)
 * (right and bottom only) as diffusers does with padding=0. */
export class Downsample2D {
  readonly conv: Conv2d;
  constructor(s: ParamScope, channels: number, opts: { vaePadding?: boolean } = {}) {
    this.conv = new Conv2d(s.child('conv'), channels, channels, { stride: 2, padding: opts.vaePadding ? [0, 1, 0, 1] : 1 });
  }
  forward(x: Tensor): Tensor { return this.conv.forward(x); }
}

/** `upsamplers.0.conv`: nearest ×2, then 3×3 conv. */
export class Upsample2D {
  readonly conv: Conv2d;
  constructor(s: ParamScope, channels: number) { this.conv = new Conv2d(s.child('conv'), channels, channels); }
  forward(x: Tensor): Tensor { return this.conv.forward(upsampleNearest(x, 2)); }
}
