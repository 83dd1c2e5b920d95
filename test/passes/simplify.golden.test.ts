/** Golden pass tests: a small graph before simplify, printed by the IR printer, and the graph expected after. */
import { constant, full, input, type Tensor } from '../../compiler/index';
import { simplifyGraph } from '../../compiler/passes/simplify';
import { collect } from '../../compiler/ir/graph';
import { printGraph } from '../../compiler/ir/print';

const text = (outputs: Record<string, Tensor>) =>
  printGraph(collect({ outputs }).order, Object.fromEntries(Object.entries(outputs).map(([k, t]) => [k, t.node])), { renumber: true, sources: false });
const lines = (...l: string[]) => l.join('\n');

function check(outputs: Record<string, Tensor>, before: string, after: string) {
  expect(text(outputs)).toBe(before);
  expect(text(simplifyGraph({ outputs }).outputs as Record<string, Tensor>)).toBe(after);
}

describe('passes/simplify: before and expected after', () => {
  test('identities: x + 0, x * 1 and neg(neg x) vanish', () => {
    const x = input('x', [2, 3]);
    check({ y: x.add(0).mul(1).neg().neg() }, lines(
      '%0 = input {name="x"} : [2,3]:f32',
      '%1 = const {value=0} : []:f32',
      '%2 = add(%0, %1) : [2,3]:f32',
      '%3 = const {value=1} : []:f32',
      '%4 = mul(%2, %3) : [2,3]:f32',
      '%5 = neg(%4) : [2,3]:f32',
      '%6 = neg(%5) : [2,3]:f32',
      'outputs: y=%6',
    ), lines(
      '%0 = input {name="x"} : [2,3]:f32',
      'outputs: y=%0',
    ));
  });

  test('a reshape of a reshape is one reshape; an identity permutation vanishes', () => {
    const x = input('x', [2, 3]);
    check({ y: x.reshape([3, 2]).reshape([6]).permute([0]) }, lines(
      '%0 = input {name="x"} : [2,3]:f32',
      '%1 = reshape(%0) : [3,2]:f32',
      '%2 = reshape(%1) : [6]:f32',
      '%3 = permute(%2) {perm=[0]} : [6]:f32',
      'outputs: y=%3',
    ), lines(
      '%0 = input {name="x"} : [2,3]:f32',
      '%1 = reshape(%0) : [6]:f32',
      'outputs: y=%1',
    ));
  });

  test('constant folding: constant operands become one embedded tensor; the rest stays', () => {
    const x = input('x', [2, 3]);
    check({ y: full([2, 2], 2).mul(constant([1, 2, 3, 4], [2, 2])).add(x.narrow(1, 0, 2)) }, lines(
      '%0 = const {value=2} : [2,2]:f32',
      '%1 = tensor {data=<4 values: 1, 2, 3, 4>} : [2,2]:f32',
      '%2 = mul(%0, %1) : [2,2]:f32',
      '%3 = input {name="x"} : [2,3]:f32',
      '%4 = slice(%3) {starts=[0,0], stops=[2,2], steps=[1,1]} : [2,2]:f32',
      '%5 = add(%2, %4) : [2,2]:f32',
      'outputs: y=%5',
    ), lines(
      '%0 = tensor {data=<4 values: 2, 4, 6, 8>} : [2,2]:f32',
      '%1 = input {name="x"} : [2,3]:f32',
      '%2 = slice(%1) {starts=[0,0], stops=[2,2], steps=[1,1]} : [2,2]:f32',
      '%3 = add(%0, %2) : [2,2]:f32',
      'outputs: y=%3',
    ));
  });

  test('a constant folded to one value is a splat; NaN folds as NaN', () => {
    const x = input('x', [2]);
    check({ y: full([2], 0).div(full([2], 0)).add(x) }, lines(
      '%0 = const {value=0} : [2]:f32',
      '%1 = div(%0, %0) : [2]:f32',
      '%2 = input {name="x"} : [2]:f32',
      '%3 = add(%1, %2) : [2]:f32',
      'outputs: y=%3',
    ), lines(
      '%0 = const {value=NaN} : [2]:f32',
      '%1 = input {name="x"} : [2]:f32',
      '%2 = add(%0, %1) : [2]:f32',
      'outputs: y=%2',
    ));
  });
});
