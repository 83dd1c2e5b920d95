import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { evaluate, input } from '../../compiler/index';
import { normalFill } from '../../compiler/ir/philox';
import { ClipTextModel, ClipTokenizer, TokenizerFileError, ClipVisionModel, clipBigGTextConfig, clipLTextConfig, clipVitL14_336Config, tinyClipTextConfig, tinyClipVisionConfig } from '../../models/clip/index';
import { AutoencoderKL, sdxlVaeConfig, tinyVaeConfig } from '../../models/vae/index';
import { quickStore } from './ref';

describe('parameter counts of the real configs', () => {
  test('SDXL VAE, CLIP-L text, OpenCLIP bigG text (+projection), ViT-L/14-336', () => {
    expect(new AutoencoderKL(sdxlVaeConfig).paramCount()).toBe(83_653_863);
    expect(new ClipTextModel(clipLTextConfig).paramCount()).toBe(123_060_480);
    expect(new ClipTextModel(clipBigGTextConfig).paramCount()).toBe(694_659_840);
    const v = new ClipVisionModel(clipVitL14_336Config);
    expect(v.tokens).toBe(577);
    expect(v.paramCount()).toBe(303_507_456 + 768 * 1024); // CLIPVisionModel ViT-L/14-336 + visual_projection
  });
});

describe('tokenizer', () => {
  test('built-in vocabulary: CLIP construction, BPE merges, padding, round trip', () => {
    const tok = ClipTokenizer.builtin({ length: 16 });
    expect(tok.vocabSize).toBe(512 + 32 + 2);
    const ids = tok.encode('The  Cat in the hat!');
    expect(ids.length).toBe(16);
    expect(ids[0]).toBe(tok.sotId);
    // "the" → th e</w> → "the</w>" (merge 6), "in" → "in</w>" (merge 18), "!" → "!</w>" (byte 0 + 256).
    const v = tok.vocab;
    expect(ids.slice(1, 9)).toEqual([v.get('the</w>'), v.get('c'), v.get('at</w>'), v.get('in</w>'), v.get('the</w>'), v.get('h'), v.get('at</w>'), v.get('!</w>')]);
    expect(ids[9]).toBe(tok.eotId);
    expect(ids.slice(10).every((i) => i === tok.padId)).toBe(true);
    expect(tok.decode(ids)).toBe('the cat in the hat !');
    expect(tok.encode('x'.repeat(40) + ' y').length).toBe(16);
  });

  test('loads vocab.json / merges.txt', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tok-'));
    const vocab = { 'h': 0, 'i</w>': 1, 'hi</w>': 2, '<|startoftext|>': 3, '<|endoftext|>': 4, '!': 5 };
    fs.writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(vocab));
    fs.writeFileSync(path.join(dir, 'merges.txt'), '#version: 0.2\nh i</w>\n');
    const tok = ClipTokenizer.fromFiles(path.join(dir, 'vocab.json'), path.join(dir, 'merges.txt'), { length: 5, padToken: '!' });
    expect(tok.encode('HI')).toEqual([3, 2, 4, 5, 5]);
    for (const [text, re] of [['', /vocab\.json: not a vocab\.json.*empty file/], ['[1]', /expected an object, found \[1\]/], ['{"h": -1}', /\.h: expected an integer ≥ 0, found -1/]] as const) {
      fs.writeFileSync(path.join(dir, 'vocab.json'), text);
      expect(() => ClipTokenizer.fromFiles(path.join(dir, 'vocab.json'), path.join(dir, 'merges.txt'))).toThrow(TokenizerFileError);
      expect(() => ClipTokenizer.fromFiles(path.join(dir, 'vocab.json'), path.join(dir, 'merges.txt'))).toThrow(re);
    }
    fs.rmSync(dir, { recursive: true });
  });
});

describe('tiny CLIP text encoder', () => {
  test('penultimate / pooled at the first EOS, causal', () => {
    const tok = ClipTokenizer.builtin({ length: 16 });
    const m = new ClipTextModel(tinyClipTextConfig(tok.vocabSize, tok.eotId, null));
    const ids = input('ids', [2, 16], 'i32');
    const out = m.forward(ids);
    const a = tok.encode('a photo of the cat'), b = tok.encode('a photo of the dog');
    const st = quickStore(m.registry.params);
    const r = evaluate({ outputs: { pen: out.penultimate, last: out.last, pooled: out.pooled } }, { ids: [...a, ...b] }, st).outputs;
    expect(r.pen.shape).toEqual([2, 16, 16]);
    const eos = a.indexOf(tok.eotId);
    expect(Array.from(r.pooled.data.slice(0, 16))).toEqual(Array.from(r.last.data.slice(eos * 16, eos * 16 + 16)));
    // causal: the two prompts differ from token 5 on, so every earlier position is identical.
    const first = a.findIndex((v, i) => v !== b[i]);
    expect(first).toBeGreaterThan(3);
    expect(Array.from(r.pen.data.slice(0, first * 16))).toEqual(Array.from(r.pen.data.slice(256, 256 + first * 16)));
    expect(r.pen.data[first * 16]).not.toBe(r.pen.data[256 + first * 16]);
    expect([...m.registry.params.keys()].slice(0, 3)).toEqual(['text_model.embeddings.token_embedding.weight', 'text_model.embeddings.position_embedding.weight', 'text_model.encoder.layers.0.layer_norm1.weight']);
  });
});

describe('tiny CLIP vision and VAE', () => {
  test('vision: class embedding and intermediate hidden states', () => {
    const m = new ClipVisionModel(tinyClipVisionConfig);
    const px = input('px', [1, 3, 16, 16]);
    const out = m.forward(px, { hiddenStates: [1, 2, -1], normalize: true });
    const r = evaluate({ outputs: { e: out.imageEmbeds, h0: out.hidden[0], h2: out.hidden[2] } }, { px: normalFill(768, 1) }, quickStore(m.registry.params)).outputs;
    expect(r.e.shape).toEqual([1, 8]);
    expect(r.e.data.reduce((s, v) => s + v * v, 0)).toBeCloseTo(1, 12);
    expect(r.h0.shape).toEqual([1, 17, 16]);
    expect(r.h2.shape).toEqual([1, 17, 16]);
  });

  test('VAE: encode 32×32 → 4×4×4 latents, decode back to 32×32×3; diffusers keys', () => {
    const m = new AutoencoderKL(tinyVaeConfig);
    const img = input('img', [1, 3, 32, 32]);
    const z = m.encoder.encode(img);
    const x = m.decoder.decode(z);
    expect(z.shape).toEqual([1, 4, 4, 4]);
    const r = evaluate({ outputs: { z, x } }, { img: normalFill(3 * 32 * 32, 2) }, quickStore(m.registry.params)).outputs;
    expect(r.x.shape).toEqual([1, 3, 32, 32]);
    expect(r.x.data.every(Number.isFinite)).toBe(true);
    const keys = [...m.registry.params.keys()];
    for (const k of ['encoder.mid_block.attentions.0.group_norm.weight', 'encoder.mid_block.attentions.0.to_q.bias', 'encoder.down_blocks.0.downsamplers.0.conv.weight',
      'quant_conv.weight', 'post_quant_conv.weight', 'decoder.up_blocks.0.upsamplers.0.conv.weight', 'decoder.up_blocks.3.resnets.0.conv_shortcut.weight']) {
      expect(keys).toContain(k);
    }
  });
});
