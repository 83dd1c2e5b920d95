/** Prompt → SDXL-style text conditioning (two CLIP text encoders' penultimate states concatenated, pooled from the
 * second) with the frozen encoders of a config: tiny random encoders over the built-in tokenizer unless a diffusers
 * folder is given. Evaluated once per prompt on the float64 reference evaluator (tiny widths) and cached. */
import path from 'node:path';
import { evaluate, input, type ParamStore } from '../../compiler/index';
import { ClipTextModel, ClipTokenizer, clipBigGTextConfig, clipLTextConfig, sdxlTextConditioning, tinyClipTextConfig } from '../clip/index';
import { loadSafetensorsInto, materialize } from '../weights';
import { pooledTextDim } from '../unet/index';
import type { PulidConfig } from './config';

export interface TextConditioning { context: Float64Array; pooled: Float64Array }

export class TextConditioner {
  readonly tok1: ClipTokenizer;
  readonly tok2: ClipTokenizer;
  readonly enc1: ClipTextModel;
  readonly enc2: ClipTextModel;
  private store: ParamStore = new Map();
  private cache = new Map<string, TextConditioning>();
  constructor(readonly config: PulidConfig, opts: { weights?: string; seed?: number } = {}) {
    const L = config.textLength, seed = opts.seed ?? 0, w = opts.weights;
    if (w) {
      this.tok1 = ClipTokenizer.fromFiles(path.join(w, 'tokenizer/vocab.json'), path.join(w, 'tokenizer/merges.txt'), { length: L });
      this.tok2 = ClipTokenizer.fromFiles(path.join(w, 'tokenizer_2/vocab.json'), path.join(w, 'tokenizer_2/merges.txt'), { length: L, padToken: '!' });
      this.enc1 = new ClipTextModel(clipLTextConfig, { prefix: 'text_encoder' });
      this.enc2 = new ClipTextModel(clipBigGTextConfig, { prefix: 'text_encoder_2' });
      loadSafetensorsInto(this.store, path.join(w, 'text_encoder/model.safetensors'), this.enc1, { strict: false, addPrefix: 'text_encoder.' });
      loadSafetensorsInto(this.store, path.join(w, 'text_encoder_2/model.safetensors'), this.enc2, { strict: false, addPrefix: 'text_encoder_2.' });
    } else {
      this.tok1 = this.tok2 = ClipTokenizer.builtin({ length: L });
      const ctx = config.unet.crossAttentionDim, half = ctx / 2;
      const base = tinyClipTextConfig(this.tok1.vocabSize, this.tok1.eotId, null);
      this.enc1 = new ClipTextModel({ ...base, hiddenSize: half, intermediateSize: 2 * half }, { seed: seed + 11, prefix: 'text_encoder' });
      this.enc2 = new ClipTextModel({ ...base, hiddenSize: ctx - half, intermediateSize: 2 * (ctx - half), projectionDim: pooledTextDim(config.unet) }, { seed: seed + 12, prefix: 'text_encoder_2' });
    }
    materialize(this.store, this.enc1);
    materialize(this.store, this.enc2);
  }
  encode(prompt: string): TextConditioning {
    const hit = this.cache.get(prompt);
    if (hit) return hit;
    const L = this.config.textLength;
    const ids1 = input('ids1', [1, L], 'i32'), ids2 = input('ids2', [1, L], 'i32');
    const { context, pooled } = sdxlTextConditioning(this.enc1, this.enc2, ids1, ids2);
    const r = evaluate({ outputs: { context, pooled } }, { ids1: this.tok1.encode(prompt), ids2: this.tok2.encode(prompt) }, this.store).outputs;
    const out = { context: r.context.data, pooled: r.pooled.data };
    this.cache.set(prompt, out);
    return out;
  }
}

/** PuLID's fixed ID-loss prompt and a list of style prompts for the alignment branch (after the paper's ~15). */
export const ID_LOSS_PROMPT = 'portrait, color, cinematic';
export const STYLE_PROMPTS: readonly string[] = [
  'portrait, color, cinematic', 'a watercolor painting of a person', 'pencil sketch portrait', 'a person as a comic book hero',
  'oil painting portrait, renaissance', 'pixel art portrait', 'a person in the snow, winter coat', 'cyberpunk portrait, neon lights',
  'a person on the beach at sunset', 'anime style portrait', 'a clay figurine of a person', 'portrait in the style of van gogh',
  'a person wearing a spacesuit', 'black and white photo, film grain', 'a person as a medieval knight',
];
