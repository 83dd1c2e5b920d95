/** examples/ip-adapter-generate.ts in process, on the float64 evaluator with the tiny pipeline: portrait (three face
 * embeddings from a JSON file, stacked) under guidance, so the unconditional image tokens are used too. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { normalFill } from '../../compiler/ir/philox';
import { cli, ipAdapterGenerate } from '../../examples/ip-adapter-generate';
import { UsageError } from '../../tools/cli';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-ipa-ex-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('portrait from --face-embeds, guidance 2, one step: writes a PNG, 3 faces × 16 tokens', async () => {
  const embeds = path.join(tmp, 'faces.json'), out = path.join(tmp, 'p.png');
  fs.writeFileSync(embeds, JSON.stringify([0, 1, 2].map((i) => Array.from(normalFill(16, i)))));
  const o = cli.parse(['--kind', 'portrait', '--face-embeds', embeds, '--backend', 'reference', '--steps', '1', '--guidance', '2', '--out', out]).values;
  const r = await ipAdapterGenerate({ ...o, prompt: 'a portrait' });
  expect(r.tokens).toBe(48);
  const png = fs.readFileSync(out);
  expect(png.subarray(1, 4).toString()).toBe('PNG');
  expect(png.length).toBeGreaterThan(1000);
  const bad = cli.parse(['--kind', 'faceid', '--adapter', embeds]).values;
  await expect(ipAdapterGenerate({ ...bad, prompt: 'x' })).rejects.toThrow(UsageError);
}, 600_000);
