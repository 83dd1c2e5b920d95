/** cosineSimilarity reduces over the broadcast shape of its inputs, as PyTorch does (a bug reduced each input
 * over its own axis: [3,5,4] vs [3,5,1] gave twice the value, [2,2] vs [2] on axis -2 reduced the wrong axis). */
import { constant as c, cosineSimilarity, evaluate, grad, input } from '../../compiler/index';
import { KilnShapeError } from '../../compiler/ir/errors';

/** Independent check: broadcast by hand, then cos along the axis. */
function cosRef(a: number[], b: number[], [n, m]: [number, number], axis: 0 | 1): number[] {
  const at = (x: number[], i: number, j: number) => x[i * m + j];
  const out: number[] = [];
  const outer = axis === 1 ? n : m, inner = axis === 1 ? m : n;
  for (let o = 0; o < outer; o++) {
    let d = 0, na = 0, nb = 0;
    for (let r = 0; r < inner; r++) {
      const [i, j] = axis === 1 ? [o, r] : [r, o];
      d += at(a, i, j) * at(b, i, j); na += at(a, i, j) ** 2; nb += at(b, i, j) ** 2;
    }
    out.push(d / Math.max(Math.sqrt(na) * Math.sqrt(nb), 1e-8));
  }
  return out;
}

describe('cosineSimilarity broadcasts before reducing', () => {
  test('[3,5,4] vs [3,5,1] on axis -1: each row against a constant vector', () => {
    const a = Array.from({ length: 60 }, (_v, i) => Math.sin(i + 1)), b = Array.from({ length: 15 }, (_v, i) => (i % 3) - 1.5);
    const y = evaluate({ outputs: { y: cosineSimilarity(c(a, [3, 5, 4]), c(b, [3, 5, 1]), -1) } }).outputs.y;
    expect([...y.shape]).toEqual([3, 5]);
    const want = Array.from({ length: 15 }, (_v, r) => cosRef(a.slice(r * 4, r * 4 + 4), [b[r], b[r], b[r], b[r]], [1, 4], 1)[0]);
    y.data.forEach((v, i) => expect(v).toBeCloseTo(want[i], 6));
    // [1,2,3,4] against a constant positive vector: 10 / (sqrt(30) * 2) = 0.9128709…
    const one = evaluate({ outputs: { y: cosineSimilarity(c([1, 2, 3, 4], [1, 4]), c([5], [1, 1])) } }).outputs.y;
    expect(one.data[0]).toBeCloseTo(10 / (Math.sqrt(30) * 2), 6);
  });

  test('[2,2] vs [2] on axis -2 reduces axis 0 of the broadcast shape', () => {
    const a = [1, 2, 3, 4], b = [1, -2];
    const y = evaluate({ outputs: { y: cosineSimilarity(c(a, [2, 2]), c(b, [2]), -2) } }).outputs.y;
    expect([...y.shape]).toEqual([2]);
    // column 0: (1 + 3) / (sqrt(10) sqrt(2)); column 1: -2 (2 + 4) / (sqrt(20) sqrt(8)) = -12 / sqrt(160)
    expect(Array.from(y.data)).toEqual(cosRef(a, [1, -2, 1, -2], [2, 2], 0).map((v) => expect.closeTo(v, 6)));
    expect(y.data[0]).toBeCloseTo(4 / Math.sqrt(20), 6);
    expect(y.data[1]).toBeCloseTo(-12 / Math.sqrt(160), 6);
  });

  test('broadcastable pairs that threw while the graph was built now build, with gradients of the input shapes', () => {
    // axis 1 of the broadcast shape [4,2,3]; reducing b [2,3] over its own axis 1 gave [2], which does not
    // broadcast with a's [4,3]
    const a = input('a', [4, 1, 3]), b = input('b', [2, 3]);
    const y = cosineSimilarity(a, b, 1);
    expect([...y.shape]).toEqual([4, 3]);
    const [ga, gb] = grad(y.sum(), [a, b]);
    expect([...ga.shape]).toEqual([4, 1, 3]);
    expect([...gb.shape]).toEqual([2, 3]);
    const fa = Array.from({ length: 12 }, (_v, i) => i - 5.5), fb = [1, 2, 3, -1, 0.5, 2];
    const out = evaluate({ outputs: { y } }, { a: fa, b: fb }).outputs.y;
    // y[i, k] = cos over j of (a[i, 0, k], b[j, k]) for j = 0, 1
    const want = Array.from({ length: 12 }, (_v, f) => { const i = Math.floor(f / 3), k = f % 3; return cosRef([fa[i * 3 + k], fa[i * 3 + k]], [fb[k], fb[3 + k]], [2, 1], 0)[0]; });
    out.data.forEach((v, f) => expect(v).toBeCloseTo(want[f], 6));
  });

  test('shapes that do not broadcast are a KilnShapeError naming both', () => {
    expect(() => cosineSimilarity(c([1, 2, 3], [3]), c([1, 2], [2]))).toThrow(KilnShapeError);
    expect(() => cosineSimilarity(c([1, 2, 3], [3]), c([1, 2], [2]))).toThrow(/\[3\]:f32 and \[2\]:f32/);
  });
});
