/** Run by test/backend/cpu-isa.test.ts in a child process (KILN_CPU_ISA is read once per process): compiles a
 * batched matmul with a fused bias + ReLU epilogue (ragged sizes, K 1300 > KC on every path) and two row kernels (softmax with its
 * row-stage cache, GroupNorm + SiLU), runs it and prints one JSON line {explain: the "CPU kernels:" line, err: the
 * largest relErr of the outputs against the reference evaluator}, or {error: name: message}. */
import { compile, evaluate, groupNorm, input, matmul, softmax } from '../../compiler/index';
import { relErr } from './lift';

function graph() {
  const a = input('a', [2, 37, 1300]), b = input('b', [1300, 53]), x = input('x', [3, 4, 65]);
  return { outputs: { y: matmul(a, b).add(0.25).relu(), s: softmax(x.mul(3)), g: groupNorm(x, 2).silu() } };
}
const feeds = {
  a: Array.from({ length: 2 * 37 * 1300 }, (_v, i) => Math.sin(i * 0.7)),
  b: Array.from({ length: 1300 * 53 }, (_v, i) => Math.cos(i * 0.3)),
  x: Array.from({ length: 3 * 4 * 65 }, (_v, i) => 2 * Math.sin(i * 0.41)),
};

try {
  const prog = await compile(graph());
  const got = prog.run(feeds), want = evaluate(graph(), feeds).outputs;
  const line = prog.explain().split('\n').find((l) => l.startsWith('CPU kernels:'));
  console.log(JSON.stringify({ explain: line, err: Math.max(...['y', 's', 'g'].map((k) => relErr(got[k], want[k].data))) }));
} catch (e) {
  console.log(JSON.stringify({ error: `${(e as Error).name}: ${(e as Error).message}` }));
}
