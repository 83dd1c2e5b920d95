/** facexlib's face-parsing BiSeNet (models/face/bisenet.ts) with weights from a `.pth` written by torch.save, and
 * PuLID's white/gray face-features image (parsing.ts), against test/fixtures/face/ (generate.py, run once: a
 * tiny-width copy of facexlib's module, its outputs in float64). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile, evaluate, input } from '../../compiler/index';
import { readSafetensors, writeSafetensors } from '../../models/io/safetensors';
import { bisenetGraph, parseLabels, upsampleBilinearAlignCorners, type BiSeNetConfig } from '../../models/face/bisenet';
import { featuresImage, loadBiSeNetParams, loadFaceParser, parsingInput } from '../../models/face/parsing';
import { referenceExecutor } from '../../models/face/executor';
import { WeightLoadError } from '../../models/weights';
import { fullTest } from '../support/full';

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/face');
const PTH = path.join(FIX, 'bisenet_tiny.pth');
const ref = readSafetensors(path.join(FIX, 'bisenet_tiny.safetensors')).tensors;
const arr = (k: string) => Float64Array.from(ref.get(k)!.data as ArrayLike<number>);
const TINY: BiSeNetConfig = { widths: [4, 8, 8, 16], context: 8, fuse: 16, classes: 19 };
const S = 64, N = S * S;
const image = arr('image');
const face = { width: S, height: S, channels: 3, data: Uint8Array.from({ length: 3 * N }, (_, i) => image[(i % 3) * N + Math.floor(i / 3)]) };
const spec = { outputs: { logits: bisenetGraph(input('image', [1, 3, S, S]), TINY) } };
const maxRel = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0, m = 0;
  for (let i = 0; i < b.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); m = Math.max(m, Math.abs(b[i])); }
  return d / m;
};

describe('BiSeNet face parsing', () => {
  test('weights from the .pth by state-dict key; float64 logits vs PyTorch ≤ 1e-6 relative; labels and upsampling equal', () => {
    const params = loadBiSeNetParams(PTH, TINY, S);
    expect(params.has('cp.resnet.layer2.0.downsample.1.running_var')).toBe(true);
    expect(params.has('conv_out16.conv_out.weight')).toBe(false); // the auxiliary heads do not feed the parse
    const logits = evaluate(spec, { image: parsingInput(face) }, params).outputs.logits.data;
    const rel = maxRel(logits, arr('logits8'));
    console.log(`bisenet tiny f64 logits vs torch f64: ${rel.toExponential(2)}`);
    expect(rel).toBeLessThanOrEqual(1e-6);
    const up = upsampleBilinearAlignCorners(arr('logits8'), 19, 8, 8, S, S);
    const want = arr('out_0_8');
    expect(maxRel([...up.subarray(0, N), ...up.subarray(8 * N, 9 * N)], want)).toBeLessThanOrEqual(1e-12);
    const labels = parseLabels(upsampleBilinearAlignCorners(logits, 19, 8, 8, S, S), 19, N);
    expect([...labels]).toEqual([...arr('labels')]);
    expect(new Set(labels).size).toBeGreaterThan(3); // a parse with several labels, not a constant map
  });

  test('features image: background labels white, the rest gray (within rounding to a byte)', async () => {
    const parser = await loadFaceParser(PTH, { executor: referenceExecutor, config: TINY, size: S });
    const img = parser.featuresImage(face), want = arr('features');
    let maxd = 0, white = 0;
    for (let p = 0; p < N; p++) for (let c = 0; c < 3; c++) {
      maxd = Math.max(maxd, Math.abs(img.data[3 * p + c] - 255 * want[c * N + p]));
      if (img.data[3 * p + c] === 255) white++;
    }
    expect(maxd).toBeLessThanOrEqual(0.5 + 1e-9);
    expect(white).toBeGreaterThan(0);
    expect(white).toBeLessThan(3 * N);
    expect(featuresImage(face, new Uint8Array(N).fill(1)).data[0]).toBe(Math.round(0.299 * face.data[0] + 0.587 * face.data[1] + 0.114 * face.data[2]));
    expect(featuresImage(face, new Uint8Array(N).fill(17)).data[5]).not.toBe(255); // 17 = hair: kept (gray)
    expect(featuresImage(face, new Uint8Array(N).fill(16)).data[5]).toBe(255);
    expect(() => parser.labels({ ...face, width: 32 })).toThrow(/64×64/);
  });

  test('a checkpoint without a weight the network needs, or with a misshapen one: WeightLoadError naming it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-parse-'));
    try {
      const params = loadBiSeNetParams(PTH, TINY, S);
      const tensors = Object.fromEntries([...params].filter(([k]) => k !== 'ffm.conv2.weight').map(([k, v]) => [k, { dtype: 'F32' as const, shape: [v.length], data: Float32Array.from(v) }]));
      const p = path.join(dir, 'cut.safetensors');
      writeSafetensors(p, tensors);
      expect(() => loadBiSeNetParams(p, TINY, S)).toThrow(WeightLoadError);
      expect(() => loadBiSeNetParams(p, TINY, S)).toThrow(/missing.*ffm\.conv2\.weight/);
      expect(() => loadBiSeNetParams(PTH, { ...TINY, fuse: 32 }, S)).toThrow(/shape mismatches/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  // The compile takes tens of seconds cold on the shared 2 cores: the full run only.
  fullTest('compiled f32 logits vs PyTorch float64 ≤ 1e-4 relative', async () => {
    const program = await compile(spec);
    program.loadParams(loadBiSeNetParams(PTH, TINY, S), { strict: true });
    const rel = maxRel(program.run({ image: Float32Array.from(parsingInput(face)) }).logits, arr('logits8'));
    console.log(`bisenet tiny compiled f32 vs torch f64: ${rel.toExponential(2)}`);
    expect(rel).toBeLessThanOrEqual(1e-4);
  });
});
