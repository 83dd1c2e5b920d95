/**
 * A small typed validator for the JSON the model library reads back (tfjs weight manifests, checkpoint metadata,
 * metrics.json, face caches). A `Schema<T>` checks an `unknown` and returns it typed as `T`, or throws a
 * `SchemaError` that says where (`[0].weights[3].quantization.scale`), what was expected and what was found. The
 * readers catch it and rethrow their own named error with the file in front, so no property of unchecked JSON is
 * ever read (`Cannot read properties of null` cannot happen).
 */

export class SchemaError extends Error {
  constructor(
    /** JSON path of the offending value, '' for the root. */
    readonly at: string,
    readonly expected: string,
    readonly found: unknown,
  ) {
    super(`${at || 'the document'}: expected ${expected}, found ${describe(found)}`);
    this.name = 'SchemaError';
  }
}

/** A short rendering of an offending value (never the whole document). */
export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  let s: string;
  try {
    s = typeof v === 'number' && !Number.isFinite(v) ? String(v) : (JSON.stringify(v) ?? String(v));
  } catch {
    s = String(v);
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

export type Schema<T> = (v: unknown, at: string) => T;
export type Infer<S> = S extends Schema<infer T> ? T : never;

/** Runs a schema on a whole document. */
export const check = <T>(schema: Schema<T>, v: unknown): T => schema(v, '');

const fail = (at: string, expected: string, found: unknown): never => {
  throw new SchemaError(at, expected, found);
};

export const str: Schema<string> = (v, at) => (typeof v === 'string' ? v : fail(at, 'a string', v));

export const bool: Schema<boolean> = (v, at) => (typeof v === 'boolean' ? v : fail(at, 'true or false', v));

/** A finite number, optionally within [min, max]. */
export function num(range: { min?: number; max?: number } = {}): Schema<number> {
  const { min = -Infinity, max = Infinity } = range;
  const what = `a finite number${min > -Infinity ? ` ≥ ${min}` : ''}${max < Infinity ? ` ≤ ${max}` : ''}`;
  return (v, at) => (typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max ? v : fail(at, what, v));
}

/** A safe integer, optionally within [min, max]. */
export function int(range: { min?: number; max?: number } = {}): Schema<number> {
  const { min = -Infinity, max = Infinity } = range;
  const what = `an integer${min > -Infinity ? ` ≥ ${min}` : ''}${max < Infinity ? ` ≤ ${max}` : ''}`;
  return (v, at) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max ? v : fail(at, what, v));
}

/** One of a fixed set of strings. */
export function oneOf<const L extends readonly string[]>(values: L): Schema<L[number]> {
  return (v, at) => (typeof v === 'string' && values.includes(v) ? (v as L[number]) : fail(at, `one of ${values.join(', ')}`, v));
}

export function arr<T>(item: Schema<T>, length: { min?: number; max?: number } = {}): Schema<T[]> {
  return (v, at) => {
    if (!Array.isArray(v)) return fail(at, 'a list', v);
    if (v.length < (length.min ?? 0) || v.length > (length.max ?? Infinity)) {
      return fail(at, length.min === length.max ? `a list of ${length.min}` : `a list of ${length.min ?? 0}..${length.max ?? '∞'} items`, `${v.length} items`);
    }
    return v.map((x, i) => item(x, `${at}[${i}]`));
  };
}

/** A plain object with string keys and values of one schema (e.g. safetensors metadata). */
export function record<T>(value: Schema<T>): Schema<Record<string, T>> {
  return (v, at) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(at, 'an object', v);
    const out: Record<string, T> = {};
    for (const [k, x] of Object.entries(v)) out[k] = value(x, `${at}.${k}`);
    return out;
  };
}

type Fields = Record<string, Schema<unknown>>;
/** Fields whose schema accepts undefined are optional in the result type. */
type ObjectOf<F extends Fields> = { [K in keyof F as undefined extends Infer<F[K]> ? never : K]: Infer<F[K]> } & {
  [K in keyof F as undefined extends Infer<F[K]> ? K : never]?: Infer<F[K]>;
};

/** An object with the given fields (each checked by its schema; missing ones see `undefined`). Unknown keys are
 * kept out of the result; with `exact`, they are an error. */
export function obj<F extends Fields>(fields: F, o: { exact?: boolean } = {}): Schema<ObjectOf<F>> {
  return (v, at) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(at, 'an object', v);
    const src = v as Record<string, unknown>;
    if (o.exact) for (const k of Object.keys(src)) if (!(k in fields)) fail(`${at}.${k}`, `no field "${k}" (fields: ${Object.keys(fields).join(', ')})`, src[k]);
    const out: Record<string, unknown> = {};
    for (const [k, s] of Object.entries(fields)) {
      const x = s(Object.prototype.hasOwnProperty.call(src, k) ? src[k] : undefined, `${at}.${k}`);
      if (x !== undefined) out[k] = x;
    }
    return out as ObjectOf<F>;
  };
}

/** `undefined` passes (a missing field); anything else must match. `null` counts as present. */
export function optional<T>(s: Schema<T>): Schema<T | undefined> {
  return (v, at) => (v === undefined ? undefined : s(v, at));
}

/** Parses JSON text and checks it; `SyntaxError` becomes a SchemaError at the root. */
export function parseJson<T>(text: string, schema: Schema<T>): T {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new SchemaError('', 'JSON', `${text.length ? (err as Error).message : 'an empty file'}`);
  }
  return check(schema, v);
}
