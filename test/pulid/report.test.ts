/** Training outputs people look at: loss charts (SVG and PNG from one layout), the sample grid, summary.md.
 * Synthetic metrics, no model: fast. */
import { afterAll, describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeImage } from '../../models/io/image';
import { chartCanvas, chartSvg, layout, ticks } from '../../models/io/plot';
import { Canvas, parseColor } from '../../models/io/raster';
import { sampleGridPng, writeRunLossPlot, writeRunSummary, writeStageLossPlot, type RunMetrics } from '../../models/pulid/report';
import type { StepRecord } from '../../models/pulid/trainer';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-report-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('charts', () => {
  it('ticks are round numbers covering the range', () => {
    expect(ticks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(ticks(0.93, 1.27)).toEqual([1, 1.1, 1.2]);
    expect(ticks(-30, 120)).toEqual([0, 50, 100]);
    expect(ticks(-35, 120, 8)).toEqual([-20, 0, 20, 40, 60, 80, 100, 120]);
  });

  it('the SVG and the PNG draw the same series where the layout puts them', () => {
    const chart = { title: 't', xLabel: 'x', yLabel: 'y', width: 300, height: 200, series: [
      { name: 'a', points: [[0, 0], [10, 1]] as [number, number][], color: '#ff0000' },
      { name: 'b', points: [[0, 1], [10, 0], [5, Number.NaN]] as [number, number][], color: '#0000ff', dashed: true, dots: true }] };
    const svg = chartSvg(chart);
    expect(svg.match(/<polyline points="[^"]*" fill="none" stroke="#ff0000"/g)).toHaveLength(2); // the series and its legend swatch
    expect(svg).toMatch(/stroke="#0000ff" stroke-width="2" stroke-dasharray="6 4"/);
    expect(svg.match(/<circle [^>]*fill="#0000ff"/g)).toHaveLength(3); // two points (NaN skipped) + the legend
    // The red series' first point, in pixels, is red in the PNG.
    const line = layout(chart).prims.find((p) => p.kind === 'line' && p.color === '#ff0000')!;
    const [x, y] = (line as { pts: [number, number][] }).pts[0];
    const cv = chartCanvas(chart), i = (Math.round(y) * cv.width + Math.round(x)) * 3;
    expect(Array.from(cv.data.subarray(i, i + 3))).toEqual([255, 0, 0]);
  });

  it('the bitmap font draws glyphs; an unknown character draws as ?', () => {
    const ink = (s: string) => { const c = new Canvas(20, 10); c.text(1, 1, s, parseColor('#000000')); return c.data.filter((v) => v === 0).length / 3; };
    expect(ink('1')).toBe(10); // 00 42 7f 40 00: 2 + 7 + 1 pixels
    expect(ink(' ')).toBe(0);
    expect(ink('λ')).toBe(ink('?'));
  });
});

describe('run report', () => {
  const hist: StepRecord[] = [];
  for (let s = 1; s <= 2; s++) for (let k = 0; k < 5; k++) hist.push({ stage: s as 1 | 2, step: k, micro: 1, loss: 1 / (k + 1), l_diff: 0.8 / (k + 1), ...(s === 2 ? { l_id: 0.1 } : {}), ms: 10 });
  const m: RunMetrics = { config: 'micro', steps: { 1: 5, 2: 5 }, programs: {}, history: hist, stages: {
    1: { steps: 5, msPerStep: 10, loss: { first: 1, last: 0.2 }, l_diff: { first: 0.8, last: 0.16 }, eval: { before: { loss: 1.1, l_diff: 0.9 }, after: { loss: 0.5, l_diff: 0.4 } } },
    2: { steps: 5, msPerStep: 12, loss: { first: 1, last: 0.2 }, l_id: { first: 0.1, last: 0.1 }, eval: { before: { loss: 0.6, l_id: 0.1 }, after: { loss: 0.4, l_id: 0.09 } } } } };

  it('writes per-stage and whole-run loss plots and a summary that links only files that exist', () => {
    expect(writeStageLossPlot(dir, m, 1)).toBe('loss_stage1');
    expect(writeStageLossPlot(dir, m, 2)).toBe('loss_stage2');
    expect(writeStageLossPlot(dir, m, 3)).toBeNull();
    expect(writeRunLossPlot(dir, m)).toBe('loss_all');
    const svg = fs.readFileSync(path.join(dir, 'loss_stage2.svg'), 'utf8');
    for (const name of ['total', 'L_diff', 'L_id', 'total (eval)', 'L_id (eval)']) expect(svg).toContain(`>${name}</text>`);
    expect(decodeImage(path.join(dir, 'loss_all.png')).width).toBe(720);
    fs.writeFileSync(path.join(dir, 'metrics.json'), JSON.stringify(m));
    const md = fs.readFileSync(writeRunSummary(dir, m), 'utf8');
    expect(md).toContain('![stage 1 losses](loss_stage1.png) ([SVG](loss_stage1.svg))');
    expect(md).toContain('| total | 1.0000 | 0.2000 | 1.1000 | 0.5000 |');
    expect(md).toContain('| L_id | 0.1000 | 0.1000 | 0.1000 | 0.0900 |');
    expect(md).not.toContain('samples_stage1.png'); // not written here
    for (const link of md.matchAll(/\]\(([^)]+)\)/g)) expect(fs.existsSync(path.join(dir, link[1]))).toBe(true);
  });

  it('the sample grid places each image under its labels', () => {
    const size = 16, red = new Float32Array(3 * size * size), blue = new Float32Array(3 * size * size);
    red.fill(-1); red.fill(1, 0, size * size); blue.fill(-1); blue.fill(1, 2 * size * size);
    const img = decodeImage(sampleGridPng(['p1', 'p2'], ['a', 'b'], [[{ chw: red, size }, { chw: blue, size }], [{ chw: blue, size }, { chw: red, size }]]));
    expect([img.width, img.height]).toEqual([160, 14 + 2 * (14 + 16 + 6) + 6]);
    const at = (x: number, y: number) => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));
    expect(at(6 + 8, 14 + 14 + 8)).toEqual([255, 0, 0]);           // row 0, column 0
    expect(at(6 + 22 + 8, 14 + 14 + 8)).toEqual([0, 0, 255]);      // row 0, column 1
    expect(at(6 + 8, 14 + 36 + 14 + 8)).toEqual([0, 0, 255]);      // row 1, column 0
  });
});
