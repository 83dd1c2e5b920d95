import { input, param, grad, evaluate, adamw, sgd, trainableParams, valueAndGrad, full, type ParamStore } from '../../compiler/index';

describe('autodiff', () => {
  test('gradient of a known function: d/dx sum(x^2 * 3) = 6x', () => {
    const x = input('x', [3]);
    const [g] = grad(x.square().mul(3).sum(), [x]);
    expect(Array.from(evaluate({ outputs: { g } }, { x: [1, -2, 0.5] }).outputs.g.data)).toEqual([6, -12, 3]);
  });

  test('stop_gradient blocks the path through it', () => {
    const x = input('x', [2]);
    const y = x.mul(x.stopGradient()).sum(); // d/dx = x (only the first factor)
    const [g] = grad(y, [x]);
    expect(Array.from(evaluate({ outputs: { g } }, { x: [3, 4] }).outputs.g.data)).toEqual([3, 4]);
  });

  test('frozen parameters are not trainable; leaves not on the path get zeros', () => {
    const w = param('w', [2], { init: { kind: 'ones' } });
    const frozen = param('f', [2], { trainable: false, init: { kind: 'ones' } });
    const unused = param('u', [2]);
    const y = w.mul(frozen).sum();
    expect(trainableParams(y).map((t) => t.node.id)).toEqual([w.node.id]);
    const [gu] = grad(y, [unused]);
    expect(Array.from(evaluate({ outputs: { gu } }).outputs.gu.data)).toEqual([0, 0]);
  });

  test('non-scalar outputs need a cotangent', () => {
    const x = input('x', [2]);
    expect(() => grad(x.exp(), [x])).toThrow(/give a cotangent/);
    const [g] = grad(x.exp(), [x], full([2], 2));
    expect(evaluate({ outputs: { g } }, { x: [0, 0] }).outputs.g.data[0]).toBe(2);
  });

  test('AdamW step matches the formula (two steps, bias correction, decoupled weight decay)', () => {
    const w = param('w', [2], { init: { kind: 'constant', value: 1 } });
    const x = input('x', [2]);
    const loss = w.mul(x).sum();
    const { grads, params } = valueAndGrad(loss);
    const updates = adamw(params, grads, { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.01 });
    const store: ParamStore = new Map();
    const spec = { outputs: { loss }, updates };
    const g = [2, -3];
    let wv = [1, 1], m = [0, 0], v = [0, 0];
    for (let t = 1; t <= 2; t++) {
      evaluate(spec, { x: g }, store);
      m = m.map((mi, i) => 0.9 * mi + 0.1 * g[i]);
      v = v.map((vi, i) => 0.99 * vi + 0.01 * g[i] ** 2);
      wv = wv.map((wi, i) => wi - 0.1 * ((m[i] / (1 - 0.9 ** t)) / (Math.sqrt(v[i] / (1 - 0.99 ** t)) + 1e-8) + 0.01 * wi));
    }
    expect(Array.from(store.get('w')!)).toEqual(wv.map((e) => expect.closeTo(e, 12)));
    expect(store.get('adamw.step')![0]).toBe(2);
  });

  test('SGD with momentum lowers a quadratic loss', () => {
    const w = param('w', [3], { init: { kind: 'normal', std: 1, seed: 3 } });
    const loss = w.sub(full([3], 2)).square().sum();
    const { grads, params } = valueAndGrad(loss);
    const spec = { outputs: { loss }, updates: sgd(params, grads, { lr: 0.1, momentum: 0.5 }) };
    const store: ParamStore = new Map();
    const losses = Array.from({ length: 20 }, () => evaluate(spec, {}, store).outputs.loss.data[0]);
    expect(losses[19]).toBeLessThan(losses[0] * 1e-3);
  });
});
