/** The PyTorch checkpoint reader (models/io/torchCheckpoint.ts, pickle.ts, zipStore.ts) and tools/convert.ts.
 * Files written by torch 1.13's torch.save (test/fixtures/torch/generate.py, run once) must load bit for bit as the
 * values in expected.safetensors; hand-built pickles and zips (torch-build.ts) cover each refusal by name. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors, writeSafetensors, type Tensor } from '../../models/io/safetensors';
import { f32ArrayToF16, bf16ArrayToF32, f16ArrayToF32 } from '../../models/io/halfFloat';
import { PDict, PGlobal, PTuple, unpickle, type UnpickleOptions } from '../../models/io/pickle';
import {
  openTorchCheckpoint, PickleOpcodeError, PickleSecurityError, PickleStructureError, TorchCheckpointError, TorchCheckpointTruncatedError,
  TorchFormatError, TorchStorageError, TorchZipError,
} from '../../models/io/torchCheckpoint';
import { Tensor as DslTensor, param } from '../../compiler/index';
import { loadWeightsInto, WeightLoadError } from '../../models/weights';
import { readZipDirectory, readZipEntry } from '../../models/io/zipStore';
import { convertCheckpoint } from '../../tools/convert';
import { f32, op, statePickle, torchZip, zip } from './torch-build';

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/torch');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-torch-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const expected = readSafetensors(path.join(FIX, 'expected.safetensors')).tensors;
const bytesOf = (t: { data: ArrayBufferView }) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
let n = 0;
const file = (b: Uint8Array) => { const p = path.join(dir, `f${n++}.pt`); fs.writeFileSync(p, b); return p; };

/** Opens and reads every tensor: the error a user would meet while loading. */
function loadAll(p: string): Map<string, Tensor> {
  const c = openTorchCheckpoint(p);
  try { return new Map(c.names().map((k) => [k, c.read(k)])); } finally { c.close(); }
}

describe('checkpoints written by torch.save', () => {
  test.each([['state.pt', 'zip'], ['state-zip64.pt', 'zip'], ['state-legacy.pt', 'legacy']])('%s (%s layout): every tensor bit for bit, strided views contiguous', (name, format) => {
    const c = openTorchCheckpoint(path.join(FIX, name));
    expect(c.format).toBe(format);
    expect(c.names().sort()).toEqual([...expected.keys()].sort());
    expect(c.skipped).toEqual(['epoch', 'name']);
    for (const [k, want] of expected) {
      const got = c.read(k);
      expect({ k, dtype: got.dtype, shape: got.shape }).toEqual({ k, dtype: want.dtype, shape: want.shape });
      expect(bytesOf(got).equals(bytesOf(want))).toBe(true);
    }
    // The views as the file describes them: base's storage shared by three views, one transposed.
    const h = c.header;
    expect(h.get('state_dict.transposed')).toMatchObject({ shape: [5, 4], stride: [1, 5], storage: h.get('state_dict.base')!.storage, storageOffset: 0 });
    expect(h.get('state_dict.row')).toMatchObject({ shape: [5], stride: [1], storageOffset: 10, storage: h.get('state_dict.base')!.storage });
    expect(h.get('state_dict.strided')).toMatchObject({ shape: [3, 3], stride: [5, 2], storageOffset: 5 });
    // Values: transposed[i][j] = base[j][i]; f16/bf16 decode exactly; i64 beyond 2^32 intact.
    const base = c.readAsFloat32('state_dict.base'), tr = c.readAsFloat32('state_dict.transposed');
    for (let i = 0; i < 5; i++) for (let j = 0; j < 4; j++) expect(tr[i * 4 + j]).toBe(base[j * 5 + i]);
    expect(Array.from(c.read('state_dict.i64').data as BigInt64Array)).toEqual([0n, -1n, 2n ** 40n, -(2n ** 53n), 7n]);
    expect(c.readAsFloat32('state_dict.f16')).toEqual(f16ArrayToF32(expected.get('state_dict.f16')!.data as Uint16Array));
    expect(c.readAsFloat32('state_dict.bf16')).toEqual(bf16ArrayToF32(expected.get('state_dict.bf16')!.data as Uint16Array));
    expect(c.read('state_dict.scalar')).toMatchObject({ shape: [], data: new Float32Array([3.5]) });
    expect(c.read('state_dict.empty').data.length).toBe(0);
    c.close();
  });

  test('loads into Kiln params by key, with the safetensors loader and its options', () => {
    const params = new Map<string, DslTensor>([
      ['weight', param('weight', [2, 3])], ['bias', param('bias', [2])], ['transposed', param('transposed', [5, 4])], ['bf16', param('bf16', [3, 2])],
    ]);
    const store = new Map<string, Float64Array>();
    const rep = loadWeightsInto(store, path.join(FIX, 'state.pt'), params, { strict: false, stripPrefix: 'state_dict.' });
    expect(rep.loaded.sort()).toEqual(['bf16', 'bias', 'transposed', 'weight']);
    expect(rep.unexpected).toContain('layers.0');
    expect(store.get('transposed')).toEqual(Float64Array.from(expected.get('state_dict.transposed')!.data as Float32Array));
    expect(store.get('bf16')).toEqual(Float64Array.from(bf16ArrayToF32(expected.get('state_dict.bf16')!.data as Uint16Array)));
    // A shape mismatch is reported by key, as for safetensors.
    const wrong = new Map([['weight', param('weight', [3, 2])]]);
    expect(() => loadWeightsInto(new Map(), path.join(FIX, 'state-legacy.pt'), wrong, { stripPrefix: 'state_dict.' })).toThrow(WeightLoadError);
    expect(() => loadWeightsInto(new Map(), path.join(FIX, 'state-legacy.pt'), wrong, { stripPrefix: 'state_dict.' })).toThrow(/weight expected \[3,2\] found \[2,3\]/);
  });

  test('tools/convert.ts: the safetensors file is byte-identical to the same tensors written directly; --dtype casts floats only', () => {
    const out = path.join(dir, 'c.safetensors'), ref = path.join(dir, 'ref.safetensors');
    const r = convertCheckpoint(path.join(FIX, 'state.pt'), out);
    expect(r).toMatchObject({ format: 'zip', tensors: expected.size, skipped: ['epoch', 'name'] });
    writeSafetensors(ref, Object.fromEntries(expected), { format: 'pt' });
    expect(fs.readFileSync(out).equals(fs.readFileSync(ref))).toBe(true);

    convertCheckpoint(path.join(FIX, 'state-legacy.pt'), out, { dtype: 'F16', stripPrefix: 'state_dict.' });
    const back = readSafetensors(out).tensors;
    expect([...back.keys()].sort()).toEqual([...expected.keys()].filter((k) => k.startsWith('state_dict.')).map((k) => k.slice(11)).sort());
    expect(back.get('i64')!.dtype).toBe('I64');
    expect(back.get('u8')!.dtype).toBe('U8');
    expect(back.get('transposed')).toEqual({ dtype: 'F16', shape: [5, 4], data: f32ArrayToF16(expected.get('state_dict.transposed')!.data as Float32Array) });
  });
});

describe('refusals, each a named error', () => {
  test.each(['evil.pt', 'evil-legacy.pt'])('%s: a pickle calling os.system (written by torch.save) is refused, nothing runs', (name) => {
    const f = path.join(FIX, name);
    expect(() => openTorchCheckpoint(f)).toThrow(PickleSecurityError);
    expect(() => openTorchCheckpoint(f)).toThrow(/"posix\.system": pickle byte \d+: global posix\.system is not allowed/);
    expect(() => convertCheckpoint(f, path.join(dir, 'evil.safetensors'))).toThrow(PickleSecurityError);
    expect(fs.existsSync(path.join(dir, 'evil.safetensors'))).toBe(false);
  });

  const evil: [string, Buffer][] = [
    ['GLOBAL os.system + REDUCE', Buffer.concat([op.proto, op.global('os', 'system'), op.str('echo no'), Buffer.from([0x85]), op.reduce, op.stop])],
    ['STACK_GLOBAL builtins.eval', Buffer.concat([Buffer.from([0x80, 4]), op.stackGlobal('builtins', 'eval'), op.str('1'), Buffer.from([0x85]), op.reduce, op.stop])],
    ['REDUCE of an allowlisted non-function (torch.FloatStorage)', Buffer.concat([op.proto, op.global('torch', 'FloatStorage'), op.emptyTuple, op.reduce, op.stop])],
    ['INST', Buffer.from('(ios\nsystem\n.', 'latin1')],
    ['NEWOBJ', Buffer.concat([op.proto, op.global('collections', 'OrderedDict'), op.emptyTuple, Buffer.from([0x81]), op.stop])],
    ['BUILD of a list', Buffer.concat([op.proto, op.emptyList, op.emptyDict, op.build, op.stop])],
    ['EXT1', Buffer.concat([op.proto, Buffer.from([0x82, 1]), op.stop])],
  ];
  test.each(evil)('%s → PickleSecurityError', (_what, pkl) => {
    expect(() => openTorchCheckpoint(file(torchZip(pkl, {})))).toThrow(PickleSecurityError);
  });

  test('an unknown opcode, a protocol-0 text opcode → PickleOpcodeError', () => {
    expect(() => openTorchCheckpoint(file(torchZip(Buffer.concat([op.proto, Buffer.from([0xff]), op.stop]), {})))).toThrow(/pickle byte 2: opcode 0xff .* is not one a state dict uses/);
    expect(() => openTorchCheckpoint(file(torchZip(Buffer.from('I1\n.'), {})))).toThrow(PickleOpcodeError);
  });

  test('malformed pickles → PickleStructureError (underflow, missing memo, self-containing list, too deep)', () => {
    const open = (b: Buffer) => () => openTorchCheckpoint(file(torchZip(Buffer.concat([op.proto, b, op.stop]), {})));
    expect(open(op.append)).toThrow(PickleStructureError);
    expect(open(op.binget(9))).toThrow(/memo entry 9 was never stored/);
    expect(open(Buffer.concat([op.emptyList, op.binput(0), op.binget(0), op.append]))).toThrow(/contains itself/);
    expect(open(Buffer.concat([...Array(80).fill(op.emptyList), ...Array(79).fill(op.append)]))).toThrow(/nested deeper than 64/);
    expect(open(Buffer.concat([op.mark, op.str('x'), op.setitems]))).toThrow(PickleStructureError);
    // A "billion laughs" of lists: each level holds the previous one twice (40 levels: 2^40 paths from 240 bytes).
    const pop = Buffer.from('0');
    const laughs = [op.emptyList, op.binput(0), pop];
    for (let i = 0; i < 40; i++) laughs.push(op.emptyList, op.binget(i), op.append, op.binget(i), op.append, op.binput(i + 1), pop);
    laughs.push(op.binget(40));
    expect(open(Buffer.concat(laughs))).toThrow(/expands to more than \d+ entries/);
  });

  test('truncated files: zip and legacy, cut anywhere → TorchCheckpointTruncatedError / TorchZipError', () => {
    for (const name of ['state.pt', 'state-legacy.pt']) {
      const b = fs.readFileSync(path.join(FIX, name));
      for (let cut = 0; cut < b.length; cut += 41) {
        const f = file(b.subarray(0, cut));
        expect(() => loadAll(f)).toThrow(cut < 4 ? TorchFormatError : name === 'state.pt' ? TorchCheckpointTruncatedError : TorchCheckpointError);
      }
      expect(() => loadAll(file(b.subarray(0, b.length - 1)))).toThrow(TorchCheckpointTruncatedError);
    }
    // A string whose declared length runs past the pickle.
    expect(() => openTorchCheckpoint(file(torchZip(Buffer.concat([op.proto, Buffer.from('X'), Buffer.from([0xff, 0xff, 0xff, 0x7f]), op.stop]), {})))).toThrow(TorchCheckpointTruncatedError);
  });

  test('storage sizes: a record shorter than numel × itemsize, a view past its storage, a missing record → TorchStorageError naming the key', () => {
    const pkl = statePickle([{ key: 'w', storageKey: '0', numel: 4, size: [2, 2] }]);
    expect(loadAll(file(torchZip(pkl, { 0: f32(1, 2, 3, 4) }))).get('w')!.data).toEqual(new Float32Array([1, 2, 3, 4]));
    expect(() => openTorchCheckpoint(file(torchZip(pkl, { 0: f32(1, 2, 3) })))).toThrow(/"0": storage record is 12 bytes, but 4 × F32 needs 16/);
    expect(() => openTorchCheckpoint(file(torchZip(pkl, {})))).toThrow(TorchStorageError);
    const past = statePickle([{ key: 'v', storageKey: '0', numel: 4, offset: 1, size: [2, 2], stride: [2, 1] }]);
    expect(() => openTorchCheckpoint(file(torchZip(past, { 0: f32(1, 2, 3, 4) })))).toThrow(/"v": view \(offset 1, size \[2,2\], stride \[2,1\]\) reaches element 4, but storage "0" holds 4/);
    const unknownType = statePickle([{ key: 'v', storageType: 'ComplexFloatStorage', storageKey: '0', numel: 1, size: [1] }]);
    expect(() => openTorchCheckpoint(file(torchZip(unknownType, { 0: f32(1, 2) })))).toThrow(PickleSecurityError);
  });

  test('zip container: compressed entries, a bad CRC, no data.pkl, not a checkpoint → named errors', () => {
    const pkl = statePickle([{ key: 'w', storageKey: '0', numel: 2, size: [2] }]);
    expect(() => openTorchCheckpoint(file(torchZip(pkl, { 0: f32(1, 2) }, { method: 8 })))).toThrow(/compressed \(method 8\)/);
    const good = torchZip(pkl, { 0: f32(1, 2) });
    const at = good.indexOf(Buffer.from(f32(1, 2)));
    good[at + 2] ^= 0x40;
    const f = file(good);
    const c = openTorchCheckpoint(f); // structure is fine; the bytes are checked when read
    expect(() => c.read('w')).toThrow(TorchZipError);
    expect(() => c.read('w')).toThrow(/CRC-32/);
    c.close();
    expect(() => openTorchCheckpoint(file(zip([['a/other', f32(1)]])))).toThrow(/expected one <archive>\/data\.pkl, found none/);
    const marked = zip([['a/data.pkl', f32(1)]]);
    marked.writeUInt16LE(0xffff, marked.length - 12); // the entry count says "see the zip64 record", which is not there
    expect(() => openTorchCheckpoint(file(marked))).toThrow(/zip64 sizes without a zip64 locator/);
    expect(() => openTorchCheckpoint(path.join(FIX, 'expected.safetensors'))).toThrow(TorchFormatError);
  });
});

describe('the restricted unpickler', () => {
  const plain: UnpickleOptions = { file: 'x', globals: new Set(), reducers: new Map() };
  test('reads what Python 3.11 pickle.dumps writes (protocol 4, framed)', () => {
    // pickle.dumps({'a': [1, -2, 3.5, None, True, False, 'é☃', b'xy', (1, 2), (), (7,), (1, 2, 3), 2**70, -2**70, 300, 70000, -1]}, protocol=4)
    const hex = '80049562000000000000007d948c0161945d94284b014afeffffff47400c0000000000004e88898c05c3a9e298839443027879944b014b028694294b0785944b014b024b0387948a090000000000000000408a090000000000000000c04d2c014a701101004affffffff65732e';
    const { value, end } = unpickle(Buffer.from(hex, 'hex'), plain);
    expect(end).toBe(hex.length / 2);
    const a = (value as PDict).entries.get('a') as unknown[];
    expect(a.slice(0, 7)).toEqual([1, -2, 3.5, null, true, false, 'é☃']);
    expect(a[7]).toEqual(new Uint8Array([0x78, 0x79]));
    expect((a.slice(8, 12) as PTuple[]).map((t) => t.items)).toEqual([[1, 2], [], [7], [1, 2, 3]]);
    expect(a.slice(12)).toEqual([2n ** 70n, -(2n ** 70n), 300, 70000, -1]);
  });

  test('protocol 2 bytes need _codecs.encode: refused; an OrderedDict resolves only when allowlisted', () => {
    const p2 = '80027d710058010000006171015d7102284b014afeffffff47400c0000000000004e88895805000000c3a9e298837103635f636f646563730a656e636f64650a710458020000007879710558060000006c6174696e3171068671075271084b014b02867109294b0785710a4b014b024b0387710b8a090000000000000000408a090000000000000000c04d2c014a701101004affffffff65732e';
    expect(() => unpickle(Buffer.from(p2, 'hex'), plain)).toThrow(/global _codecs\.encode is not allowed/);
    const od = Buffer.from('800263636f6c6c656374696f6e730a4f726465726564446963740a71002952710158010000006b71024b01732e', 'hex');
    expect(() => unpickle(od, plain)).toThrow(PickleSecurityError);
    const v = unpickle(od, { ...plain, reducers: new Map([['collections.OrderedDict', () => new PDict(true)]]) }).value as PDict;
    expect(v.ordered).toBe(true);
    expect([...v.entries]).toEqual([['k', 1]]);
    expect(new PGlobal('torch', 'FloatStorage').qualified).toBe('torch.FloatStorage');
  });
});

describe('fuzz: truncations and byte flips give a correct load or a named error (seeded, time-bounded)', () => {
  const SEED = Number(process.env.KILN_FUZZ_SEED ?? 20261219);
  const BUDGET_MS = Number(process.env.KILN_FUZZ_MS ?? 700);
  const rng = (seed: number) => {
    let a = seed >>> 0;
    const next = () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
    return (k: number) => Math.floor(next() * k);
  };
  const mutate = (int: (k: number) => number, b: Buffer): { bytes: Buffer; what: string } => {
    const out = Buffer.from(b);
    switch (int(4)) {
      case 0: { const c = int(b.length); return { bytes: out.subarray(0, c), what: `truncate to ${c}` }; }
      case 1: { const at: number[] = []; for (let i = 1 + int(3); i > 0; i--) { const p = int(b.length); at.push(p); out[p] ^= 1 << int(8); } return { bytes: out, what: `flip bits at ${at}` }; }
      case 2: { const p = int(b.length), v = [0, 0xff, 0x7f, 0x80, 0x2e][int(5)]!; out[p] = v; return { bytes: out, what: `byte ${p} = ${v}` }; }
      default: { const p = int(b.length), k = 1 + int(8); return { bytes: Buffer.concat([out.subarray(0, p), out.subarray(p + k)]), what: `delete ${k} at ${p}` }; }
    }
  };
  /** `check` throws on a load that is not acceptable; a throw that is not a TorchCheckpointError fails the case. */
  const fuzz = (label: string, seed: number, make: (int: (k: number) => number) => { bytes: Buffer; what: string }, check: (got: Map<string, Tensor>) => void) => {
    const int = rng(seed), t0 = performance.now(), count = { load: 0, error: 0 };
    let i = 0;
    for (; performance.now() - t0 < BUDGET_MS; i++) {
      const x = make(int);
      const f = path.join(dir, 'fuzz.pt');
      fs.writeFileSync(f, x.bytes);
      let got: Map<string, Tensor>;
      try { got = loadAll(f); } catch (e) {
        if (e instanceof TorchCheckpointError) { count.error++; continue; }
        throw new Error(`${label} case ${i} (seed ${seed}, ${x.what}): ${(e as Error).name}: ${(e as Error).message}`, { cause: e });
      }
      try { check(got); } catch (e) { throw new Error(`${label} case ${i} (seed ${seed}, ${x.what}): ${(e as Error).message}`); }
      count.load++;
    }
    console.log(`${label}: ${i} cases in ${(performance.now() - t0).toFixed(0)} ms (seed ${seed}): ${count.load} correct loads, ${count.error} named errors`);
    expect(count.error).toBeGreaterThan(0);
  };
  /** Every tensor's bytes as expected (zip entries are CRC-checked, so anything that loads must be the original). */
  const exact = (got: Map<string, Tensor>) => {
    if (got.size !== expected.size) throw new Error(`loaded ${got.size} tensors`);
    for (const [k, t] of got) if (!bytesOf(t).equals(bytesOf(expected.get(k) ?? { data: new Uint8Array(1) }))) throw new Error(`loaded, but ${k} differs`);
  };
  /** Without checksums a flipped data byte loads as a different value: the structure must still be consistent. */
  const consistent = (got: Map<string, Tensor>) => {
    for (const [k, t] of got) if (t.data.length !== t.shape.reduce((a, b) => a * b, 1)) throw new Error(`${k}: ${t.data.length} values for [${t.shape}]`);
  };
  const zipBytes = fs.readFileSync(path.join(FIX, 'state.pt')), legacyBytes = fs.readFileSync(path.join(FIX, 'state-legacy.pt'));

  test('zip layout, whole file', () => fuzz('torch zip', SEED, (int) => mutate(int, zipBytes), exact));
  test('legacy layout', () => fuzz('torch legacy', SEED + 1, (int) => mutate(int, legacyBytes), consistent));
  test('zip layout, data.pkl mutated and re-zipped with a valid CRC (the unpickler itself)', () => {
    const fd = fs.openSync(path.join(FIX, 'state.pt'), 'r');
    const entries: [string, Buffer][] = [];
    for (const e of readZipDirectory(fd, zipBytes.length, 'state.pt').values()) entries.push([e.name, readZipEntry(fd, e, 'state.pt')]);
    fs.closeSync(fd);
    const pkl = entries.find(([k]) => k.endsWith('data.pkl'))![1];
    fuzz('torch data.pkl', SEED + 2, (int) => {
      const x = mutate(int, pkl);
      return { bytes: zip(entries.map(([k, v]) => [k, k.endsWith('data.pkl') ? x.bytes : v])), what: `data.pkl ${x.what}` };
    }, consistent);
  });
});
