/**
 * PyTorch checkpoint → safetensors, through Kiln's safe checkpoint reader (models/io/torchCheckpoint.ts: a
 * restricted unpickler, nothing from the file is executed) and the atomic safetensors writer.
 *
 *   npx tsx tools/convert.ts pulid_v1.bin pulid_v1.safetensors
 *   npx tsx tools/convert.ts model.pt model.safetensors --strip-prefix state_dict. --dtype F16
 *
 * Nested dicts become dotted keys (`{'state_dict': {'w': t}}` → `state_dict.w`); leaves that are not tensors (an
 * epoch, a name) are listed and left out. Strided views are written contiguous and tensors sharing a storage get
 * their own copies. `--dtype` casts floating-point tensors only (integer and bool tensors keep their dtype).
 * Exit status: 0 written, 1 the checkpoint was refused (its named error printed), 2 a bad command line.
 */
import fs from 'node:fs';
import type { TensorInput } from '../models/io/safetensors';
import { writeSafetensors } from '../models/io/safetensors';
import { openTorchCheckpoint } from '../models/io/torchCheckpoint';
import { defineCli, isMain, runCli, UsageError, type Parsed } from './cli';

export const cli = defineCli({
  command: 'npx tsx tools/convert.ts',
  summary: 'Converts a PyTorch checkpoint (.bin/.pt/.pth, zip or legacy torch.save) to safetensors, without running any of its code.',
  positionals: { name: 'in.bin out.safetensors', help: 'the checkpoint to read and the file to write', min: 2, max: 2 },
  options: {
    dtype: { type: 'enum', values: ['keep', 'F32', 'F16', 'BF16'], default: 'keep', help: 'dtype of the floating-point tensors written' },
    'strip-prefix': { type: 'string', default: '', help: "keep only the keys starting with this prefix, without it (e.g. 'state_dict.')" },
    force: { type: 'flag', help: 'replace the output file if it exists' },
  },
  examples: ['npx tsx tools/convert.ts pulid_v1.bin pulid_v1.safetensors', 'npx tsx tools/convert.ts model.pt model.safetensors --strip-prefix state_dict. --dtype F16'],
  notes: 'Exit status: 0 written, 1 the checkpoint was refused (a named error says why), 2 a bad command line.',
});

export interface ConvertReport {
  format: 'zip' | 'legacy';
  tensors: number;
  bytes: number;
  /** Leaves that were not tensors, and keys outside --strip-prefix. */
  skipped: string[];
}

const FLOATS = new Set(['F64', 'F32', 'F16', 'BF16']);

/** Reads every tensor of `input` and writes them to `output` atomically. */
export function convertCheckpoint(input: string, output: string, opts: { dtype?: 'keep' | 'F32' | 'F16' | 'BF16'; stripPrefix?: string } = {}): ConvertReport {
  const ck = openTorchCheckpoint(input);
  const prefix = opts.stripPrefix ?? '', dtype = opts.dtype ?? 'keep';
  const tensors: Record<string, TensorInput> = {};
  const skipped = [...ck.skipped];
  let bytes = 0;
  try {
    for (const name of ck.names()) {
      if (!name.startsWith(prefix) || name === prefix) { skipped.push(name); continue; }
      const t = ck.read(name);
      const cast = dtype !== 'keep' && FLOATS.has(t.dtype) && t.dtype !== dtype;
      const out: TensorInput = cast ? { dtype, shape: t.shape, data: ck.readAsFloat32(name) } : t;
      tensors[name.slice(prefix.length)] = out;
      bytes += t.data.byteLength;
    }
  } finally {
    ck.close();
  }
  writeSafetensors(output, tensors, { format: 'pt' });
  return { format: ck.format, tensors: Object.keys(tensors).length, bytes, skipped };
}

export function main(args: Parsed<typeof cli.def.options>, [input, output]: string[]): number {
  if (!fs.existsSync(input!)) throw new UsageError(`${input}: no such file`);
  if (fs.existsSync(output!) && !args.force) throw new UsageError(`${output} exists (--force replaces it)`);
  const r = convertCheckpoint(input!, output!, { dtype: args.dtype, stripPrefix: args['strip-prefix'] });
  const list = (xs: string[]) => xs.slice(0, 10).join(', ') + (xs.length > 10 ? `, … (${xs.length} in all)` : '');
  process.stdout.write(`${output}: ${r.tensors} tensors, ${(r.bytes / 2 ** 20).toFixed(2)} MiB read from a ${r.format} checkpoint${r.skipped.length ? `; left out: ${list(r.skipped)}` : ''}\n`);
  return r.tensors === 0 ? 1 : 0;
}

if (isMain(import.meta.url)) await runCli(cli, main);
