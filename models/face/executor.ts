/**
 * Executors: how a face network's graph is made runnable. An `Executor` takes a graph and its frozen parameters
 * once and returns a `FaceProgram` to run many times with feeds (the input `image`).
 *
 * - `compiledExecutor` (the default): Kiln's compiled CPU back end. `compile(spec)` generates and builds native
 *   code (cached on disk, so a second compile of the same graph is a cache hit), then every parameter is loaded
 *   into the program with `loadParams` (strict; float32 in the program). Runs in tens of milliseconds per network.
 * - `referenceExecutor`: the float64 reference evaluator — the oracle, not the fast path (seconds per network,
 *   minutes for the SSD at 512×512).
 * - `cudaExecutor`: the same through the CUDA back end (`compile(spec, { backend: 'cuda' })`); where there is no
 *   NVIDIA driver it fails with the driver's reason, after checking that the generated CUDA compiles.
 */
import { compile, evaluate, type GraphSpec, type ParamStore } from '../../compiler/index';
import { cudaAvailable } from '../../runtime/cuda';

/** A graph made runnable: feeds by input name → outputs by name. */
export interface FaceProgram {
  run(feeds: Readonly<Record<string, ArrayLike<number>>>): Record<string, ArrayLike<number>>;
}
/** Prepares a graph once (compile, upload parameters) for many runs. */
export type Executor = (spec: GraphSpec, params: ParamStore) => FaceProgram | Promise<FaceProgram>;

export type Backend = 'cpu' | 'cuda' | 'reference';
export const BACKENDS: readonly Backend[] = ['cpu', 'cuda', 'reference'];

/** The float64 reference evaluator as an Executor. */
export const referenceExecutor: Executor = (spec, params) => ({
  run(feeds) {
    const { outputs } = evaluate(spec, feeds, params);
    return Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, v.data]));
  },
});

/** Compiles the graph for a back end and loads every parameter the program declares from `params`. */
const compiled = (backend: 'cpu' | 'cuda'): Executor => async (spec, params) => {
  const program = await compile(spec, { backend });
  program.loadParams(params, { strict: true });
  return program;
};
export const compiledExecutor: Executor = compiled('cpu');

export const cudaExecutor: Executor = (spec, params) => {
  const driver = cudaAvailable();
  if (!driver.ok) throw new Error(`the cuda back end needs an NVIDIA GPU and driver: ${driver.reason}`);
  return compiled('cuda')(spec, params);
};

export function executorFor(backend: Backend): Executor {
  switch (backend) {
    case 'cpu': return compiledExecutor;
    case 'reference': return referenceExecutor;
    case 'cuda': return cudaExecutor;
  }
}
