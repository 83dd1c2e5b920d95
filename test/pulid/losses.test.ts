/** Each loss against values computed by hand (plain JS), and the face-region resize. */
import { evaluate, input } from '../../compiler/index';
import { normalFill } from '../../compiler/ir/philox';
import { alignmentLosses, diffusionLoss, faceInput, idLoss, resizeMatrix, semanticAttention } from '../../models/pulid/losses';

const M = Math;
const randn = (n: number, seed: number) => normalFill(n, seed);
const run = (outputs: Record<string, ReturnType<typeof input>>, feeds: Record<string, Float64Array>) =>
  Object.fromEntries(Object.entries(evaluate({ outputs }, feeds, new Map()).outputs).map(([k, v]) => [k, v.data]));

describe('PuLID losses', () => {
  test('L_diff = mean (ε̂ − ε)²', () => {
    const a = Float64Array.of(1, 2, 3, 4), b = Float64Array.of(0, 2, 5, 3);
    const r = run({ l: diffusionLoss(input('a', [1, 4]), input('b', [1, 4])) }, { a, b });
    expect(r.l[0]).toBeCloseTo((1 + 0 + 4 + 1) / 4, 12);
  });

  test('L_id = 1 − cos(φ(C_id), φ(x̂0)), batch mean', () => {
    const a = Float64Array.of(1, 0, 0, 1), b = Float64Array.of(1, 1, 0, -1);
    const r = run({ l: idLoss(input('a', [2, 2]), input('b', [2, 2])) }, { a, b });
    expect(r.l[0]).toBeCloseTo(1 - (1 / M.SQRT2 + -1) / 2, 10);
  });

  test('L_align-sem and L_align-layout: softmax(KQᵀ/√d)Q and Q differences, averaged over layers', () => {
    // one head, Lq = 2, Lk = 1, d = 1 — small enough to do on paper
    const qt = Float64Array.of(1, 2), qtid = Float64Array.of(1, 3), k = Float64Array.of(1);
    const t = [{ layer: 'L0', q: input('qt', [1, 1, 2, 1]), k: input('k', [1, 1, 1, 1]) }];
    const tid = [{ layer: 'L0', q: input('qtid', [1, 1, 2, 1]), k: input('k', [1, 1, 1, 1]) }];
    const al = alignmentLosses(t, tid);
    const r = run({ sem: al.sem, layout: al.layout, a: semanticAttention(t[0].q, t[0].k) }, { qt, qtid, k });
    const att = (q: number[]) => { const e = q.map((x) => M.exp(x)); const s = e[0] + e[1]; return (e[0] * q[0] + e[1] * q[1]) / s; };
    expect(r.a[0]).toBeCloseTo(att([1, 2]), 12);
    expect(r.sem[0]).toBeCloseTo((att([1, 3]) - att([1, 2])) ** 2, 12);
    expect(r.layout[0]).toBeCloseTo((0 + 1) / 2, 12);
    // two layers: the mean of the per-layer values
    const t2 = [...t, { layer: 'L1', q: input('qt', [1, 1, 2, 1]), k: input('k', [1, 1, 1, 1]) }];
    const tid2 = [...tid, { layer: 'L1', q: input('qt', [1, 1, 2, 1]), k: input('k', [1, 1, 1, 1]) }];
    const al2 = alignmentLosses(t2, tid2);
    const r2 = run({ sem: al2.sem, layout: al2.layout }, { qt, qtid, k });
    expect(r2.layout[0]).toBeCloseTo(0.25, 12);
    expect(r2.sem[0]).toBeCloseTo(r.sem[0] / 2, 12);
  });

  test('face region → 150×150 in 0..255 (bilinear, half-pixel centres)', () => {
    const m = resizeMatrix(4, 2);
    expect(Array.from(m)).toEqual([1, 0, 0.75, 0.25, 0.25, 0.75, 0, 1]);
    for (let o = 0; o < 150; o++) { let s = 0; const r = resizeMatrix(150, 64); for (let i = 0; i < 64; i++) s += r[o * 64 + i]; expect(s).toBeCloseTo(1, 12); }
    const img = randn(3 * 8 * 8, 4).map((v) => M.tanh(v));
    const r = run({ y: faceInput(input('img', [1, 3, 8, 8])) }, { img });
    expect(r.y.length).toBe(3 * 150 * 150);
    // pixel (75, 75) of channel 1 by hand: the source coordinate (75.5)·8/150 − 0.5
    const src = 75.5 * (8 / 150) - 0.5, i0 = M.floor(src), f = src - i0;
    const px = (y: number, x: number) => (img[64 + y * 8 + x] + 1) * 127.5;
    const want = (1 - f) * ((1 - f) * px(i0, i0) + f * px(i0, i0 + 1)) + f * ((1 - f) * px(i0 + 1, i0) + f * px(i0 + 1, i0 + 1));
    expect(r.y[150 * 150 + 75 * 150 + 75]).toBeCloseTo(want, 9);
  });
});
