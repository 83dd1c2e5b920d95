/** Leaf modules with PyTorch parameter layouts and names: Linear (weight [out, in], bias), Conv2d (weight
 * [out, in, kh, kw], bias), GroupNorm and LayerNorm (weight, bias). */
import { conv2d, groupNorm, layerNorm, linear, type Tensor } from '../../compiler/index';
import type { ParamScope } from './module';

/** Something attached to a Linear or Conv2d that changes what it computes without changing its parameters:
 * `weight` rewrites the weight operand before the GEMM / conv (LoRA's merged-operand form, W + s·B·A),
 * `output` rewrites the result given the input (LoRA's epilogue form, y + s·B(A x)). Adapters apply in the
 * order attached; `models/nn/lora.ts` is the one user. */
export interface LayerAdapter {
  weight?(w: Tensor): Tensor;
  output?(x: Tensor, y: Tensor): Tensor;
}

function adapted(adapters: readonly LayerAdapter[], w: Tensor): Tensor {
  for (const a of adapters) if (a.weight) w = a.weight(w);
  return w;
}
function adaptedOut(adapters: readonly LayerAdapter[], x: Tensor, y: Tensor): Tensor {
  for (const a of adapters) if (a.output) y = a.output(x, y);
  return y;
}

export class Linear {
  readonly weight: Tensor;
  readonly bias?: Tensor;
  constructor(s: ParamScope, readonly inFeatures: number, readonly outFeatures: number, opts: { bias?: boolean } = {}) {
    this.weight = s.param('weight', [outFeatures, inFeatures], { kind: 'fanIn', fanIn: inFeatures });
    if (opts.bias ?? true) this.bias = s.param('bias', [outFeatures], { kind: 'fanIn', fanIn: inFeatures, bias: true });
  }
  /** Attached adapters (LoRA); empty for a plain layer. */
  readonly adapters: LayerAdapter[] = [];
  forward(x: Tensor): Tensor {
    if (!this.adapters.length) return linear(x, this.weight, this.bias);
    return adaptedOut(this.adapters, x, linear(x, adapted(this.adapters, this.weight), this.bias));
  }
}

export interface Conv2dOptions { kernel?: number; stride?: number; padding?: number | readonly [number, number, number, number]; bias?: boolean }

export class Conv2d {
  readonly weight: Tensor;
  readonly bias?: Tensor;
  readonly stride: number;
  readonly padding: number | readonly [number, number, number, number];
  constructor(s: ParamScope, readonly inChannels: number, readonly outChannels: number, opts: Conv2dOptions = {}) {
    const k = opts.kernel ?? 3;
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? (k - 1) / 2;
    const fanIn = inChannels * k * k;
    this.weight = s.param('weight', [outChannels, inChannels, k, k], { kind: 'fanIn', fanIn });
    if (opts.bias ?? true) this.bias = s.param('bias', [outChannels], { kind: 'fanIn', fanIn, bias: true });
  }
  /** Attached adapters (LoRA); empty for a plain layer. */
  readonly adapters: LayerAdapter[] = [];
  forward(x: Tensor): Tensor {
    const o = { stride: this.stride, padding: this.padding };
    if (!this.adapters.length) return conv2d(x, this.weight, this.bias, o);
    return adaptedOut(this.adapters, x, conv2d(x, adapted(this.adapters, this.weight), this.bias, o));
  }
}

export class GroupNorm {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(s: ParamScope, readonly groups: number, readonly channels: number, readonly eps = 1e-5) {
    if (channels % groups) throw new Error(`GroupNorm ${s.prefix}: ${channels} channels do not split into ${groups} groups`);
    this.weight = s.param('weight', [channels], { kind: 'ones' });
    this.bias = s.param('bias', [channels], { kind: 'zeros' });
  }
  forward(x: Tensor): Tensor { return groupNorm(x, this.groups, this.weight, this.bias, this.eps); }
}

export class LayerNorm {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(s: ParamScope, readonly dim: number, readonly eps = 1e-5) {
    this.weight = s.param('weight', [dim], { kind: 'ones' });
    this.bias = s.param('bias', [dim], { kind: 'zeros' });
  }
  forward(x: Tensor): Tensor { return layerNorm(x, this.weight, this.bias, this.eps); }
}
