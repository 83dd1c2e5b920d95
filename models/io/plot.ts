/** Line charts as SVG and PNG from one layout: axes with round-number ticks, one polyline per series (optionally
 * dashed, optionally with dots at its points), a legend. The layout is a list of primitives (lines, dots, text,
 * rectangles) that both renderers draw, so the PNG (raster.ts, built-in bitmap font) and the SVG show the same
 * chart. Non-finite points are skipped; a series with one point draws a dot. */
import fs from 'node:fs';
import path from 'node:path';
import { encodePng } from './image';
import { writeAll, writeFileAtomic } from './atomicWrite';
import { Canvas, GLYPH_H, parseColor, textWidth } from './raster';

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  color?: string;
  dashed?: boolean;
  /** Draw a dot at every point (evaluation points). */
  dots?: boolean;
}

export interface Chart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  width?: number;
  height?: number;
  /** Vertical lines with a label (stage boundaries). */
  marks?: readonly { x: number; label: string }[];
}

type Prim =
  | { kind: 'line'; pts: [number, number][]; color: string; width: number; dash?: [number, number] }
  | { kind: 'dot'; x: number; y: number; r: number; color: string }
  | { kind: 'rect'; x: number; y: number; w: number; h: number; color: string }
  | { kind: 'text'; x: number; y: number; s: string; color: string; scale: number };

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];

/** Round tick values covering [lo, hi] (1, 2, 5 × 10^k steps). */
export function ticks(lo: number, hi: number, target = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / target, p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : +v.toPrecision(12));
  return out;
}

const label = (v: number) => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(1) : String(+v.toPrecision(4)));

/** The chart as primitives in pixel coordinates. */
export function layout(c: Chart): { width: number; height: number; prims: Prim[] } {
  const W = c.width ?? 640, H = c.height ?? 400;
  const finite = (p: readonly [number, number]) => Number.isFinite(p[0]) && Number.isFinite(p[1]);
  const all = c.series.flatMap((s) => s.points.filter(finite));
  let [x0, x1] = all.length ? [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))] : [0, 1];
  let [y0, y1] = all.length ? [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))] : [0, 1];
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
  const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
  const yt = ticks(y0, y1), xt = ticks(x0, x1);
  const left = 16 + Math.max(...yt.map((v) => textWidth(label(v)))) + 8, right = 16, top = 34, legendRows = Math.ceil(c.series.length / 3);
  const bottom = 40 + legendRows * 14;
  const pw = W - left - right, ph = H - top - bottom;
  const X = (x: number) => left + ((x - x0) / (x1 - x0)) * pw, Y = (y: number) => top + ph - ((y - y0) / (y1 - y0)) * ph;
  const prims: Prim[] = [{ kind: 'rect', x: 0, y: 0, w: W, h: H, color: '#ffffff' }];
  prims.push({ kind: 'text', x: W / 2 - textWidth(c.title, 2) / 2, y: 8, s: c.title, color: '#000000', scale: 2 });
  for (const v of yt) {
    prims.push({ kind: 'line', pts: [[left, Y(v)], [left + pw, Y(v)]], color: '#e6e6e6', width: 1 });
    prims.push({ kind: 'text', x: left - 6 - textWidth(label(v)), y: Y(v) - GLYPH_H / 2 + 1, s: label(v), color: '#444444', scale: 1 });
  }
  for (const v of xt) {
    prims.push({ kind: 'line', pts: [[X(v), top + ph], [X(v), top + ph + 4]], color: '#444444', width: 1 });
    prims.push({ kind: 'text', x: X(v) - textWidth(label(v)) / 2, y: top + ph + 7, s: label(v), color: '#444444', scale: 1 });
  }
  for (const m of c.marks ?? []) {
    if (m.x < x0 || m.x > x1) continue;
    prims.push({ kind: 'line', pts: [[X(m.x), top], [X(m.x), top + ph]], color: '#999999', width: 1, dash: [4, 3] });
    prims.push({ kind: 'text', x: X(m.x) + 3, y: top + 3, s: m.label, color: '#666666', scale: 1 });
  }
  prims.push({ kind: 'line', pts: [[left, top], [left, top + ph], [left + pw, top + ph]], color: '#444444', width: 1 });
  prims.push({ kind: 'text', x: left + pw / 2 - textWidth(c.xLabel) / 2, y: top + ph + 20, s: c.xLabel, color: '#000000', scale: 1 });
  prims.push({ kind: 'text', x: 4, y: top - 14, s: c.yLabel, color: '#000000', scale: 1 });
  c.series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const pts = s.points.filter(finite).map((p) => [X(p[0]), Y(p[1])] as [number, number]);
    if (pts.length > 1) prims.push({ kind: 'line', pts, color, width: 2, dash: s.dashed ? [6, 4] : undefined });
    if (s.dots || pts.length === 1) for (const [x, y] of pts) prims.push({ kind: 'dot', x, y, r: 3.5, color });
    const lx = left + (i % 3) * Math.floor(pw / 3), ly = top + ph + 34 + Math.floor(i / 3) * 14;
    prims.push({ kind: 'line', pts: [[lx, ly + 3], [lx + 18, ly + 3]], color, width: 2, dash: s.dashed ? [6, 4] : undefined });
    if (s.dots) prims.push({ kind: 'dot', x: lx + 9, y: ly + 3, r: 3, color });
    prims.push({ kind: 'text', x: lx + 24, y: ly, s: s.name, color: '#000000', scale: 1 });
  });
  return { width: W, height: H, prims };
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const f1 = (v: number) => +v.toFixed(1);

export function chartSvg(c: Chart): string {
  const { width, height, prims } = layout(c);
  const body = prims.map((p) => {
    switch (p.kind) {
      case 'rect': return `<rect x="${f1(p.x)}" y="${f1(p.y)}" width="${f1(p.w)}" height="${f1(p.h)}" fill="${p.color}"/>`;
      case 'dot': return `<circle cx="${f1(p.x)}" cy="${f1(p.y)}" r="${p.r}" fill="${p.color}"/>`;
      case 'line': return `<polyline points="${p.pts.map(([x, y]) => `${f1(x)},${f1(y)}`).join(' ')}" fill="none" stroke="${p.color}" stroke-width="${p.width}"${p.dash ? ` stroke-dasharray="${p.dash.join(' ')}"` : ''} stroke-linejoin="round"/>`;
      case 'text': return `<text x="${f1(p.x)}" y="${f1(p.y + 7 * p.scale)}" font-family="monospace" font-size="${10 * p.scale}" fill="${p.color}">${esc(p.s)}</text>`;
    }
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">\n${body.join('\n')}\n</svg>\n`;
}

export function chartCanvas(c: Chart): Canvas {
  const { width, height, prims } = layout(c);
  const cv = new Canvas(width, height);
  for (const p of prims) {
    if (p.kind === 'rect') cv.rect(p.x, p.y, p.w, p.h, parseColor(p.color));
    else if (p.kind === 'dot') cv.dot(p.x, p.y, p.r, parseColor(p.color));
    else if (p.kind === 'line') cv.polyline(p.pts, parseColor(p.color), p.width, p.dash);
    else cv.text(p.x, p.y, p.s, parseColor(p.color), p.scale);
  }
  return cv;
}

/** Writes `<base>.svg` and `<base>.png` (each atomically); returns their paths. */
export function writeChart(base: string, c: Chart): { svg: string; png: string } {
  fs.mkdirSync(path.dirname(path.resolve(base)), { recursive: true });
  const svg = `${base}.svg`, png = `${base}.png`;
  const text = Buffer.from(chartSvg(c)), bytes = encodePng(chartCanvas(c).toImage());
  writeFileAtomic(svg, (fd) => writeAll(fd, text));
  writeFileAtomic(png, (fd) => writeAll(fd, bytes));
  return { svg, png };
}
