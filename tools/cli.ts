/** The one option table behind every command line in the repository (examples/, bench/, tools/).
 *
 * A CLI declares its options once: type (int, number, bytes, enum, string, file, dir, flag, int list), range,
 * default, help text. `defineCli(...).parse(argv)` runs Node's `util.parseArgs({ strict: true })` and then checks
 * every value against the table before any work starts, so a malformed value never reaches a native kernel.
 * `--help`/`-h` prints usage, defaults and examples generated from the same table. `runCli(cli, main)` turns
 * errors into what a user reads: a usage mistake is one line on stderr and exit status 2; any other error is one
 * paragraph (its name and message, no stack) and exit status 1; `KILN_DEBUG=1` prints the stack as well.
 * `progress(...)` draws a cli-progress bar on a terminal and prints plain lines otherwise (logs, CI). */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { parseBytes } from '../compiler/schedule/memory';

/** A malformed command line: printed as one line, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) { super(message); this.name = 'UsageError'; }
}

interface Base { help: string; short?: string }
interface Ranged { min?: number; max?: number }
export type OptionSpec =
  | Base & Ranged & { type: 'int' | 'number'; default?: number; multiple?: boolean }
  | Base & Ranged & { type: 'bytes'; default?: number }
  | Base & Ranged & { type: 'ints'; default?: readonly number[]; lengths?: readonly number[] }
  | Base & { type: 'enum'; values: readonly string[]; default?: string }
  | Base & { type: 'string'; default?: string; multiple?: boolean }
  | Base & { type: 'file' | 'dir'; default?: string; multiple?: boolean; mustExist?: boolean }
  | Base & { type: 'flag' };
export type OptionTable = Readonly<Record<string, OptionSpec>>;

type One<O> = O extends { type: 'flag' } ? boolean
  : O extends { type: 'int' | 'number' | 'bytes' } ? number
  : O extends { type: 'ints' } ? number[]
  : O extends { type: 'enum'; values: readonly (infer V)[] } ? V
  : string;
type Value<O> = O extends { multiple: true } ? One<O>[] : O extends { type: 'flag' } | { default: unknown } ? One<O> : One<O> | undefined;
export type Parsed<T extends OptionTable> = { -readonly [K in keyof T]: Value<T[K]> };

export interface CliDefinition<T extends OptionTable> {
  /** The command, as typed: `npx tsx examples/generate.ts`. */
  command: string;
  summary: string;
  /** Positional arguments: a name for the usage line, and whether at least one is needed. */
  positionals?: { name: string; help: string; min?: number; max?: number };
  options: T;
  examples: readonly string[];
  /** Further text for --help (exit codes, outputs). */
  notes?: string;
}

export interface Cli<T extends OptionTable> {
  readonly def: CliDefinition<T>;
  /** Validated values, or throws UsageError; `help: true` when --help was asked for (nothing else is checked). */
  parse(argv: readonly string[]): { values: Parsed<T>; positionals: string[]; help: boolean };
  usage(): string;
}

const SAFE_INT = Number.MAX_SAFE_INTEGER;

function checkRange(flag: string, v: number, o: Ranged, integer: boolean): number {
  if (!Number.isFinite(v)) throw new UsageError(`${flag}: expected a ${integer ? 'whole number' : 'number'}, got '${v}'`);
  if (integer && !Number.isInteger(v)) throw new UsageError(`${flag}: expected a whole number, got ${v}`);
  const min = o.min ?? (integer ? -SAFE_INT : -Infinity), max = o.max ?? (integer ? SAFE_INT : Infinity);
  if (v < min || v > max) throw new UsageError(`${flag}: ${v} is out of range (${rangeText(o)})`);
  return v;
}
const rangeText = (o: Ranged) => o.min !== undefined && o.max !== undefined ? `${o.min}..${o.max}` : o.min !== undefined ? `≥ ${o.min}` : o.max !== undefined ? `≤ ${o.max}` : 'any';

function number(flag: string, s: string, o: Ranged, integer: boolean): number {
  const t = s.trim();
  // Number('') is 0 and Number('0x10') is 16: accept only decimal notation.
  if (!/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(t)) throw new UsageError(`${flag}: expected a ${integer ? 'whole number' : 'number'}, got '${s}'`);
  return checkRange(flag, Number(t), o, integer);
}

function convert(name: string, o: OptionSpec, s: string): unknown {
  const flag = `--${name}`;
  switch (o.type) {
    case 'int': return number(flag, s, o, true);
    case 'number': return number(flag, s, o, false);
    case 'bytes': {
      let b: number;
      try { b = parseBytes(s); } catch (e) { throw new UsageError(`${flag}: ${(e as Error).message}`); }
      return checkRange(flag, b, o, true);
    }
    case 'ints': {
      const xs = s.split(',').map((p) => number(flag, p, o, true));
      if (o.lengths && !o.lengths.includes(xs.length)) throw new UsageError(`${flag}: expected ${o.lengths.join(' or ')} comma-separated values, got ${xs.length}`);
      return xs;
    }
    case 'enum':
      if (!o.values.includes(s)) throw new UsageError(`${flag}: one of ${o.values.join(', ')}, not '${s}'`);
      return s;
    case 'file': case 'dir': {
      if (o.mustExist !== false) {
        let st: fs.Stats;
        try { st = fs.statSync(s); } catch { throw new UsageError(`${flag}: ${s}: no such ${o.type === 'dir' ? 'folder' : 'file'}`); }
        if (o.type === 'dir' && !st.isDirectory()) throw new UsageError(`${flag}: ${s} is not a folder`);
        if (o.type === 'file' && !st.isFile()) throw new UsageError(`${flag}: ${s} is not a file`);
      }
      return s;
    }
    default: return s;
  }
}

const defaultText = (o: OptionSpec): string | undefined => {
  if (o.type === 'flag' || !('default' in o) || o.default === undefined || o.default === '') return undefined;
  if (o.type === 'bytes') return String(o.default);
  return Array.isArray(o.default) ? o.default.join(',') : String(o.default);
};
const valueName = (o: OptionSpec): string =>
  o.type === 'flag' ? '' : o.type === 'enum' ? o.values.join('|') : o.type === 'ints' ? 'N[,N…]' : o.type === 'bytes' ? 'SIZE' : o.type === 'file' ? 'FILE' : o.type === 'dir' ? 'DIR' : o.type === 'int' ? 'N' : o.type === 'number' ? 'X' : 'TEXT';

export function defineCli<const T extends OptionTable>(def: CliDefinition<T>): Cli<T> {
  const usage = (): string => {
    const pos = def.positionals ? ` ${(def.positionals.min ?? 0) > 0 ? `<${def.positionals.name}>` : `[${def.positionals.name}]`}` : '';
    const rows: [string, string][] = [];
    if (def.positionals) rows.push([`${def.positionals.name}`, def.positionals.help]);
    for (const [k, o] of Object.entries(def.options)) {
      const v = valueName(o), d = defaultText(o);
      const range = (o.type === 'int' || o.type === 'number' || o.type === 'ints' || o.type === 'bytes') && (o.min !== undefined || o.max !== undefined) ? ` (${rangeText(o)})` : '';
      const multi = 'multiple' in o && o.multiple ? ' (repeatable)' : '';
      rows.push([`${o.short ? `-${o.short}, ` : '    '}--${k}${v ? ` ${v}` : ''}`, `${o.help}${range}${multi}${d !== undefined ? ` [default: ${d}]` : ''}`]);
    }
    rows.push(['-h, --help', 'print this help and exit']);
    const w = Math.min(38, Math.max(...rows.map(([a]) => a.length)));
    return [
      `${def.summary}`, '',
      `usage: ${def.command}${pos} [options]`, '',
      'options:',
      ...rows.map(([a, b]) => `  ${a.padEnd(w)}  ${b}`),
      '', 'examples:', ...def.examples.map((e) => `  ${e}`),
      ...(def.notes ? ['', def.notes] : []), '',
    ].join('\n');
  };

  const parse = (argv: readonly string[]) => {
    const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = { help: { type: 'boolean', short: 'h' } };
    for (const [k, o] of Object.entries(def.options)) options[k] = { type: o.type === 'flag' ? 'boolean' : 'string', ...(o.short ? { short: o.short } : {}), ...('multiple' in o && o.multiple ? { multiple: true } : {}) };
    let parsed: { values: Record<string, unknown>; positionals: string[] };
    try {
      parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: !!def.positionals, allowNegative: false } as never) as never;
    } catch (e) {
      // Node's messages are long and name its own API; keep the part a user needs.
      const m = (e as Error).message.split('\n')[0].replace(/\. To specify a positional argument.*$/, '')
        .replace(/^Option '(-\S+)(?: <value>)?' argument missing$/, '$1: needs a value')
        .replace(/^Option '(-\S+)' argument is ambiguous\.?.*$/, '$1: a value starting with "-" is written $1=VALUE')
        .replace(/^Unknown option '(.*?)'\.?$/, 'unknown option $1')
        .replace(/^Unexpected argument '(.*?)'\.?$/, 'unexpected argument $1');
      if (argv.includes('--help') || argv.includes('-h')) return { values: {} as Parsed<T>, positionals: [], help: true };
      throw new UsageError(m);
    }
    if (parsed.values.help) return { values: {} as Parsed<T>, positionals: [], help: true };
    const values: Record<string, unknown> = {};
    for (const [k, o] of Object.entries(def.options)) {
      const raw = parsed.values[k];
      if (o.type === 'flag') { values[k] = raw === true; continue; }
      if (raw === undefined) { values[k] = 'multiple' in o && o.multiple ? [] : 'default' in o ? o.default : undefined; continue; }
      values[k] = Array.isArray(raw) ? raw.map((r: string) => convert(k, o, r)) : convert(k, o, raw as string);
    }
    const p = def.positionals;
    if (p && parsed.positionals.length < (p.min ?? 0)) throw new UsageError(`missing <${p.name}>`);
    if (p?.max !== undefined && parsed.positionals.length > p.max) throw new UsageError(`unexpected argument '${parsed.positionals[p.max]}'`);
    return { values: values as Parsed<T>, positionals: parsed.positionals, help: false };
  };
  return { def, parse, usage };
}

const commandName = (def: CliDefinition<OptionTable>) => path.basename(def.command.split(' ').pop() ?? def.command).replace(/\.ts$/, '');

/** An error as a user reads it: its class name (when it has its own) and message, one paragraph, no stack. */
export function describeError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const err = e as NodeJS.ErrnoException;
  const named = err.name && err.name !== 'Error' ? `${err.name}: ` : '';
  return `${named}${err.message}`.trim();
}

/** Parses argv with the table, prints --help, and runs `main` with the values; the exit status says what happened
 * (0 done, 1 the work failed, 2 a bad command line). `main` may return a number to exit with it. */
export async function runCli<T extends OptionTable>(cli: Cli<T>, main: (values: Parsed<T>, positionals: string[]) => Promise<number | void> | number | void,
  argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const name = commandName(cli.def as unknown as CliDefinition<OptionTable>);
  const parsed = parseOrExit(cli, argv);
  try {
    const code = await main(parsed.values, parsed.positionals);
    if (typeof code === 'number' && code !== 0) process.exit(code);
  } catch (e) {
    if (e instanceof UsageError) exitUsage(cli, e.message);
    process.stderr.write(process.env.KILN_DEBUG ? `${(e as Error)?.stack ?? e}\n` : `${name}: ${describeError(e)}\n(set KILN_DEBUG=1 for the stack trace)\n`);
    process.exit(1);
  }
}

/** True when this module is the program node was started with (`import.meta.url` of the caller). */
export function isMain(moduleUrl: string): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  const href = pathToFileURL(path.resolve(entry)).href;
  return moduleUrl === href || moduleUrl === href.replace(/\.ts$/, '') + '.ts';
}

export interface Progress {
  /** Moves to `value` (of the total) with a label for the current phase. */
  update(value: number, label?: string, payload?: Record<string, string | number>): void;
  stop(): void;
}

/** A progress bar on a terminal (cli-progress), plain lines elsewhere (at most one per `everyMs`, plus the last). */
export function progress(title: string, total: number, opts: { stream?: NodeJS.WriteStream; everyMs?: number; format?: string; start?: number; payload?: Record<string, string | number> } = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar({ format: opts.format ?? `${title} |{bar}| {value}/{total} {label}`, stream, hideCursor: true }, cliProgress.Presets.shades_classic);
    bar.start(total, opts.start ?? 0, { label: '', ...opts.payload });
    return { update: (v, label, payload) => bar.update(v, { label: label ?? '', ...payload }), stop: () => bar.stop() };
  }
  let last = 0, lastLine = '';
  const line = (v: number, label?: string, payload?: Record<string, string | number>) => {
    const extra = payload ? Object.entries(payload).map(([k, x]) => `${k} ${x}`).join(' ') : '';
    return `${title}: ${v}/${total}${label ? ` ${label}` : ''}${extra ? ` (${extra})` : ''}`;
  };
  return {
    update(v, label, payload) {
      lastLine = line(v, label, payload);
      const now = Date.now();
      if (now - last >= (opts.everyMs ?? 2000) || v >= total) { stream.write(lastLine + '\n'); last = now; lastLine = ''; }
    },
    stop() { if (lastLine) stream.write(lastLine + '\n'); },
  };
}

/** For scripts that read their options at the top level: the validated values, or --help / the usage error
 * printed and the process ended (exit 0 / 2). Run the work itself through `runCli` for its error handling. */
export function parseOrExit<T extends OptionTable>(cli: Cli<T>, argv: readonly string[] = process.argv.slice(2)): { values: Parsed<T>; positionals: string[] } {
  try {
    const r = cli.parse(argv);
    if (r.help) { process.stdout.write(cli.usage()); process.exit(0); }
    return r;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    exitUsage(cli, e.message);
  }
}

/** A bad command line found after parsing: one line on stderr, exit status 2. */
export function exitUsage<T extends OptionTable>(cli: Cli<T>, message: string): never {
  process.stderr.write(`${commandName(cli.def as unknown as CliDefinition<OptionTable>)}: ${message} (see --help)\n`);
  process.exit(2);
}
