/** The human-readable memory report: what the plan saved over allocating every tensor separately, and what
 * it recomputed to get there. */
import type { MemoryPlan } from './plan-types';
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

export function formatMemoryReport(plan: MemoryPlan): string {
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
