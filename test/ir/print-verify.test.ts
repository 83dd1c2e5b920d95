/** The IR printer (what KILN_DUMP=graph shows) and the graph and kernel-IR verifiers (KILN_VERIFY=1; the tests
 * run with it on, see test/support/env.ts). */
import { constant, input, param, softmax } from '../../compiler/index';
import { intern } from '../../compiler/ir/node';
import { collect } from '../../compiler/ir/graph';
import { printGraph } from '../../compiler/ir/print';
import { KilnVerifyError, verifyGraph } from '../../compiler/passes/verify';
import { KilnKernelVerifyError, verifyKernel } from '../../compiler/codegen/verify';
import * as E from '../../compiler/codegen/expr';
import { lowerProgram } from '../../compiler/compile';

describe('IR printer', () => {
  test('names, attributes (permutations, bounds, values), types and source lines', () => {
    const x = input('x', [2, 3]), w = param('w', [3], { init: { kind: 'constant', value: -0 } });
    const y = x.permute([1, 0]).slice([1, 0], [3, 2], [1, 1]).add(constant([NaN, Infinity], [2])).sum(0).mul(w.narrow(0, 0, 2));
    const out = printGraph(collect({ outputs: { y } }).order, { y: y.node }, { renumber: true });
    const lines = out.split('\n');
    expect(lines[0]).toMatch(/^%0 = input \{name="x"\} : \[2,3\]:f32 +@ test\/ir\/print-verify\.test\.ts:\d+:\d+$/);
    expect(out).toContain('= permute(%0) {perm=[1,0]} : [3,2]:f32');
    expect(out).toContain('= slice(%1) {starts=[1,0], stops=[3,2], steps=[1,1]} : [2,2]:f32');
    expect(out).toContain('= tensor {data=<2 values: NaN, Infinity>} : [2]:f32');
    expect(out).toContain('= sum(%4) {axes=[0], keepdims=false} : [2]:f32');
    expect(out).toContain('= param {name="w", trainable=true, init={kind="constant", value=-0}} : [3]:f32');
    expect(lines[lines.length - 1]).toMatch(/^outputs: y=%\d+$/);
  });
});

describe('graph verifier', () => {
  test('a graph the DSL built passes, before and after simplify', () => {
    const x = input('x', [4, 8]);
    expect(() => verifyGraph(collect({ outputs: { y: softmax(x.mul(2)).sum() } }).order)).not.toThrow();
  });

  test('a node whose shape is not what its rule infers is named', () => {
    const x = input('x', [2, 3]);
    const bad = intern('exp', [x.node], {} as never, [3, 2], 'f32', 'somewhere.ts:1:1');
    expect(() => verifyGraph([x.node, bad])).toThrow(KilnVerifyError);
    expect(() => verifyGraph([x.node, bad])).toThrow(/exp\(%\d+\) : \[3,2\]:f32 at somewhere\.ts:1:1: its rule infers \[2,3\]:f32/);
  });

  test('an input after its user, a wrong dtype and a wrong arity are caught', () => {
    const x = input('x', [2]);
    const y = x.exp();
    expect(() => verifyGraph([y.node, x.node])).toThrow(/does not come before it/);
    const i = intern('neg', [x.node], {} as never, [2], 'i32', 't.ts:1:1');
    expect(() => verifyGraph([x.node, i])).toThrow(/infers \[2\]:f32/);
    const two = intern('exp', [x.node, x.node], {} as never, [2], 'f32', 't.ts:2:1');
    expect(() => verifyGraph([x.node, two])).toThrow(/has 2 inputs, exp takes 1/);
  });
});

describe('kernel-IR verifier', () => {
  const i0 = E.variable('i0', 4);
  const base = { kind: 'pointwise' as const, name: 'k', vars: [i0], shape: [4], ops: ['test'] };
  const elements = (b: number) => (b === 0 ? 4 : 3);

  test('a lowered program verifies', () => {
    const x = input('x', [3, 5]);
    const low = lowerProgram({ outputs: { y: softmax(x).pad([[1, 1], [0, 0]], 0).narrow(0, 1, 3).sum(1) } });
    expect(low.kernels.length).toBeGreaterThan(0);
  });

  test('an out-of-bounds store or load, an unbound variable and a stray accumulator are named', () => {
    const store = (value: ReturnType<typeof E.load>, buf = 1) => ({ ...base, stores: [{ buf, off: i0, value, dt: 'f32' as const }] });
    expect(() => verifyKernel(store(E.load(0, i0, 'f32')), elements)).toThrow(/k: store of buffer #1 at offsets \[0, 3\], outside its 3 elements/);
    expect(() => verifyKernel(store(E.load(1, E.alu('add', i0, E.idx(1)), 'f32'), 0), elements)).toThrow(KilnKernelVerifyError);
    expect(() => verifyKernel(store(E.load(0, i0, 'f32'), 0), elements)).not.toThrow();
    // a masked load may point outside: it is not performed there
    expect(() => verifyKernel(store(E.load(1, i0, 'f32', E.alu('lt', i0, E.idx(3))), 0), elements)).not.toThrow();
    expect(() => verifyKernel(store(E.load(0, E.variable('j', 4), 'f32'), 0), elements)).toThrow(/variable j < 4 is not bound/);
    expect(() => verifyKernel(store(E.alu('add', E.load(0, i0, 'f32'), E.acc('f32')), 0), elements)).toThrow(/accumulator/);
  });
});
