/** PuLID's IDEncoder (ToTheBeginning/PuLID `pulid/encoders.py`), keys as in the released checkpoint under
 * `id_adapter.`: `body` = Sequential(Linear, LayerNorm, LeakyReLU, Linear, LayerNorm, LeakyReLU, Linear) →
 * `body.0`, `body.1`, `body.3`, `body.4`, `body.6`; `mapping_{i}` / `mapping_patch_{i}` the same shape over the
 * ViT width. Output: [B, bodyTokens + vitLayers, contextDim] (10 × 2048 in the paper). */
import { concat, zeros, type Tensor } from '../../compiler/index';
import { LayerNorm, Linear, type ParamScope } from '../nn/index';
import type { IdEncoderConfig } from './config';

/** Linear · LayerNorm · LeakyReLU · Linear · LayerNorm · LeakyReLU · Linear (indices 0, 1, 3, 4, 6). */
export class Mlp3 {
  readonly l0: Linear; readonly n1: LayerNorm; readonly l3: Linear; readonly n4: LayerNorm; readonly l6: Linear;
  constructor(s: ParamScope, inDim: number, h1: number, h2: number, outDim: number) {
    this.l0 = new Linear(s.child('0'), inDim, h1);
    this.n1 = new LayerNorm(s.child('1'), h1);
    this.l3 = new Linear(s.child('3'), h1, h2);
    this.n4 = new LayerNorm(s.child('4'), h2);
    this.l6 = new Linear(s.child('6'), h2, outDim);
  }
  forward(x: Tensor): Tensor {
    const h = this.n1.forward(this.l0.forward(x)).leakyRelu(0.01);
    return this.l6.forward(this.n4.forward(this.l3.forward(h)).leakyRelu(0.01));
  }
}

export interface IdFeatures {
  /** id_cond = concat(face embedding, CLIP class embedding): [B, faceDim + clipEmbedDim]. */
  idCond: Tensor;
  /** The 5 chosen ViT hidden states, each [B, tokens, vitWidth] (token 0 = class token). */
  vitHidden: readonly Tensor[];
}

export class IdEncoder {
  readonly body: Mlp3;
  readonly mapping: Mlp3[] = [];
  readonly mappingPatch: Mlp3[] = [];
  /** `scope` is normally `registry.scope('id_adapter')`. */
  constructor(s: ParamScope, readonly config: IdEncoderConfig) {
    const c = config, w = c.vitWidth;
    this.body = new Mlp3(s.child('body'), c.faceDim + c.clipEmbedDim, c.bodyHidden[0], c.bodyHidden[1], c.contextDim * c.bodyTokens);
    for (let i = 0; i < c.vitLayers; i++) {
      this.mapping.push(new Mlp3(s.child(`mapping_${i}`), w, w, w, c.contextDim));
      this.mappingPatch.push(new Mlp3(s.child(`mapping_patch_${i}`), w, w, w, c.contextDim));
    }
  }
  get tokens(): number { return this.config.bodyTokens + this.config.vitLayers; }

  /** → [B, 10, contextDim]. */
  forward(f: IdFeatures): Tensor {
    const c = this.config, b = f.idCond.shape[0];
    if (f.vitHidden.length !== c.vitLayers) throw new Error(`IdEncoder: expected ${c.vitLayers} ViT hidden states, got ${f.vitHidden.length}`);
    const x = this.body.forward(f.idCond).reshape([b, c.bodyTokens, c.contextDim]);
    const mapped = f.vitHidden.map((h, i) => {
      const n = h.shape[1];
      const cls = this.mapping[i].forward(h.narrow(1, 0, 1));
      const patch = this.mappingPatch[i].forward(h.narrow(1, 1, n - 1)).mean(1, true);
      return cls.add(patch);
    });
    return concat([x, ...mapped], 1);
  }

  /** Several reference photos of one person (PuLID v1's app): the first photo's tokens, then each extra photo's —
   * all of them with `idMix`, else only its first `bodyTokens` (5) tokens (app.py: `supp[:, :5]` unless id_mix).
   * → [B, 10 + (R − 1)·(idMix ? 10 : 5), D]. */
  forwardMulti(refs: readonly IdFeatures[], opts: { idMix?: boolean } = {}): Tensor {
    return this.joinRefs(refs.map((r) => this.forward(r)), opts.idMix ?? true);
  }

  /** The unconditional ID embedding: the encoder applied to all-zero inputs (PuLID's uncond branch); with several
   * references, one copy per photo trimmed as `forwardMulti` trims (the app concatenates the uncond halves too). */
  unconditional(batch: number, vitTokens: number, opts: { references?: number; idMix?: boolean } = {}): Tensor {
    const c = this.config;
    const zero = (shape: number[]) => zeros(shape) as Tensor;
    const u = this.forward({ idCond: zero([batch, c.faceDim + c.clipEmbedDim]), vitHidden: Array.from({ length: c.vitLayers }, () => zero([batch, vitTokens, c.vitWidth])) });
    return this.joinRefs(Array(opts.references ?? 1).fill(u), opts.idMix ?? true);
  }

  /** ID tokens of one generation: v1 concatenates per photo (see forwardMulti). */
  tokensFor(refs: readonly IdFeatures[], opts: { idMix?: boolean } = {}): Tensor { return this.forwardMulti(refs, opts); }

  private joinRefs(per: readonly Tensor[], idMix: boolean): Tensor {
    if (per.length === 1) return per[0]!;
    return concat(per.map((t, i) => (i === 0 || idMix ? t : t.narrow(1, 0, this.config.bodyTokens))), 1);
  }
}
