/** examples/pulid-app.ts end to end in headless Chromium (Debian's `chromium` package, driven by playwright-core):
 * the page loads with nothing from outside the server, bad values and a photo without a face give clear errors,
 * an upload is refused past --max-upload, and an uploaded photo generates an image with the tiny config that
 * appears in the gallery with its settings. A screenshot goes to runs/test-output/pulid-app.png.
 * Skipped, with a note, where /usr/bin/chromium (or $KILN_CHROMIUM) is absent: `apt-get install chromium`. */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { writePng } from '../../models/io/image';

const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';
const have = fs.existsSync(CHROMIUM);
if (!have) console.warn(`test/app/pulid-app.test.ts skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set KILN_CHROMIUM)`);
const OUT = path.resolve('runs/test-output');
const demo = (n: number) => path.resolve(`node_modules/@vladmandic/face-api/demo/sample${n}.jpg`);

let app: ChildProcess | undefined, url = '', ctx: BrowserContext | undefined, page: Page, log = '';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-app-'));
const external: string[] = [];

(have ? describe : describe.skip)('pulid-app in headless Chromium', () => {
  beforeAll(async () => {
    app = spawn(process.execPath, ['--import', 'tsx', path.resolve('examples/pulid-app.ts'), '--config', 'tiny', '--port', '0', '--max-upload', '250KB'], { env: { ...process.env, KILN_DEBUG: '' } });
    url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the app did not start:\n${log}`)), 120_000);
      const on = (d: Buffer) => { log += d; const m = /listening on (http:\/\/\S+)/.exec(log); if (m) { clearTimeout(t); resolve(m[1]); } };
      app!.stdout!.on('data', on);
      app!.stderr!.on('data', (d) => { log += d; });
      app!.on('exit', (code) => reject(new Error(`the app exited (${code}):\n${log}`)));
    });
    ctx = await chromium.launchPersistentContext(path.join(dir, 'profile'), {
      executablePath: CHROMIUM, headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = ctx.pages()[0] ?? await ctx.newPage();
    page.on('request', (r) => { if (!r.url().startsWith(url) && !/^(data|blob):/.test(r.url())) external.push(r.url()); });
    await page.goto(url);
    await page.locator('#samples button').first().waitFor();
  }, 180_000);

  afterAll(async () => {
    await ctx?.close();
    app?.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('loads from the server alone: six sample faces, defaults from the config', async () => {
    expect(await page.locator('#samples button').count()).toBe(6);
    expect(await page.locator('#model').textContent()).toBe('tiny config, 128×128');
    expect(await page.inputValue('#steps')).toBe('4');
    expect(external).toEqual([]);
  });

  it('bad values, a too-large upload and a photo without a face give clear errors', async () => {
    await page.fill('#steps', '0');
    await page.click('#generate');
    await expect(page.locator('#error').textContent()).resolves.toBe('Steps: between 1 and 50');
    await page.fill('#steps', '4');
    // The server checks too (a client that skips the form):
    const api = await page.evaluate(async () => {
      const post = async (body: string) => { const r = await fetch('/api/generate', { method: 'POST', body }); return [r.status, ((await r.json()) as { error: string }).error]; };
      return [await post(JSON.stringify({ prompt: 'x', steps: 2.5 })), await post(JSON.stringify({ prompt: 'x', idScale: 'lots' })), await post('x'.repeat(500_000)), await post('not json'),
        await post(JSON.stringify({ prompt: 'x', photo: `data:image/jpeg;base64,${'A'.repeat(360_000)}` }))];
    });
    expect(api).toEqual([[400, 'steps: a whole number, not 2.5'], [400, 'idScale: a number, not "lots"'], [413, 'upload too large: a 500000-byte request (a photo may have at most 256000 bytes)'],
      [400, 'the request body is not JSON'], [413, 'upload too large: a 270000-byte photo (at most 256000 bytes)']]);

    await page.setInputFiles('#photo', demo(6)); // 302 kB > 250 kB
    await expect(page.locator('#error').textContent()).resolves.toMatch(/^That photo is too large: 302445 bytes \(at most 256000\)\.$/);

    const blank = path.join(dir, 'blank.png');
    const width = 320, height = 240, data = new Uint8Array(width * height * 3); // a colour gradient (as test/face/cli.test.ts)
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([(x * 255) / width, (y * 255) / height, 128], (y * width + x) * 3);
    writePng(blank, { width, height, channels: 3, data });
    await page.setInputFiles('#photo', blank);
    await page.locator('#photo-info', { hasText: 'using blank.png' }).waitFor();
    await page.click('#generate');
    await page.locator('#error', { hasText: 'No face found' }).waitFor({ timeout: 240_000 });
    expect(await page.locator('#error').textContent()).toMatch(/^No face found: blank\.png: no face found/);
    expect(await page.locator('figure.result').count()).toBe(0);
  }, 300_000);

  it('generates from an uploaded photo: progress, then the image in the gallery with its settings', async () => {
    await page.setInputFiles('#photo', demo(2));
    await page.locator('#photo-info', { hasText: 'using sample2.jpg' }).waitFor();
    await page.fill('#prompt', 'a watercolor portrait');
    await page.fill('#idScale', '1.5');
    await page.fill('#seed', '7');
    await page.selectOption('#mode', 'style');
    await page.click('#generate');
    await page.locator('#progress-box').waitFor({ state: 'visible' });
    const img = page.locator('figure.result img').first();
    await img.waitFor({ timeout: 540_000 });
    await page.waitForFunction('(() => { const i = document.querySelector("figure.result img"); return !!i && i.complete && i.naturalWidth > 0; })()');
    expect(await img.evaluate((i) => { const e = i as unknown as { naturalWidth: number; naturalHeight: number }; return [e.naturalWidth, e.naturalHeight]; })).toEqual([128, 128]);
    expect(await page.locator('figure.result figcaption').first().textContent()).toBe('"a watercolor portrait" · sample2.jpg · id scale 1.5 · ortho · 4 steps · seed 7');
    expect(await page.locator('#error').isHidden()).toBe(true);
    expect(await page.locator('#progress-box').isHidden()).toBe(true);
    fs.mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: path.join(OUT, 'pulid-app.png'), fullPage: true });
    expect(fs.statSync(path.join(OUT, 'pulid-app.png')).size).toBeGreaterThan(10_000);
    expect(external).toEqual([]);
  }, 600_000);
});
