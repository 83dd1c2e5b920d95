/** The non-finite detector: run kernel by kernel and stop at the first kernel that writes NaN or ±Inf, naming
 * it, the ops fused into it and their source lines (KILN_CHECK_NANS=1 or compile(g, { checkNans: true })), on the C++ and the (emulated) CUDA back end. */
import { compile, input, softmax } from '../../compiler/index';
import { KilnNonFiniteError } from '../../compiler/ir/errors';

function graph() {
  const a = input('a', [2, 4]);
  const l = a.log();                     // NaN for a negative element: the first non-finite value
  const s = softmax(l.mul(l.sum(1, true)));  // every later kernel then carries the NaN on
  return { outputs: { y: s.sum() } };
}
const LOG_LINE = 8;  // the line of `a.log()` above

// The C++ back end and the CUDA back end (on the emulator) run the same detector.
describe.each([{ backend: 'cpu' }, { backend: 'cuda-emu' }] as const)('KILN_CHECK_NANS on $backend: the first kernel producing a non-finite value', (opts) => {
  const bad = [1, 2, 3, 4, 1, -2, 3, 4];
  const good = [1, 2, 3, 4, 1, 2, 3, 4];

  test('is named with its fused ops and their source lines', async () => {
    const prog = await compile(graph(), { ...opts, checkNans: true });
    let err: unknown;
    try { prog.run({ a: bad }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(KilnNonFiniteError);
    const e = err as KilnNonFiniteError;
    // the first kernel in program order that reads the log
    const first = prog.parts.fusedOps.findIndex((ops) => ops.some((o) => o.startsWith('log#')));
    expect(first).toBeGreaterThanOrEqual(0);
    expect(e.kernelIndex).toBe(first);
    expect(e.kernel).toBe(prog.kernels[first].name);
    expect(e.ops.some((o) => o.startsWith('log#') && o.includes(`check-nans.test.ts:${LOG_LINE}:`))).toBe(true);
    expect(Number.isNaN(e.value)).toBe(true);
    expect(e.message).toMatch(/kernel \d+ 'k\d+_[a-z_0-9]*' produced NaN at element \d+ of buffer #\d+/);
  });

  test('a finite run gives the same result as without the check', async () => {
    const checked = await compile(graph(), { ...opts, checkNans: true });
    const plain = await compile(graph(), opts);
    expect(Array.from(checked.run({ a: good }).y)).toEqual(Array.from(plain.run({ a: good }).y));
    // without the check the NaN just flows out
    expect(Number.isNaN(plain.run({ a: bad }).y[0])).toBe(true);
  });

  test('KILN_CHECK_NANS=1 turns it on', async () => {
    process.env.KILN_CHECK_NANS = '1';
    try {
      const prog = await compile(graph(), opts);
      expect(() => prog.run({ a: bad })).toThrow(KilnNonFiniteError);
    } finally { delete process.env.KILN_CHECK_NANS; }
  });

  test('Inf is caught as well as NaN', async () => {
    const x = input('x', [3]);
    const prog = await compile({ outputs: { y: x.recip().add(1) } }, { ...opts, checkNans: true });
    expect(() => prog.run({ x: [1, 0, 2] })).toThrow(/produced Infinity at element 1/);
  });
});
