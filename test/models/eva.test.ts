/** The EVA02-CLIP vision tower (models/clip/eva.ts) against eva_clip/eva_vit_model.py (PuLID @1aa2fc7) at test
 * widths, outputs written once by test/fixtures/pulid/generate.py: the rotary tables, the class-token embedding and
 * the 5 hidden states PuLID reads, float64 to 1e-6 relative (compiled f32: test/pulid/reference-compiled.test.ts); the loader takes the CLIP
 * checkpoint's `visual.*` keys and refuses a checkpoint of another width or with tensors missing, loading nothing. */
import { evaluate, type ParamStore } from '../../compiler/index';
import { openTensorFile, type TensorFile } from '../../models/io/tensorFile';
import { EvaCheckpointError, EvaVisionModel, evaRotaryTables, loadEvaVisionWeights, tinyEvaVisionConfig, eva02ClipL14_336Config, evaMlpHidden } from '../../models/clip/index';
import { evaGraph, evaModel, evaWeights as weights, get, relErr } from '../support/pulid-reference';

describe('EVA02-CLIP vision tower', () => {
  const { model, store, loaded } = evaModel();

  test('every visual.* parameter loads by key (rope buffers, text tower, logit_scale ignored); EVA02-CLIP-L-14-336 shapes', () => {
    expect(loaded.length).toBe(model.registry.params.size);
    expect(loaded).toEqual(expect.arrayContaining(['visual.blocks.20.attn.q_bias', 'visual.blocks.0.mlp.ffn_ln.weight', 'visual.head.weight', 'visual.pos_embed']));
    const big = new EvaVisionModel(eva02ClipL14_336Config), sh = big.registry.shapes();
    expect([sh.get('visual.pos_embed'), sh.get('visual.patch_embed.proj.weight'), sh.get('visual.blocks.23.mlp.w1.weight'), sh.get('visual.head.weight')])
      .toEqual([[1, 577, 1024], [1024, 3, 14, 14], [2730, 1024], [768, 1024]]);
    expect(evaMlpHidden(eva02ClipL14_336Config)).toBe(2730);
    expect(big.paramCount()).toBeGreaterThan(300e6);
  });

  test('rotary tables = VisionRotaryEmbeddingFast.freqs_cos', () => {
    expect(relErr(evaRotaryTables(tinyEvaVisionConfig).cos, get('eva.rope.freqs_cos'))).toBeLessThan(1e-12);
  });

  test('class embedding and the hidden states before blocks 4, 8, 12, 16, 20: float64 to 1e-6', () => {
    const y = evaluate({ outputs: evaGraph(model) }, { pixels: get('eva.pixels') }, store).outputs;
    expect(y.embeds!.shape).toEqual([2, 8]);
    expect(relErr(y.embeds!.data, get('eva.embeds'))).toBeLessThan(1e-6);
    for (let i = 0; i < 5; i++) {
      expect(y[`hidden_${i}`]!.shape).toEqual([2, 17, 16]);
      expect(relErr(y[`hidden_${i}`]!.data, get(`eva.hidden_${i}`))).toBeLessThan(1e-6);
    }
  });

  test('a checkpoint for another width, or with tensors missing, is an EvaCheckpointError and loads nothing', () => {
    const narrow = new EvaVisionModel({ ...tinyEvaVisionConfig, width: 8, headWidth: 4 });
    const s: ParamStore = new Map([['keep', new Float64Array([1])]]);
    let e: unknown;
    try { loadEvaVisionWeights(s, weights, narrow); } catch (x) { e = x; }
    expect(e).toBeInstanceOf(EvaCheckpointError);
    expect((e as Error).message).toMatch(/width 16 \(cls_token\), the config is 8/);
    expect((e as EvaCheckpointError).mismatched.length).toBeGreaterThan(100);
    expect([...s.keys()]).toEqual(['keep']);

    const f = openTensorFile(weights);
    const without: TensorFile = { ...f, path: f.path, header: new Map([...f.header].filter(([k]) => k !== 'visual.blocks.7.attn.v_bias')),
      names: () => f.names().filter((k) => k !== 'visual.blocks.7.attn.v_bias'), read: (n) => f.read(n), readAsFloat32: (n) => f.readAsFloat32(n), close: () => f.close() };
    expect(() => loadEvaVisionWeights(s, without, model)).toThrow(/1 missing \(visual.blocks.7.attn.v_bias\); nothing loaded/);
    f.close();
    expect([...s.keys()]).toEqual(['keep']);
  });
});
