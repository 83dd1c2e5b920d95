/** Kernel benchmarks of issue 14 Part B (d) on the GPU: Kiln's generated CUDA against PyTorch on the same device, in
 * one run. Each case is one Kiln program (compile() with the CUDA back end), timed with CUDA events around `reps`
 * runs queued back to back, against the same computation in PyTorch (bench/gpu/torch_kernels.py: cuBLAS, SDPA,
 * cuDNN, torch's GroupNorm, a device-to-device copy), in bf16:
 *   gemm      4096³ matmul                                         vs torch.matmul (cuBLAS)
 *   attn      head dim 64, batch 4 × 16 heads, 1024 and 4096 tokens vs F.scaled_dot_product_attention;
 *             forward, and forward + backward (dQ, dK, dV) — the backward alone is the difference
 *   conv      3×3, pad 1, SDXL UNet shapes at a 128² latent, batch 2 vs cuDNN (NCHW and channels-last: the better);
 *             forward, and forward + both gradients
 *   gn-silu   GroupNorm(32) + SiLU on 2 × 640 × 128²               vs torch and vs a device-to-device copy of x
 * Ratio = PyTorch ms / Kiln ms (above 1: Kiln faster). Before timing, each Kiln result is checked: the GEMM against
 * float64 dot products at sampled entries (bf16 rounding of the output), the others finite and non-zero.
 *
 *   node --import tsx bench/gpu/kernels.ts --backend cuda --out DIR     (on the GPU; bench/gpu/run.sh)
 *   npx tsx bench/gpu/kernels.ts --backend cuda-emu --small --out /tmp/k  (dry run on the emulator, small shapes) */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile, conv2d, grad, groupNorm, input, sdpa, type CudaProgram, type Tensor } from '../../compiler/index';
import { bf16BitsToF32, f32ToBf16Bits } from '../../compiler/ir/half';
import { writeJsonAtomic } from '../../models/io/atomicWrite';
import { fill } from './fill';
import { defineCli, isMain, runCli, type Parsed } from '../../tools/cli';

export const cli = defineCli({
  command: 'npx tsx bench/gpu/kernels.ts',
  summary: 'Kiln CUDA kernels against PyTorch on the same GPU (issue 14 Part B d): GEMM, attention, conv, GroupNorm+SiLU.',
  positionals: { name: 'gemm|attn|conv|gn-silu ...', help: 'which cases [default: all]' },
  options: {
    backend: { type: 'enum', values: ['cuda', 'cuda-emu'], default: 'cuda', help: 'cuda: the GPU; cuda-emu: a dry run on the emulator' },
    out: { type: 'dir', mustExist: false, default: 'bench/results', help: 'folder for the JSON file' },
    small: { type: 'flag', help: 'small shapes (the emulator dry run)' },
    reps: { type: 'int', min: 1, max: 1000, default: 20, help: 'runs per timed batch (the median of 5 batches is reported)' },
    torch: { type: 'flag', help: 'also run the PyTorch peers (default on the GPU)' },
  },
  examples: ['npx tsx bench/gpu/kernels.ts --backend cuda-emu --small --reps 1 --out /tmp/k'],
});

const here = path.dirname(fileURLToPath(import.meta.url));
const log = (s: string) => process.stderr.write(s + '\n');

interface Case {
  name: string; group: string;
  /** Builds the Kiln program's outputs and the feeds. */
  build(): { outputs: Record<string, Tensor>; feeds: Record<string, Float32Array> };
  /** The same computation for torch_kernels.py. */
  torch: Record<string, unknown>;
  flops?: number; bytes?: number;
  check?(feeds: Record<string, Float32Array>, out: Record<string, ArrayLike<number>>): string | undefined;
}

const toF32 = (v: ArrayLike<number>): ArrayLike<number> => (v instanceof Uint16Array ? Float32Array.from(v, bf16BitsToF32) : v);
const finite = (name: string, out: Record<string, ArrayLike<number>>): string | undefined => {
  for (const [k, raw] of Object.entries(out)) {
    const v = toF32(raw);
    let nz = 0;
    for (let i = 0; i < v.length; i++) { if (!Number.isFinite(v[i])) return `${name}: ${k}[${i}] = ${v[i]}`; if (v[i] !== 0) nz++; }
    if (nz === 0) return `${name}: ${k} is all zeros`;
  }
  return undefined;
};

function cases(small: boolean): Case[] {
  const list: Case[] = [];
  {
    const n = small ? 64 : 4096;
    list.push({
      name: `gemm bf16 ${n}³`, group: 'gemm', flops: 2 * n ** 3, torch: { kind: 'gemm', m: n, n, k: n },
      build: () => {
        const a = input('a', [n, n], 'bf16'), b = input('b', [n, n], 'bf16');
        return { outputs: { c: a.matmul(b) }, feeds: { a: fill(n * n, 1), b: fill(n * n, 2) } };
      },
      check: (f, out) => {
        // Inputs as stored (bf16-rounded), then float64 dot products at sampled entries; the output is bf16 (u = 2^-8).
        const r = (x: number) => bf16BitsToF32(f32ToBf16Bits(x));
        const c = toF32(out.c);
        let worst = 0;
        for (let t = 0; t < 64; t++) {
          const i = (t * 977) % n, j = (t * 613 + 5) % n;
          let s = 0, m = 0;
          for (let k = 0; k < n; k++) { const p = r(f.a[i * n + k]) * r(f.b[k * n + j]); s += p; m += Math.abs(p); }
          worst = Math.max(worst, Math.abs(c[i * n + j] - s) / Math.max(m, 1e-30));
        }
        return worst <= 2 ** -8 + n * 2 ** -24 ? undefined : `gemm: sampled entry off by ${worst.toExponential(2)} of its |terms| sum`;
      },
    });
  }
  for (const S of small ? [64] : [1024, 4096]) {
    const B = small ? 1 : 4, H = small ? 2 : 16, D = 64, shape = [B, H, S, D] as const;
    const qkv = () => ({ q: input('q', [...shape], 'bf16'), k: input('k', [...shape], 'bf16'), v: input('v', [...shape], 'bf16') });
    const feeds = () => ({ q: fill(B * H * S * D, 3), k: fill(B * H * S * D, 4), v: fill(B * H * S * D, 5) });
    const fwdFlops = 4 * B * H * S * S * D;
    list.push({
      name: `attention fwd D64 S${S}`, group: 'attn', flops: fwdFlops, torch: { kind: 'attn', b: B, h: H, s: S, d: D, backward: false },
      build: () => { const { q, k, v } = qkv(); return { outputs: { o: sdpa(q, k, v) }, feeds: feeds() }; },
      check: (_, out) => finite('attention', out),
    });
    list.push({
      name: `attention fwd+bwd D64 S${S}`, group: 'attn', flops: fwdFlops * 3.5, torch: { kind: 'attn', b: B, h: H, s: S, d: D, backward: true },
      build: () => {
        const { q, k, v } = qkv(), dO = input('dO', [...shape], 'bf16');
        const o = sdpa(q, k, v);
        const [dq, dk, dv] = grad(o.mul(dO).sum(), [q, k, v]);
        return { outputs: { o, dq, dk, dv }, feeds: { ...feeds(), dO: fill(B * H * S * D, 6) } };
      },
      check: (_, out) => finite('attention backward', out),
    });
  }
  const convShapes: [number, number][] = small ? [[8, 16]] : [[320, 128], [640, 64], [1280, 32]];
  for (const [C, HW] of convShapes) {
    const N = small ? 1 : 2;
    const flops = 2 * N * C * C * 9 * HW * HW;
    const xw = () => ({ x: input('x', [N, C, HW, HW], 'bf16'), w: input('w', [C, C, 3, 3], 'bf16') });
    const feeds = () => ({ x: fill(N * C * HW * HW, 7), w: fill(C * C * 9, 8, 1 / Math.sqrt(9 * C)) });
    list.push({
      name: `conv3x3 ${C}ch ${HW}² fwd`, group: 'conv', flops, torch: { kind: 'conv', n: N, c: C, hw: HW, backward: false },
      build: () => { const { x, w } = xw(); return { outputs: { y: conv2d(x, w, undefined, { padding: 1 }) }, feeds: feeds() }; },
      check: (_, out) => finite('conv', out),
    });
    list.push({
      name: `conv3x3 ${C}ch ${HW}² fwd+bwd`, group: 'conv', flops: 3 * flops, torch: { kind: 'conv', n: N, c: C, hw: HW, backward: true },
      build: () => {
        const { x, w } = xw(), dy = input('dy', [N, C, HW, HW], 'bf16');
        const y = conv2d(x, w, undefined, { padding: 1 });
        const [dx, dw] = grad(y.mul(dy).sum(), [x, w]);
        return { outputs: { y, dx, dw }, feeds: { ...feeds(), dy: fill(N * C * HW * HW, 9) } };
      },
      check: (_, out) => finite('conv backward', out),
    });
  }
  {
    const [N, C, HW] = small ? [1, 64, 16] : [2, 640, 128];
    const elems = N * C * HW * HW;
    list.push({
      name: `groupnorm32+silu ${N}x${C}x${HW}²`, group: 'gn-silu', bytes: 2 * elems * 2, torch: { kind: 'gn_silu', n: N, c: C, hw: HW, groups: 32 },
      build: () => {
        const x = input('x', [N, C, HW, HW], 'bf16'), w = input('w', [C]), b = input('b', [C]);
        return { outputs: { y: groupNorm(x.cast('f32'), 32, w, b).silu().cast('bf16') }, feeds: { x: fill(elems, 10, 3), w: fill(C, 11), b: fill(C, 12) } };
      },
      check: (_, out) => finite('groupnorm', out),
    });
  }
  return list;
}

interface Timing { medianMs: number; minMs: number }

function timeKiln(prog: CudaProgram, reps: number): Timing {
  prog.time(1); // warm-up (and, with CUDA Graphs, the capture)
  const ms = Array.from({ length: 5 }, () => prog.time(reps)).sort((a, b) => a - b);
  return { medianMs: ms[2], minMs: ms[0] };
}

function runTorch(list: Case[], reps: number): Record<string, (Timing & { copyMs?: number; variant?: string }) | { error: string }> {
  const r = spawnSync(process.env.KILN_PYTHON ?? 'python3', [path.join(here, 'torch_kernels.py')], {
    input: JSON.stringify({ reps, cases: list.map((c) => ({ name: c.name, ...c.torch })) }), encoding: 'utf8', timeout: 300_000, maxBuffer: 1 << 24,
  });
  if (r.status !== 0) return Object.fromEntries(list.map((c) => [c.name, { error: `torch_kernels.py: ${r.error?.message ?? ''}${r.stderr.trim().split('\n').slice(-3).join(' | ')}` }]));
  process.stderr.write(r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

async function main(o: Parsed<typeof cli.def.options>, groups: string[]): Promise<void> {
  const backend = o.backend as 'cuda' | 'cuda-emu';
  const list = cases(o.small).filter((c) => groups.length === 0 || groups.includes(c.group));
  const stamp = new Date().toISOString().slice(0, 10);
  fs.mkdirSync(o.out, { recursive: true });
  const file = path.join(o.out, `${backend === 'cuda' ? 'gpu' : 'emulator'}-${stamp}-kernels.json`);
  const rows: Record<string, unknown>[] = [];
  const save = (extra: object = {}) => writeJsonAtomic(file, { date: new Date().toISOString(), host: os.hostname(), cpu: os.cpus()[0]?.model, backend, reps: o.reps, rows, ...extra }, 1);
  for (const c of list) {
    const row: Record<string, unknown> = { name: c.name, group: c.group };
    rows.push(row);
    try {
      const { outputs, feeds } = c.build();
      const t0 = performance.now();
      const prog = await compile({ outputs }, { backend }) as CudaProgram;
      row.compileSeconds = +((performance.now() - t0) / 1000).toFixed(2);
      row.kernels = prog.kernels.map((k) => (k.kind === 'extern' ? `${k.template}(${k.operands.map((x) => x.dt).join(',')})` : k.name));
      const bad = c.check?.(feeds, prog.run(feeds));
      if (bad) row.checkFailed = bad;
      const t = timeKiln(prog, o.reps);
      Object.assign(row, { kilnMs: +t.medianMs.toFixed(4), kilnMinMs: +t.minMs.toFixed(4) });
      if (c.flops) row.kilnTflops = +(c.flops / t.medianMs / 1e9).toFixed(1);
      if (c.bytes) row.kilnGBs = +(c.bytes / t.medianMs / 1e6).toFixed(0);
      prog.dispose();
      log(`${c.name}: Kiln ${t.medianMs.toFixed(3)} ms${row.kilnTflops ? ` (${row.kilnTflops} TFLOP/s)` : ''}${bad ? ` — CHECK FAILED: ${bad}` : ''}`);
    } catch (e) {
      row.error = (e as Error).message.split('\n').slice(0, 6).join('\n');
      log(`${c.name}: ${row.error}`);
    }
    save();
  }
  if (backend === 'cuda' || o.torch) {
    const peers = runTorch(list, o.reps);
    for (const row of rows) {
      const p = peers[row.name as string];
      if (!p) continue;
      if ('error' in p) { row.torchError = p.error; continue; }
      Object.assign(row, { torchMs: +p.medianMs.toFixed(4), torchMinMs: +p.minMs.toFixed(4), torchVariant: p.variant });
      if (typeof row.kilnMs === 'number') row.vsTorch = +(p.medianMs / row.kilnMs).toFixed(3);
      if (p.copyMs !== undefined) {
        row.copyMs = +p.copyMs.toFixed(4);
        if (typeof row.kilnMs === 'number') row.vsCopy = +(p.copyMs / row.kilnMs).toFixed(3);
      }
    }
    save();
    for (const r of rows) log(`${r.name}: Kiln ${r.kilnMs ?? '-'} ms, PyTorch ${r.torchMs ?? r.torchError ?? '-'} ms, ratio ${r.vsTorch ?? '-'}${r.vsCopy ? `, vs copy ${r.vsCopy}` : ''}`);
  }
  log(`wrote ${file}`);
}

if (isMain(import.meta.url)) await runCli(cli, main);
