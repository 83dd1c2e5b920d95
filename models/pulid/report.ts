/** What a training run leaves for people to look at, next to metrics.json: loss curves (total and each loss, per
 * stage, with the fixed evaluation set's before/after points) as PNG and SVG, a sample grid PNG per stage
 * (prompt × ID photo), and summary.md, one page that links them all. */
import fs from 'node:fs';
import path from 'node:path';
import { chwToImage } from '../io/chwImage';
import { encodePng } from '../io/image';
import { writeAll, writeFileAtomic } from '../io/atomicWrite';
import { writeChart, PALETTE, type Series } from '../io/plot';
import { Canvas, GLYPH_H, textWidth } from '../io/raster';
import { LOSS_KEYS, type StepRecord } from './trainer';

export interface RunMetrics {
  config: string;
  steps: Record<string, number>;
  programs: Record<string, unknown>;
  history: readonly StepRecord[];
  stages: Record<string, { steps?: number; msPerStep?: number; eval?: { before: Record<string, number>; after: Record<string, number> } } & Record<string, unknown>>;
}

const LOSS_NAMES: Record<string, string> = { loss: 'total', l_diff: 'L_diff', l_id: 'L_id', l_sem: 'L_align-sem', l_layout: 'L_align-layout' };
const write = (file: string, bytes: Uint8Array | string) => { const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes; writeFileAtomic(file, (fd) => writeAll(fd, b)); };

/** Loss curves of one stage: each loss against the stage's step, and the evaluation set's values before
 * (step 0) and after (last step) as dotted points of the same colour. Returns the file base name, or null
 * when the stage has no history. */
export function writeStageLossPlot(out: string, m: RunMetrics, stage: number): string | null {
  const hist = m.history.filter((h) => h.stage === stage);
  if (!hist.length) return null;
  const ev = m.stages[String(stage)]?.eval;
  const series: Series[] = [];
  LOSS_KEYS.forEach((k, i) => {
    const pts = hist.filter((h) => h[k] !== undefined).map((h) => [h.step + 1, h[k] as number] as [number, number]);
    if (!pts.length) return;
    const color = PALETTE[i % PALETTE.length];
    series.push({ name: LOSS_NAMES[k], points: pts, color });
    if (ev && ev.before[k] !== undefined && ev.after[k] !== undefined) series.push({ name: `${LOSS_NAMES[k]} (eval)`, points: [[0, ev.before[k]], [hist[hist.length - 1].step + 1, ev.after[k]]], color, dashed: true, dots: true });
  });
  const base = `loss_stage${stage}`;
  writeChart(path.join(out, base), { title: `stage ${stage} losses (${m.config})`, xLabel: 'training step', yLabel: 'loss', series, width: 720, height: 440 });
  return base;
}

/** The total loss over the whole run, stage boundaries marked. */
export function writeRunLossPlot(out: string, m: RunMetrics): string | null {
  if (!m.history.length) return null;
  const pts = m.history.map((h, i) => [i + 1, h.loss] as [number, number]);
  const marks: { x: number; label: string }[] = [];
  m.history.forEach((h, i) => { if (i === 0 || m.history[i - 1].stage !== h.stage) marks.push({ x: i + 1, label: `stage ${h.stage}` }); });
  writeChart(path.join(out, 'loss_all'), { title: `total loss, all stages (${m.config})`, xLabel: 'step (all stages)', yLabel: 'loss', series: [{ name: 'total loss', points: pts }], marks, width: 720, height: 400 });
  return 'loss_all';
}

export interface GridCell { chw: ArrayLike<number>; size: number }

/** Images in a grid, rows labelled above (the prompt), columns labelled on top (the photo). */
export function sampleGridPng(rows: readonly string[], cols: readonly string[], cells: readonly (readonly GridCell[])[]): Buffer {
  const size = cells[0]?.[0]?.size ?? 64, gap = 6, lh = GLYPH_H + 6;
  const W = gap + cols.length * (size + gap), H = lh + rows.length * (lh + size + gap) + gap;
  const cv = new Canvas(Math.max(W, 160), H, [245, 245, 245]);
  const fit = (s: string, w: number) => { let t = s; while (t.length > 1 && textWidth(t) > w) t = t.slice(0, -2) + '~'; return t; };
  cols.forEach((c, j) => cv.text(gap + j * (size + gap), 4, fit(c, size), [60, 60, 60]));
  rows.forEach((r, i) => {
    const y = lh + i * (lh + size + gap);
    cv.text(gap, y + 2, fit(r, W - 2 * gap), [0, 0, 0]);
    cells[i].forEach((cell, j) => cv.paste(chwToImage(cell.chw, cell.size), gap + j * (size + gap), y + lh));
  });
  return encodePng(cv.toImage());
}

export function writeSampleGrid(file: string, rows: readonly string[], cols: readonly string[], cells: readonly (readonly GridCell[])[]): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  write(file, sampleGridPng(rows, cols, cells));
}

const fmt = (v: unknown) => (typeof v === 'number' ? (Math.abs(v) >= 1e3 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : v.toFixed(4)) : '–');

/** summary.md: per stage the losses (first/last third of the steps, evaluation set before/after), the loss plots,
 * the sample grid and the other images present in the folder; links are relative, so the folder can move. */
export function writeRunSummary(out: string, m: RunMetrics): string {
  const has = (f: string) => fs.existsSync(path.join(out, f));
  const lines = [`# PuLID training run: ${m.config}`, '', `Steps per stage: ${Object.entries(m.steps).map(([k, v]) => `${k}: ${v}`).join(', ')}. Raw numbers: [metrics.json](metrics.json).`, ''];
  if (has('loss_all.png')) lines.push('## Total loss', '', '![total loss](loss_all.png) ([SVG](loss_all.svg))', '');
  for (const stage of Object.keys(m.stages).sort()) {
    const s = m.stages[stage];
    lines.push(`## Stage ${stage}`, '', `${s.steps ?? '?'} steps, ${s.msPerStep?.toFixed(1) ?? '?'} ms per step.`, '', '| loss | first third | last third | eval before | eval after |', '| --- | ---: | ---: | ---: | ---: |');
    for (const k of LOSS_KEYS) {
      const fl = s[k] as { first?: number; last?: number } | undefined;
      if (fl?.first === undefined && s.eval?.before[k] === undefined) continue;
      lines.push(`| ${LOSS_NAMES[k]} | ${fmt(fl?.first)} | ${fmt(fl?.last)} | ${fmt(s.eval?.before[k])} | ${fmt(s.eval?.after[k])} |`);
    }
    lines.push('');
    if (has(`loss_stage${stage}.png`)) lines.push(`![stage ${stage} losses](loss_stage${stage}.png) ([SVG](loss_stage${stage}.svg))`, '');
    if (has(`samples_stage${stage}.png`)) lines.push(`Samples after stage ${stage} (rows: prompts, columns: ID photos):`, '', `![samples after stage ${stage}](samples_stage${stage}.png)`, '');
    const extra = [`sample_stage${stage}.png`, `train_image_stage${stage}.png`].filter(has);
    const ckpt = `stage${stage}.safetensors`;
    if (extra.length || has(ckpt)) lines.push([...extra.map((f) => `[${f}](${f})`), ...(has(ckpt) ? [`checkpoint [${ckpt}](${ckpt})`] : [])].join(' · '), '');
  }
  const file = path.join(out, 'summary.md');
  write(file, lines.join('\n'));
  return file;
}
