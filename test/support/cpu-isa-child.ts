/** Run by test/backend/cpu-isa.test.ts in a child process (KILN_CPU_ISA is read once per process): compiles a
 * batched matmul with a fused bias + ReLU epilogue (ragged sizes, K > KC), runs it and prints one JSON line
 * {explain: the "CPU kernels:" line, err: relErr against the reference evaluator}, or {error: name: message}. */
import { compile, evaluate, input, matmul } from '../../compiler/index';
import { relErr } from './lift';

function graph() {
  const a = input('a', [2, 37, 300]), b = input('b', [300, 53]);
  return { outputs: { y: matmul(a, b).add(0.25).relu() } };
}
const feeds = {
  a: Array.from({ length: 2 * 37 * 300 }, (_v, i) => Math.sin(i * 0.7)),
  b: Array.from({ length: 300 * 53 }, (_v, i) => Math.cos(i * 0.3)),
};

try {
  const prog = await compile(graph());
  const got = prog.run(feeds).y;
  const want = evaluate(graph(), feeds).outputs.y.data;
  const line = prog.explain().split('\n').find((l) => l.startsWith('CPU kernels:'));
  console.log(JSON.stringify({ explain: line, err: relErr(got, want) }));
} catch (e) {
  console.log(JSON.stringify({ error: `${(e as Error).name}: ${(e as Error).message}` }));
}
