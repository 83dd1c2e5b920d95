/**
 * Time per forward of each face network on a given Executor (default: the float64 reference evaluator).
 *   npx tsx bench/face/reference-forward.ts [recognizer|landmarks|detector ...]
 * (bench/face/recognizer.ts times the compiled programs against face-api on tfjs-wasm.)
 */
import { faceNetSpec, referenceExecutor } from '../../models/face/embedder';
import { loadFaceApiParams, checkParams, type FaceApiModel } from '../../models/face/weights';
import { defineCli, exitUsage, parseOrExit } from '../../tools/cli';

const MODEL = { recognizer: 'face_recognition_model', landmarks: 'face_landmark_68_model', detector: 'ssd_mobilenetv1_model' } as const;
const SIZE = { recognizer: 150, landmarks: 112, detector: 512 } as const;
type Net = keyof typeof MODEL;

const cli = defineCli({
  command: 'npx tsx bench/face/reference-forward.ts',
  summary: 'Time per forward of each face network on the float64 reference evaluator.',
  positionals: { name: 'recognizer|landmarks|detector ...', help: 'networks to time [default: recognizer landmarks]' },
  options: {},
  examples: ['npx tsx bench/face/reference-forward.ts recognizer'],
});
const { positionals } = parseOrExit(cli);
for (const n of positionals) if (!(n in MODEL)) exitUsage(cli, `unknown network '${n}' (${Object.keys(MODEL).join(', ')})`);
const nets = (positionals.length ? positionals : ['recognizer', 'landmarks']) as Net[];
for (const net of nets) {
  const { spec, params } = faceNetSpec(net);
  const store = loadFaceApiParams(MODEL[net] as FaceApiModel);
  checkParams(store, params.declared, MODEL[net]);
  const program = await referenceExecutor(spec, store);
  const image = Float32Array.from({ length: 3 * SIZE[net] ** 2 }, (_v, i) => (i * 37) % 256);
  const t = performance.now();
  program.run({ image });
  console.log(`${net}: ${((performance.now() - t) / 1000).toFixed(2)} s per forward (reference evaluator)`);
}
