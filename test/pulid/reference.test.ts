/** PuLID's inference options and v1.1's IDFormer against outputs of the reference code (ToTheBeginning/PuLID
 * @1aa2fc7, written once by test/fixtures/pulid/generate.py): the ID attention (IDAttnProcessor2_0) with NUM_ZERO
 * and ortho off / v1 / v2, and IDFormer for one photo, two photos encoded jointly, and zeros. Float64 evaluator to
 * 1e-6 relative (measured: 5e-16 plain; 2e-8–3e-8 ortho v1/v2 and 6e-8–7e-8 IDFormer, where the reference
 * itself casts to float32: the ortho branches' .to(torch.float32), IDFormer's softmax(weight.float())); the compiled float32 check is test/pulid/reference-compiled.test.ts. */
import { evaluate } from '../../compiler/index';
import { ParamRegistry } from '../../models/nn/index';
import { IdFormer } from '../../models/pulid/id-former';
import { idFormerV11, sdxlPulidConfig } from '../../models/pulid/config';
import {
  attentionGraph, attnCases, attnFeeds, attnStore, B, formerConfig, formerFeeds, formerOutputs, formerStore, get, LQ, ORTHO, QD, relErr, shapeOf,
} from '../support/pulid-reference';

describe('ID attention options vs IDAttnProcessor2_0 (NUM_ZERO, ORTHO, ORTHO_v2)', () => {
  test.each(attnCases)('numZero %i, ortho %s: float64 to 1e-6', (nz, ortho) => {
    const y = evaluate({ outputs: { y: attentionGraph(nz, ORTHO[ortho]!) } }, attnFeeds, attnStore).outputs.y;
    expect(y.shape).toEqual([B, LQ, QD]);
    expect(relErr(y.data, get(`attn.out.nz${nz}.${ortho}`))).toBeLessThan(1e-6);
  });

  test('the zero tokens matter: numZero 3 differs from 0 in every mode', () => {
    for (const o of Object.keys(ORTHO)) expect(relErr(get(`attn.out.nz3.${o}`), get(`attn.out.nz0.${o}`))).toBeGreaterThan(1e-3);
  });
});

describe('IDFormer (pulid/encoders_transformer.py)', () => {
  test('keys and shapes are the reference state dict (every fixture key used, none missing)', () => {
    const reg = new ParamRegistry({ trainable: true });
    new IdFormer(reg.scope('id_adapter'), formerConfig);
    const shapes = reg.shapes();
    expect([...shapes.keys()].sort()).toEqual([...formerStore.keys()].sort());
    for (const [k, s] of shapes) expect([k, s]).toEqual([k, shapeOf(k.replace('id_adapter.', 'idformer.'))]);
    // The published widths: 32 queries × 2048 out, 10 layers, mappings 1024 → 1024, id_cond 1280 → 5 × 1024.
    const big = new ParamRegistry();
    new IdFormer(big.scope('id_adapter'), { ...sdxlPulidConfig.idEncoder, former: idFormerV11 });
    const bs = big.shapes();
    expect([bs.get('id_adapter.latents'), bs.get('id_adapter.proj_out'), bs.get('id_adapter.layers.9.0.to_kv.weight'), bs.get('id_adapter.id_embedding_mapping.6.weight'),
      bs.get('id_adapter.mapping_4.0.weight'), bs.get('id_adapter.layers.0.1.1.weight')])
      .toEqual([[1, 32, 1024], [1024, 2048], [2048, 1024], [5120, 1024], [1024, 1024], [4096, 1024]]);
  });

  test('one photo, two photos jointly, zeros: float64 to 1e-6', () => {
    const y = evaluate({ outputs: formerOutputs() }, formerFeeds, formerStore).outputs;
    for (const k of ['one', 'two', 'zeros']) {
      expect(y[k]!.shape).toEqual([B, 6, 12]);
      expect(relErr(y[k]!.data, get(`idformer.out.${k}`))).toBeLessThan(1e-6);
    }
    // the second photo changes the tokens (joint encoding, not the first photo's alone)
    expect(relErr(get('idformer.out.two'), get('idformer.out.one'))).toBeGreaterThan(1e-2);
  });

});
