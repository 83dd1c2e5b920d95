/** LoRA layers against diffusers v0.25.1 models/lora.py (LoRACompatibleLinear / LoRACompatibleConv with
 * LoRALinearLayer / LoRAConv2dLayer, their _fuse_lora / _unfuse_lora), values written once by
 * test/fixtures/lora/generate.py; LoRA gradients against central differences; the scale as a runtime value;
 * per-block scales with two adapters; the fused lowering (kernel count). */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile, evaluate, grad, input, constant, linear, type Tensor, type ParamStore } from '../../compiler/index';
import { readSafetensors } from '../../models/io/safetensors';
import { Conv2d, Linear, ParamRegistry } from '../../models/nn/index';
import { attachLora, keyOf, LoraError, mergeLora, unmergeLora, type LoraAdapter } from '../../models/nn/lora';

const ref = readSafetensors(path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/lora/reference.safetensors')).tensors;
const get = (k: string): Float64Array => { const t = ref.get(k); if (!t) throw new Error(`no ${k} in the fixture`); return t.data as Float64Array; };
const shapeOf = (k: string) => ref.get(k)!.shape;
const relErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let e = 0, s = 0;
  for (let i = 0; i < b.length; i++) { e = Math.max(e, Math.abs(a[i]! - b[i]!)); s = Math.max(s, Math.abs(b[i]!)); }
  return e / s;
};

/** One layer from the fixture with a LoRA attached (rank 2; α 1 for the linear, 3 for the convs). */
function layerCase(name: 'linear' | 'conv' | 'conv_s2', mode: 'operand' | 'epilogue', xName = 'x') {
  const reg = new ParamRegistry({ trainable: false });
  const s = reg.scope().child(name);
  const layer = name === 'linear' ? new Linear(s, 6, 5) : new Conv2d(s, 3, 4, { stride: name === 'conv_s2' ? 2 : 1 });
  const lora = attachLora({ layer }, { name: `lora_${name}`, targets: [name], rank: 2, alpha: name === 'linear' ? 1 : 3, mode });
  const l = lora.layers.get(name)!;
  const store: ParamStore = new Map([
    [keyOf(layer.weight), get(`${name}.weight`)], [keyOf(layer.bias!), get(`${name}.bias`)],
    [keyOf(l.down), get(`${name}.down`)], [keyOf(l.up), get(`${name}.up`)],
  ]);
  const x = input(xName, shapeOf(`${name}.x`));
  return { layer, lora, l, store, x, y: layer.forward(x), feeds: { [xName]: get(`${name}.x`) }, scale: name === 'linear' ? 0.7 : 0.5 };
}

describe('LoRA layers vs diffusers v0.25.1 models/lora.py', () => {
  test.each([['linear', 'operand'], ['linear', 'epilogue'], ['conv', 'operand'], ['conv', 'epilogue'], ['conv_s2', 'operand'], ['conv_s2', 'epilogue']] as const)(
    '%s (%s form): y = W x + b + s·(α/r)·B(A x) to 1e-12 (float64 evaluator)', (name, mode) => {
      const c = layerCase(name, mode);
      c.lora.setScale(c.store, c.scale);
      const y = evaluate({ outputs: { y: c.y } }, c.feeds, c.store).outputs.y.data;
      expect(relErr(y, get(`${name}.y`))).toBeLessThan(1e-12);
      // scale 0: the base layer alone (the scale is a value, not part of the graph)
      c.lora.setScale(c.store, 0);
      const y0 = evaluate({ outputs: { y: c.y } }, c.feeds, c.store).outputs.y.data;
      c.layer.adapters.length = 0;
      const base = evaluate({ outputs: { y: c.layer.forward(c.x) } }, c.feeds, c.store).outputs.y.data;
      expect(relErr(y0, base)).toBe(0);
      expect(relErr(y, base)).toBeGreaterThan(1e-3);
    });

  test.each(['linear', 'conv', 'conv_s2'] as const)('%s: merge in f32 as _fuse_lora, unmerge as _unfuse_lora (within one f32 ulp of the original)', (name) => {
    const c = layerCase(name, 'operand');
    const f32 = (a: Float64Array) => Float64Array.from(a, Math.fround);
    const key = keyOf(c.layer.weight), w0 = f32(get(`${name}.weight`));
    for (const k of [...c.store.keys()]) c.store.set(k, f32(c.store.get(k)!));
    mergeLora(c.store, c.lora, c.scale);
    const merged = c.store.get(key)!;
    expect(relErr(merged, get(`${name}.fused`))).toBeLessThan(1e-6);
    unmergeLora(c.store, c.lora, c.scale);
    const back = c.store.get(key)!;
    expect(relErr(back, get(`${name}.unfused`))).toBeLessThan(1e-6);
    let worst = 0;
    for (let i = 0; i < w0.length; i++) {
      const ulp = ulp32(Math.max(Math.abs(w0[i]!), Math.abs(merged[i]!)));
      worst = Math.max(worst, Math.abs(back[i]! - w0[i]!) / ulp);
    }
    expect(worst).toBeLessThanOrEqual(1);
    // The merged base weight with the adapter detached computes what the adapter computed.
    c.lora.detach();
    c.store.set(key, merged);
    const y = evaluate({ outputs: { y: c.layer.forward(c.x) } }, c.feeds, c.store).outputs.y.data;
    expect(relErr(y, get(`${name}.y`))).toBeLessThan(1e-6);
  });
});

/** The spacing of f32 values at magnitude a. */
function ulp32(a: number): number {
  const e = Math.max(Math.floor(Math.log2(Math.max(a, 2 ** -126))), -126);
  return 2 ** (e - 23);
}

describe('LoRA gradients', () => {
  test.each([['linear', 'operand'], ['conv_s2', 'operand'], ['conv', 'epilogue']] as const)('%s (%s): dL/dA and dL/dB against central differences', (name, mode) => {
    const c = layerCase(name, mode);
    c.lora.setScale(c.store, c.scale);
    const cot = constant(Array.from({ length: c.y.size }, (_v, i) => Math.sin(1 + 0.37 * i)), c.y.shape);
    const loss = c.y.mul(cot).sum();
    const [gA, gB] = grad(loss, [c.l.down, c.l.up]);
    const an = evaluate({ outputs: { gA: gA!, gB: gB! } }, c.feeds, c.store).outputs;
    const lossAt = (): number => evaluate({ outputs: { loss } }, c.feeds, c.store).outputs.loss.data[0]!;
    for (const [t, g] of [[c.l.down, an.gA.data], [c.l.up, an.gB.data]] as const) {
      const k = keyOf(t), v = c.store.get(k)!, num = new Float64Array(v.length), h = 1e-5;
      for (let i = 0; i < v.length; i++) {
        const o = v[i]!;
        v[i] = o + h; const lp = lossAt();
        v[i] = o - h; const lm = lossAt();
        v[i] = o;
        num[i] = (lp - lm) / (2 * h);
      }
      expect(relErr(g, num)).toBeLessThan(1e-7);
    }
  });
});

describe('several adapters, per-block scales', () => {
  test('two adapters on the same layers add up, each with its own per-block scale vector', () => {
    const reg = new ParamRegistry({ trainable: false });
    const model = {
      a: new Linear(reg.scope().child('down_blocks.1.attentions.0.to_q'), 4, 3),
      b: new Linear(reg.scope().child('up_blocks.0.attentions.0.to_q'), 4, 3),
      c: new Linear(reg.scope().child('time_embedding.linear_1'), 4, 3),
    };
    const l1 = attachLora(model, { name: 'style', targets: ['to_q'], rank: 2, alpha: 1 });
    const l2 = attachLora(model, { name: 'face', targets: (p) => true, rank: 3 });
    expect(l1.groups).toEqual(['down_blocks.1', 'up_blocks.0']);
    expect(l2.groups).toEqual(['down_blocks.1', 'up_blocks.0', 'other']);
    const x = input('x', [2, 4]);
    const store: ParamStore = new Map();
    let k = 0;
    const fill = (t: Tensor) => store.set(keyOf(t), Float64Array.from({ length: t.size }, () => Math.sin(++k * 1.7)));
    for (const m of Object.values(model)) { fill(m.weight); fill(m.bias!); }
    for (const a of [l1, l2]) for (const t of a.params()) fill(t);
    l1.setScale(store, 1, { 'up_blocks.0': 0.25 });
    l2.setScale(store, 0.5, { other: 2 });
    const xs = [0.3, -1, 2, 0.5, 1, 1, -0.2, 0.1];
    const outs = evaluate({ outputs: { a: model.a.forward(x), b: model.b.forward(x), c: model.c.forward(x) } }, { x: xs }, store).outputs;
    // by hand: W x + b + Σ_adapters s_block · (α/r) · B A x
    const want = (m: Linear, path: string, terms: [LoraAdapter, number][]) => {
      const cst = (t: Tensor) => constant(store.get(keyOf(t))!, t.shape);
      let y = linear(constant(xs, [2, 4]), cst(m.weight), cst(m.bias!));
      for (const [a, s] of terms) {
        const l = a.layers.get(path)!;
        y = y.add(linear(linear(constant(xs, [2, 4]), cst(l.down)), cst(l.up)).mul(s * l.alpha / l.rank));
      }
      return evaluate({ outputs: { y } }).outputs.y.data;
    };
    expect(relErr(outs.a.data, want(model.a, 'down_blocks.1.attentions.0.to_q', [[l1, 1], [l2, 0.5]]))).toBeLessThan(1e-14);
    expect(relErr(outs.b.data, want(model.b, 'up_blocks.0.attentions.0.to_q', [[l1, 0.25], [l2, 0.5]]))).toBeLessThan(1e-14);
    expect(relErr(outs.c.data, want(model.c, 'time_embedding.linear_1', [[l2, 2]]))).toBeLessThan(1e-14);
    expect(() => l1.scaleValues(1, { mid_block: 1 })).toThrow(/no block group 'mid_block'; the groups are down_blocks.1, up_blocks.0/);
  });

  test('a target that matches no module is a LoraError listing what the model has', () => {
    const reg = new ParamRegistry();
    const model = { a: new Linear(reg.scope().child('blk.to_q'), 4, 3) };
    expect(() => attachLora(model, { targets: ['to_k'], rank: 2 })).toThrow(LoraError);
    expect(() => attachLora(model, { targets: ['to_k'], rank: 2 })).toThrow(/'to_k' match no Linear or Conv2d; the model has e.g. blk.to_q/);
  });
});

describe('compiled (C++, f32): one program, the scale changed at run time', () => {
  test('linear + conv with LoRA to 1e-4 of diffusers; scale 0 = the base; the low-rank term is one extra kernel per layer', async () => {
    const lin = layerCase('linear', 'operand', 'xl'), conv = layerCase('conv_s2', 'operand', 'xc');
    const prog = await compile({ outputs: { lin: lin.y, conv: conv.y } });
    prog.loadParams(new Map([...lin.store, ...conv.store]), { strict: false });
    const feeds = { ...lin.feeds, ...conv.feeds };
    prog.setParam(lin.lora.scaleKey, lin.lora.scaleValues(0.7));
    prog.setParam(conv.lora.scaleKey, conv.lora.scaleValues(0.5));
    let out = prog.run(feeds);
    expect(relErr(out.lin!, get('linear.y'))).toBeLessThan(1e-4);
    expect(relErr(out.conv!, get('conv_s2.y'))).toBeLessThan(1e-4);
    prog.setParam(lin.lora.scaleKey, [0]);
    prog.setParam(conv.lora.scaleKey, [0]);
    out = prog.run(feeds);
    lin.layer.adapters.length = 0; conv.layer.adapters.length = 0;
    const base = evaluate({ outputs: { lin: lin.layer.forward(lin.x), conv: conv.layer.forward(conv.x) } }, feeds, new Map([...lin.store, ...conv.store])).outputs;
    expect(relErr(out.lin!, base.lin.data)).toBeLessThan(1e-5);
    expect(relErr(out.conv!, base.conv.data)).toBeLessThan(1e-5);
    // Per layer: the B·A GEMM with W + c·(B·A) as its epilogue, then the base GEMM / conv reading that operand
    // (its bias in its own epilogue): 2 kernels a layer, no separate add or scale kernels.
    const kernels = prog.explain().split('\n').filter((l) => /^\s*\d+ k\d+_/.test(l));
    expect(kernels.length).toBe(4);
  });
});
