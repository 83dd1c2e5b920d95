/**
 * The user-supplied face networks at their real sizes: an iresnet100 exported by torch.onnx.export (glintr100's
 * shape) and facexlib's BiSeNet at its real widths, both with seeded weights, written with the float64 outputs of
 * PyTorch by test/fixtures/face/full_size.py (≈ 320 MB, so not committed). Loads them through the same loaders as
 * the PuLID pipeline, compiles them for the CPU and prints the relative error against PyTorch and the time per
 * forward.
 *
 *   /usr/bin/python3 test/fixtures/face/full_size.py /tmp/face-full
 *   npx tsx bench/face/full-size-check.ts /tmp/face-full
 */
import fs from 'node:fs';
import path from 'node:path';
import { compile, input } from '../../compiler/index';
import { readSafetensors } from '../../models/io/safetensors';
import { iresnetGraph, IRESNET100 } from '../../models/face/iresnet';
import { loadIResNetOnnx } from '../../models/face/iresnetOnnx';
import { bisenetGraph } from '../../models/face/bisenet';
import { loadBiSeNetParams } from '../../models/face/parsing';
import { defineCli, exitUsage, parseOrExit } from '../../tools/cli';

process.env.OMP_WAIT_POLICY ??= 'passive';
const cli = defineCli({
  command: 'npx tsx bench/face/full-size-check.ts',
  summary: 'The full-size ArcFace IResNet-100 (ONNX) and BiSeNet (.pth) compiled on the CPU vs PyTorch float64.',
  positionals: { name: 'dir', help: 'the folder test/fixtures/face/full_size.py wrote' },
  options: {},
  examples: ['npx tsx bench/face/full-size-check.ts /tmp/face-full'],
});
const { positionals } = parseOrExit(cli);
const dir = positionals[0];
if (positionals.length !== 1 || !fs.existsSync(path.join(dir, 'full_size.safetensors'))) exitUsage(cli, `'${dir ?? ''}' has no full_size.safetensors (run test/fixtures/face/full_size.py first)`);
const ref = readSafetensors(path.join(dir, 'full_size.safetensors')).tensors;
const arr = (k: string) => Float64Array.from(ref.get(k)!.data as ArrayLike<number>);
const maxRel = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0, m = 0;
  for (let i = 0; i < b.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); m = Math.max(m, Math.abs(b[i])); }
  return d / m;
};
const time = async <T>(f: () => T | Promise<T>): Promise<[T, number]> => { const t = performance.now(); const v = await f(); return [v, (performance.now() - t) / 1000]; };

const [{ config, params }, tLoad] = await time(() => loadIResNetOnnx(path.join(dir, 'iresnet100.onnx'), IRESNET100));
const [prog, tCompile] = await time(() => compile({ outputs: { e: iresnetGraph(input('image', [1, 3, 112, 112]), config) } }));
prog.loadParams(params, { strict: true });
const image = Float32Array.from(arr('arcface_image'));
prog.run({ image });
const [out, tRun] = await time(() => prog.run({ image }).e);
console.log(`iresnet100 (layers ${config.layers.join(',')}, ${[...params.values()].reduce((n, v) => n + v.length, 0)} weights): ONNX read ${tLoad.toFixed(1)} s, compile ${tCompile.toFixed(0)} s, forward ${(tRun * 1000).toFixed(0)} ms; compiled f32 vs the file in f64 ${maxRel(out, arr('arcface_onnx_f64')).toExponential(2)}, vs the PyTorch module in f64 ${maxRel(out, arr('arcface_torch_f64')).toExponential(2)}`);

const [bp, tLoadB] = await time(() => loadBiSeNetParams(path.join(dir, 'bisenet.pth')));
const [bprog, tCompileB] = await time(() => compile({ outputs: { logits: bisenetGraph(input('image', [1, 3, 512, 512])) } }));
bprog.loadParams(bp, { strict: true });
const face = arr('parse_image'), n = 512 * 512;
const mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225];
const x = Float32Array.from(face, (v, i) => (v / 255 - mean[Math.floor(i / n)]) / std[Math.floor(i / n)]);
bprog.run({ image: x });
const [logits, tRunB] = await time(() => bprog.run({ image: x }).logits);
console.log(`bisenet 512² (19 classes): .pth read ${tLoadB.toFixed(1)} s, compile ${tCompileB.toFixed(0)} s, forward ${(tRunB * 1000).toFixed(0)} ms; compiled f32 logits vs PyTorch f64 ${maxRel(logits, arr('parse_logits8')).toExponential(2)}`);
