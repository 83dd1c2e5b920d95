/**
 * Face descriptors from a photo with Kiln's face networks (face-api's pretrained weights): a thin command line
 * over `FaceEmbedPipeline` (models/face/pipeline.ts). `--help` lists the options.
 *
 *   npx tsx examples/face-embed.ts [image] [--aligned] [--backend cpu|cuda|reference]   (image: face-api's sample1.jpg by default)
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
import { BACKENDS } from '../models/face/embedder';
import { FaceEmbedPipeline } from '../models/face/pipeline';
import { defineCli, isMain, runCli, UsageError, type Parsed } from '../tools/cli';

const SAMPLE = 'node_modules/@vladmandic/face-api/demo/sample1.jpg';

export const cli = defineCli({
  command: 'npx tsx examples/face-embed.ts',
  summary: 'Face boxes, landmarks and 128-d descriptors of a photo, as JSON on stdout.',
  positionals: { name: 'image', help: `a PNG or JPEG photo [default: ${SAMPLE}]`, max: 1 },
  options: {
    aligned: { type: 'flag', help: 'the image is already an aligned face crop: print its descriptor only' },
    backend: { type: 'enum', values: BACKENDS, default: 'cpu', help: 'cpu: compiled programs; reference: the float64 evaluator (slow); cuda: an NVIDIA GPU' },
  },
  examples: ['npx tsx examples/face-embed.ts node_modules/@vladmandic/face-api/demo/sample1.jpg', 'npx tsx examples/face-embed.ts crop.png --aligned'],
  notes: 'Exit status: 0 with at least one face, 1 when no face is found, 2 for bad arguments or an unreadable image.',
});

const round = (v: number, d = 6) => Number(v.toFixed(d));

export async function main(args: Parsed<typeof cli.def.options>, file: string): Promise<number> {
  // libgomp's default active wait makes each kernel 10–30× slower when the cores are shared with other busy
  // processes; it is read when the kernel library loads (at the first compile), so set it before that.
  process.env.OMP_WAIT_POLICY ??= 'passive';
  if (!fs.existsSync(file)) throw new UsageError(`${file}: no such file`);
  let img: Image;
  try { img = decodeImage(file); } catch (e) { throw new UsageError(`cannot read ${file} as an image: ${(e as Error).message}`); }
  let pipe: FaceEmbedPipeline;
  try { pipe = await FaceEmbedPipeline.load({ backend: args.backend, aligned: args.aligned }); } catch (e) { throw new UsageError(`--backend ${args.backend}: ${(e as Error).message}`); }
  if (args.aligned) {
    process.stdout.write(`${JSON.stringify({ descriptor: pipe.embedAligned(img).descriptor.map((v) => round(v, 8)) })}\n`);
    return 0;
  }
  const { faces } = pipe.embed(img);
  const out = faces.map((f) => ({
    box: f.box.map((v) => round(v, 3)),
    score: round(f.score),
    landmarks: f.landmarks.map(([x, y]) => [round(x, 3), round(y, 3)]),
    landmarks5: f.landmarks5.map(([x, y]) => [round(x, 3), round(y, 3)]),
    descriptor: f.descriptor.map((v) => round(v, 8)),
  }));
  process.stdout.write(`${JSON.stringify({ faces: out })}\n`);
  return faces.length === 0 ? 1 : 0;
}

if (isMain(import.meta.url)) await runCli(cli, (o, [file]) => main(o, file ?? SAMPLE));
