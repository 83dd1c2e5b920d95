import { input, param, conv2d, sdpa, concat, KilnShapeError } from '../../compiler/index';

/** The error must name the op, both operands' shapes and dtypes, and this file with the calling line. */
function expectShapeError(f: () => unknown, op: string, parts: string[]): void {
  let err: unknown;
  try { f(); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(KilnShapeError);
  const msg = (err as Error).message;
  expect(msg.startsWith(`${op}: `)).toBe(true);
  for (const p of parts) expect(msg).toContain(p);
  expect(msg).toMatch(/at test\/dsl\/errors\.test\.ts:\d+:\d+$/);
}

describe('graph-build time shape and dtype errors', () => {
  const a = input('a', [2, 3] as number[]);
  test('add of shapes that do not broadcast', () => {
    expectShapeError(() => a.add(input('b', [4] as number[])), 'add', ['[2,3]:f32', '[4]:f32', 'do not broadcast']);
  });
  test('matmul inner dims', () => {
    expectShapeError(() => a.matmul(input('m', [4, 5] as number[]) as never), 'matmul', ['[2,3]:f32', '[4,5]:f32', 'inner dims 3 and 4 differ']);
  });
  test('mixed dtypes name both', () => {
    expectShapeError(() => a.add(input('i', [2, 3], 'i32') as never), 'add', ['[2,3]:f32', '[2,3]:i32', 'dtypes f32, i32 differ']);
  });
  test('conv2d channel mismatch', () => {
    const x = input('x', [1, 3, 8, 8]), w = param('w', [4, 2, 3, 3]);
    expectShapeError(() => conv2d(x, w), 'conv2d', ['[1,3,8,8]:f32', '[4,2,3,3]:f32', 'channels']);
  });
  test('sdpa head dims', () => {
    expectShapeError(() => sdpa(input('q', [2, 4, 8]), input('k', [2, 5, 4]), input('v', [2, 5, 4])), 'sdpa', ['head dims 8 and 4']);
  });
  test('reshape element count', () => {
    expectShapeError(() => a.reshape([4, 2]), 'reshape', ['cannot reshape 6 elements to [4,2]']);
  });
  test('concat off-axis mismatch', () => {
    expectShapeError(() => concat([a, input('c', [3, 3])], 1), 'concat', ['[2,3]:f32', '[3,3]:f32', 'shapes differ outside axis 1']);
  });
  test('the location is the line of the call', () => {
    const line = new Error().stack!.split('\n')[1].match(/:(\d+):\d+\)?$/)![1];
    try { a.sub(input('z', [5] as number[])); } catch (e) {
      expect((e as Error).message).toContain(`errors.test.ts:${Number(line) + 1}:`);
      return;
    }
    throw new Error('no error thrown');
  });
  test('unary float ops reject integers', () => {
    expectShapeError(() => input('n', [3], 'i32').exp(), 'exp', ['needs a float dtype, got i32']);
  });
});
