/** LoRA as an adapter on any Linear or Conv2d: `y = W x + s · (α/r) · B(A x)`, attached by module path
 * (`down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q`), without touching the model's code.
 *
 * - Parameters: `down` (A) [r, in] or [r, in, kh, kw], `up` (B) [out, r] or [out, r, 1, 1], keyed
 *   `<adapter>.<module path>.lora.down.weight` / `.lora.up.weight` (diffusers' layout and init: A ~ N(0, 1/r),
 *   B = 0). Ranks and alphas are per module (kohya files mix them); α defaults to r (factor 1).
 * - The scale s is a runtime value: one non-trainable parameter `<adapter>.scale` with one entry per block group
 *   (`down_blocks.0` … `mid_block` … `up_blocks.2`, `other`), initialised to 1. `setScale` writes it into a
 *   ParamStore, `prog.setParam(adapter.scaleKey, adapter.scaleValues(...))` into a compiled program: changing it
 *   never recompiles. Several adapters on one layer add up, each with its own scales.
 * - Lowering: mode `operand` (default) folds the low-rank term into the base GEMM's / conv's weight operand,
 *   W' = W + c·(B·A), one small GEMM whose epilogue does the add (fusion anchors it), and the base kernel reads
 *   W'; mode `epilogue` computes u = A x and lets the B·u GEMM's epilogue add c·(B u) to the base output. Both are
 *   the same function; `operand` costs out·in·r per layer, `epilogue` tokens·(in + out)·r.
 * - `mergeLora` / `unmergeLora` fold the term into (out of) the base weights of a ParamStore in f32, as diffusers'
 *   `_fuse_lora` / `_unfuse_lora` do. */
import { conv2d, param, type Tensor, type ParamStore } from '../../compiler/index';
import { Conv2d, Linear, type LayerAdapter } from './layers';
import { hashKey } from './module';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export type LoraTarget = Linear | Conv2d;

/** The store key of a parameter tensor. */
export const keyOf = (t: Tensor): string => (t.node.attrs as { name: string }).name;

/** A LoRA file or option that does not fit the model: the message lists what was expected. */
export class LoraError extends Error {
  constructor(message: string, readonly code: 'unmatched-keys' | 'rank-mismatch' | 'alpha-missing' | 'no-target' | 'shape-mismatch' | 'format') {
    super(message);
    this.name = 'LoraError';
  }
}

/** Every Linear and Conv2d reachable from `model`, by module path (its weight's key without `.weight` and
 * without `stripPrefix`), in creation order of their weights. */
export function findLayers(model: object, stripPrefix = ''): Map<string, LoraTarget> {
  const found: [number, string, LoraTarget][] = [];
  const seen = new Set<object>();
  const walk = (o: unknown): void => {
    if (!o || typeof o !== 'object' || seen.has(o)) return;
    seen.add(o);
    if (o instanceof Linear || o instanceof Conv2d) {
      const key = keyOf(o.weight);
      let path = key.endsWith('.weight') ? key.slice(0, -7) : key;
      if (stripPrefix && path.startsWith(stripPrefix)) path = path.slice(stripPrefix.length);
      found.push([o.weight.node.id, path, o]);
      return;
    }
    if (o instanceof Map) { for (const v of o.values()) walk(v); return; }
    if ((o as { node?: unknown }).node !== undefined) return; // a Tensor
    for (const v of Object.values(o)) walk(v);
  };
  walk(model);
  found.sort((a, b) => a[0] - b[0]);
  return new Map(found.map(([, p, m]) => [p, m]));
}

/** SDXL block groups for per-block scales: `down_blocks.i`, `mid_block`, `up_blocks.i`, else `other`. */
export function sdxlBlockOf(path: string): string {
  const m = /^(down_blocks\.\d+|mid_block|up_blocks\.\d+)(\.|$)/.exec(path);
  return m ? m[1]! : 'other';
}

/** Which modules get a LoRA: exact module paths, or names matched against the end of the path
 * (`to_q` matches `….attn1.to_q`; `to_out.0` matches `….to_out.0`), or a predicate. */
export type TargetSpec = readonly string[] | ((path: string, layer: LoraTarget) => boolean);

export function matchTargets(layers: ReadonlyMap<string, LoraTarget>, targets: TargetSpec): string[] {
  if (typeof targets === 'function') return [...layers].filter(([p, l]) => targets(p, l)).map(([p]) => p);
  const out = [...layers.keys()].filter((p) => targets.some((t) => p === t || p.endsWith(`.${t}`)));
  const dead = targets.filter((t) => !out.some((p) => p === t || p.endsWith(`.${t}`)));
  if (dead.length) throw new LoraError(`LoRA targets ${dead.map((t) => `'${t}'`).join(', ')} match no Linear or Conv2d; the model has e.g. ${[...layers.keys()].slice(0, 6).join(', ')} (${layers.size} in all)`, 'no-target');
  return out;
}

/** Diffusers' UNet LoRA targets (train_dreambooth_lora_sdxl.py): the four attention projections. */
export const ATTENTION_TARGETS = ['to_q', 'to_k', 'to_v', 'to_out.0'] as const;

export interface LoraOptions {
  /** The adapter's name: prefix of its parameter keys and of its scale parameter (default 'lora'). */
  name?: string;
  /** Which modules (default ATTENTION_TARGETS). */
  targets?: TargetSpec;
  rank: number;
  /** α (default = rank: factor 1). Per-module values: `ranks` / `alphas` by module path. */
  alpha?: number;
  ranks?: ReadonlyMap<string, number>;
  alphas?: ReadonlyMap<string, number>;
  /** Trainable parameters (default true). */
  trainable?: boolean;
  mode?: 'operand' | 'epilogue';
  /** Block group of a module path, for per-block scales (default sdxlBlockOf). */
  blockOf?: (path: string) => string;
  /** The model's key prefix to strip from module paths (e.g. 'unet.'). */
  stripPrefix?: string;
  seed?: number;
}

export interface LoraLayer {
  readonly path: string;
  readonly layer: LoraTarget;
  readonly kind: 'linear' | 'conv';
  readonly rank: number;
  readonly alpha: number;
  readonly down: Tensor;
  readonly up: Tensor;
  readonly group: number;
  readonly adapter: LayerAdapter;
}

export class LoraAdapter {
  readonly name: string;
  readonly layers = new Map<string, LoraLayer>();
  readonly groups: string[];
  /** The runtime scale: one entry per group, a frozen parameter initialised to 1. */
  readonly scale: Tensor;
  readonly mode: 'operand' | 'epilogue';

  constructor(model: object, o: LoraOptions) {
    this.name = o.name ?? 'lora';
    this.mode = o.mode ?? 'operand';
    const all = findLayers(model, o.stripPrefix);
    const paths = matchTargets(all, o.targets ?? ATTENTION_TARGETS);
    const blockOf = o.blockOf ?? sdxlBlockOf;
    this.groups = [...new Set(paths.map(blockOf))];
    this.scale = param(this.scaleKey, [this.groups.length], { trainable: false, init: { kind: 'ones' } }) as Tensor;
    const trainable = o.trainable ?? true, seed = o.seed ?? 0;
    for (const path of paths) {
      const layer = all.get(path)!;
      const rank = o.ranks?.get(path) ?? o.rank, alpha = o.alphas?.get(path) ?? o.alpha ?? rank;
      if (!(Number.isInteger(rank) && rank > 0)) throw new LoraError(`LoRA ${this.name}: rank of ${path} is ${rank}, expected a positive integer`, 'rank-mismatch');
      const w = layer.weight.shape, kind = layer instanceof Conv2d ? 'conv' : 'linear';
      const key = (s: string) => `${this.name}.${path}.lora.${s}.weight`;
      const dSeed = (hashKey(key('down')) ^ M.imul(seed, 0x9e3779b1)) >>> 0;
      const down = param(key('down'), kind === 'conv' ? [rank, w[1]!, w[2]!, w[3]!] : [rank, w[1]!], { trainable, init: { kind: 'normal', std: 1 / rank, seed: dSeed } }) as Tensor;
      const up = param(key('up'), kind === 'conv' ? [w[0]!, rank, 1, 1] : [w[0]!, rank], { trainable, init: { kind: 'zeros' } }) as Tensor;
      const group = this.groups.indexOf(blockOf(path));
      const coef = () => this.scale.narrow(0, group, 1).mul(alpha / rank);
      const adapter: LayerAdapter = this.mode === 'operand'
        ? { weight: (wt) => wt.add(deltaWeight(kind, up, down, wt.shape).mul(coef())) }
        : { output: (x, y) => y.add(lowRank(kind, layer, x, down, up).mul(kind === 'conv' ? coef().reshape([1, 1, 1]) : coef())) };
      this.layers.set(path, { path, layer, kind, rank, alpha, down, up, group, adapter });
    }
    this.attach();
  }

  get scaleKey(): string { return `${this.name}.scale`; }

  /** The trainable tensors (down and up of every layer), in attachment order. */
  params(): Tensor[] { return [...this.layers.values()].flatMap((l) => [l.down, l.up]); }

  /** The scale vector: `value` everywhere, then `blocks` overrides by group name (unknown names throw). */
  scaleValues(value = 1, blocks: Readonly<Record<string, number>> = {}): Float64Array {
    const v = new Float64Array(this.groups.length).fill(value);
    for (const [g, s] of Object.entries(blocks)) {
      const i = this.groups.indexOf(g);
      if (i < 0) throw new LoraError(`LoRA ${this.name}: no block group '${g}'; the groups are ${this.groups.join(', ')}`, 'no-target');
      v[i] = s;
    }
    return v;
  }
  setScale(store: ParamStore, value = 1, blocks: Readonly<Record<string, number>> = {}): void { store.set(this.scaleKey, this.scaleValues(value, blocks)); }

  attach(): void { for (const l of this.layers.values()) if (!l.layer.adapters.includes(l.adapter)) l.layer.adapters.push(l.adapter); }
  detach(): void {
    for (const l of this.layers.values()) {
      const i = l.layer.adapters.indexOf(l.adapter);
      if (i >= 0) l.layer.adapters.splice(i, 1);
    }
  }
}

/** B·A laid out as the base weight ([out, in] or [out, in, kh, kw]). */
function deltaWeight(kind: 'linear' | 'conv', up: Tensor, down: Tensor, shape: readonly number[]): Tensor {
  if (kind === 'linear') return up.matmul(down as never);
  const [o, r] = up.shape, d = down.shape;
  return up.reshape([o!, r!]).matmul(down.reshape([r!, d[1]! * d[2]! * d[3]!]) as never).reshape([...shape]);
}

/** B(A x): the down projection with the base layer's stride and padding, the up projection 1×1. */
function lowRank(kind: 'linear' | 'conv', layer: LoraTarget, x: Tensor, down: Tensor, up: Tensor): Tensor {
  if (kind === 'linear') return x.matmul(down.mT() as never).matmul(up.mT() as never);
  const c = layer as Conv2d;
  return conv2d(conv2d(x, down, undefined, { stride: c.stride, padding: c.padding }), up);
}

/** Attach a LoRA to `model` (any object holding Linear / Conv2d modules, e.g. the UNet). */
export function attachLora(model: object, o: LoraOptions): LoraAdapter { return new LoraAdapter(model, o); }

function deltaValues(l: LoraLayer, store: ParamStore, scale: number): Float64Array {
  const A = store.get(keyOf(l.down)), B = store.get(keyOf(l.up));
  if (!A || !B) throw new LoraError(`mergeLora: ${l.path} has no values for its down/up weights in the store`, 'format');
  const r = l.rank, out = l.up.shape[0]!, inner = A.length / r, f = M.fround;
  const d = new Float64Array(out * inner);
  // f32 as diffusers' _fuse_lora: w_up · α / r first, then the float32 mm, then the scale.
  const Bs = Float64Array.from(B, (v) => f(f(f(v) * l.alpha) / r));
  for (let i = 0; i < out; i++) for (let j = 0; j < inner; j++) {
    let s = 0;
    for (let k = 0; k < r; k++) s = f(s + f(Bs[i * r + k]! * f(A[k * inner + j]!)));
    d[i * inner + j] = f(scale * s);
  }
  return d;
}

/** W ← f32(W + s·(α/r)·B·A) for every layer of the adapter, in the store (the base weights' keys). */
export function mergeLora(store: ParamStore, a: LoraAdapter, scale = 1): void { foldLora(store, a, scale, 1); }
/** W ← f32(W − s·(α/r)·B·A): undoes mergeLora with the same scale (to within one f32 ulp of the merged value). */
export function unmergeLora(store: ParamStore, a: LoraAdapter, scale = 1): void { foldLora(store, a, scale, -1); }

function foldLora(store: ParamStore, a: LoraAdapter, scale: number, sign: 1 | -1): void {
  for (const l of a.layers.values()) {
    const key = keyOf(l.layer.weight), W = store.get(key);
    if (!W) throw new LoraError(`mergeLora: no base weight '${key}' in the store`, 'format');
    const d = deltaValues(l, store, scale);
    const out = new Float64Array(W.length);
    for (let i = 0; i < W.length; i++) out[i] = M.fround(M.fround(W[i]!) + sign * d[i]!);
    store.set(key, out);
  }
}

/** The attention modules (`….attn1`, `….attn2`) in the order of diffusers' `unet.attn_processors`: down blocks, then
 * up blocks, then the mid block (the order UNet2DConditionModel registers them), attn1 before attn2 in each
 * transformer block. IP-Adapter checkpoints number their processors this way (`ip_adapter.{i}`, FaceID's
 * `{i}.to_q_lora.down.weight`): processor i is `attentionProcessorPaths(layers)[i]`, its projections
 * `<path>.to_q` … `<path>.to_out.0`. */
export function attentionProcessorPaths(layers: ReadonlyMap<string, LoraTarget>): string[] {
  const procs: string[] = [];
  for (const p of layers.keys()) {
    const m = /^(.*\.attn[12])\.to_q$/.exec(p);
    if (m) procs.push(m[1]!);
  }
  const rank = (p: string) => (p.startsWith('down_blocks.') ? 0 : p.startsWith('up_blocks.') ? 1 : p.startsWith('mid_block.') ? 2 : 3);
  return procs.map((p, i) => [p, i] as const).sort((a, b) => rank(a[0]) - rank(b[0]) || a[1] - b[1]).map(([p]) => p);
}
