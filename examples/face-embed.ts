/**
 * Face descriptors from a photo with Kiln's face networks (face-api's pretrained weights).
 *
 *   npx tsx examples/face-embed.ts <image> [--aligned] [--backend cpu|cuda|reference]
 *
 * Prints {"faces":[{"box":[x,y,w,h],"score":s,"landmarks":[[x,y],…68],"landmarks5":[…],"descriptor":[…128]}]}
 * (largest face first), or with --aligned (the image is already an aligned face crop) {"descriptor":[…]}.
 * Exit status: 0 with at least one face, 1 when no face is found, 2 for bad arguments or an unreadable image.
 *
 * --backend: 'reference' (the float64 evaluator, several seconds per network) is what runs today; 'cpu' and
 * 'cuda' are accepted and fall back to it, with a note on stderr, until the compiled back ends are wired in.
 */
import fs from 'node:fs';
import { decodeImage, type Image } from '../models/io/image';
import { createFaceEmbedder, referenceExecutor, type Executor } from '../models/face/embedder';

const BACKENDS = ['cpu', 'cuda', 'reference'] as const;
type Backend = (typeof BACKENDS)[number];

function fail(message: string, code = 2): never {
  process.stderr.write(`face-embed: ${message}\n`);
  process.exit(code);
}

function parseArgs(argv: string[]): { image: string; aligned: boolean; backend: Backend } {
  let image: string | undefined, aligned = false, backend: Backend = 'reference';
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

function executorFor(backend: Backend): Executor {
  if (backend !== 'reference') process.stderr.write(`face-embed: the ${backend} back end is not wired in yet; using the reference evaluator\n`);
  return referenceExecutor;
}

const round = (v: number, d = 6) => Number(v.toFixed(d));

const args = parseArgs(process.argv.slice(2));
let img: Image;
try {
  if (!fs.existsSync(args.image)) fail(`${args.image}: no such file`);
  img = decodeImage(args.image);
} catch (e) {
  fail(`cannot read ${args.image} as an image: ${(e as Error).message}`);
}
const embedder = createFaceEmbedder({ evaluate: executorFor(args.backend) });
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
