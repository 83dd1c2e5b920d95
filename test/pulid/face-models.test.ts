/** The user's face networks inside PuLID's face condition (models/pulid/condition.ts): with an ArcFace ONNX the ID
 * embedding is the IResNet's on the 5-point aligned face, with parsing weights the CLIP view is the parsed 512² face;
 * without them the face-api descriptor and the landmark-hull stand-in stay. Tiny fixtures, float64 evaluator. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { evaluate, input } from '../../compiler/index';
import { alignFace, clipFaceView } from '../../models/pulid/condition';
import { loadArcFace } from '../../models/face/arcface';
import { arcfaceInput, alignFfhq512 } from '../../models/face/align';
import { iresnetGraph } from '../../models/face/iresnet';
import { loadIResNetOnnx } from '../../models/face/iresnetOnnx';
import type { FaceParser } from '../../models/face/parsing';
import type { Image } from '../../models/io/image';
import { FaceConditioner } from '../../models/pulid/condition';
import { microPulidConfig } from '../../models/pulid/config';
import { referenceExecutor } from '../../models/face/executor';
import type { FaceEmbedder } from '../../models/face/embedder';
import { PulidPipeline } from '../../models/pulid/pipeline';
import { PipelineOptionError } from '../../models/pipelines/options';
import { WeightLoadError } from '../../models/weights';
import { OnnxError } from '../../models/io/onnx';

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/face');
const W = 160, H = 140;
const img = { width: W, height: H, channels: 3, data: Uint8Array.from({ length: W * H * 3 }, (_, i) => (i * 37 + (i >> 7) * 11) & 255) };
const five: [number, number][] = [[60, 60], [100, 58], [80, 80], [64, 100], [97, 99]];
const landmarks68 = Array.from({ length: 68 }, (_, i) => [40 + (i % 9) * 10, 40 + Math.floor(i / 9) * 9] as [number, number]);
const stub = { embed: () => ({ faces: [{ alignedBox: [30, 30, 100, 100], landmarks: landmarks68, landmarks5: five, descriptor: Array.from({ length: 128 }, (_, i) => i / 128) }] }) } as unknown as FaceEmbedder;

test('ArcFace ONNX and parsing weights replace the descriptor and the landmark-hull view; without them the defaults stay', async () => {
  const plain = alignFace(stub, img, 'stub');
  expect(plain.descriptor[5]).toBe(5 / 128);
  expect(plain.featuresImage).toBeUndefined();
  expect(clipFaceView(plain.crop, plain.landmarks).width).toBe(100);

  const onnx = path.join(FIX, 'iresnet_tiny.onnx');
  const arcface = await loadArcFace(onnx, { executor: referenceExecutor });
  // The parser itself is tested in test/face/bisenet.test.ts (a 512² parse on the float64 evaluator costs ≈ 30 s):
  // here a recording stand-in checks what it is given and that its image becomes the CLIP view.
  const seen: Image[] = [];
  const white: Image = { width: 512, height: 512, channels: 3, data: new Uint8Array(512 * 512 * 3).fill(255) };
  const parser: FaceParser = { size: 512, labels: () => new Uint8Array(0), featuresImage: (f) => { seen.push(f); return white; } };
  const withModels = alignFace(stub, img, 'stub', { arcface, parser });
  const { config, params } = loadIResNetOnnx(onnx);
  const want = evaluate({ outputs: { e: iresnetGraph(input('image', [1, 3, 112, 112]), config) } }, { image: arcfaceInput(img, five) }, params).outputs.e.data;
  expect(withModels.descriptor).toEqual([...want]);
  expect(withModels.descriptor.length).toBe(8);
  expect(withModels.featuresImage).toBe(white);
  expect(seen.length).toBe(1);
  expect(seen[0].data).toEqual(alignFfhq512(img, five).data);

  // The conditioner's CLIP view: the parsed image when there is one, the hull stand-in otherwise.
  const cond = new FaceConditioner(microPulidConfig);
  const a = cond.features(plain).vit[0], b = cond.features({ ...plain, featuresImage: clipFaceView(plain.crop, plain.landmarks) }).vit[0];
  const c = cond.features(withModels).vit[0];
  expect([...a]).toEqual([...b]);
  expect(Math.max(...a.map((v, i) => Math.abs(v - c[i])))).toBeGreaterThan(1e-3);
});

test('PulidPipeline.load reads and checks the user\'s face networks before anything compiles', async () => {
  const onnx = path.join(FIX, 'iresnet_tiny.onnx');
  // The tiny config's ID encoder takes 128-d face embeddings; the fixture's IResNet gives 8.
  await expect(PulidPipeline.load({ config: 'tiny', arcface: onnx })).rejects.toThrow(PipelineOptionError);
  await expect(PulidPipeline.load({ config: 'tiny', arcface: onnx })).rejects.toThrow(/8-d embeddings.*takes 128/);
  await expect(PulidPipeline.load({ config: 'micro', arcface: onnx })).resolves.toBeInstanceOf(PulidPipeline);
  // A parsing checkpoint of other widths than facexlib's: every misshapen weight named.
  await expect(PulidPipeline.load({ config: 'micro', parsing: path.join(FIX, 'bisenet_tiny.pth') })).rejects.toThrow(WeightLoadError);
  await expect(PulidPipeline.load({ config: 'micro', arcface: path.join(FIX, 'bisenet_tiny.pth') })).rejects.toThrow(OnnxError);
});
