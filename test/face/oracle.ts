/** Calls face-api (test/face/oracle/faceapi-oracle.cjs) in a child process: Kiln's oracle for the face nets. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Image } from '../../models/io/image';

const script = path.resolve('test/face/oracle/faceapi-oracle.cjs');

export interface OracleFace { score: number; box: number[]; landmarks: number[][]; alignedRect: number[]; descriptor: number[] }

/** Runs one oracle request on an image (8-bit or float samples, HWC RGB), or on several images
 * (`pipeline` only: one child process, models loaded once; returns one result per image). */
export function faceApi<T>(op: 'descriptor' | 'pipeline' | 'landmarks', img: Image<Uint8Array | Float32Array> | readonly Image<Uint8Array | Float32Array>[]): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-faceapi-'));
  try {
    const write = (im: Image<Uint8Array | Float32Array>, k: number) => {
      const raw = path.join(dir, `image${k}.f32`);
      fs.writeFileSync(raw, Buffer.from(Float32Array.from(im.data).buffer));
      return { path: raw, width: im.width, height: im.height };
    };
    const req = path.join(dir, 'req.json');
    fs.writeFileSync(req, JSON.stringify(Array.isArray(img) ? { op, images: img.map(write) } : { op, image: write(img as Image<Uint8Array | Float32Array>, 0) }));
    return JSON.parse(execFileSync(process.execPath, [script, req], { encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'ignore'] })) as T;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
