/** Generation options in the graph (no compile): id_mix trims the extra photos' tokens (cond and uncond alike),
 * v1.1 configs select the IDFormer (joint multi-photo encoding, 1-photo unconditional), the SDE sampler's noise
 * inputs, NUM_ZERO in the generation graph vs the float64 formula. */
import { concat, evaluate, type ParamStore } from '../../compiler/index';
import { normalFill } from '../../compiler/ir/philox';
import { microPulidConfig, microPulidV11Config, pulidConfigs, sdxlPulidV11Config, idTokens } from '../../models/pulid/config';
import { PulidModel, generateGraph } from '../../models/pulid/model';
import { IdEncoder } from '../../models/pulid/id-encoder';
import { IdFormer } from '../../models/pulid/id-former';
import { karrasSigmas, sdxlSchedulerConfig } from '../../models/sched/index';
import { materialize, saveParams, WeightLoadError } from '../../models/weights';
import { PulidPipeline } from '../../models/pulid/pipeline';
import { EvaCheckpointError } from '../../models/clip/index';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const micro = new PulidModel(microPulidConfig), v11 = new PulidModel(microPulidV11Config);
const D = microPulidConfig.idEncoder.contextDim;

describe('generateGraph options', () => {
  test('v1, two photos: idMix keeps all 10 tokens of the second, otherwise its first 5 (cond and uncond)', () => {
    expect(micro.idEncoder).toBeInstanceOf(IdEncoder);
    expect(generateGraph(micro, { references: 2, idMix: true }).tokens.shape).toEqual([1, 20, D]);
    expect(generateGraph(micro, { references: 2, idMix: false }).tokens.shape).toEqual([1, 15, D]);
    const enc = micro.idEncoder as IdEncoder, c = microPulidConfig.idEncoder;
    const a = micro.idInputs(1, 'a_'), b = micro.idInputs(1, 'b_');
    const feeds: Record<string, Float64Array> = { a_id_cond: normalFill(c.faceDim + c.clipEmbedDim, 1), b_id_cond: normalFill(c.faceDim + c.clipEmbedDim, 2) };
    for (let i = 0; i < 5; i++) { feeds[`a_vit_${i}`] = normalFill(micro.vitTokens * c.vitWidth, 10 + i); feeds[`b_vit_${i}`] = normalFill(micro.vitTokens * c.vitWidth, 20 + i); }
    const store: ParamStore = materialize(new Map(), micro.trainable);
    const y = evaluate({ outputs: {
      trimmed: enc.tokensFor([a, b], { idMix: false }), byHand: concat([enc.forward(a), enc.forward(b).narrow(1, 0, 5)], 1),
      u: enc.unconditional(1, micro.vitTokens, { references: 3, idMix: false }), u1: enc.unconditional(1, micro.vitTokens),
    } }, feeds, store).outputs;
    expect(Array.from(y.trimmed.data)).toEqual(Array.from(y.byHand.data));
    expect(y.u.shape).toEqual([1, 20, D]);
    const u1 = Array.from(y.u1.data);
    expect(Array.from(y.u.data)).toEqual([...u1, ...u1.slice(0, 5 * D), ...u1.slice(0, 5 * D)]);
  });

  test('v1.1 configs select the IDFormer: numQueries tokens for any number of photos; the v1.1 defaults', () => {
    expect(v11.idEncoder).toBeInstanceOf(IdFormer);
    const q = microPulidV11Config.idEncoder.former!.numQueries;
    expect(idTokens(microPulidV11Config.idEncoder)).toBe(q);
    for (const R of [1, 3]) expect(generateGraph(v11, { references: R, steps: 1 }).tokens.shape).toEqual([1, q, D]);
    expect(sdxlPulidV11Config.generation).toEqual({ ortho: 'v2', numZero: 20, sampler: 'dpmpp-sde-karras', cfg: 2, steps: 5 });
    expect(Object.keys(pulidConfigs)).toEqual(expect.arrayContaining(['sdxl-v1.1', 'tiny-v1.1', 'micro-v1.1']));
  });

  test('dpmpp-sde-karras: one sde_noise input per sub-step noise, Karras σs; euler asks none', () => {
    const g = generateGraph(micro, { sampler: 'dpmpp-sde-karras', steps: 3, guidance: 1.5, numZero: 4 });
    expect(g.sigmas).toEqual(karrasSigmas(sdxlSchedulerConfig, 3));
    expect(g.noiseQueries).toHaveLength(4);
    expect(g.noiseQueries[0]!.sigma).toBeCloseTo(g.sigmas[0]!, 12);
    expect(g.noiseQueries[0]!.sigmaNext).toBeCloseTo(Math.sqrt(g.sigmas[0]! * g.sigmas[1]!), 12);
    expect(g.noiseQueries[3]!.sigmaNext).toBeCloseTo(g.sigmas[2]!, 12);
    expect(generateGraph(micro, { steps: 2 }).noiseQueries).toEqual([]);
  });
});

describe('PulidPipeline.load: published adapter and vision weights', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-pulid-opts-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const eva = 'test/fixtures/pulid/eva.safetensors';

  test('an adapter file with the config\'s keys loads into the pipeline; another encoder\'s is a WeightLoadError', async () => {
    const file = path.join(dir, 'v11.safetensors');
    const store = materialize(new Map(), v11.trainable);
    for (const [k, v] of store) store.set(k, Float64Array.from(v, (_x, i) => 0.001 * (i % 7)));
    saveParams(file, store, v11.trainable, { dtype: 'F32' });
    const pipe = await PulidPipeline.load({ config: 'micro-v1.1', adapter: file, vision: eva });
    const got = (pipe as unknown as { store: Map<string, Float64Array> }).store.get('id_adapter.latents')!;
    expect(Array.from(got.slice(0, 8))).toEqual([0, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0].map(Math.fround));
    await expect(PulidPipeline.load({ config: 'micro', adapter: file })).rejects.toThrow(WeightLoadError);
  });

  test('--vision: the EVA checkpoint of another width is an EvaCheckpointError (micro-v1.1 takes it, a wider EVA does not)', async () => {
    const wide = { ...microPulidV11Config, vision: { ...microPulidV11Config.vision, width: 32, headWidth: 8 } };
    await expect(PulidPipeline.load({ config: wide, vision: eva })).rejects.toThrow(EvaCheckpointError);
  });
});
