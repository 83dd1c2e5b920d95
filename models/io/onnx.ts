/**
 * A minimal ONNX reader: the parts of a `ModelProto` that carry weights. The protobuf wire format is decoded by hand
 * (varints, fixed32/64, length-delimited fields; groups are refused), every length and offset checked against the
 * bytes that are left before anything is allocated. Read: the graph's initializers (name, dims, data type; values
 * from `raw_data` or the typed `float_data` / `int32_data` (float16 bit patterns) / `double_data` / `int64_data`
 * fields) and its nodes (op type, inputs, outputs, the scalar and list attributes), so a loader can find which
 * initializer feeds which node. Everything else (opset imports, value infos, doc strings, subgraphs) is skipped.
 *
 * Field numbers from onnx/onnx.proto (ONNX IR version ≤ 9): ModelProto.graph = 7; GraphProto.node = 1,
 * .initializer = 5; NodeProto.input = 1, .output = 2, .name = 3, .op_type = 4, .attribute = 5;
 * AttributeProto.name = 1, .f = 2, .i = 3, .s = 4, .floats = 7, .ints = 8; TensorProto.dims = 1, .data_type = 2,
 * .float_data = 4, .int32_data = 5, .int64_data = 7, .name = 8, .raw_data = 9, .double_data = 10,
 * .data_location = 14 (1 = external data, refused).
 *
 * Open parses and validates the whole structure (so a truncated or malformed file fails before anything is used);
 * tensor values are decoded on `read` from the file's bytes.
 */
import fs from 'node:fs';
import { f16ArrayToF32, bf16ArrayToF32 } from './halfFloat';

// ---------------------------------------------------------------------------------------------- errors

/** Base of the ONNX reader's errors; names the file and, where one is at fault, the tensor or node. */
export class OnnxError extends Error {
  constructor(readonly file: string, readonly item: string | undefined, detail: string) {
    super(`${file}: ${item === undefined ? '' : `"${item}": `}${detail}`);
    this.name = new.target.name;
  }
}
/** A field, a length or a packed array runs past the end of its message (a file cut short). */
export class OnnxTruncatedError extends OnnxError {}
/** Not a well-formed ModelProto: a bad wire type, a varint over 10 bytes, a group, no graph, a wrong field type. */
export class OnnxFormatError extends OnnxError {}
/** An initializer whose data disagrees with its dims and data type, an unsupported data type, external data. */
export class OnnxTensorError extends OnnxError {}
/** Initializers a loader needs are not in the file (`missing` lists them all). */
export class OnnxMissingInitializerError extends OnnxError {
  constructor(file: string, readonly missing: readonly string[], context: string) {
    super(file, undefined, `${context}: missing initializer${missing.length > 1 ? 's' : ''} ${missing.slice(0, 20).map((m) => `"${m}"`).join(', ')}${missing.length > 20 ? `, … (${missing.length} in all)` : ''}`);
  }
}
/** The graph does not have the structure a loader expects (a node of another op type where one was expected). */
export class OnnxGraphError extends OnnxError {}

// ---------------------------------------------------------------------------------------------- types

/** ONNX TensorProto.DataType codes this reader decodes, with their byte size. */
export const ONNX_DTYPES: Readonly<Record<number, { name: string; bytes: number }>> = {
  1: { name: 'float32', bytes: 4 }, 6: { name: 'int32', bytes: 4 }, 7: { name: 'int64', bytes: 8 },
  10: { name: 'float16', bytes: 2 }, 11: { name: 'float64', bytes: 8 }, 16: { name: 'bfloat16', bytes: 2 },
};

export interface OnnxInitializer {
  readonly name: string;
  readonly dims: readonly number[];
  readonly dataType: number;
  readonly dtype: string;
  readonly size: number;
}

export type OnnxAttribute = number | string | readonly number[];

export interface OnnxNode {
  readonly name: string;
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: ReadonlyMap<string, OnnxAttribute>;
}

export interface OnnxModel {
  readonly path: string;
  readonly initializers: ReadonlyMap<string, OnnxInitializer>;
  readonly nodes: readonly OnnxNode[];
  /** The initializer's values as float64 (float16/bfloat16 widened exactly). */
  read(name: string): Float64Array;
  /** Throws OnnxMissingInitializerError naming every one of `names` the file lacks. */
  require(names: Iterable<string>, context: string): void;
}

// ---------------------------------------------------------------------------------------------- wire format

/** A window [pos, end) of the file's bytes with checked reads. */
class Reader {
  constructor(readonly buf: Buffer, public pos: number, readonly end: number, readonly file: string, readonly what: string) {}
  get done(): boolean { return this.pos >= this.end; }
  varint(): number {
    let result = 0n, shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new OnnxTruncatedError(this.file, undefined, `${this.what}: varint runs past the end of its message at byte ${this.pos}`);
      const b = this.buf[this.pos++];
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return Number(BigInt.asIntN(64, result));
      shift += 7n;
    }
    throw new OnnxFormatError(this.file, undefined, `${this.what}: varint longer than 10 bytes at byte ${this.pos}`);
  }
  /** A length-delimited field: its [start, end) after checking the length against what is left. */
  span(): [number, number] {
    const len = this.varint();
    if (len < 0 || len > this.end - this.pos) throw new OnnxTruncatedError(this.file, undefined, `${this.what}: a field of ${len} bytes at byte ${this.pos} runs past the end of its message (${this.end - this.pos} left)`);
    const start = this.pos;
    this.pos += len;
    return [start, this.pos];
  }
  fixed(n: 4 | 8): number {
    if (this.end - this.pos < n) throw new OnnxTruncatedError(this.file, undefined, `${this.what}: a ${n}-byte field at byte ${this.pos} runs past the end of its message`);
    const at = this.pos;
    this.pos += n;
    return at;
  }
  string(): string { const [s, e] = this.span(); return this.buf.toString('utf8', s, e); }
  sub(what: string): Reader { const [s, e] = this.span(); return new Reader(this.buf, s, e, this.file, what); }
  /** The next field's number and wire type. */
  tag(): [number, number] { const t = this.varint(); return [Math.floor(t / 8), t & 7]; }
  skip(wire: number): void {
    switch (wire) {
      case 0: this.varint(); return;
      case 1: this.fixed(8); return;
      case 2: this.span(); return;
      case 5: this.fixed(4); return;
      default: throw new OnnxFormatError(this.file, undefined, `${this.what}: wire type ${wire} (groups or invalid) at byte ${this.pos}`);
    }
  }
  expect(field: number, wire: number, want: number): void {
    if (wire !== want) throw new OnnxFormatError(this.file, undefined, `${this.what}: field ${field} has wire type ${wire}, expected ${want}`);
  }
}

/** Repeated numeric field, packed (wire 2) or not: the element offsets (fixed) or values (varint). */
function repeatedVarints(r: Reader, wire: number, out: number[]): void {
  if (wire === 0) { out.push(r.varint()); return; }
  r.expect(0, wire, 2);
  const s = r.sub(r.what);
  while (!s.done) out.push(s.varint());
}

interface TensorRec { info: OnnxInitializer; raw?: [number, number]; typed: { field: number; spans: [number, number][]; values: number[] } }

function parseTensor(r: Reader, file: string): TensorRec {
  const dims: number[] = [];
  let name = '', dataType = 0, raw: [number, number] | undefined, location = 0;
  const typed = { field: 0, spans: [] as [number, number][], values: [] as number[] };
  while (!r.done) {
    const [f, w] = r.tag();
    switch (f) {
      case 1: repeatedVarints(r, w, dims); break;
      case 2: r.expect(f, w, 0); dataType = r.varint(); break;
      case 8: r.expect(f, w, 2); name = r.string(); break;
      case 9: r.expect(f, w, 2); raw = r.span(); break;
      case 14: r.expect(f, w, 0); location = r.varint(); break;
      case 4: case 10: { // float_data (fixed32), double_data (fixed64)
        typed.field = f;
        const n = f === 4 ? 4 : 8;
        if (w === 2) typed.spans.push(r.span());
        else { r.expect(f, w, n === 4 ? 5 : 1); const at = r.fixed(n); typed.spans.push([at, at + n]); }
        break;
      }
      case 5: case 7: typed.field = f; repeatedVarints(r, w, typed.values); break;
      default: r.skip(w);
    }
  }
  const label = name || '(unnamed initializer)';
  if (location === 1) throw new OnnxTensorError(file, label, 'stored as external data (data_location = EXTERNAL); only weights inside the file are read');
  const dt = ONNX_DTYPES[dataType];
  if (!dt) throw new OnnxTensorError(file, label, `data type ${dataType} is not one of ${Object.entries(ONNX_DTYPES).map(([k, v]) => `${v.name} (${k})`).join(', ')}`);
  let size = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new OnnxTensorError(file, label, `bad dimension ${d} in [${dims.join(',')}]`);
    size *= d;
  }
  if (!Number.isSafeInteger(size)) throw new OnnxTensorError(file, label, `[${dims.join(',')}] has too many elements`);
  const info: OnnxInitializer = { name, dims, dataType, dtype: dt.name, size };
  if (raw) {
    if (raw[1] - raw[0] !== size * dt.bytes) throw new OnnxTensorError(file, label, `raw_data holds ${raw[1] - raw[0]} bytes, [${dims.join(',')}] ${dt.name} needs ${size * dt.bytes}`);
  } else {
    const expectField = { 1: 4, 10: 5, 16: 5, 6: 5, 11: 10, 7: 7 }[dataType as 1 | 10 | 16 | 6 | 11 | 7];
    if (typed.field !== 0 && typed.field !== expectField) throw new OnnxTensorError(file, label, `${dt.name} values in field ${typed.field} (expected field ${expectField})`);
    const count = typed.field === 4 || typed.field === 10 ? typed.spans.reduce((n, [s, e]) => n + (e - s), 0) / (typed.field === 4 ? 4 : 8) : typed.values.length;
    if (count !== size) throw new OnnxTensorError(file, label, `holds ${count} values, [${dims.join(',')}] needs ${size}`);
    if (typed.field === 4 || typed.field === 10) {
      const n = typed.field === 4 ? 4 : 8;
      for (const [s, e] of typed.spans) if ((e - s) % n) throw new OnnxTensorError(file, label, `a packed array of ${e - s} bytes is not a whole number of ${n}-byte values`);
    }
  }
  return { info, raw, typed };
}

function parseNode(r: Reader): OnnxNode {
  const inputs: string[] = [], outputs: string[] = [], attributes = new Map<string, OnnxAttribute>();
  let name = '', opType = '';
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1 && w === 2) inputs.push(r.string());
    else if (f === 2 && w === 2) outputs.push(r.string());
    else if (f === 3 && w === 2) name = r.string();
    else if (f === 4 && w === 2) opType = r.string();
    else if (f === 5 && w === 2) {
      const a = r.sub('AttributeProto');
      let an = '', value: OnnxAttribute | undefined;
      const list: number[] = [];
      while (!a.done) {
        const [af, aw] = a.tag();
        if (af === 1 && aw === 2) an = a.string();
        else if (af === 2 && aw === 5) value = a.buf.readFloatLE(a.fixed(4));
        else if (af === 3 && aw === 0) value = a.varint();
        else if (af === 4 && aw === 2) value = a.string();
        else if (af === 8) { repeatedVarints(a, aw, list); value = list; }
        else if (af === 7) {
          if (aw === 5) list.push(a.buf.readFloatLE(a.fixed(4)));
          else { a.expect(af, aw, 2); const [s, e] = a.span(); if ((e - s) % 4) throw new OnnxFormatError(r.file, an, 'packed floats not a multiple of 4 bytes'); for (let p = s; p < e; p += 4) list.push(a.buf.readFloatLE(p)); }
          value = list;
        } else a.skip(aw);
      }
      if (value !== undefined) attributes.set(an, value);
    } else r.skip(w);
  }
  return { name, opType, inputs, outputs, attributes };
}

function decode(buf: Buffer, rec: TensorRec, file: string): Float64Array {
  const { info, raw, typed } = rec;
  const out = new Float64Array(info.size);
  const int64 = (v: bigint) => {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) throw new OnnxTensorError(file, info.name, `int64 value ${v} beyond ±2^53`);
    return Number(v);
  };
  if (raw) {
    const [s] = raw;
    switch (info.dataType) {
      case 1: for (let i = 0; i < info.size; i++) out[i] = buf.readFloatLE(s + 4 * i); break;
      case 11: for (let i = 0; i < info.size; i++) out[i] = buf.readDoubleLE(s + 8 * i); break;
      case 6: for (let i = 0; i < info.size; i++) out[i] = buf.readInt32LE(s + 4 * i); break;
      case 7: for (let i = 0; i < info.size; i++) out[i] = int64(buf.readBigInt64LE(s + 8 * i)); break;
      case 10: case 16: {
        const bits = new Uint16Array(info.size);
        for (let i = 0; i < info.size; i++) bits[i] = buf.readUInt16LE(s + 2 * i);
        out.set(info.dataType === 10 ? f16ArrayToF32(bits) : bf16ArrayToF32(bits));
        break;
      }
    }
    return out;
  }
  if (typed.field === 4 || typed.field === 10) {
    let i = 0;
    for (const [s, e] of typed.spans) for (let p = s; p < e; p += typed.field === 4 ? 4 : 8) out[i++] = typed.field === 4 ? buf.readFloatLE(p) : buf.readDoubleLE(p);
  } else if (info.dataType === 10 || info.dataType === 16) {
    const bits = Uint16Array.from(typed.values, (v) => v & 0xffff);
    out.set(info.dataType === 10 ? f16ArrayToF32(bits) : bf16ArrayToF32(bits));
  } else out.set(typed.values);
  return out;
}

/** Parses an ONNX model's graph (initializers and nodes) from bytes. */
export function parseOnnx(buf: Buffer, file = '<bytes>'): OnnxModel {
  const top = new Reader(buf, 0, buf.length, file, 'ModelProto');
  let graph: Reader | undefined;
  while (!top.done) {
    const [f, w] = top.tag();
    if (f === 7) { top.expect(f, w, 2); graph = top.sub('GraphProto'); } else top.skip(w);
  }
  if (!graph) throw new OnnxFormatError(file, undefined, 'no graph (ModelProto field 7): not an ONNX model, or an empty one');
  const recs = new Map<string, TensorRec>(), nodes: OnnxNode[] = [];
  while (!graph.done) {
    const [f, w] = graph.tag();
    if (f === 5) {
      graph.expect(f, w, 2);
      const rec = parseTensor(graph.sub('TensorProto'), file);
      if (recs.has(rec.info.name)) throw new OnnxFormatError(file, rec.info.name, 'initializer appears twice');
      recs.set(rec.info.name, rec);
    } else if (f === 1) { graph.expect(f, w, 2); nodes.push(parseNode(graph.sub('NodeProto'))); } else graph.skip(w);
  }
  const initializers = new Map([...recs].map(([k, v]) => [k, v.info]));
  return {
    path: file, initializers, nodes,
    read(name) {
      const rec = recs.get(name);
      if (!rec) throw new OnnxMissingInitializerError(file, [name], 'read');
      return decode(buf, rec, file);
    },
    require(names, context) {
      const missing = [...names].filter((n) => !recs.has(n));
      if (missing.length) throw new OnnxMissingInitializerError(file, missing, context);
    },
  };
}

/** Reads and parses an ONNX file (the whole file is read once; sizes are bounded by the file's own length). */
export function openOnnx(path: string): OnnxModel {
  return parseOnnx(fs.readFileSync(path), path);
}
