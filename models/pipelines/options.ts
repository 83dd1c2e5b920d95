/** What every pipeline's `generate` takes and returns, and the one check of its numbers: a value out of range
 * is a `PipelineOptionError` (a RangeError naming the option) before any graph is built or run, so a bad value
 * from a command line or a web form never reaches a native kernel. */

/** Called as work advances: `done` of `total` units, and what is running now. */
export type ProgressFn = (done: number, total: number, label: string) => void;

export interface GeneratedImage {
  /** PNG file bytes. */
  png: Buffer;
  /** The decoder's output [1, 3, H, W], values in [-1, 1]. */
  chw: Float32Array;
  width: number;
  height: number;
  seed: number;
}

export class PipelineOptionError extends RangeError {
  constructor(readonly option: string, message: string) {
    super(`${option}: ${message}`);
    this.name = 'PipelineOptionError';
  }
}

/** Ranges shared with the command lines (tools/cli.ts tables) and the web app's form. */
export const LIMITS = {
  steps: { min: 1, max: 1000 },
  cfg: { min: 0, max: 100 },
  seed: { min: 0, max: 2 ** 32 - 1 },
  size: { min: 8, max: 4096 },
  idScale: { min: 0, max: 1000 },
  promptChars: 2000,
} as const;

function int(name: string, v: number, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new PipelineOptionError(name, `a whole number, not ${JSON.stringify(v)}`);
  if (v < lo || v > hi) throw new PipelineOptionError(name, `${v} is out of range (${lo}..${hi})`);
  return v;
}
export function checkNumber(name: string, v: number, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new PipelineOptionError(name, `a number, not ${JSON.stringify(v)}`);
  if (v < lo || v > hi) throw new PipelineOptionError(name, `${v} is out of range (${lo}..${hi})`);
  return v;
}
function text(name: string, v: unknown): string {
  if (typeof v !== 'string') throw new PipelineOptionError(name, `text, not ${JSON.stringify(v)}`);
  if (v.length > LIMITS.promptChars) throw new PipelineOptionError(name, `${v.length} characters (at most ${LIMITS.promptChars})`);
  return v;
}

export interface CommonOptions { prompt: string; negativePrompt?: string; steps: number; cfg: number; seed: number; width: number; height: number }

/** Checks the options every generator shares; returns them unchanged. */
export function checkGenerateOptions<T extends CommonOptions>(o: T): T {
  text('prompt', o.prompt);
  if (o.negativePrompt !== undefined) text('negativePrompt', o.negativePrompt);
  int('steps', o.steps, LIMITS.steps.min, LIMITS.steps.max);
  checkNumber('cfg', o.cfg, LIMITS.cfg.min, LIMITS.cfg.max);
  int('seed', o.seed, LIMITS.seed.min, LIMITS.seed.max);
  for (const k of ['width', 'height'] as const) {
    int(k, o[k], LIMITS.size.min, LIMITS.size.max);
    if (o[k] % 8) throw new PipelineOptionError(k, `${o[k]} is not a multiple of 8 (the VAE's scale)`);
  }
  return o;
}

/** `defaults` overlaid with the options that are set (an explicit `undefined` keeps the default). */
export function withDefaults<D extends object, O extends object>(defaults: D, opts: O): D & O {
  const out = { ...defaults } as Record<string, unknown>;
  for (const [k, v] of Object.entries(opts)) if (v !== undefined) out[k] = v;
  return out as D & O;
}
