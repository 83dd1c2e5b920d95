/** A small RGB canvas for charts and image grids, with no dependency: filled rectangles, lines of any width,
 * dots, images pasted in, and text in a built-in 5×7 bitmap font (ASCII; other characters draw as '?'), scaled
 * by whole pixels. Enough to turn a chart's primitives (plot.ts) into a PNG that matches its SVG. */
import type { Image } from './imageOps';

export type Rgb = readonly [number, number, number];

/** '#rrggbb' → [r, g, b]. */
export function parseColor(hex: string): Rgb {
  const m = /^#([0-9a-f]{6})$/i.exec(hex);
  if (!m) throw new RangeError(`color: '#rrggbb', not '${hex}'`);
  const v = parseInt(m[1], 16);
  return [v >> 16, (v >> 8) & 255, v & 255];
}

// The classic 5×7 font (columns left to right, bit 0 = top row), characters 0x20..0x7e.
const FONT = (
  '0000000000 00005f0000 0007000700 147f147f14 242a7f2a12 2313086462 3649552250 0005030000 001c224100 0041221c00 ' +
  '142a1c2a14 08083e0808 0050300000 0808080808 0060600000 2010080402 3e5149453e 00427f4000 4261514946 2141454b31 ' +
  '1814127f10 2745454539 3c4a494930 0171090503 3649494936 064949291e 0036360000 0056360000 0008142241 1414141414 ' +
  '4122140800 0201510906 324979413e 7e1111117e 7f49494936 3e41414122 7f4141221c 7f49494941 7f09090101 3e41415132 ' +
  '7f0808087f 00417f4100 2040413f01 7f08142241 7f40404040 7f0204027f 7f0408107f 3e4141413e 7f09090906 3e4151215e ' +
  '7f09192946 4649494931 01017f0101 3f4040403f 1f2040201f 7f2018207f 6314081463 0304780403 6151494543 00007f4141 ' +
  '0204081020 41417f0000 0402010204 4040404040 0001020400 2054545478 7f48444438 3844444420 384444487f 3854545418 ' +
  '087e090102 081454543c 7f08040478 00447d4000 2040443d00 007f102844 00417f4000 7c04180478 7c08040478 3844444438 ' +
  '7c14141408 081414187c 7c08040408 4854545420 043f444020 3c4040207c 1c2040201c 3c4030403c 4428102844 0c5050503c ' +
  '4464544c44 0008364100 00007f0000 0041360800 0201020402'
).split(' ');

export const GLYPH_W = 6, GLYPH_H = 8; // 5×7 plus one pixel of spacing

export class Canvas {
  readonly data: Uint8Array;
  constructor(readonly width: number, readonly height: number, background: Rgb = [255, 255, 255]) {
    if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0 && width * height <= 1 << 26)) throw new RangeError(`canvas: bad size ${width}×${height}`);
    this.data = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) this.data.set(background, i * 3);
  }

  /** Blends `c` over the pixel with coverage `a` (0..1). */
  pixel(x: number, y: number, c: Rgb, a = 1): void {
    x = Math.round(x); y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 3;
    for (let k = 0; k < 3; k++) this.data[i + k] = Math.round(this.data[i + k] * (1 - a) + c[k] * a);
  }

  rect(x: number, y: number, w: number, h: number, c: Rgb): void {
    for (let j = Math.max(0, Math.round(y)); j < Math.min(this.height, Math.round(y + h)); j++)
      for (let i = Math.max(0, Math.round(x)); i < Math.min(this.width, Math.round(x + w)); i++) this.pixel(i, j, c);
  }

  /** A segment of width `w`: every pixel whose centre lies within w/2 of it, edges anti-aliased over one pixel;
   * `dash` [on, off] in pixels along the segment. */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, w = 1, dash?: readonly [number, number]): void {
    const dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy, r = w / 2;
    const lo = (a: number, b: number) => Math.floor(Math.min(a, b) - r - 1), hi = (a: number, b: number) => Math.ceil(Math.max(a, b) + r + 1);
    for (let y = Math.max(0, lo(y0, y1)); y <= Math.min(this.height - 1, hi(y0, y1)); y++) {
      for (let x = Math.max(0, lo(x0, x1)); x <= Math.min(this.width - 1, hi(x0, x1)); x++) {
        const t = len2 ? Math.max(0, Math.min(1, ((x - x0) * dx + (y - y0) * dy) / len2)) : 0;
        const d = Math.hypot(x - (x0 + t * dx), y - (y0 + t * dy));
        if (dash && (t * Math.sqrt(len2)) % (dash[0] + dash[1]) > dash[0]) continue;
        const a = Math.max(0, Math.min(1, r + 0.5 - d));
        if (a > 0) this.pixel(x, y, c, a);
      }
    }
  }

  polyline(points: readonly (readonly [number, number])[], c: Rgb, w = 1, dash?: readonly [number, number]): void {
    for (let i = 1; i < points.length; i++) this.line(points[i - 1][0], points[i - 1][1], points[i][0], points[i][1], c, w, dash);
  }

  dot(x: number, y: number, radius: number, c: Rgb): void {
    for (let j = Math.floor(y - radius - 1); j <= Math.ceil(y + radius + 1); j++)
      for (let i = Math.floor(x - radius - 1); i <= Math.ceil(x + radius + 1); i++) {
        const a = Math.max(0, Math.min(1, radius + 0.5 - Math.hypot(i - x, j - y)));
        if (a > 0) this.pixel(i, j, c, a);
      }
  }

  /** Text with its top-left corner at (x, y), `scale` pixels per font pixel; returns its width. */
  text(x: number, y: number, s: string, c: Rgb, scale = 1): number {
    let cx = Math.round(x);
    for (const ch of s) {
      const code = ch.charCodeAt(0);
      const g = FONT[code >= 0x20 && code <= 0x7e ? code - 0x20 : 0x3f - 0x20];
      for (let col = 0; col < 5; col++) {
        const bits = parseInt(g.slice(col * 2, col * 2 + 2), 16);
        for (let row = 0; row < 7; row++) if (bits & (1 << row)) this.rect(cx + col * scale, Math.round(y) + row * scale, scale, scale, c);
      }
      cx += GLYPH_W * scale;
    }
    return cx - Math.round(x);
  }

  /** Pastes an 8-bit RGB image with its top-left corner at (x, y). */
  paste(img: Image, x: number, y: number): void {
    if (img.channels !== 3) throw new RangeError(`canvas: paste needs RGB, got ${img.channels} channels`);
    for (let j = 0; j < img.height; j++) for (let i = 0; i < img.width; i++) {
      const s = (j * img.width + i) * 3;
      this.pixel(x + i, y + j, [img.data[s], img.data[s + 1], img.data[s + 2]]);
    }
  }

  toImage(): Image { return { width: this.width, height: this.height, channels: 3, data: this.data }; }
}

export const textWidth = (s: string, scale = 1): number => [...s].length * GLYPH_W * scale;
