/** Seeded, time-bounded fuzzing of the readers that take files from users and their clusters: tfjs weight
 * manifests (+ shards), PNG/JPEG images, PuLID training checkpoints and ONNX files (the IResNet's weights). Each case mutates a valid file
 * (structural JSON edits, byte flips, insertions, deletions, truncations, header fields with fixed-up CRCs) and
 * reads it back; the only acceptable outcomes are a load that is correct (checked per reader) or the reader's
 * named error. Anything else (TypeError, RangeError, a hang, a wrong load) fails with the seed and case number.
 * KILN_FUZZ_SEED and KILN_FUZZ_MS override the seed and the time per reader. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import jpeg from 'jpeg-js';
import { loadTfjsWeights, TfjsWeightsError } from '../../models/io/tfjs-weights';
import { decodeImage, encodePng, ImageDecodeError } from '../../models/io/image';
import { CheckpointError } from '../../models/pulid/checkpoint';
import { microPulidConfig } from '../../models/pulid/config';
import { PulidModel } from '../../models/pulid/model';
import { PulidTrainer } from '../../models/pulid/trainer';
import type { TextConditioner } from '../../models/pulid/text';
import { fileURLToPath } from 'node:url';
import { OnnxError, parseOnnx } from '../../models/io/onnx';
import { loadIResNetOnnx } from '../../models/face/iresnetOnnx';

const SEED = Number(process.env.KILN_FUZZ_SEED ?? 20261202);
const BUDGET_MS = Number(process.env.KILN_FUZZ_MS ?? 1500);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-fuzz-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** mulberry32: a small seeded generator. */
function rng(seed: number): { next: () => number; int: (n: number) => number; pick: <T>(xs: readonly T[]) => T } {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return { next, int, pick: (xs) => xs[int(xs.length)]! };
}
type Rng = ReturnType<typeof rng>;

/** Byte-level mutations of a file. */
function mutateBytes(r: Rng, b: Uint8Array): { bytes: Uint8Array; what: string } {
  const out = Buffer.from(b);
  switch (r.int(5)) {
    case 0: { const n = r.int(b.length); return { bytes: out.subarray(0, n), what: `truncate to ${n}` }; }
    case 1: { const k = 1 + r.int(4), at: number[] = []; for (let i = 0; i < k; i++) { const p = r.int(b.length); at.push(p); out[p] ^= 1 << r.int(8); } return { bytes: out, what: `flip bits at ${at}` }; }
    case 2: { const p = r.int(b.length), v = r.pick([0, 0xff, 0x7f, 0x80]); out[p] = v; return { bytes: out, what: `byte ${p} = ${v}` }; }
    case 3: { const p = r.int(b.length), n = 1 + r.int(16); return { bytes: Buffer.concat([out.subarray(0, p), out.subarray(p + n)]), what: `delete ${n} at ${p}` }; }
    default: { const p = r.int(b.length), ins = Buffer.from(Array.from({ length: 1 + r.int(16) }, () => r.int(256))); return { bytes: Buffer.concat([out.subarray(0, p), ins, out.subarray(p)]), what: `insert ${ins.length} at ${p}` }; }
  }
}

/** A random odd value for a JSON slot. */
const oddValue = (r: Rng): unknown => r.pick<unknown>([null, -1, 0, 1.5, 1e308, -1e308, 2 ** 53, 'x', '', [], {}, [null], [-1], [2 ** 31, 2 ** 31], true, { dtype: 'uint8' }]);

/** Structural mutation of a JSON value: replace, delete or duplicate something at a random path. */
function mutateJson(r: Rng, v: unknown): { value: unknown; what: string } {
  const root = JSON.parse(JSON.stringify(v));
  const slots: { parent: Record<string, unknown> | unknown[]; key: string | number; at: string }[] = [];
  const walk = (x: unknown, at: string) => {
    if (typeof x !== 'object' || x === null) return;
    for (const [k, c] of Object.entries(x)) {
      slots.push({ parent: x as Record<string, unknown>, key: Array.isArray(x) ? Number(k) : k, at: `${at}.${k}` });
      walk(c, `${at}.${k}`);
    }
  };
  walk(root, '');
  if (!slots.length) return { value: oddValue(r), what: 'replace root' };
  const s = r.pick(slots);
  const p = s.parent as Record<string | number, unknown>;
  switch (r.int(4)) {
    case 0: if (Array.isArray(p)) p.splice(s.key as number, 1); else delete p[s.key]; return { value: root, what: `delete ${s.at}` };
    case 1: if (Array.isArray(p)) p.push(p[s.key as number]); else p[`${s.key}_`] = p[s.key]; return { value: root, what: `duplicate ${s.at}` };
    case 2: if (typeof p[s.key] === 'number') { p[s.key] = (p[s.key] as number) * r.pick([-1, 2, 0.5, 1e6, 0]); return { value: root, what: `scale ${s.at}` }; }
      return replace();
    default: return replace();
  }
  function replace(): { value: unknown; what: string } {
    const o = oddValue(r);
    p[s.key] = o;
    return { value: root, what: `${s.at} = ${JSON.stringify(o)}` };
  }
}

/** Runs cases until the budget is spent; `one` returns 'load' or 'error' and throws on an unacceptable outcome. */
function fuzz(label: string, seed: number, one: (r: Rng, i: number) => 'load' | 'error'): void {
  const r = rng(seed), t0 = performance.now(), count = { load: 0, error: 0 };
  let i = 0;
  for (; performance.now() - t0 < BUDGET_MS; i++) count[one(r, i)]++;
  console.log(`${label}: ${i} cases in ${(performance.now() - t0).toFixed(0)} ms (seed ${seed}): ${count.load} loaded correctly, ${count.error} named errors`);
  expect(count.error).toBeGreaterThan(0);
}

/** Calls `f`; a throw must be an instance of `named`. */
function outcome(what: string, named: abstract new (...a: never[]) => Error, f: () => void): 'load' | 'error' {
  try {
    f();
    return 'load';
  } catch (err) {
    if (err instanceof named) return 'error';
    throw new Error(`${what}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`, { cause: err });
  }
}

test('tfjs weight manifests and shards', () => {
  const shard = Buffer.concat([Buffer.from(new Float32Array([0.5, -2, 3, 4]).buffer), Buffer.from([0, 128, 255, 7]), Buffer.from(new Uint16Array([0x3c00, 0x4000]).buffer)]);
  const manifest = [{ paths: ['s1'], weights: [
    { name: 'w', shape: [2, 2], dtype: 'float32' },
    { name: 'q', shape: [4], dtype: 'float32', quantization: { dtype: 'uint8', scale: 0.01, min: -1 } },
    { name: 'h', shape: [2, 1], dtype: 'float32', quantization: { dtype: 'float16' } },
  ] }];
  const d = path.join(dir, 'tfjs');
  fs.mkdirSync(d);
  const m = path.join(d, 'm.json'), s1 = path.join(d, 's1');
  fuzz('tfjs manifests', SEED, (r, i) => {
    let what: string;
    if (r.int(4) === 0) {
      const x = mutateBytes(r, shard);
      fs.writeFileSync(s1, x.bytes);
      fs.writeFileSync(m, JSON.stringify(manifest));
      what = `shard ${x.what}`;
    } else {
      fs.writeFileSync(s1, shard);
      const j = mutateJson(r, manifest);
      let text = JSON.stringify(j.value);
      what = j.what;
      if (r.int(5) === 0) { const n = r.int(text.length); text = text.slice(0, n); what += `, text cut at ${n}`; }
      fs.writeFileSync(m, text);
    }
    return outcome(`case ${i} (${what})`, TfjsWeightsError, () => {
      for (const [name, w] of loadTfjsWeights(m)) {
        if (w.data.length !== w.shape.reduce((a, b) => a * b, 1)) throw new Error(`weight ${name}: ${w.data.length} values for [${w.shape}]`);
      }
    });
  });
});

test('PNG and JPEG images', () => {
  const w = 11, h = 7;
  const rgb = new Uint8Array(w * h * 3).map((_v, i) => (i * 37) % 256);
  const png = encodePng({ width: w, height: h, channels: 3, data: rgb });
  const jpg = Buffer.from(jpeg.encode({ width: w, height: h, data: new Uint8Array(w * h * 4).map((_v, i) => (i * 37) % 256) }, 80).data);
  fuzz('images', SEED + 1, (r, i) => {
    const base = r.int(2) === 0 ? png : jpg;
    let x = mutateBytes(r, base);
    if (base === png && r.int(3) === 0) {
      // Header fields with a valid CRC, so the decoder gets past the checksum.
      const b = Buffer.from(png);
      const field = r.pick([16, 20, 24, 25]);
      if (field < 24) b.writeUInt32BE(r.pick([0, 1, 3, 4096, 65535, 2 ** 31 - 1, 2 ** 32 - 1]), field); else b[field] = r.int(256);
      b.writeUInt32BE(crc32(b.subarray(12, 29)), 29);
      x = { bytes: b, what: `IHDR byte ${field} changed, CRC fixed` };
    }
    return outcome(`case ${i} (${base === png ? 'png' : 'jpeg'} ${x.what})`, ImageDecodeError, () => {
      const img = decodeImage(x.bytes);
      if (!(img.width >= 1 && img.height >= 1 && img.data.length === img.width * img.height * 3)) throw new Error(`decoded ${img.width}×${img.height} with ${img.data.length} bytes`);
    });
  });
});

test('PuLID checkpoints: a load that succeeds is the saved content, bit for bit', () => {
  const model = new PulidModel(microPulidConfig, { seed: 0 });
  const make = () => new PulidTrainer(model, [], {} as TextConditioner, { steps: { 1: 4, 2: 0, 3: 0 } });
  const src = path.join(dir, 'ck.safetensors');
  const t = make();
  t.done = { 1: 3, 2: 0, 3: 0 };
  t.save(src);
  const want = t.snapshot();
  const bytes = fs.readFileSync(src);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.toString('utf8', 8, 8 + headerLen)) as Record<string, unknown>;
  const file = path.join(dir, 'fuzzed.safetensors');
  fuzz('checkpoints', SEED + 2, (r, i) => {
    let x: { bytes: Uint8Array; what: string };
    if (r.int(2) === 0) x = mutateBytes(r, bytes);
    else {
      // A structurally mutated header (metadata included), re-padded so the length prefix is consistent.
      const j = mutateJson(r, header);
      const text = Buffer.from(JSON.stringify(j.value));
      const padded = Buffer.alloc(Math.ceil(text.length / 8) * 8, 0x20);
      text.copy(padded);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(padded.length));
      x = { bytes: Buffer.concat([len, padded, bytes.subarray(8 + headerLen)]), what: `header ${j.what}` };
    }
    fs.writeFileSync(file, x.bytes);
    return outcome(`case ${i} (${x.what})`, CheckpointError, () => {
      const b = make();
      b.load(file);
      for (const [k, v] of b.snapshot()) {
        const u = want.get(k)!;
        if (!Buffer.from(v.buffer, v.byteOffset, v.byteLength).equals(Buffer.from(u.buffer, u.byteOffset, u.byteLength))) throw new Error(`loaded, but ${k} differs from the saved values`);
      }
      if (b.done[1] !== 3) throw new Error(`loaded, but done = ${JSON.stringify(b.done)}`);
    });
  });
});

test('ONNX files (IResNet weights): a load that succeeds has every parameter at its size', () => {
  const bytes = fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/face/iresnet_tiny.onnx'));
  const want = loadIResNetOnnx(parseOnnx(bytes, 'base.onnx')).params;
  fuzz('onnx', SEED + 3, (r, i) => {
    const x = mutateBytes(r, bytes);
    return outcome(`case ${i} (${x.what})`, OnnxError, () => {
      const m = parseOnnx(Buffer.from(x.bytes), 'fuzzed.onnx');
      for (const name of m.initializers.keys()) m.read(name);
      const { params } = loadIResNetOnnx(m);
      for (const [k, v] of want) if (params.get(k)?.length !== v.length) throw new Error(`loaded, but ${k} has ${params.get(k)?.length} values, not ${v.length}`);
    });
  });
});
