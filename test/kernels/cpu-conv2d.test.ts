/** kiln conv2d forward / bwd_data / bwd_weight (kernels/cpu/conv2d.h) against the float64 direct
 * convolution of reference.ts, on every GEMM path this CPU runs (KILN_CPU_ISA: the packers' tile differs); bound: see REL in harness.ts (mag = sum of |x * w| over the taps of each element). */
import { buildDriver, cpuGemmPaths, expectClose, Rng, runDriver } from './harness';
import { convDims, convRef, type Conv } from './reference';

// Each case runs on every path and epilogue: its float64 reference is computed once.
const refs = new Map<string, { ref: Float64Array; mag: Float64Array }>();
function reference(p: Conv, mode: number, seed: number): { ref: Float64Array; mag: Float64Array } {
  const key = `${p.join(',')}/${mode}/${seed}`;
  const hit = refs.get(key);
  if (hit) return hit;
  const r = computeReference(p, mode, seed);
  refs.set(key, r);
  return r;
}
function computeReference(p: Conv, mode: number, seed: number): { ref: Float64Array; mag: Float64Array } {
  const dims = convDims(p);
  const rng = new Rng(seed);
  const x = rng.fill(dims.x);
  const w = rng.fill(dims.w);
  const dy = rng.fill(dims.y);
  return convRef(p, mode, x, w, dy);
}

/** Runs one case on the driver and checks it against the float64 reference: the ISA path when one is forced, each
 * output element's epilogue called exactly once (rows 0 / 1; the plain store, rows 2, has no calls to count). */
function checkCase(bin: string, p: Conv, mode: number, seed: number, rows: number, env: Record<string, string>): void {
  const out = runDriver(bin, [...p, mode, seed, rows], env);
  if (env.KILN_CPU_ISA) expect(out.path).toBe(env.KILN_CPU_ISA);
  expect(out.callsOnce).toBe(rows === 2 ? undefined : true);
  const { ref, mag } = reference(p, mode, seed);
  expectClose(out.arrays.out, ref, mag, 'out');
}
const seedOf = (base: number, p: Conv, mode: number) => base + p.reduce((a, b) => a * 3 + b, 0) % 100000 + mode;

const shapes: [string, Conv][] = [
  ['3x3 pad 1', [2, 3, 9, 10, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['stride 2, asymmetric padding', [1, 4, 11, 8, 6, 3, 3, 2, 2, 0, 1, 1, 2, 1, 1, 1]],
  ['dilation 2', [1, 3, 12, 12, 4, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1]],
  ['groups 2, stride (2,1)', [2, 4, 7, 9, 6, 3, 2, 2, 1, 1, 0, 0, 1, 1, 1, 2]],
  ['depthwise (groups = C)', [1, 8, 6, 6, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8]],
  ['1x1 stride 1 (plain GEMM)', [2, 20, 5, 7, 17, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1]],
  ['1x1 stride 2', [1, 6, 9, 9, 5, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1]],
  ['deep K (> KC), 4x4 stride 2 pad 1', [1, 20, 10, 10, 18, 4, 4, 2, 2, 1, 1, 1, 1, 1, 1, 1]],
  // Ragged sizes for the shift layout (conv2d_shift.h): 1 and 7 channels, a 1-pixel and a 65-wide image, 17 / 63
  // channels, stride 2 on odd sizes, stride (1,3) with dilation, padding wider than the kernel extent.
  ['ragged: C 1, O 7, 1x1 image, pad 1', [1, 1, 1, 1, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['ragged: C 7, O 17, 3x65, pad 1', [2, 7, 3, 65, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['ragged: C 17, O 63, 7x7 stride 2 pad 1', [1, 17, 7, 7, 63, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1]],
  ['ragged: C 63, O 1, 5x9 stride 2 no pad', [1, 63, 5, 9, 1, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1, 1]],
  ['stride (1,3), dilation (2,1), groups 3', [1, 6, 9, 13, 9, 3, 2, 1, 3, 2, 1, 0, 2, 2, 1, 3]],
  ['padding wider than the kernel extent', [1, 3, 4, 5, 4, 2, 2, 1, 1, 3, 2, 2, 3, 1, 1, 1]],
  // Rows of the shift layout that straddle micro-tile columns (NR 16 / 24 / 48) and K past the conv's KC (512 on avx2, 256 generic) with a row epilogue:
  // 65 channels x 9 taps = 585, a 17x63 image (Wq 65), stride 2 on 63 and 65 wide, 1x1 with 65 -> 63 channels.
  ['ragged: C 65, O 17, 17x63, pad 1 (K 585 > KC)', [1, 65, 17, 63, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['ragged: C 33, O 63, 13x65 stride 2 pad 1', [2, 33, 13, 65, 63, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1]],
  ['ragged: 1x1 C 65, O 63, 7x17', [1, 65, 7, 17, 63, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1]],
  // More GEMM rows than one MC block of every path (avx512 48, avx2 24, generic 64) with K past KC: the column
  // split with the prepacked weights read in place (gemm.h has_direct_a); 3x3, stride 2 on odd sizes, 1x1; K 585
  // past avx2's conv KC (512) too.
  ['ragged: C 33, O 200, 9x17 pad 1 (M > MC, K 297 > KC)', [1, 33, 9, 17, 200, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['ragged: C 40, O 199, 13x17 stride 2 pad 1 (M > MC)', [1, 40, 13, 17, 199, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1]],
  ['ragged: 1x1 C 300, O 257, 5x11 (M > MC, K > KC)', [1, 300, 5, 11, 257, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1]],
  ['ragged: C 65, O 199, 7x9 pad 1 (M > MC, K 585 > KC)', [1, 65, 7, 9, 199, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  // K 1170: past the deepest KC (avx512's 1024; the conv's column split uses L1-sized K blocks, so 5 x 234 here).
  ['ragged: C 130, O 17, 5x9 pad 1 (K 1170 > every KC)', [1, 130, 5, 9, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  // K 279: less than an eighth past KC 256, one K block of 279 (gemm.h: K blocks of equal depth).
  ['ragged: C 31, O 65, 7x63 pad 1 (K 279, one K block)', [1, 31, 7, 63, 65, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  // Weight gradient (conv2d_wgrad.h): K = Ho*Wq past one K block (2048 on avx2 / generic) over two images; dy rows of 256 floats
  // (stored at a padded stride); groups with 5 output channels a group (a row block of 4 plus 1).
  ['ragged: C 5, O 9, 2 images 45x50, pad 1 (K 2340 > K block)', [2, 5, 45, 50, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  // K = 90 x 97 = 8730 past avx512's K block of 8192 (avx2 and generic: 2048), one image.
  ['ragged: C 3, O 5, 90x95, pad 1 (K 8730 > every K block)', [1, 3, 90, 95, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['1x1 C 9, O 10, 16x16 (rows of 256)', [1, 9, 16, 16, 10, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1]],
  // Planes a multiple of 4 KiB apart, where every channel's row of one tap maps to the same L1 sets: 30x30 padded to
  // a 32x32 phase plane (the forward reads these rows in place on avx512), and a 1x1 over 32x32 planes.
  ['3x3 pad 1 on 30x30, C 19 (padded plane 32x32 = 4 KiB)', [1, 19, 30, 30, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['1x1 C 9, O 17, 32x32 (planes 4 KiB apart)', [1, 9, 32, 32, 17, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1]],
  ['groups 2, 5 outputs a group, 3x3 pad 1', [1, 6, 9, 11, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2]],
  // Weight gradient as a packed GEMM (O/G >= 128, conv2d_wgrad.h): images summed over GEMM calls, groups as the
  // batch, 8x8 transposes with ragged row / column / K tails (K 65, 63 columns, 129 rows a group); 1x1 read in
  // place, padded 1x1 through the shift layout.
  ['wgrad GEMM: 2 images, groups 2 of 129 outputs, stride 2', [2, 14, 7, 9, 258, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2]],
  ['wgrad GEMM: 1x1 3 images, C 17, O 128, 5x13', [3, 17, 5, 13, 128, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1]],
  ['wgrad GEMM: 1x1 padded, 2 images, O 130', [2, 7, 5, 6, 130, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1]],
  // 3x3 stride 1 past the few-pixel path (17x19 = 323 output pixels an image), O/G >= 128: the packed GEMM too.
  ['wgrad GEMM: 3x3 pad 1, 2 images 17x19, C 5, O 130', [2, 5, 17, 19, 130, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
];
const modes: [string, number][] = [['forward', 0], ['bwd_data', 1], ['bwd_weight', 2]];
const cases = shapes.flatMap(([s, p]) => modes.map(([m, mode]) => [`${m}: ${s}`, p, mode] as [string, Conv, number]));

// Forward on inputs larger than the copy limit runs image by image in bands of output rows (conv2d_shift.h):
// bands of one row (limit 1 float) and of a few rows with a short last band (limit 700 floats), on the best path.
describe.each([['1'], ['700']])('conv2d forward in bands of output rows (CPU, KILN_CONV_SCRATCH_FLOATS=%s)', (limit) => {
  let bin = '';
  beforeAll(() => {
    bin = buildDriver('conv2d');
  });
  it.each(shapes.filter(([, p]) => !(p[1] === p[15] && p[4] === p[15])))('%s', (_name, p) => {
    checkCase(bin, p, 0, seedOf(77, p, 0), 1, { KILN_CONV_SCRATCH_FLOATS: limit });
  });
});

// Epilogue per element, per row segment (epi.row(..., step, len, acc): what the library's entry points pass; the
// driver aborts on a segment that leaves the output row), and the plain store of the _out entries (kiln::ConvStore:
// dW summed in place; no calls to count, the output starts as NaN).
const epilogues: [string, number][] = [['per element', 0], ['per row', 1], ['plain store', 2]];
/** Every case on every GEMM path this CPU runs (KILN_CPU_ISA) and every epilogue, seeds from `base`, under `env`. */
function eachPathAndEpilogue(title: string, list: [string, Conv, number][], base: number, env: Record<string, string>): void {
  describe.each(cpuGemmPaths().paths.flatMap((isa) => epilogues.map(([e, rows]) => [isa, e, rows] as [string, string, number])))(`${title} (CPU, KILN_CPU_ISA=%s, epilogue %s)`, (isa, _e, rows) => {
    let bin = '';
    beforeAll(() => {
      bin = buildDriver('conv2d');
    });
    it.each(list)('%s', (_name, p, mode) => {
      checkCase(bin, p, mode, seedOf(base, p, mode), rows, { KILN_CPU_ISA: isa, ...env });
    });
  });
}
eachPathAndEpilogue('conv2d', cases, 77, {});

/** The weight gradient's dot-product tiles (conv2d_wgrad.h) are picked at run time like the GEMM's micro-kernels
 * (cpu_isa(), KILN_CPU_ISA): 16 lanes in 4x6 tiles (avx512), 8 lanes in 2x6 (avx2), 4 lanes in 2x6 (generic), each
 * compiled under its own target attribute. Their lane sums round differently, so on one build every forced path gives
 * its own bits, and each path gives the same bits whatever -march the library was built with (native, x86-64-v3,
 * baseline x86-64), where the K padding, row blocks and column tiles all fall differently. When the tiles took the
 * compile target's width, KILN_CPU_ISA=avx2 on an AVX-512 build ran the 16-lane tiles (bits equal to avx512's, and
 * unequal to the x86-64-v3 build's). Shapes: the dot path (O/G < 128), K = 2 x 45*52 past one K block, and 1x1. */
describe('conv2d weight gradient tiles per ISA path (CPU)', () => {
  const tilePaths = cpuGemmPaths().paths.filter((isa) => isa !== 'avx512_bf16');  // bf16 runs the f32 avx512 tiles
  const marches = ['native', 'x86-64-v3', 'x86-64'];
  const bins = new Map<string, string>();
  beforeAll(() => {
    for (const m of marches) bins.set(m, buildDriver('conv2d', m));
  });
  it.each([
    ['ragged: C 5, O 9, 2 images 45x50, pad 1', [2, 5, 45, 50, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1] as Conv],
    ['1x1 C 9, O 10, 16x16', [1, 9, 16, 16, 10, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1] as Conv],
  ])('%s', (_name, p) => {
    const seed = 5 + p.reduce((a, b) => a * 3 + b, 0) % 100000;
    const { ref, mag } = reference(p, 2, seed);
    const bits = new Map<string, string>();
    for (const isa of tilePaths) {
      for (const m of marches) {
        const out = runDriver(bins.get(m)!, [...p, 2, seed, 1], { KILN_CPU_ISA: isa });
        expect(out.path).toBe(isa);
        expect(out.callsOnce).toBe(true);
        expectClose(out.arrays.out, ref, mag, 'out');
        const b = Array.from(out.arrays.out).join(' ');
        if (m === 'native') bits.set(isa, b);
        else expect(`${isa} -march=${m}: ${b === bits.get(isa) ? 'same' : 'different'} bits`).toBe(`${isa} -march=${m}: same bits`);
      }
    }
    for (const a of tilePaths)
      for (const b of tilePaths)
        if (a < b) expect(`${a} vs ${b}: ${bits.get(a) === bits.get(b) ? 'same' : 'different'} bits`).toBe(`${a} vs ${b}: different bits`);
  });
});

/** Winograd F(2x2, 3x3) (kernels/cpu/conv2d_winograd.h) for 3x3 stride-1 ungrouped convs, forward and input gradient,
 * forced on (KILN_CONV_WINOGRAD=1) at sizes the default would leave to the shift GEMM: odd output sizes (a tile row or
 * column half outside), padding 0 / asymmetric / wider than the kernel (the input gradient's offset 2 - pt is then
 * negative), tiles that span images, K past KC and M past MC; on every path and epilogue, and in chunks of one and a
 * few tile rows (KILN_CONV_SCRATCH_FLOATS). Same float64 bound as every conv case. */
const winoShapes: [string, Conv][] = [
  ['3x3 pad 1, 9x10, 2 images', [2, 3, 9, 10, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['C 1, O 7, 1x1 image, pad 1', [1, 1, 1, 1, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['C 7, O 17, 3x65, pad 1', [2, 7, 3, 65, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['C 5, O 6, 8x7, pad (0, 2, 2, 0)', [1, 5, 8, 7, 6, 3, 3, 1, 1, 0, 2, 2, 0, 1, 1, 1]],
  ['C 4, O 5, 10x11, no padding', [1, 4, 10, 11, 5, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1]],
  ['C 3, O 4, 4x5, padding (3, 2, 2, 3)', [1, 3, 4, 5, 4, 3, 3, 1, 1, 3, 2, 2, 3, 1, 1, 1]],
  ['C 16, O 24, 3 images 4x4 (tiles across images)', [3, 16, 4, 4, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['C 65, O 17, 17x63 (K 65)', [1, 65, 17, 63, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['C 33, O 200, 9x17 (M > MC)', [1, 33, 9, 17, 200, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['C 130, O 65, 5x9 (K 130)', [1, 130, 5, 9, 65, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['C 1100, O 9, 3x3 (K > every KC)', [1, 1100, 3, 3, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
];
/** Forward and input gradient of each shape with Winograd forced on: on every path and epilogue, then in chunks of
 * one tile row (scratch limit 1 float) and of a few (`few` floats) on the best path. */
function winogradCases(title: string, shapes: [string, Conv][], base: number, few: string): void {
  const list = shapes.flatMap(([s, p]) => modes.slice(0, 2).map(([m, mode]) => [`${m}: ${s}`, p, mode] as [string, Conv, number]));
  eachPathAndEpilogue(title, list, base, { KILN_CONV_WINOGRAD: '1' });
  describe.each([['1'], [few]])(`${title} in chunks of tile rows (CPU, KILN_CONV_SCRATCH_FLOATS=%s)`, (limit) => {
    let bin = '';
    beforeAll(() => {
      bin = buildDriver('conv2d');
    });
    it.each(list)('%s', (_name, p, mode) => {
      checkCase(bin, p, mode, seedOf(base, p, mode), 1, { KILN_CONV_WINOGRAD: '1', KILN_CONV_SCRATCH_FLOATS: limit });
    });
  });
}
winogradCases('conv2d Winograd', winoShapes, 91, '700');
/** Stride-2 Winograd (S2 forward, S2T input gradient with odd padding; kernels/cpu/conv2d_winograd.h), forced on:
 * odd output sizes, a 1-pixel image, padding 0 / 1 / 2 / 3 and asymmetric (the input gradient runs S2T only when pt
 * and pl are odd, the phase GEMMs otherwise: both are checked), tiles across images, K past KC, M past MC; on every
 * path and epilogue and in chunks of one and a few tile rows. Same float64 bound as every conv case. */
const winoS2Shapes: [string, Conv][] = [
  ['stride 2 pad 1, 9x10, 2 images', [2, 3, 9, 10, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1]],
  ['stride 2, C 1, O 7, 1x1 image, pad 1', [1, 1, 1, 1, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1]],
  ['stride 2, C 7, O 17, 3x65, pad 1', [2, 7, 3, 65, 17, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1]],
  ['stride 2, C 5, O 6, 11x8, pad (1, 0, 3, 2)', [1, 5, 11, 8, 6, 3, 3, 2, 2, 1, 0, 3, 2, 1, 1, 1]],
  ['stride 2, C 4, O 5, 10x11, no padding', [1, 4, 10, 11, 5, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1, 1]],
  ['stride 2, C 3, O 4, 6x7, padding (3, 3, 1, 2)', [1, 3, 6, 7, 4, 3, 3, 2, 2, 3, 3, 1, 2, 1, 1, 1]],
  ['stride 2, C 3, O 4, 9x9, padding 2', [1, 3, 9, 9, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1]],
  ['stride 2, C 16, O 24, 3 images 7x8 (tiles across images)', [3, 16, 7, 8, 24, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1]],
  ['stride 2, C 65, O 17, 33x63 (K 65)', [1, 65, 33, 63, 17, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1]],
  ['stride 2, C 33, O 200, 17x33 (M > MC)', [1, 33, 17, 33, 200, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1]],
  ['stride 2, C 1100, O 9, 5x6 (K > every KC)', [1, 1100, 5, 6, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1]],
];
winogradCases('conv2d stride-2 Winograd', winoS2Shapes, 93, '900');
/** The fused Winograd pipeline (conv2d_winograd.h fused_rows: each thread runs input transform, GEMMs and output
 * transform on its own groups of tile rows) forced on with groups of one tile row (KILN_CONV_WINO_FUSED=1): every F(2x2,
 * 3x3), stride-2 and stride-2 input-gradient shape above (groups across images, tile rows half outside, K past KC, M
 * past MC), on every path and epilogue. Same float64 bound. */
const fusedList = [...winoShapes, ...winoS2Shapes].flatMap(([s, p]) => modes.slice(0, 2).map(([m, mode]) => [`${m}: ${s}`, p, mode] as [string, Conv, number]));
eachPathAndEpilogue('conv2d Winograd fused', fusedList, 95, { KILN_CONV_WINOGRAD: '1', KILN_CONV_WINO_FUSED: '1' });
// Fused or stage by stage, each output sums the same products in the same order (the GEMM's K blocks do not depend on
// how many columns a call has): the same bits, forced on, forced off and by default (which fuses 64 -> 64 channels
// and stays stage by stage at 128 on a 1 MiB L2); so the choice may depend on the batch size and the thread count.
describe('conv2d Winograd fused and stage by stage give the same bits (CPU)', () => {
  let bin = '';
  beforeAll(() => {
    bin = buildDriver('conv2d');
  });
  it.each<[string, Conv]>([
    ['64 -> 64 channels, 2 images 32x32', [2, 64, 32, 32, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
    ['128 -> 128 channels, 17x19', [1, 128, 17, 19, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
    ['stride 2, 64 -> 64 channels, 64x64', [1, 64, 64, 64, 64, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1]],
  ])('%s', (_name, p) => {
    for (const isa of cpuGemmPaths().paths)
      for (const mode of [0, 1]) {
        const run = (env: Record<string, string>) => runDriver(bin, [...p, mode, 7, 1], { KILN_CPU_ISA: isa, KILN_CONV_WINOGRAD: '1', ...env }).arrays.out;
        const on = run({ KILN_CONV_WINO_FUSED: '1' }), off = run({ KILN_CONV_WINO_FUSED: '0' }), dflt = run({});
        const { ref, mag } = reference(p, mode, 7);
        expectClose(on, ref, mag, 'out');
        const same = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.from(a).every((v, i) => Object.is(v, b[i]));
        expect(`${isa} mode ${mode}: fused ${same(on, off) ? 'same' : 'different'}, default ${same(dflt, off) ? 'same' : 'different'}`)
          .toBe(`${isa} mode ${mode}: fused same, default same`);
      }
  });
});
// The switch is real: forced on and off, the same inputs give different bits (different sums); by default
// (conv_winograd in conv2d_winograd.h) AVX-512 paths take Winograd from 32 channels each way and 256 tiles an image,
// from 64 channels at 128 tiles and from 128 at 64 (except forwards that the in-place outer product takes: up to 256
// pixels with 64 Ki weights), the others from 32 channels and 64 tiles; stride 2 from 32 channels and 256 tiles on every
// path.
describe('conv2d Winograd selection (CPU)', () => {
  let bin = '';
  beforeAll(() => {
    bin = buildDriver('conv2d');
  });
  const bitsOf = (p: Conv, mode: number, env: Record<string, string>) => Array.from(runDriver(bin, [...p, mode, 3, 1], env).arrays.out).join(' ');
  const wide = (isa: string) => isa.startsWith('avx512');
  it.each<[string, Conv, (isa: string, mode: number) => boolean]>([
    ['64 -> 64 channels, 32x32 (256 tiles)', [1, 64, 32, 32, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1] as Conv, (_isa: string) => true],
    ['32 -> 64 channels, 16x16 (64 tiles)', [1, 32, 16, 16, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1] as Conv, (isa: string) => !wide(isa)],
    ['32 -> 32 channels, 24x24 (144 tiles)', [1, 32, 24, 24, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1] as Conv, (isa: string) => !wide(isa)],
    ['32 -> 32 channels, 32x32 (256 tiles)', [1, 32, 32, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1] as Conv, (_isa: string) => true],
    ['64 -> 64 channels, 2 images 10x10 (50 tiles)', [2, 64, 10, 10, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1] as Conv, (_isa: string) => false],
    // Tiles count per image, not over the batch (a batch-1 and a batch-2 run must pick the same algorithm):
    ['64 -> 64 channels, 2 images 16x16 (64 tiles an image)', [2, 64, 16, 16, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1] as Conv, (isa: string) => !wide(isa)],
    ['16 -> 16 channels, 32x32', [1, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1] as Conv, (_isa: string) => false],
    // From 128 channels each way, AVX-512 paths too from 64 tiles: the input gradient; their forward takes the outer
    // product over w in place (conv2d_small.h conv_arows_fwd) first:
    ['128 -> 128 channels, 16x16 (64 tiles)', [1, 128, 16, 16, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1] as Conv, (isa: string, mode: number) => !wide(isa) || mode === 1],
    ['128 -> 64 channels, 16x16 (64 tiles)', [1, 128, 16, 16, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1] as Conv, (isa: string) => !wide(isa)],
    // Stride 2 (S2 / S2T) from 256 tiles an image on every path, with the same channel minimums:
    ['stride 2, 64 -> 64 channels, 64x64 (256 tiles)', [1, 64, 64, 64, 64, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1] as Conv, (_isa: string) => true],
    ['stride 2, 32 -> 32 channels, 64x64 (256 tiles)', [1, 32, 64, 64, 32, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1] as Conv, (_isa: string) => true],
    ['stride 2, 16 -> 16 channels, 64x64 (256 tiles)', [1, 16, 64, 64, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1] as Conv, (_isa: string) => false],
    ['stride 2, 128 -> 128 channels, 2 images 32x32 (64 tiles an image)', [2, 128, 32, 32, 128, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1] as Conv, (_isa: string) => false],
  ])('%s', (_name, p, wino) => {
    for (const isa of cpuGemmPaths().paths)
      for (const mode of [0, 1]) {
        const on = bitsOf(p, mode, { KILN_CPU_ISA: isa, KILN_CONV_WINOGRAD: '1' }), off = bitsOf(p, mode, { KILN_CPU_ISA: isa, KILN_CONV_WINOGRAD: '0' });
        const dflt = bitsOf(p, mode, { KILN_CPU_ISA: isa });
        expect(`${isa} mode ${mode}: ${on === off ? 'same' : 'different'}`).toBe(`${isa} mode ${mode}: different`);
        expect(`${isa} mode ${mode}: ${dflt === on ? 'Winograd' : dflt === off ? 'not Winograd' : 'neither'}`).toBe(`${isa} mode ${mode}: ${wino(isa, mode) ? 'Winograd' : 'not Winograd'}`);
      }
  });
});

/** Convs with few output pixels (kernels/cpu/conv2d_small.h): the forward as dot-product tiles over w's rows and the
 * patch matrix, the input gradient as a GEMM reading w in place plus a col2im gather. Forced on (KILN_CONV_SMALL=1)
 * for every general shape above (groups, depthwise, strides, dilation, asymmetric and wide padding, ragged K tails of
 * the 4- / 8- / 16-lane tiles, row and pixel counts off the tiles, two images), on every path and epilogue; forced off
 * on the shapes the default now sends there, so the packed paths keep their small cases. Same float64 bound. */
const smallCases = shapes.slice(0, 14).flatMap(([s, p]) => modes.slice(0, 2).map(([m, mode]) => [`${m}: ${s}`, p, mode] as [string, Conv, number]));
eachPathAndEpilogue('conv2d small', smallCases, 93, { KILN_CONV_SMALL: '1' });
describe('conv2d small paths forced off (CPU)', () => {
  let bin = '';
  beforeAll(() => {
    bin = buildDriver('conv2d');
  });
  it.each(smallCases)('%s', (_name, p, mode) => {
    checkCase(bin, p, mode, seedOf(93, p, mode), 1, { KILN_CONV_SMALL: '0' });
  });
});
// The switch is real (forced on and off give different bits) and the default follows conv_small_fwd / conv_small_bwd:
// the forward from 32 Ki weight floats a group and up to 16 output pixels, the input gradient up to 16 pixels or up to
// 196 with 36 Ki weight floats.
describe('conv2d small selection (CPU)', () => {
  let bin = '';
  beforeAll(() => {
    bin = buildDriver('conv2d');
  });
  const bitsOf = (p: Conv, mode: number, env: Record<string, string>) => Array.from(runDriver(bin, [...p, mode, 5, 1], env).arrays.out).join(' ');
  it.each([
    ['256 channels, 4x4 (16 pixels)', [1, 256, 4, 4, 256, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1] as Conv, true, true],
    ['64 channels, 9x9 stride 2 (25 pixels)', [1, 64, 9, 9, 64, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1] as Conv, false, true],
    ['16 channels, 4x4 (16 pixels, 2304 weights)', [1, 16, 4, 4, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1] as Conv, false, true],
    ['64 channels, 17x17 (289 pixels)', [1, 64, 17, 17, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1] as Conv, false, false],
  ])('%s', (_name, p, fwd, bwd) => {
    for (const mode of [0, 1]) {
      const on = bitsOf(p, mode, { KILN_CONV_SMALL: '1' }), off = bitsOf(p, mode, { KILN_CONV_SMALL: '0' }), dflt = bitsOf(p, mode, {});
      expect(`mode ${mode}: ${on === off ? 'same' : 'different'}`).toBe(`mode ${mode}: different`);
      expect(`mode ${mode}: ${dflt === on ? 'small' : dflt === off ? 'packed' : 'neither'}`).toBe(`mode ${mode}: ${(mode === 0 ? fwd : bwd) ? 'small' : 'packed'}`);
    }
  });
});

/** The forward as an outer product over w read in place (conv2d_small.h fwd_arows, gemm_ukr.h ukr_*_arows) and the
 * weight gradient as one over dy in place (wgrad_arows), forced on (KILN_CONV_AROWS=1): every general shape above, and
 * shapes for their own edges: row blocks of 12 / 8 / 6 / 4 / 3 with ragged last blocks (O 37, 13, 1, 19, 30), 1 to 4
 * vectors a tile and a narrower last tile (pixel counts 1, 9, 25, 49, 81, 100, 289; K = 63, 45, 54, 585, 81, 630),
 * images side by side (3 x 25 pixels in one call) and in groups (3 x 100: two images, then one), K past the forward's
 * K block (65 x 9 = 585 > 512 on a 1 MiB L2: the second block adds to the first), stride 2, dilation, groups,
 * asymmetric padding, 1x1; on every path and epilogue (the plain store: the weight gradient sums into the output when
 * its rows are whole vectors). Same float64 bound as every conv case. */
const arowsShapes: [string, Conv][] = [
  ['C 7, O 37, 3 images 5x5 pad 1 (side by side)', [3, 7, 5, 5, 37, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['C 5, O 13, 3 images 10x10 pad 1 (groups of images)', [3, 5, 10, 10, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['C 65, O 19, 9x9 pad 1 (K 585 > K block)', [1, 65, 9, 9, 19, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['C 3, O 1, 17x17 pad 1 (289 pixels, one image past 256)', [1, 3, 17, 17, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['C 9, O 30, 2 images 13x14 stride 2 pad (1, 0, 2, 1)', [2, 9, 13, 14, 30, 3, 3, 2, 2, 1, 0, 2, 1, 1, 1, 1]],
  ['C 6, O 10, 7x7 dilation 2 pad 2, groups 2', [1, 6, 7, 7, 10, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 2]],
  ['1x1 C 70, O 25, 2 images 7x7', [2, 70, 7, 7, 25, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1]],
  ['C 4, O 50, 1x1 image pad 1 (1 pixel)', [1, 4, 1, 1, 50, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['C 8, O 27, 3x3 image pad 1 (9 pixels)', [1, 8, 3, 3, 27, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ['C 16, O 13, 2 images 6x6 pad 1 (K 144: whole vectors)', [2, 16, 6, 6, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
];
const arowsCases = [...shapes.slice(0, 14), ...arowsShapes].flatMap(([s, p]) => [['forward', 0], ['bwd_weight', 2]].map(([m, mode]) => [`${m}: ${s}`, p, mode] as [string, Conv, number]));
eachPathAndEpilogue('conv2d outer products on w / dy in place', arowsCases, 97, { KILN_CONV_AROWS: '1' });
// The weight gradient one image a group (KILN_CONV_SCRATCH_FLOATS=1: later images add to dw, through the tile buffer in
// ragged row blocks), on the best path, every shape with more than one image.
describe('conv2d weight gradient on dy in place, one image at a time (CPU)', () => {
  let bin = '';
  beforeAll(() => {
    bin = buildDriver('conv2d');
  });
  it.each(arowsCases.filter(([, p, mode]) => mode === 2 && p[0] > 1))('%s', (_name, p, mode) => {
    for (const rows of [1, 2]) checkCase(bin, p, mode, seedOf(97, p, mode), rows, { KILN_CONV_AROWS: '1', KILN_CONV_SCRATCH_FLOATS: '1' });
  });
});
// Forced off, the general shapes whose weights the default now sends there on some path (32 Ki floats a group and up),
// so the packed paths keep their cases.
const weightFloats = (p: Conv) => (p[4] / p[15]) * (p[1] / p[15]) * p[5] * p[6];
eachPathAndEpilogue('conv2d outer products forced off', cases.filter(([, p, mode]) => mode !== 1 && weightFloats(p) >= 32768), 77, { KILN_CONV_AROWS: '0' });
// The switch is real (forced on and off give different bits) and the default follows conv_arows_fwd: from 64 Ki weight
// floats a group and 17 to 256 (AVX-512) / 196 (AVX2) output pixels an image, never on the portable path; per image,
// not over the batch; and conv_arows_wgrad: up to 256 pixels an image from 32 Ki weight floats, not on the portable path.
/** Per ISA path: forced on and off give different bits, and the default is the forced-on result exactly where
 * `arows(isa)` (mode 0: the forward on w in place, 2: the weight gradient on dy in place). */
function arowsSelection(title: string, mode: number, list: [string, Conv, (isa: string) => boolean][]): void {
  describe(title, () => {
    let bin = '';
    beforeAll(() => {
      bin = buildDriver('conv2d');
    });
    const bitsOf = (p: Conv, env: Record<string, string>) => Array.from(runDriver(bin, [...p, mode, 7, 1], env).arrays.out).join(' ');
    it.each(list)('%s', (_name, p, arows) => {
      for (const isa of cpuGemmPaths().paths) {
        const on = bitsOf(p, { KILN_CPU_ISA: isa, KILN_CONV_AROWS: '1' }), off = bitsOf(p, { KILN_CPU_ISA: isa, KILN_CONV_AROWS: '0' });
        const dflt = bitsOf(p, { KILN_CPU_ISA: isa });
        expect(`${isa}: ${on === off ? 'same' : 'different'}`).toBe(`${isa}: different`);
        expect(`${isa}: ${dflt === on ? 'in place' : dflt === off ? 'other' : 'neither'}`).toBe(`${isa}: ${arows(isa) ? 'in place' : 'other'}`);
      }
    });
  });
}
// Weight gradient: stride-1 3x3 shapes with fewer than 128 outputs a group only (the alternative is then the dot
// tiles, whose lane sums round differently; from 128 outputs it is the packed GEMM, which sums each output in the
// same order as the outer product: the same bits).
arowsSelection('conv2d weight gradient on dy in place: selection (CPU)', 2, [
  ['320 -> 96 channels, 8x8', [1, 320, 8, 8, 96, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1], (isa) => isa !== 'generic'],
  ['256 -> 96 channels, 2x2', [1, 256, 2, 2, 96, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1], (isa) => isa !== 'generic'],
  ['64 channels, 2 images 16x16 (256 pixels an image)', [2, 64, 16, 16, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1], (isa) => isa !== 'generic'],
  ['64 channels, 17x17 (289 pixels)', [1, 64, 17, 17, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1], () => false],
  ['32 channels, 8x8 (9 Ki weights)', [1, 32, 8, 8, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1], () => false],
]);
const wide = (isa: string) => isa.startsWith('avx512');
arowsSelection('conv2d forward on w in place: selection (CPU)', 0, [
  ['320 channels, 8x8', [1, 320, 8, 8, 320, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1], (isa) => isa !== 'generic'],
  ['128 channels, 16x16 stride 2 (8x8 outputs)', [1, 128, 16, 16, 128, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1], (isa) => isa !== 'generic'],
  ['128 channels, 14x14 (196 pixels)', [1, 128, 14, 14, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1], (isa) => isa !== 'generic'],
  ['128 channels, 15x15 (225 pixels)', [1, 128, 15, 15, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1], wide],
  ['128 channels, 17x17 (289 pixels)', [1, 128, 17, 17, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1], () => false],
  ['256 channels, 4x4 (16 pixels)', [1, 256, 4, 4, 256, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1], () => false],
  ['256 channels, 2 images 4x4 (16 pixels an image)', [2, 256, 4, 4, 256, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1], () => false],
  // 80 channels, not 64: K = 720 is past one K block of the packed GEMM the default takes (the avx2 column split's
  // 512 on a 48 KiB L1d), so its sums round differently from the in-place kernel's; at K = 576 (64 channels) the
  // avx2 GEMM summed in one block, in the same order, and gave the same bits on an Intel Xeon.
  ['80 channels, 8x8 (56 Ki weights)', [1, 80, 8, 8, 80, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1], () => false],
  ['1x1 640 -> 256 channels, 2 images 8x8', [2, 640, 8, 8, 256, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1], (isa) => isa !== 'generic'],
]);
