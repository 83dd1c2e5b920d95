/**
 * Face descriptors from a photo with Kiln's face networks (face-api's pretrained weights).
 *
 *   npx tsx examples/face-embed.ts <image> [--aligned] [--backend cpu|cuda|reference]
 *
 * Prints {"faces":[{"box":[x,y,w,h],"score":s,"landmarks":[[x,y],…68],"landmarks5":[…],"descriptor":[…128]}]}
 * (largest face first), or with --aligned (the image is already an aligned face crop) {"descriptor":[…]}.
 * Exit status: 0 with at least one face, 1 when no face is found, 2 for bad arguments or an unreadable image.
 *
 * --backend: 'cpu' (default) compiles the three networks with Kiln's CPU back end (native code, cached on disk:
 * the first run builds it, later runs load it); 'reference' runs the float64 reference evaluator (the oracle:
 * seconds per network, minutes for the detector); 'cuda' exits with status 2 and says why it cannot run
 * (no NVIDIA driver here, or no whole-program CUDA compile yet).
 */
import fs from 'node:fs';
import { decodeImage, type Image } from '../models/io/image';
import { BACKENDS, createFaceEmbedder, executorFor, type Backend, type FaceEmbedder } from '../models/face/embedder';

function fail(message: string, code = 2): never {
  process.stderr.write(`face-embed: ${message}\n`);
  process.exit(code);
}

function parseArgs(argv: string[]): { image: string; aligned: boolean; backend: Backend } {
  let image: string | undefined, aligned = false, backend: Backend = 'cpu';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--aligned') aligned = true;
    else if (a === '--backend' || a.startsWith('--backend=')) {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (!BACKENDS.includes(v as Backend)) fail(`--backend must be one of ${BACKENDS.join(', ')}, got ${v ?? 'nothing'}`);
      backend = v as Backend;
    } else if (a.startsWith('--')) fail(`unknown option ${a}`);
    else if (image === undefined) image = a;
    else fail(`unexpected argument ${a}`);
  }
  if (!image) fail('usage: face-embed <image> [--aligned] [--backend cpu|cuda|reference]');
  return { image, aligned, backend };
}

const round = (v: number, d = 6) => Number(v.toFixed(d));

// libgomp's default active wait makes each kernel 10–30× slower when the cores are shared with other busy
// processes; it is read when the kernel library loads (at the first compile), so set it before that.
process.env.OMP_WAIT_POLICY ??= 'passive';

const args = parseArgs(process.argv.slice(2));
let img: Image;
try {
  if (!fs.existsSync(args.image)) fail(`${args.image}: no such file`);
  img = decodeImage(args.image);
} catch (e) {
  fail(`cannot read ${args.image} as an image: ${(e as Error).message}`);
}
let embedder: FaceEmbedder;
try {
  embedder = await createFaceEmbedder({ evaluate: executorFor(args.backend), networks: args.aligned ? ['recognizer'] : undefined });
} catch (e) {
  fail(`--backend ${args.backend}: ${(e as Error).message}`);
}
if (args.aligned) {
  process.stdout.write(`${JSON.stringify({ descriptor: embedder.embedAligned(img).descriptor.map((v) => round(v, 8)) })}\n`);
} else {
  const { faces } = embedder.embed(img);
  const out = faces.map((f) => ({
    box: f.box.map((v) => round(v, 3)),
    score: round(f.score),
    landmarks: f.landmarks.map(([x, y]) => [round(x, 3), round(y, 3)]),
    landmarks5: f.landmarks5.map(([x, y]) => [round(x, 3), round(y, 3)]),
    descriptor: f.descriptor.map((v) => round(v, 8)),
  }));
  process.stdout.write(`${JSON.stringify({ faces: out })}\n`);
  if (faces.length === 0) process.exit(1);
}
