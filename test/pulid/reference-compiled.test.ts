/** The compiled float32 (C++) side of test/pulid/reference.test.ts and test/models/eva.test.ts: one program holding
 * the IDFormer (one photo, two photos, zeros), the ID attention with NUM_ZERO 3 + ortho v2, and the tiny EVA02-CLIP
 * tower (class embedding + 5 hidden states), each within 1e-4 relative of the reference code's outputs. */
import { compile } from '../../compiler/index';
import { attentionGraph, attnFeeds, attnStore, evaGraph, evaModel, formerFeeds, formerOutputs, formerStore, get, relErr } from '../support/pulid-reference';

test('compiled float32: IDFormer, ID attention (numZero 3, ortho v2), EVA02 tower to 1e-4', async () => {
  const eva = evaModel();
  const evaOut = Object.fromEntries(Object.entries(evaGraph(eva.model)).map(([k, t]) => [`eva_${k}`, t]));
  const prog = await compile({ outputs: { ...formerOutputs(), attn: attentionGraph(3, 'ortho_v2'), ...evaOut } });
  prog.loadParams(new Map([...formerStore, ...attnStore, ...eva.store]));
  const y = prog.run({ ...formerFeeds, ...attnFeeds, pixels: get('eva.pixels') });
  for (const k of ['one', 'two', 'zeros']) expect(relErr(y[k]!, get(`idformer.out.${k}`))).toBeLessThan(1e-4);
  expect(relErr(y.attn!, get('attn.out.nz3.v2'))).toBeLessThan(1e-4);
  expect(relErr(y.eva_embeds!, get('eva.embeds'))).toBeLessThan(1e-4);
  for (let i = 0; i < 5; i++) expect(relErr(y[`eva_hidden_${i}`]!, get(`eva.hidden_${i}`))).toBeLessThan(1e-4);
}, 600_000);
