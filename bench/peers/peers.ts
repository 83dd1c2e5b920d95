/** Same-run peers for bench/run.ts (issue 16): PyTorch CPU through `/usr/bin/python3 bench/peers/torch_cpu.py`
 * and OpenBLAS sgemm through `bench/peers/openblas_sgemm.cpp`. Both are optional, bench-only tools: when Debian's
 * python3-torch or libopenblas-dev is missing the peer is skipped with a note in the report, never an error, and
 * nothing in Kiln's run time depends on them. Inputs travel as raw float32 files in a temporary folder; each peer
 * writes its output back so run.ts checks it against Kiln's before using its time. */
import { execFileSync, spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const PYTHON = '/usr/bin/python3';

export interface PeerTiming { medianMs: number; minMs: number; samples: number }

/** The ISA the peers may use: `native`, each library's own detection (no override from the caller's environment:
 * this machine exports OPENBLAS_CORETYPE=Haswell, which PyTorch's BLAS honoured before this was cleared); `avx2`, an
 * AVX2-only CPU emulated on this one: ATen's kernels (ATEN_CPU_CAPABILITY), oneDNN's JIT (ONEDNN_MAX_CPU_ISA) and
 * OpenBLAS's kernels (OPENBLAS_CORETYPE, both in the sgemm peer and inside PyTorch) capped at AVX2. */
export type PeerIsa = 'native' | 'avx2';
const ISA_VARS = ['ATEN_CPU_CAPABILITY', 'ONEDNN_MAX_CPU_ISA', 'DNNL_MAX_CPU_ISA', 'OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'];
const ISA_CAPS: Record<PeerIsa, Record<string, string>> = {
  native: {},
  avx2: { ATEN_CPU_CAPABILITY: 'avx2', ONEDNN_MAX_CPU_ISA: 'AVX2', OPENBLAS_CORETYPE: 'Haswell' },
};

/** The environment every peer process runs with. */
export function peerEnv(isa: PeerIsa, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ISA_VARS) delete env[k];
  return { ...env, ...ISA_CAPS[isa], ...extra };
}

/** What the peers report they run under `isa` (bench/peers/isa_probe.py): ATen's capability, oneDNN's ISA and the
 * convolution implementation it picked, OpenBLAS's core; plus the overrides set. A note string when torch is absent. */
export function peerIsaProbe(isa: PeerIsa): Record<string, unknown> | string {
  if (!existsSync(PYTHON)) return `${PYTHON} not found`;
  const r = spawnSync(PYTHON, [path.join(here, 'isa_probe.py')], { encoding: 'utf8', env: peerEnv(isa, { ONEDNN_VERBOSE: '1', OMP_NUM_THREADS: '1' }) });
  if (r.status !== 0) return `isa_probe.py failed (${r.status}): ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`;
  const lines = r.stdout.split('\n');
  const field = (re: RegExp) => lines.map((l) => re.exec(l)?.[1]).find((v) => v !== undefined) ?? null;
  return {
    overrides: ISA_CAPS[isa],
    ...JSON.parse(lines.filter((l) => l.startsWith('{')).pop() ?? '{}'),
    onednnIsa: field(/^onednn_verbose,info,cpu,isa:(.*)$/),
    onednnConv: field(/^onednn_verbose,exec,cpu,convolution,([^,]+),/),
  };
}
export interface PeerCase {
  name: string;
  op: 'matmul' | 'conv2d' | 'attention' | 'softmax' | 'log_softmax' | 'layernorm' | 'groupnorm_silu';
  inputs: Record<string, { shape: readonly number[]; data: Float32Array }>;
  attrs?: Record<string, unknown>;
}

const readF32 = (file: string) => {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const writeF32 = (file: string, a: Float32Array) => writeFileSync(file, Buffer.from(a.buffer, a.byteOffset, a.byteLength));

/** One PyTorch process holding every case (eager, `threads` intra-op threads), which times a case when asked:
 * run.ts interleaves its requests with Kiln's own timings of the same case, round after round, so the two sides
 * see the same machine (on a shared VM a run's PyTorch times moved 10–40 % between runs when they were taken in
 * one block after Kiln's). `outs` are the peer's outputs, for the check against Kiln's before any time is used. */
export class TorchPeer {
  private pending: ((line: string) => void)[] = [];
  private stderr = '';
  /** torch's version, threads and parallel backend, as the process reports them. */
  info: Record<string, unknown> = {};
  outs: Float32Array[] = [];
  private constructor(private child: ChildProcessWithoutNullStreams, private dir: string) {}

  static async start(cases: readonly PeerCase[], threads: number, isa: PeerIsa): Promise<{ ok: true; peer: TorchPeer } | { ok: false; note: string }> {
    if (!existsSync(PYTHON)) return { ok: false, note: `${PYTHON} not found: PyTorch peer skipped` };
    const probe = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
    if (probe.status !== 0) return { ok: false, note: `torch/numpy not importable by ${PYTHON} (apt-get install python3-torch): PyTorch peer skipped` };
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-torch-peer-'));
    const spec = {
      threads,
      cases: cases.map((c, i) => ({
        name: c.name, op: c.op, attrs: c.attrs ?? {},
        inputs: Object.fromEntries(Object.entries(c.inputs).map(([k, v]) => {
          const file = `in-${i}-${k}.bin`;
          writeF32(path.join(dir, file), v.data);
          return [k, { shape: v.shape, file }];
        })),
      })),
    };
    writeFileSync(path.join(dir, 'spec.json'), JSON.stringify(spec));
    const child = spawn(PYTHON, [path.join(here, 'torch_cpu.py'), dir], { env: peerEnv(isa, { OMP_NUM_THREADS: String(threads) }) });
    const peer = new TorchPeer(child, dir);
    child.stderr.on('data', (d: Buffer) => { peer.stderr = (peer.stderr + d.toString()).slice(-4000); });
    // A request written after the process died fails here; the 'close' handler below answers it.
    child.stdin.on('error', () => undefined);
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (l) => peer.pending.shift()?.(l));
    const failed = new Promise<string>((resolve) => child.on('close', (code) => {
      for (const p of peer.pending.splice(0)) p('');
      resolve(`torch_cpu.py failed (${code}): ${peer.stderrTail()}`);
    }));
    const ready = await Promise.race([peer.next(), failed]);
    if (!ready.startsWith('{')) { peer.close(); return { ok: false, note: ready || (await failed) }; }
    const { ready: _ready, ...info } = JSON.parse(ready) as Record<string, unknown>;
    peer.info = info;
    peer.outs = cases.map((_, i) => readF32(path.join(dir, `out-${i}.bin`)));
    return { ok: true, peer };
  }

  private next(): Promise<string> { return new Promise((resolve) => this.pending.push(resolve)); }
  private stderrTail(): string { return this.stderr.trim().split('\n').slice(-3).join(' | '); }

  /** The median / best of case `i`'s samples (at least `minSamples`, about `maxTime` seconds). */
  async time(i: number, minSamples: number, maxTime: number): Promise<PeerTiming> {
    const reply = this.next();
    this.child.stdin.write(JSON.stringify({ case: i, minSamples, maxTime }) + '\n');
    const line = await reply;
    if (!line.startsWith('{')) throw new Error(`torch_cpu.py stopped: ${this.stderrTail()}`);
    return JSON.parse(line) as PeerTiming;
  }

  close(): void {
    this.child.stdin.end();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

let sgemmExe: string | null | undefined;
/** OpenBLAS sgemm C = A·B (row-major) on `threads` threads; null-with-note when libopenblas-dev is absent. */
export function openblasPeer(M: number, N: number, K: number, a: Float32Array, b: Float32Array, threads: number, minSamples: number, maxTime: number, isa: PeerIsa):
  { ok: true; timing: PeerTiming; config: string; out: Float32Array } | { ok: false; note: string } {
  if (sgemmExe === undefined) {
    const exe = path.join(os.tmpdir(), 'kiln-bench-openblas-sgemm');
    try {
      execFileSync('g++', ['-O2', path.join(here, 'openblas_sgemm.cpp'), '-o', exe, '-lopenblas'], { stdio: 'pipe' });
      sgemmExe = exe;
    } catch {
      sgemmExe = null;
    }
  }
  if (!sgemmExe) return { ok: false, note: 'bench/peers/openblas_sgemm.cpp did not build (apt-get install libopenblas-dev): OpenBLAS peer skipped' };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-openblas-peer-'));
  try {
    writeF32(path.join(dir, 'a.bin'), a);
    writeF32(path.join(dir, 'b.bin'), b);
    // Debian's OpenBLAS (DYNAMIC_ARCH) honours OPENBLAS_CORETYPE: its own detection, or Haswell under --isa avx2.
    const out = execFileSync(sgemmExe, [M, N, K, threads, minSamples, maxTime, 'a.bin', 'b.bin', 'c.bin'].map(String), { cwd: dir, encoding: 'utf8', env: peerEnv(isa) });
    const j = JSON.parse(out) as PeerTiming & { config: string };
    return { ok: true, timing: { medianMs: j.medianMs, minMs: j.minMs, samples: j.samples }, config: j.config, out: readF32(path.join(dir, 'c.bin')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** max |a − ref| / max |ref|. */
export function relErr(a: Float32Array, ref: Float32Array): number {
  if (a.length !== ref.length) return Infinity;
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i] - ref[i])); m = Math.max(m, Math.abs(ref[i])); }
  return d / (m || 1);
}
