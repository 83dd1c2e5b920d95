/**
 * Collectives across the processes of a job: rank, size, allReduce, broadcast, barrier. Over MPI when the
 * addon was built with it (runtime/native/src/collective.cc) and the process was started by a launcher (mpirun,
 * srun); otherwise one process, which reduces to itself. No sockets of our own: the launcher wires the ranks.
 * Each collective is the blocking MPI call on the caller's buffer (no copy); its deadline (KILN_COLLECTIVE_TIMEOUT
 * seconds, default 300, read when the communicator is made) is kept by a native watchdog, so a rank that stops ends
 * the job with a KilnRankFailedError written by the others, never a hang.
 */
import { availableParallelism } from 'node:os';
import { native } from './native';

/** A peer rank failed. Thrown to JS with `kind` 'error' when MPI reports a broken connection. When the launcher
 * ends the job because a rank died ('terminated'), or a collective passes its deadline ('timeout'), the blocked
 * process cannot return to JS: it writes `KilnRankFailedError: rank R: …` to stderr itself and exits (collective.cc). */
export class KilnRankFailedError extends Error {
  constructor(message: string, readonly kind: 'terminated' | 'timeout' | 'error', readonly rank: number) {
    super(message.replace(/^KilnRankFailedError: /, ''));
    this.name = 'KilnRankFailedError';
  }
}

/** Started with several ranks by a launcher, but the addon has no MPI (each rank would train alone). */
export class KilnNoMpiError extends Error {
  constructor(message: string) {
    super(message.replace(/^KilnNoMpiError: /, ''));
    this.name = 'KilnNoMpiError';
  }
}

export type ReduceOp = 'sum' | 'mean';
export type ReduceBuffer = Float32Array | Float64Array | Int32Array;

export interface Communicator {
  readonly rank: number;
  readonly size: number;
  /** 'mpi', or 'single' (one process: every collective is the identity). */
  readonly backend: 'mpi' | 'single';
  /** Element-wise sum (or mean) of `buffer` over all ranks, written back into it on every rank. */
  allReduce(buffer: ReduceBuffer, op: ReduceOp): void;
  /** `root`'s bytes into `buffer` on every rank. */
  broadcast(buffer: ArrayBufferView, root?: number): void;
  barrier(): void;
  /** Ends every rank of the job with this exit code. */
  abort(code?: number): never;
}

/** The collective wait deadline in milliseconds (KILN_COLLECTIVE_TIMEOUT, in seconds; 0 waits forever). */
export function collectiveTimeoutMs(): number {
  const v = process.env.KILN_COLLECTIVE_TIMEOUT;
  if (v === undefined || v === '') return 300_000;
  const s = Number(v);
  if (!(Number.isFinite(s) && s >= 0)) throw new RangeError(`KILN_COLLECTIVE_TIMEOUT = ${v}; expected a number of seconds ≥ 0`);
  return s * 1000;
}

/** Native errors carry their class in `name`; give them their JS class. */
function translate(e: unknown): unknown {
  const x = e as { name?: string; message?: string; kind?: 'terminated' | 'timeout' | 'error'; rank?: number };
  if (x?.name === 'KilnRankFailedError') return new KilnRankFailedError(x.message ?? '', x.kind ?? 'error', x.rank ?? -1);
  if (x?.name === 'KilnNoMpiError') return new KilnNoMpiError(x.message ?? '');
  return e;
}

function guarded<T>(f: () => T): T {
  try { return f(); } catch (e) { throw translate(e); }
}

let world: Communicator | undefined;

/** The job's communicator (joins it on first use). */
export function communicator(): Communicator {
  if (world) return world;
  const n = native();
  const { rank, size, backend } = guarded(() => n.commInit());
  // Ranks on one machine share its cores: unless the user chose, give each rank its share of OpenMP threads
  // (libgomp reads this when the first kernel library loads, after this point). Two ranks of 2 threads each on
  // 2 cores lose a scheduler slice at every OpenMP barrier.
  const local = Number(process.env.OMPI_COMM_WORLD_LOCAL_SIZE ?? process.env.SLURM_NTASKS_PER_NODE ?? size);
  if (size > 1 && process.env.OMP_NUM_THREADS === undefined) process.env.OMP_NUM_THREADS = String(Math.max(1, Math.floor(availableParallelism() / Math.max(1, local))));
  const timeoutMs = collectiveTimeoutMs();  // once, not per call: process.env is a lookup through C++
  world = {
    rank, size, backend,
    // (try/catch in place, not guarded(): no closure per call, which a small all-reduce would feel)
    allReduce: (buffer, op) => { try { n.commAllReduce(buffer, op, timeoutMs); } catch (e) { throw translate(e); } },
    broadcast: (buffer, root = 0) => guarded(() => n.commBroadcast(buffer, root, timeoutMs)),
    barrier: () => guarded(() => n.commBarrier(timeoutMs)),
    abort: (code = 1) => n.commAbort(code),
  };
  // MPI wants every rank that joined to finalize (a clean exit); an abort ends the process before this.
  if (backend === 'mpi') process.once('exit', () => n.commFinalize());
  return world;
}

/** What the addon can do: built with MPI (and which), started by a launcher (and with how many ranks). */
export function collectiveInfo(): { mpi: boolean; library: string; launched: boolean; launcherSize: number } {
  return native().commInfo();
}

/** For a script's top level: print `error` as `Name: message` and end the job (every rank, through the launcher)
 * with exit code 1, so one rank's failure never leaves the others waiting. */
export function failJob(error: unknown): never {
  const e = error as Error;
  process.stderr.write(`${e?.name ?? 'Error'}: ${e?.message ?? String(error)}\n`);
  if (world && world.size > 1) world.abort(1);
  process.exit(1);
}
