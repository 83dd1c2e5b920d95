/** UNet2DConditionModel (SDXL layout) as Kiln modules, with diffusers state-dict keys. */
import { concat, type Tensor } from '../../compiler/index';
import { Conv2d, Downsample2D, GroupNorm, ParamRegistry, ResnetBlock2D, TimestepEmbedding, Transformer2DModel, Upsample2D, timestepEmbedding,
  type AttentionHooks, type ParamScope, type RegistryOptions } from '../nn/index';
import { pooledTextDim, type UnetConfig } from './config';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export interface UnetInputs {
  /** Noisy latents [B, inChannels, H, W] (already scaled by the scheduler's scale_model_input). */
  sample: Tensor;
  /** Timesteps [B] (or [1], broadcast), as floats. */
  timestep: Tensor;
  /** Text context [B, Lk, crossAttentionDim]. */
  encoderHiddenStates: Tensor;
  /** Pooled text embedding [B, pooledTextDim]. */
  textEmbeds: Tensor;
  /** Micro-conditioning [B, timeIds] (original h, w, crop top, left, target h, w). */
  timeIds: Tensor;
  hooks?: AttentionHooks;
}

interface Stage { resnets: ResnetBlock2D[]; attentions: Transformer2DModel[]; sampler?: Downsample2D | Upsample2D }

function transformer(s: ParamScope, c: UnetConfig, channels: number, heads: number, layers: number): Transformer2DModel {
  return new Transformer2DModel(s, { channels, heads, headDim: channels / heads, crossDim: c.crossAttentionDim, layers, groups: c.normGroups });
}

export class UNet2DConditionModel {
  readonly registry: ParamRegistry;
  readonly timeEmbedding: TimestepEmbedding;
  readonly addEmbedding: TimestepEmbedding;
  readonly convIn: Conv2d;
  readonly down: Stage[] = [];
  readonly mid: { resnets: ResnetBlock2D[]; attention: Transformer2DModel };
  readonly up: Stage[] = [];
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(readonly config: UnetConfig, opts: RegistryOptions & { registry?: ParamRegistry; prefix?: string } = {}) {
    const c = config;
    this.registry = opts.registry ?? new ParamRegistry(opts);
    const s = this.registry.scope(opts.prefix ?? '');
    const ch = c.blockOutChannels, n = ch.length, temb = ch[0] * 4;
    this.timeEmbedding = new TimestepEmbedding(s.child('time_embedding'), ch[0], temb);
    this.addEmbedding = new TimestepEmbedding(s.child('add_embedding'), c.projectionClassEmbeddingsInputDim, temb);
    this.convIn = new Conv2d(s.child('conv_in'), c.inChannels, ch[0]);
    const res = (sc: ParamScope, i: number, o: number) => new ResnetBlock2D(sc, { inChannels: i, outChannels: o, tembChannels: temb, groups: c.normGroups });

    let out = ch[0];
    for (let i = 0; i < n; i++) {
      const bs = s.child(`down_blocks.${i}`), inC = out;
      out = ch[i];
      const stage: Stage = { resnets: [], attentions: [] };
      for (let j = 0; j < c.layersPerBlock; j++) {
        stage.resnets.push(res(bs.child(`resnets.${j}`), j === 0 ? inC : out, out));
        if (c.crossAttnDown[i]) stage.attentions.push(transformer(bs.child(`attentions.${j}`), c, out, c.heads[i], c.transformerLayersPerBlock[i]));
      }
      if (i < n - 1) stage.sampler = new Downsample2D(bs.child('downsamplers.0'), out);
      this.down.push(stage);
    }

    const ms = s.child('mid_block'), top = ch[n - 1];
    this.mid = {
      resnets: [res(ms.child('resnets.0'), top, top), res(ms.child('resnets.1'), top, top)],
      attention: transformer(ms.child('attentions.0'), c, top, c.heads[n - 1], c.transformerLayersPerBlock[n - 1]),
    };

    const rch = [...ch].reverse(), rheads = [...c.heads].reverse(), rlayers = [...c.transformerLayersPerBlock].reverse();
    const rcross = [...c.crossAttnDown].reverse();
    let prev = rch[0];
    for (let i = 0; i < n; i++) {
      const bs = s.child(`up_blocks.${i}`), o = rch[i], inC = rch[M.min(i + 1, n - 1)];
      const stage: Stage = { resnets: [], attentions: [] };
      for (let j = 0; j <= c.layersPerBlock; j++) {
        const skip = j === c.layersPerBlock ? inC : o;
        stage.resnets.push(res(bs.child(`resnets.${j}`), (j === 0 ? prev : o) + skip, o));
        if (rcross[i]) stage.attentions.push(transformer(bs.child(`attentions.${j}`), c, o, rheads[i], rlayers[i]));
      }
      if (i < n - 1) stage.sampler = new Upsample2D(bs.child('upsamplers.0'), o);
      this.up.push(stage);
      prev = o;
    }
    this.convNormOut = new GroupNorm(s.child('conv_norm_out'), c.normGroups, ch[0]);
    this.convOut = new Conv2d(s.child('conv_out'), ch[0], c.outChannels);
  }

  /** Parameter count (every scalar of every parameter). */
  paramCount(): number { return this.registry.count(); }

  /** The time embedding plus the text_time added embedding: [B, 4·ch0]. */
  embedding(inp: Pick<UnetInputs, 'timestep' | 'textEmbeds' | 'timeIds' | 'sample'>): Tensor {
    const c = this.config, b = inp.sample.shape[0];
    let t = inp.timestep;
    if (t.size === 1 && b > 1) t = t.reshape([1]).expand([b]);
    const emb = this.timeEmbedding.forward(timestepEmbedding(t, c.blockOutChannels[0], { flipSinToCos: true, shift: 0 }));
    if (inp.textEmbeds.shape[1] !== pooledTextDim(c)) throw new Error(`unet: textEmbeds has width ${inp.textEmbeds.shape[1]}, the config expects ${pooledTextDim(c)}`);
    const ids = timestepEmbedding(inp.timeIds.reshape([b * c.timeIds]), c.additionTimeEmbedDim, { flipSinToCos: true, shift: 0 }).reshape([b, c.timeIds * c.additionTimeEmbedDim]);
    return emb.add(this.addEmbedding.forward(concat([inp.textEmbeds, ids], 1)));
  }

  /** The noise prediction [B, outChannels, H, W]. */
  forward(inp: UnetInputs): Tensor {
    const { encoderHiddenStates: ctx, hooks } = inp;
    const unit = (body: () => Tensor, inputs: readonly Tensor[]): Tensor => (hooks?.unit ? hooks.unit(body, inputs) : body());
    const emb = this.embedding(inp);
    let h = this.convIn.forward(inp.sample);
    const skips: Tensor[] = [h];
    for (const st of this.down) {
      st.resnets.forEach((r, j) => {
        const x0 = h;
        h = unit(() => r.forward(x0, emb), [x0]);
        if (st.attentions[j]) h = st.attentions[j].forward(h, ctx, hooks);
        skips.push(h);
      });
      if (st.sampler) { h = st.sampler.forward(h); skips.push(h); }
    }
    { const x0 = h; h = unit(() => this.mid.resnets[0].forward(x0, emb), [x0]); }
    h = this.mid.attention.forward(h, ctx, hooks);
    { const x0 = h; h = unit(() => this.mid.resnets[1].forward(x0, emb), [x0]); }
    for (const st of this.up) {
      st.resnets.forEach((r, j) => {
        const x0 = h, skip = skips.pop()!;
        h = unit(() => r.forward(concat([x0, skip], 1), emb), [x0, skip]);
        if (st.attentions[j]) h = st.attentions[j].forward(h, ctx, hooks);
      });
      if (st.sampler) h = st.sampler.forward(h);
    }
    return this.convOut.forward(this.convNormOut.forward(h).silu());
  }
}

/** Builds the model's parameters and returns a forward function: `unet(config)(inputs)`. */
export function unet(config: UnetConfig, inputs: UnetInputs, opts: RegistryOptions = {}): { model: UNet2DConditionModel; out: Tensor } {
  const model = new UNet2DConditionModel(config, opts);
  return { model, out: model.forward(inputs) };
}
