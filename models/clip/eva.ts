/** EVA02-CLIP vision tower, the one PuLID reads (`EVA02-CLIP-L-14-336`: eva_clip/eva_vit_model.py
 * EVAVisionTransformer as eva_clip/model.py builds it, vendored in ToTheBeginning/PuLID @1aa2fc7), keys as in the
 * EVA02-CLIP checkpoints under `visual.`:
 *   patch_embed.proj (conv, bias) → [cls_token, patches] + pos_embed →
 *   blocks.i: x += attn(norm1(x)); x += mlp(norm2(x))
 *     attn (sub-LN): q = q_proj x + q_bias, k = k_proj x, v = v_proj x + v_bias; 2-D rotary embedding on the patch
 *       tokens of q and k (not the class token); softmax(q kᵀ/√d) v; inner_attn_ln; proj
 *     mlp (naive SwiGLU, sub-LN): w3(ffn_ln(silu(w1 x) · w2 x))
 *   norm → class token → head: the image embedding (PuLID then L2-normalizes it).
 * Hidden state i is the input of block i (eva_vit_model.py appends x before blocks 4, 8, 12, 16, 20 under
 * return_hidden), the same indexing as ClipVisionModel's (0: the embeddings, i: after i blocks). LayerNorms have
 * eps 1e-6. Rotary (rope.py VisionRotaryEmbeddingFast, dim = head_dim/2, pt_seq_len = pt_hw_seq_len,
 * ft_seq_len = the patch grid): inverse frequencies θ_k = 1/10000^(2k/dim) in float32 as the reference makes them,
 * positions t_j = j/grid · pt_hw_seq_len; a patch (r, c) rotates the first dim channels by t_r·θ and the last dim by
 * t_c·θ, each frequency on an adjacent channel pair (rotate_half: (x₀, x₁) → (−x₁, x₀)). The checkpoint's
 * `rope.freqs_cos/sin` buffers are these values; Kiln computes them and does not read them. */
import { concat, constant, normalize, sdpa, type Tensor } from '../../compiler/index';
import { Conv2d, LayerNorm, Linear, ParamRegistry, type ParamScope, type RegistryOptions } from '../nn/index';
import type { ClipVisionOutput } from './vision';
import { openTensorFile, type TensorFile } from '../io/tensorFile';

const M = Math;

export interface EvaVisionConfig {
  kind: 'eva02';
  width: number;
  layers: number;
  /** Channels per head (64). */
  headWidth: number;
  /** SwiGLU hidden = floor(width · mlpRatio) (2.6667 → 2730). */
  mlpRatio: number;
  imageSize: number;
  patchSize: number;
  /** The head's output (the CLIP embedding width, 768). */
  embedDim: number;
  /** The rotary embedding's pretraining grid (16 = 224/14). */
  ptHwSeqLen: number;
  eps: number;
}

/** EVA02-CLIP-L-14-336 (model_configs/EVA02-CLIP-L-14-336.json). */
export const eva02ClipL14_336Config: EvaVisionConfig = {
  kind: 'eva02', width: 1024, layers: 24, headWidth: 64, mlpRatio: 2.6667, imageSize: 336, patchSize: 14, embedDim: 768, ptHwSeqLen: 16, eps: 1e-6,
};
/** Test widths: 16 wide, 2 heads of 8, 21 blocks (the hidden states before blocks 4…20 exist), 16 px / 4 px patches. */
export const tinyEvaVisionConfig: EvaVisionConfig = {
  kind: 'eva02', width: 16, layers: 21, headWidth: 8, mlpRatio: 2.6667, imageSize: 16, patchSize: 4, embedDim: 8, ptHwSeqLen: 16, eps: 1e-6,
};

export const isEvaVisionConfig = (c: object): c is EvaVisionConfig => (c as { kind?: string }).kind === 'eva02';
export const evaMlpHidden = (c: EvaVisionConfig): number => M.floor(c.width * c.mlpRatio);

/** cos and sin of the rotary angles, [grid², headWidth] (VisionRotaryEmbeddingFast.freqs_cos / freqs_sin). */
export function evaRotaryTables(c: EvaVisionConfig): { cos: Float64Array; sin: Float64Array } {
  const dim = c.headWidth / 2, grid = c.imageSize / c.patchSize, d = c.headWidth;
  const f = M.fround;
  const inv = Array.from({ length: dim / 2 }, (_v, k) => f(1 / f(10000 ** f((2 * k) / dim))));
  const t = Array.from({ length: grid }, (_v, j) => (j / grid) * c.ptHwSeqLen);
  const cos = new Float64Array(grid * grid * d), sin = new Float64Array(grid * grid * d);
  for (let r = 0; r < grid; r++) for (let col = 0; col < grid; col++) {
    const at = (r * grid + col) * d;
    for (let ch = 0; ch < d; ch++) {
      const half = ch < dim ? 0 : 1, k = M.floor((ch % dim) / 2);
      const angle = (half === 0 ? t[r]! : t[col]!) * inv[k]!;
      cos[at + ch] = M.cos(angle);
      sin[at + ch] = M.sin(angle);
    }
  }
  return { cos, sin };
}

/** rope.py rotate_half: channel pairs (x₀, x₁) → (−x₁, x₀). x [..., d]. */
function rotateHalf(x: Tensor): Tensor {
  const shape = x.shape, d = shape[shape.length - 1]!;
  const pairs = x.reshape([...shape.slice(0, -1), d / 2, 2]);
  const r = pairs.rank - 1;
  return concat([pairs.narrow(r, 1, 1).neg(), pairs.narrow(r, 0, 1)], r).reshape(shape);
}

class EvaAttention {
  readonly qProj: Linear; readonly kProj: Linear; readonly vProj: Linear;
  readonly qBias: Tensor; readonly vBias: Tensor;
  readonly innerLn: LayerNorm; readonly proj: Linear;
  constructor(s: ParamScope, private readonly c: EvaVisionConfig) {
    const w = c.width;
    this.qProj = new Linear(s.child('q_proj'), w, w, { bias: false });
    this.kProj = new Linear(s.child('k_proj'), w, w, { bias: false });
    this.vProj = new Linear(s.child('v_proj'), w, w, { bias: false });
    this.qBias = s.param('q_bias', [w], { kind: 'zeros' });
    this.vBias = s.param('v_bias', [w], { kind: 'zeros' });
    this.innerLn = new LayerNorm(s.child('inner_attn_ln'), w, c.eps);
    this.proj = new Linear(s.child('proj'), w, w);
  }
  forward(x: Tensor, rope: { cos: Tensor; sin: Tensor }): Tensor {
    const [b, n] = x.shape, h = this.c.width / this.c.headWidth, d = this.c.headWidth;
    const split = (t: Tensor) => t.reshape([b!, n!, h, d]).permute([0, 2, 1, 3]);
    const rotate = (t: Tensor) => {
      const patches = t.narrow(2, 1, n! - 1);
      return concat([t.narrow(2, 0, 1), patches.mul(rope.cos).add(rotateHalf(patches).mul(rope.sin))], 2);
    };
    const q = rotate(split(this.qProj.forward(x).add(this.qBias)));
    const k = rotate(split(this.kProj.forward(x)));
    const v = split(this.vProj.forward(x).add(this.vBias));
    const out = sdpa(q, k, v, { scale: d ** -0.5 }).permute([0, 2, 1, 3]).reshape([b!, n!, h * d]);
    return this.proj.forward(this.innerLn.forward(out));
  }
}

class EvaSwiGlu {
  readonly w1: Linear; readonly w2: Linear; readonly ffnLn: LayerNorm; readonly w3: Linear;
  constructor(s: ParamScope, c: EvaVisionConfig) {
    const hid = evaMlpHidden(c);
    this.w1 = new Linear(s.child('w1'), c.width, hid);
    this.w2 = new Linear(s.child('w2'), c.width, hid);
    this.ffnLn = new LayerNorm(s.child('ffn_ln'), hid, c.eps);
    this.w3 = new Linear(s.child('w3'), hid, c.width);
  }
  forward(x: Tensor): Tensor { return this.w3.forward(this.ffnLn.forward(this.w1.forward(x).silu().mul(this.w2.forward(x)))); }
}

class EvaBlock {
  readonly norm1: LayerNorm; readonly attn: EvaAttention; readonly norm2: LayerNorm; readonly mlp: EvaSwiGlu;
  constructor(s: ParamScope, c: EvaVisionConfig) {
    this.norm1 = new LayerNorm(s.child('norm1'), c.width, c.eps);
    this.attn = new EvaAttention(s.child('attn'), c);
    this.norm2 = new LayerNorm(s.child('norm2'), c.width, c.eps);
    this.mlp = new EvaSwiGlu(s.child('mlp'), c);
  }
  forward(x: Tensor, rope: { cos: Tensor; sin: Tensor }): Tensor {
    const h = x.add(this.attn.forward(this.norm1.forward(x), rope));
    return h.add(this.mlp.forward(this.norm2.forward(h)));
  }
}

export class EvaVisionModel {
  readonly registry: ParamRegistry;
  readonly patchEmbed: Conv2d;
  readonly clsToken: Tensor;
  readonly posEmbed: Tensor;
  readonly blocks: EvaBlock[] = [];
  readonly norm: LayerNorm;
  readonly head: Linear;
  constructor(readonly config: EvaVisionConfig, opts: RegistryOptions & { prefix?: string } = {}) {
    const c = config, w = c.width;
    if (c.imageSize % c.patchSize || w % c.headWidth || c.headWidth % 4) {
      throw new RangeError(`EVA vision config: image ${c.imageSize} / patch ${c.patchSize}, width ${w} / head ${c.headWidth} must divide (head width a multiple of 4)`);
    }
    this.registry = new ParamRegistry(opts);
    const s = this.registry.scope(opts.prefix ?? 'visual');
    this.patchEmbed = new Conv2d(s.child('patch_embed.proj'), 3, w, { kernel: c.patchSize, stride: c.patchSize, padding: 0 });
    this.clsToken = s.param('cls_token', [1, 1, w], { kind: 'normal', std: 0.02 });
    this.posEmbed = s.param('pos_embed', [1, this.tokens, w], { kind: 'normal', std: 0.02 });
    for (let i = 0; i < c.layers; i++) this.blocks.push(new EvaBlock(s.child(`blocks.${i}`), c));
    this.norm = new LayerNorm(s.child('norm'), w, c.eps);
    this.head = new Linear(s.child('head'), w, c.embedDim);
  }
  get tokens(): number { return (this.config.imageSize / this.config.patchSize) ** 2 + 1; }
  paramCount(): number { return this.registry.count(); }

  /** pixels [B, 3, S, S] (normalized with the OpenAI CLIP mean/std, as PuLID does for EVA). */
  forward(pixels: Tensor, opts: { hiddenStates?: readonly number[]; normalize?: boolean } = {}): ClipVisionOutput {
    const c = this.config, b = pixels.shape[0]!, w = c.width, n = this.tokens;
    const want = opts.hiddenStates ?? [];
    for (const i of want) if (!Number.isInteger(i) || i < 0 || i > c.layers) throw new RangeError(`EVA vision: hidden state ${i} of 0..${c.layers}`);
    const tables = evaRotaryTables(c);
    const rope = { cos: constant(tables.cos, [n - 1, c.headWidth]), sin: constant(tables.sin, [n - 1, c.headWidth]) };
    const patches = this.patchEmbed.forward(pixels).reshape([b, w, n - 1]).permute([0, 2, 1]);
    let x = concat([this.clsToken.expand([b, 1, w]), patches], 1).add(this.posEmbed);
    const states: Tensor[] = [x];
    for (const blk of this.blocks) { x = blk.forward(x, rope); states.push(x); }
    let imageEmbeds = this.head.forward(this.norm.forward(x).narrow(1, 0, 1).reshape([b, w]));
    if (opts.normalize) imageEmbeds = normalize(imageEmbeds, -1);
    return { imageEmbeds, hidden: want.map((i) => states[i]!) };
  }
}

/** An EVA vision checkpoint that does not fit the config (another width, depth or patch size, missing tensors);
 * raised before anything is copied into the store. */
export class EvaCheckpointError extends Error {
  constructor(readonly file: string, readonly missing: readonly string[], readonly mismatched: readonly { key: string; expected: readonly number[]; found: readonly number[] }[],
    readonly fileWidth?: number, readonly expectedWidth?: number) {
    const parts: string[] = [];
    if (fileWidth !== undefined && fileWidth !== expectedWidth) parts.push(`it is for width ${fileWidth} (cls_token), the config is ${expectedWidth}`);
    if (mismatched.length) parts.push(`${mismatched.length} tensors of another shape (${mismatched.slice(0, 3).map((m) => `${m.key} [${m.found}] ≠ [${m.expected}]`).join(', ')}${mismatched.length > 3 ? ', …' : ''})`);
    if (missing.length) parts.push(`${missing.length} missing (${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''})`);
    super(`EVA vision checkpoint ${file}: ${parts.join('; ')}; nothing loaded`);
    this.name = 'EvaCheckpointError';
  }
}

/** Loads an EVA02-CLIP vision tower from a safetensors file or a PyTorch checkpoint (the whole CLIP model's
 * `visual.*` keys, or the tower alone: the prefix is found from `cls_token`). Other keys (the text tower,
 * logit_scale, the rope buffers) are ignored. Every shape is checked first: a mismatch or a missing tensor is an
 * `EvaCheckpointError` and the store is left untouched. → the keys loaded. */
export function loadEvaVisionWeights(store: Map<string, Float64Array | ArrayLike<number>>, file: string | TensorFile, model: EvaVisionModel,
  opts: { prefix?: string } = {}): string[] {
  const f = typeof file === 'string' ? openTensorFile(file) : file;
  try {
    const names = [...f.names()];
    const own = opts.prefix ?? 'visual.';
    const clsName = names.find((k) => k === 'cls_token' || k.endsWith('.cls_token'));
    const filePrefix = clsName ? clsName.slice(0, -'cls_token'.length) : own;
    const fileWidth = clsName ? f.header.get(clsName)!.shape.at(-1) : undefined;
    const missing: string[] = [], mismatched: { key: string; expected: readonly number[]; found: readonly number[] }[] = [];
    const plan: [string, string][] = [];
    for (const [key, t] of model.registry.params) {
      const name = filePrefix + key.slice(own.length);
      const h = f.header.get(name);
      if (!h) { missing.push(key); continue; }
      if (h.shape.length !== t.shape.length || h.shape.some((d, i) => d !== t.shape[i])) { mismatched.push({ key, expected: t.shape, found: h.shape }); continue; }
      plan.push([key, name]);
    }
    if (missing.length || mismatched.length) throw new EvaCheckpointError(f.path, missing, mismatched, fileWidth, model.config.width);
    const read = plan.map(([key, name]) => [key, Float64Array.from(f.header.get(name)!.dtype === 'F64' ? (f.read(name).data as Float64Array) : f.readAsFloat32(name))] as const);
    for (const [key, v] of read) store.set(key, v);
    return plan.map(([key]) => key);
  } finally {
    if (typeof file === 'string') f.close();
  }
}
