/**
 * Face networks on the CPU: Kiln's compiled programs vs face-api 1.7.15 on tfjs-backend-wasm 4.22 (SIMD; one
 * thread in Node), in the same process, on the same input.
 *
 *   npx tsx bench/face/recognizer.ts [--reps N] [--json]
 *
 * recognizer: one 150×150 forward (an aligned face crop of sample1.jpg): Kiln `describe(planar)` vs face-api
 * `faceRecognitionNet.forward(tensor)` + reading the descriptor back. detector: one SSD forward at 512×512
 * (sample1.jpg padded and resized as face-api does) to raw boxes and scores, host post-processing excluded on
 * both sides. Median of N timed runs after two warm-ups. Kiln uses OpenMP over the machine's cores
 * (OMP_NUM_THREADS to change; OMP_WAIT_POLICY defaults to passive here: see models/face/README.md).
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { defineCli, parseOrExit } from '../../tools/cli';

process.env.OMP_WAIT_POLICY ??= 'passive';
const { crop, decodeImage, faceApiNetInput } = await import('../../models/io/image');
const { createFaceEmbedder, faceNetSpec, compiledExecutor } = await import('../../models/face/embedder');
const { planarNetInput } = await import('../../models/face/landmarks');
const { detectorInput } = await import('../../models/face/detector');
const { loadFaceApiParams } = await import('../../models/face/weights');

const { values: opts } = parseOrExit(defineCli({
  command: 'npx tsx bench/face/recognizer.ts',
  summary: 'Face networks on the CPU: Kiln\'s compiled programs vs face-api on tfjs-backend-wasm, same input, same process.',
  options: {
    reps: { type: 'int', min: 1, max: 10_000, default: 10, help: 'timed runs after two warm-ups (the median is reported)' },
    json: { type: 'flag', help: 'print the result as JSON' },
  },
  examples: ['npx tsx bench/face/recognizer.ts --reps 20 --json'],
}));
const { json, reps } = opts;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
async function time(fn: () => unknown | Promise<unknown>): Promise<number> {
  for (let i = 0; i < 2; i++) await fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) { const t = performance.now(); await fn(); ts.push(performance.now() - t); }
  return median(ts);
}

const img = decodeImage(path.resolve('node_modules/@vladmandic/face-api/demo/sample1.jpg'));
const face = faceApiNetInput(crop(img, 369, 394, 213, 213), 150); // HWC float 150×150
const faceChw = planarNetInput(face, 150);
const detChw = detectorInput(img); // CHW 3×512×512, 0..255
const detHwc = faceApiNetInput(img, 512, false); // the same pixels, HWC

// Kiln
let t0 = performance.now();
const embedder = await createFaceEmbedder({ networks: ['recognizer'] });
const { spec } = faceNetSpec('detector');
const detector = await compiledExecutor(spec, loadFaceApiParams('ssd_mobilenetv1_model'));
const kilnPrepareS = (performance.now() - t0) / 1000;
const kilnRecognizer = await time(() => embedder.describe(faceChw));
const kilnDetector = await time(() => detector.run({ image: detChw }));

// face-api on tfjs-wasm
const require = createRequire(import.meta.url);
const { loadFaceApi, modelDir } = require('../../test/face/oracle/faceapi-oracle.cjs') as { loadFaceApi(b: string): Promise<any>; modelDir: string };
const faceapi = await loadFaceApi('wasm');
const tf = faceapi.tf;
await faceapi.nets.faceRecognitionNet.loadFromDisk(modelDir);
await faceapi.nets.ssdMobilenetv1.loadFromDisk(modelDir);
const faceT = tf.tensor3d(face.data, [150, 150, 3], 'float32');
const detT = tf.tensor3d(detHwc.data, [512, 512, 3], 'float32');
const tfjsRecognizer = await time(async () => { const d = await faceapi.nets.faceRecognitionNet.forward(faceT); await d.data(); d.dispose(); });
const tfjsDetector = await time(async () => {
  const { boxes, scores } = await faceapi.nets.ssdMobilenetv1.forward(detT); // one tensor per batch item each
  for (const t of [boxes, scores].flat()) { await t.data(); t.dispose(); }
});
// Same answer check (descriptor cosine) so the timings are of the same computation.
const ours = embedder.describe(faceChw);
const theirsT = await faceapi.nets.faceRecognitionNet.forward(faceT);
const theirs = Array.from(await theirsT.data() as Float32Array);
let dot = 0, na = 0, nb = 0;
ours.forEach((v, i) => { dot += v * theirs[i]!; na += v * v; nb += theirs[i]! ** 2; });

const result = {
  machine: `${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}`,
  kilnThreads: process.env.OMP_NUM_THREADS ?? String(os.cpus().length),
  tfjsBackend: `${tf.getBackend()} ${tf.version_core}`,
  reps,
  kilnPrepareSeconds: Number(kilnPrepareS.toFixed(2)),
  recognizer: { kilnMs: Number(kilnRecognizer.toFixed(2)), tfjsWasmMs: Number(tfjsRecognizer.toFixed(2)), speedup: Number((tfjsRecognizer / kilnRecognizer).toFixed(2)), cosine: dot / Math.sqrt(na * nb) },
  detector: { kilnMs: Number(kilnDetector.toFixed(2)), tfjsWasmMs: Number(tfjsDetector.toFixed(2)), speedup: Number((tfjsDetector / kilnDetector).toFixed(2)) },
};
if (json) console.log(JSON.stringify(result));
else {
  console.log(`${result.machine}; Kiln: ${result.kilnThreads} OpenMP threads, programs ready in ${result.kilnPrepareSeconds} s; face-api on tfjs-${result.tfjsBackend}; median of ${reps}`);
  for (const net of ['recognizer', 'detector'] as const) {
    const r = result[net];
    console.log(`${net.padEnd(10)}  Kiln ${r.kilnMs.toFixed(1).padStart(7)} ms/forward   tfjs-wasm ${r.tfjsWasmMs.toFixed(1).padStart(7)} ms/forward   Kiln is ${r.speedup}× ${r.speedup >= 1 ? 'faster' : 'slower'}`);
  }
  console.log(`descriptor cosine Kiln vs face-api(wasm): ${result.recognizer.cosine.toFixed(8)}`);
}
process.exit(0);
