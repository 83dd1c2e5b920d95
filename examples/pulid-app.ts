/** PuLID in the browser, on this machine: a small web app over `PulidPipeline`. Upload a photo or pick a sample
 * face, write a prompt, choose the ID scale, mode, steps and seed; results collect in a gallery with their
 * settings. Everything is served from this process (examples/app/: one HTML page, its script and style): no CDN,
 * no external assets.
 *
 *   npx tsx examples/pulid-app.ts                    # http://127.0.0.1:7860, tiny config
 *   npx tsx examples/pulid-app.ts --config micro --port 0 --ckpt runs/pulid-tiny/last.safetensors
 *
 * HTTP API (JSON): GET /api/info (config, limits, sample faces); POST /api/generate {prompt, negativePrompt,
 * idScale, mode, steps, seed, cfg, sample | photo (data URL)} → 202 {id}; GET /api/jobs/<id> → {status, done,
 * total, label, error?, settings?}; GET /api/jobs/<id>/image.png. Errors: 400 bad value (named), 413 upload too
 * large, 422 no face found, 404 unknown job. Jobs run one at a time, in order. */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pulidConfigs } from '../models/pulid/config';
import { PULID_MAX_STEPS, PULID_MODES, PULID_ORTHO, PulidPipeline, type PulidGenerateOptions } from '../models/pulid/pipeline';
import { SAMPLERS } from '../models/sched/index';
import { NoFaceError } from '../models/pulid/condition';
import { LIMITS, PipelineOptionError } from '../models/pipelines/options';
import { ImageDecodeError } from '../models/io/image';
import { describeError, defineCli, isMain, runCli, type Parsed } from '../tools/cli';

const here = path.dirname(fileURLToPath(import.meta.url));
const ASSETS = path.join(here, 'app');
const SAMPLES = path.resolve(here, '../node_modules/@vladmandic/face-api/demo');
const SAMPLE_NAMES = ['sample1.jpg', 'sample2.jpg', 'sample3.jpg', 'sample4.jpg', 'sample5.jpg', 'sample6.jpg'];

export const cli = defineCli({
  command: 'npx tsx examples/pulid-app.ts',
  summary: 'PuLID web app on localhost: upload or pick a face, prompt, ID scale, mode, steps, seed; a gallery of results.',
  options: {
    port: { type: 'int', min: 0, max: 65535, default: 7860, help: 'port (0: any free port)' },
    host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
    config: { type: 'enum', values: Object.keys(pulidConfigs), default: 'tiny', help: 'model size' },
    ckpt: { type: 'file', help: 'ID-adapter checkpoint (from pulid-train)' },
    weights: { type: 'dir', help: 'diffusers SDXL folder' },
    backend: { type: 'enum', values: ['cpu', 'cuda', 'reference'], default: 'cpu', help: 'where the generation program runs' },
    'max-upload': { type: 'bytes', min: 1024, max: 256 * 2 ** 20, default: 8 * 2 ** 20, help: 'largest accepted upload (bytes; 8MiB, 500KB, …)' },
  },
  examples: ['npx tsx examples/pulid-app.ts', 'npx tsx examples/pulid-app.ts --config micro --port 0'],
  notes: 'Prints "listening on http://HOST:PORT" once the server is up.',
});

class HttpError extends Error {
  constructor(readonly status: number, message: string) { super(message); this.name = 'HttpError'; }
}

interface Job {
  id: string;
  status: 'queued' | 'running' | 'done' | 'error';
  done: number; total: number; label: string;
  error?: string; errorKind?: string;
  png?: Buffer;
  settings: Record<string, unknown>;
}

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.jpg': 'image/jpeg', '.png': 'image/png' };

function send(res: http.ServerResponse, status: number, body: unknown, type = 'application/json; charset=utf-8'): void {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  res.writeHead(status, { 'content-type': type, 'content-length': bytes.length, 'cache-control': 'no-store' });
  res.end(bytes);
}

/** The request body, refused (413) past `limit` bytes without keeping the rest (`maxUpload`: the photo limit, for the message). */
function readBody(req: http.IncomingMessage, limit: number, maxUpload: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) { reject(new HttpError(413, `upload too large: a ${declared}-byte request (a photo may have at most ${maxUpload} bytes)`)); req.resume(); return; }
    const parts: Buffer[] = [];
    let n = 0;
    req.on('data', (d: Buffer) => {
      n += d.length;
      if (n > limit) reject(new HttpError(413, `upload too large: a request over ${limit} bytes (a photo may have at most ${maxUpload} bytes)`)); // keeps draining, so the reply can be read
      else parts.push(d);
    });
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

/** The form's JSON → pipeline options (types checked here, ranges by the pipeline). */
function parseRequest(body: Buffer, maxUpload: number): { opts: Omit<PulidGenerateOptions, 'onProgress'>; settings: Record<string, unknown> } {
  let j: Record<string, unknown>;
  try { j = JSON.parse(body.toString('utf8')); } catch { throw new HttpError(400, 'the request body is not JSON'); }
  const num = (k: string) => {
    const v = j[k];
    if (v === undefined || v === '') return undefined;
    const x = typeof v === 'number' ? v : typeof v === 'string' && /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(v.trim()) ? Number(v) : Number.NaN;
    if (!Number.isFinite(x)) throw new PipelineOptionError(k, `a number, not ${JSON.stringify(v)}`);
    return x;
  };
  const str = (k: string) => (j[k] === undefined ? undefined : String(j[k]));
  let photo: Uint8Array, photoName: string;
  if (typeof j.photo === 'string' && j.photo) {
    const m = /^data:image\/[a-z+.-]+;base64,(.*)$/s.exec(j.photo);
    if (!m) throw new PipelineOptionError('photo', 'a PNG or JPEG image (data URL)');
    photo = Buffer.from(m[1], 'base64');
    if (photo.length > maxUpload) throw new HttpError(413, `upload too large: a ${photo.length}-byte photo (at most ${maxUpload} bytes)`);
    photoName = String(j.photoName ?? 'upload');
  } else {
    const s = String(j.sample ?? SAMPLE_NAMES[1]);
    if (!SAMPLE_NAMES.includes(s)) throw new PipelineOptionError('sample', `one of ${SAMPLE_NAMES.join(', ')}, not '${s}'`);
    photo = fs.readFileSync(path.join(SAMPLES, s));
    photoName = s;
  }
  const mode = str('mode') ?? 'fidelity';
  if (!(PULID_MODES as readonly string[]).includes(mode)) throw new PipelineOptionError('mode', `one of ${PULID_MODES.join(', ')}, not '${mode}'`);
  // ortho, numZero, sampler: API only (the form keeps the presets); the pipeline checks the values.
  const opts = { prompt: str('prompt') ?? '', negativePrompt: str('negativePrompt'), idScale: num('idScale'), steps: num('steps'), seed: num('seed'), cfg: num('cfg'),
    mode: mode as PulidGenerateOptions['mode'], ortho: str('ortho') as PulidGenerateOptions['ortho'], numZero: num('numZero'), sampler: str('sampler') as PulidGenerateOptions['sampler'],
    photos: [{ name: photoName, bytes: photo }] };
  return { opts, settings: { prompt: opts.prompt, negativePrompt: opts.negativePrompt ?? '', idScale: opts.idScale, steps: opts.steps, seed: opts.seed, cfg: opts.cfg, mode, photo: photoName } };
}

const statusOf = (e: unknown) => (e instanceof HttpError ? e.status : e instanceof NoFaceError ? 422 : e instanceof PipelineOptionError || e instanceof ImageDecodeError ? 400 : 500);

export async function startApp(o: Pick<Parsed<typeof cli.def.options>, 'port' | 'host' | 'config' | 'ckpt' | 'weights' | 'backend' | 'max-upload'>, log = (s: string) => console.log(s)) {
  const pipe = await PulidPipeline.load({ config: o.config, ckpt: o.ckpt, weights: o.weights, backend: o.backend });
  const jobs = new Map<string, Job>();
  let queue: Promise<void> = Promise.resolve(), counter = 0;
  const info = { config: pipe.config.name, imageSize: pipe.model.imageSize, idScale: pipe.config.idScale, steps: pipe.config.lightningSteps, modes: PULID_MODES, orthos: PULID_ORTHO, samplers: SAMPLERS,
    limits: { ...LIMITS, steps: { min: 1, max: PULID_MAX_STEPS }, maxUpload: o['max-upload'] }, samples: SAMPLE_NAMES };

  const submit = (opts: Omit<PulidGenerateOptions, 'onProgress'>, settings: Record<string, unknown>): Job => {
    const job: Job = { id: String(++counter), status: 'queued', done: 0, total: 1, label: 'queued', settings };
    jobs.set(job.id, job);
    queue = queue.then(async () => {
      job.status = 'running';
      try {
        const img = await pipe.generate({ ...opts, onProgress: (d, t, l) => { job.done = d; job.total = t; job.label = l; } });
        job.png = img.png;
        Object.assign(job.settings, { idScale: img.idScale, steps: img.steps, seed: img.seed, mode: img.mode, numZero: img.numZero, sampler: img.sampler });
        job.status = 'done';
        log(`job ${job.id}: done (${JSON.stringify(job.settings)})`);
      } catch (e) {
        job.status = 'error';
        job.error = describeError(e).replace(/^\w+Error: /, '');
        job.errorKind = statusOf(e) === 422 ? 'no-face' : statusOf(e) === 400 ? 'bad-value' : 'internal';
        log(`job ${job.id}: ${describeError(e)}`);
      }
    });
    return job;
  };

  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const p = url.pathname;
      if (req.method === 'GET' && (p === '/' || p === '/app.js' || p === '/app.css')) {
        const file = path.join(ASSETS, p === '/' ? 'index.html' : p.slice(1));
        return send(res, 200, fs.readFileSync(file), TYPES[path.extname(file)]);
      }
      if (req.method === 'GET' && p.startsWith('/samples/')) {
        const name = p.slice('/samples/'.length);
        if (!SAMPLE_NAMES.includes(name)) throw new HttpError(404, `no sample '${name}'`);
        return send(res, 200, fs.readFileSync(path.join(SAMPLES, name)), TYPES['.jpg']);
      }
      if (req.method === 'GET' && p === '/api/info') return send(res, 200, info);
      if (req.method === 'POST' && p === '/api/generate') {
        // a data URL is 4/3 of the file, plus the other fields
        const { opts, settings } = parseRequest(await readBody(req, Math.ceil(o['max-upload'] * 4 / 3) + 65536, o['max-upload']), o['max-upload']);
        pipe.resolve(opts); // a bad value is a 400 now, not a failed job later
        return send(res, 202, { id: submit(opts, settings).id });
      }
      const m = /^\/api\/jobs\/(\d+)(\/image\.png)?$/.exec(p);
      if (req.method === 'GET' && m) {
        const job = jobs.get(m[1]);
        if (!job) throw new HttpError(404, `no job ${m[1]}`);
        if (m[2]) { if (!job.png) throw new HttpError(404, `job ${job.id} has no image (${job.status})`); return send(res, 200, job.png, TYPES['.png']); }
        const { png: _png, ...rest } = job;
        return send(res, 200, rest);
      }
      throw new HttpError(404, `no route ${req.method} ${p}`);
    } catch (e) {
      const status = statusOf(e);
      if (status === 500) log(`error: ${describeError(e)}`);
      if (!res.headersSent) send(res, status, { error: describeError(e).replace(/^\w+Error: /, ''), kind: status === 413 ? 'too-large' : status === 422 ? 'no-face' : status === 400 ? 'bad-value' : 'error' });
    }
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(o.port, o.host, resolve); });
  const addr = server.address() as { port: number };
  const url = `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${addr.port}`;
  return { url, server, close: () => new Promise<void>((r) => server.close(() => r())) };
}

if (isMain(import.meta.url)) {
  await runCli(cli, async (o) => {
    const app = await startApp(o);
    console.log(`PuLID ${o.config} (${o.backend}): listening on ${app.url}`);
    await new Promise(() => undefined); // until interrupted
  });
}
