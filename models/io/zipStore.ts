/**
 * The part of the zip format torch.save writes: uncompressed ("stored") entries, a central directory, zip64 end
 * records for big files. Read from a file descriptor with positioned reads: only the end records and the central
 * directory at open, each entry's bytes on demand, its CRC-32 checked. Compressed or encrypted entries, entries
 * whose bytes run into the central directory or past the file, and duplicate names are TorchZipError; an archive
 * without its end record (a file cut short) is TorchCheckpointTruncatedError.
 */
import fs from 'node:fs';
import { crc32 } from 'node:zlib';
import { TorchCheckpointTruncatedError, TorchZipError } from './torchFormat';

export interface ZipEntry {
  readonly name: string;
  /** Absolute offset of the entry's bytes in the file. */
  readonly offset: number;
  readonly size: number;
  readonly crc: number;
}

const EOCD = 0x06054b50, EOCD64 = 0x06064b50, LOCATOR64 = 0x07064b50, CENTRAL = 0x02014b50, LOCAL = 0x04034b50;
const MAX_COMMENT = 0xffff;

/** Reads exactly `n` bytes at `position` into a fresh buffer, or throws TorchCheckpointTruncatedError. */
export function readAt(fd: number, position: number, n: number, file: string, key?: string): Buffer {
  const out = Buffer.alloc(n);
  let done = 0;
  while (done < n) {
    const got = fs.readSync(fd, out, done, Math.min(n - done, 1 << 30), position + done);
    if (got === 0) throw new TorchCheckpointTruncatedError(file, key, `file ends after ${position + done} bytes, ${n - done} more expected`);
    done += got;
  }
  return out;
}

const u64 = (b: Buffer, at: number, file: string): number => {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new TorchZipError(file, undefined, `zip64 field ${v} is beyond 2^53`);
  return Number(v);
};

/** The archive's entries by name. */
export function readZipDirectory(fd: number, size: number, file: string): Map<string, ZipEntry> {
  const tailLen = Math.min(size, 22 + MAX_COMMENT);
  const tail = readAt(fd, size - tailLen, tailLen, file);
  let e = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD && i + 22 + tail.readUInt16LE(i + 20) <= tailLen) { e = i; break; }
  }
  if (e < 0) throw new TorchCheckpointTruncatedError(file, undefined, 'zip archive has no end-of-central-directory record (the file was cut short, or it is not a zip)');
  const eocdPos = size - tailLen + e;
  let count = tail.readUInt16LE(e + 10), cdSize = tail.readUInt32LE(e + 12), cdOffset = tail.readUInt32LE(e + 16);
  let cdEnd = eocdPos;
  // The zip64 end record is used when the 32-bit fields say so, or when its locator is there (writers such as
  // CPython's put the true values in both records when they fit).
  const loc = eocdPos >= 20 ? readAt(fd, eocdPos - 20, 20, file) : undefined;
  const marked = count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff;
  if (marked || loc?.readUInt32LE(0) === LOCATOR64) {
    if (!loc || loc.readUInt32LE(0) !== LOCATOR64) throw new TorchZipError(file, undefined, 'zip64 sizes without a zip64 locator');
    const at = u64(loc, 8, file);
    if (at + 56 > eocdPos - 20) throw new TorchZipError(file, undefined, `zip64 end record at ${at} is not before its locator`);
    const rec = readAt(fd, at, 56, file);
    if (rec.readUInt32LE(0) !== EOCD64) throw new TorchZipError(file, undefined, `no zip64 end record at ${at}`);
    count = u64(rec, 32, file);
    cdSize = u64(rec, 40, file);
    cdOffset = u64(rec, 48, file);
    cdEnd = at;
  }
  if (cdOffset + cdSize > cdEnd) throw new TorchZipError(file, undefined, `central directory [${cdOffset}, ${cdOffset + cdSize}) runs past its end record at ${cdEnd}`);
  if (count * 46 > cdSize) throw new TorchZipError(file, undefined, `${count} entries cannot fit a ${cdSize}-byte central directory`);
  const cd = readAt(fd, cdOffset, cdSize, file);
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || cd.readUInt32LE(p) !== CENTRAL) throw new TorchZipError(file, undefined, `central directory entry ${i} has no signature at ${cdOffset + p}`);
    const flags = cd.readUInt16LE(p + 8), method = cd.readUInt16LE(p + 10), crc = cd.readUInt32LE(p + 16);
    let csize = cd.readUInt32LE(p + 20), usize = cd.readUInt32LE(p + 24), local = cd.readUInt32LE(p + 42);
    const nlen = cd.readUInt16LE(p + 28), elen = cd.readUInt16LE(p + 30), clen = cd.readUInt16LE(p + 32);
    if (p + 46 + nlen + elen + clen > cdSize) throw new TorchZipError(file, undefined, `central directory entry ${i} runs past the directory`);
    const name = cd.toString('utf8', p + 46, p + 46 + nlen);
    // zip64 extra field: the 8-byte values of the 32-bit fields that read 0xffffffff, in this order.
    for (let x = p + 46 + nlen, xEnd = x + elen; x + 4 <= xEnd;) {
      const id = cd.readUInt16LE(x), len = cd.readUInt16LE(x + 2);
      if (x + 4 + len > xEnd) throw new TorchZipError(file, name, 'extra field runs past its entry');
      if (id === 1) {
        let q = x + 4;
        const next = (): number => { if (q + 8 > x + 4 + len) throw new TorchZipError(file, name, 'zip64 extra field too short'); const v = u64(cd, q, file); q += 8; return v; };
        if (usize === 0xffffffff) usize = next();
        if (csize === 0xffffffff) csize = next();
        if (local === 0xffffffff) local = next();
      }
      x += 4 + len;
    }
    p += 46 + nlen + elen + clen;
    if (flags & 1) throw new TorchZipError(file, name, 'entry is encrypted');
    if (method !== 0) throw new TorchZipError(file, name, `entry is compressed (method ${method}); torch.save writes stored entries`);
    if (csize !== usize) throw new TorchZipError(file, name, `stored entry with compressed size ${csize} ≠ size ${usize}`);
    if (entries.has(name)) throw new TorchZipError(file, name, 'entry appears twice');
    if (local + 30 > cdOffset) throw new TorchZipError(file, name, `local header at ${local} is not before the central directory`);
    const lh = readAt(fd, local, 30, file, name);
    if (lh.readUInt32LE(0) !== LOCAL) throw new TorchZipError(file, name, `no local header signature at ${local}`);
    const offset = local + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
    if (offset + usize > cdOffset) throw new TorchZipError(file, name, `bytes [${offset}, ${offset + usize}) run into the central directory at ${cdOffset}`);
    entries.set(name, { name, offset, size: usize, crc });
  }
  return entries;
}

/** An entry's bytes, CRC-checked. */
export function readZipEntry(fd: number, entry: ZipEntry, file: string): Buffer {
  const b = readAt(fd, entry.offset, entry.size, file, entry.name);
  const c = crc32(b) >>> 0;
  if (c !== entry.crc >>> 0) throw new TorchZipError(file, entry.name, `CRC-32 is ${c.toString(16).padStart(8, '0')}, the directory says ${(entry.crc >>> 0).toString(16).padStart(8, '0')}`);
  return b;
}
