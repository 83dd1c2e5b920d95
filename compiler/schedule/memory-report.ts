/** The human-readable memory report: what the plan saved over allocating every tensor separately, and what
 * it recomputed to get there. */
import type { BufferRole, MemoryPlan } from './plan-types';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

/** "64GiB", "56 MiB", "512kb", "1000": a byte count as people write budgets (powers of 1024). */
export function parseBytes(s: string): number {
  const m = /^([\d.]+)\s*(k|m|g|t)?i?b?$/i.exec(s.trim());
  if (!m || !Number.isFinite(Number(m[1]))) throw new Error(`cannot read '${s}' as a byte count (e.g. 64GiB, 56MiB, 1000)`);
  return M.round(Number(m[1]) * (m[2] ? 1024 ** ('kmgt'.indexOf(m[2].toLowerCase()) + 1) : 1));
}

/** "1.50 MiB (1572864 B)": the rounded figure to read, the exact one to compare. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${v.toFixed(2)} ${units[u]} (${n} B)`;
}

/** Bytes of parameters and constants: resident for the whole run, the part no plan can shrink. */
export function residentBytes(plan: Pick<MemoryPlan, 'buffers'>): number {
  let n = 0;
  for (const b of plan.buffers) if (b.kind === 'param' || b.kind === 'const') n += b.bytes;
  return n;
}

export function formatMemoryReport(plan: MemoryPlan, floorBytes?: number): string {
  const labels = new Map(plan.buffers.map((b) => [b.id, b.label]));
  const steps = new Map(plan.steps.map((s) => [s.id, s.label]));
  const saved = plan.naiveBytes > 0 ? ` (${((1 - plan.arenaBytes / plan.naiveBytes) * 100).toFixed(1)}% less than naive)` : '';
  const lines = [
    'memory plan',
    `  naive (every buffer separate): ${formatBytes(plan.naiveBytes)}`,
    `  planned arena:                 ${formatBytes(plan.arenaBytes)}${saved}`,
    `  peak live:                     ${formatBytes(plan.peakLiveBytes)}`,
    `  of which resident:             ${formatBytes(residentBytes(plan))} (parameters, optimizer state, constants)`,
  ];
  if (plan.budget !== undefined) lines.push(`  budget:                        ${formatBytes(plan.budget)}`);
  if (floorBytes !== undefined) lines.push(`  floor (smallest reachable):    ${formatBytes(floorBytes)}`);
  const k = bytesByKind(plan);
  lines.push(`  resident: frozen weights ${formatBytes(k.frozenWeights)}, trainable ${formatBytes(k.trainableParams)}, optimizer state ${formatBytes(k.optimizerState)}, constants ${formatBytes(k.constants)}`);
  lines.push(`  at the peak (step ${k.peakAt}): activations ${formatBytes(k.activations)}, gradients ${formatBytes(k.gradients)}, workspace ${formatBytes(k.workspace)}, inputs/outputs ${formatBytes(k.inputsOutputs)}`);
  const ratio = plan.flops.base > 0 ? ` (+${((plan.flops.recompute / plan.flops.base) * 100).toFixed(1)}%)` : '';
  lines.push(`  FLOPs: ${plan.flops.base.toExponential(3)} without recompute, ${plan.flops.recompute.toExponential(3)} recomputed${ratio}`);
  if (plan.segments) lines.push(`  checkpoint candidates: ${plan.segments.chosen} of ${plan.segments.candidates} recomputed${plan.segments.probes ? ` (${plan.segments.probes} plans tried)` : ''}`);
  lines.push(`  buffers: ${plan.buffers.length}, steps: ${plan.steps.length}, in-place pairs: ${plan.inPlace.length}`);
  for (const p of plan.inPlace) lines.push(`    in place: ${labels.get(p.write)} reuses ${labels.get(p.read)}`);
  if (plan.recomputed.length === 0) {
    lines.push('  recomputed: none');
  } else {
    const total = plan.recomputed.reduce((s, r) => s + r.bytes, 0);
    lines.push(`  recomputed: ${plan.recomputed.length} buffers, ${formatBytes(total)} in all`);
    const rows = plan.recomputed.map((r) => [labels.get(r.buffer) ?? `#${r.buffer}`, formatBytes(r.bytes), steps.get(r.step) ?? `#${r.step}`, String(r.at)]);
    const head = ['buffer', 'bytes', 'step re-run', 'at'];
    const width = head.map((h, i) => M.max(h.length, ...rows.map((r) => r[i].length)));
    const row = (r: string[]): string => `    ${r.map((c, i) => c.padEnd(width[i])).join('  ')}`.trimEnd();
    lines.push(row(head), ...rows.map(row));
  }
  return lines.join('\n');
}

/** Bytes by what they hold. Resident kinds (weights, parameters, optimizer state, constants) count whole; the
 * rest are the bytes live at the plan's peak, by role: the activations kept for (or recomputed for) the
 * backward pass, gradients (every value autodiff built: cotangents and parameter gradients), workspace (the
 * optimizer's update values before they are committed), and the program's inputs and outputs. */
export interface BytesByKind {
  readonly frozenWeights: number;
  readonly trainableParams: number;
  readonly optimizerState: number;
  readonly constants: number;
  readonly activations: number;
  readonly gradients: number;
  readonly workspace: number;
  readonly inputsOutputs: number;
  /** The step index where the live bytes peak (-1: before the first step). */
  readonly peakAt: number;
}

const RESIDENT: Partial<Record<BufferRole, keyof BytesByKind>> = { frozen: 'frozenWeights', trainable: 'trainableParams', optimizer: 'optimizerState', constant: 'constants' };
const LIVE: Partial<Record<BufferRole, keyof BytesByKind>> = { activation: 'activations', gradient: 'gradients', optimizer: 'workspace', input: 'inputsOutputs', output: 'inputsOutputs' };

export function bytesByKind(plan: Pick<MemoryPlan, 'buffers' | 'lifetimes' | 'steps'> & Partial<Pick<MemoryPlan, 'commits'>>): BytesByKind {
  const n = plan.steps.length;
  const delta = new Float64Array(n + 2);
  const byId = new Map(plan.buffers.map((b) => [b.id, b]));
  // Update values committed in place live in their parameters' memory.
  const committed = new Set((plan.commits ?? []).map((c) => c.value));
  for (const [id, [f, l]] of plan.lifetimes) {
    const b = byId.get(id)!;
    if (b.kind === 'param' || b.kind === 'const' || committed.has(id)) continue;
    delta[f + 1] += b.bytes;
    delta[M.min(l, n - 1) + 2] -= b.bytes;
  }
  let acc = 0, best = -1, peakAt = -1;
  for (let i = 0; i <= n; i++) { acc += delta[i]; if (acc > best) { best = acc; peakAt = i - 1; } }
  const out: Record<keyof BytesByKind, number> = { frozenWeights: 0, trainableParams: 0, optimizerState: 0, constants: 0, activations: 0, gradients: 0, workspace: 0, inputsOutputs: 0, peakAt };
  for (const b of plan.buffers) {
    const resident = b.kind === 'param' || b.kind === 'const';
    if (resident) { out[RESIDENT[b.role ?? (b.kind === 'const' ? 'constant' : 'frozen')] ?? 'frozenWeights'] += b.bytes; continue; }
    const lt = plan.lifetimes.get(b.id);
    if (!lt || committed.has(b.id) || lt[0] > peakAt || lt[1] < peakAt) continue;
    out[LIVE[b.role ?? (b.kind === 'temp' ? 'activation' : b.kind)] ?? 'activations'] += b.bytes;
  }
  return out;
}
