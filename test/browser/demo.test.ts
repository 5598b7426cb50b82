/**
 * The Vite demo (demo/) in Chromium with WebGPU:
 *  - starts on the engine's own device with a phantom slice and random tiny weights; Segment draws
 *    the predicted organs over the slice and fills the organ legend (share and Dice per organ);
 *  - Train runs steps with a live loss curve, then re-segments;
 *  - a PNG image (+ PNG label map) and a NIfTI volume (+ labels) picked by the user are read,
 *    resized to the model and segmented; training is offered only with labels;
 *  - a checkpoint the user picks is loaded (configuration read off it); a broken file gives a
 *    message naming it;
 *  - without WebGPU, and with adapter limits below the engine's needs, the page says so;
 *  - nothing is logged as a console error.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { Page } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeGreyPng } from '../../src/data/png.js';
import { phantomCase, renderPhantomSlice } from '../../src/data/phantom.js';
import { fixturesDir } from '../helpers.js';
import { BROWSER_TEST_TIMEOUT, SETUP_TIMEOUT, startWebEnv, type WebEnv } from './setup.js';

let env: WebEnv;
beforeAll(async () => {
  env = await startWebEnv();
}, SETUP_TIMEOUT);
afterAll(async () => {
  await env?.close();
});

/** A minimal NIfTI-1 file (.nii): (d, h, w) C order = x fastest, no orientation. */
function niftiBytes(data: Int16Array | Uint8Array, d: number, h: number, w: number): Uint8Array {
  const buf = new ArrayBuffer(352 + data.byteLength);
  const v = new DataView(buf);
  v.setInt32(0, 348, true);
  [3, w, h, d, 1, 1, 1, 1].forEach((x, i) => v.setInt16(40 + 2 * i, x, true));
  const [code, bits] = data instanceof Int16Array ? [4, 16] : [2, 8];
  v.setInt16(70, code, true);
  v.setInt16(72, bits, true);
  for (let i = 0; i < 8; i++) v.setFloat32(76 + 4 * i, 1, true);
  v.setFloat32(108, 352, true);
  v.setFloat32(112, 1, true);
  new Uint8Array(buf, 344, 4).set([0x6e, 0x2b, 0x31, 0]); // "n+1\0"
  new Uint8Array(buf, 352).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return new Uint8Array(buf);
}

const state = (page: Page) => page.getAttribute('body', 'data-state');

async function whenReady(page: Page, cond = 'true'): Promise<void> {
  await page.waitForFunction(
    `(document.body.dataset.state === 'ready' && (${cond})) || document.body.dataset.state === 'unsupported'`,
    null,
    { timeout: 150_000 },
  );
  expect(await state(page), (await page.textContent('#banner')) ?? '').toBe('ready');
}

/** Fraction of the slice canvas's pixels that are coloured (not grey). */
function colouredShare(page: Page): Promise<number> {
  return page.evaluate(() => {
    const c = document.getElementById('slice') as HTMLCanvasElement;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] !== d[i + 1] || d[i + 1] !== d[i + 2]) n++;
    return n / (d.length / 4);
  });
}

test(
  'demo: segment a phantom slice, train with a live loss curve, user files and checkpoints',
  async () => {
    const page = await env.browser.page();
    let t0 = performance.now();
    await page.goto(`${env.server.url}/demo/index.html`);
    await whenReady(page);
    const times: string[] = [`ready ${(performance.now() - t0).toFixed(0)} ms`];
    expect(await page.textContent('#adapter')).toMatch(/WebGPU adapter: /);
    expect(await page.textContent('#model-info')).toMatch(/random weights: 96 px/);
    expect(await page.isDisabled('#train')).toBe(false); // the phantom has labels

    t0 = performance.now();
    await page.click('#segment');
    await whenReady(page, 'window.samlstDemo.segmentations === 1');
    times.push(`segment ${(performance.now() - t0).toFixed(0)} ms`);
    expect(await page.locator('#legend li').count()).toBe(8);
    expect(await page.textContent('#legend')).toMatch(/Dice \d\.\d\d/);
    expect(await colouredShare(page)).toBeGreaterThan(0.05);

    t0 = performance.now();
    await page.fill('#steps', '2');
    await page.click('#train');
    await whenReady(page, 'window.samlstDemo.segmentations === 2');
    times.push(`train 2 steps + segment ${(performance.now() - t0).toFixed(0)} ms`);
    const losses = await page.evaluate(
      () => (window as unknown as { samlstDemo: { losses: number[] } }).samlstDemo.losses,
    );
    expect(losses).toHaveLength(2);
    for (const l of losses) expect(l).toBeGreaterThan(0);
    expect(await page.textContent('#loss-text')).toMatch(/^step 2: loss \d+\.\d+/);

    // A PNG slice at another size: resized to the model; no labels -> no training.
    const c = phantomCase(5);
    const png = renderPhantomSlice(c, 0.5, 128, 128);
    await page.setInputFiles('#image-file', {
      name: 'slice.png',
      mimeType: 'image/png',
      buffer: Buffer.from(
        encodeGreyPng(
          Array.from(png.image, (v) => v * 255),
          128,
          128,
        ),
      ),
    });
    await whenReady(page);
    expect(await page.textContent('#status')).toMatch(
      /slice\.png: 128x128 .*no labels; shown at the model's 96 px/,
    );
    expect(await page.isDisabled('#train')).toBe(true);
    expect(await page.textContent('#train-info')).toMatch(/training needs labels/);
    await page.setInputFiles('#label-file', {
      name: 'slice_label.png',
      mimeType: 'image/png',
      buffer: Buffer.from(encodeGreyPng(png.label, 128, 128)),
    });
    await whenReady(page);
    expect(await page.textContent('#status')).toMatch(/labels from slice_label\.png/);
    expect(await page.isDisabled('#train')).toBe(false);
    await page.click('#segment');
    await whenReady(page, 'window.samlstDemo.segmentations === 3');

    // A NIfTI volume in Hounsfield units (3 slices) with its label volume.
    const ts = [0.3, 0.5, 0.7];
    const sl = ts.map((t) => renderPhantomSlice(c, t, 64, 64));
    const hu = new Int16Array(3 * 64 * 64);
    const lab = new Uint8Array(3 * 64 * 64);
    sl.forEach((s, z) => {
      hu.set(Int16Array.from(s.hu, Math.round), z * 64 * 64);
      lab.set(Uint8Array.from(s.label), z * 64 * 64);
    });
    await page.setInputFiles('#image-file', {
      name: 'case.nii',
      mimeType: 'application/octet-stream',
      buffer: Buffer.from(niftiBytes(hu, 3, 64, 64)),
    });
    await whenReady(page);
    expect(await page.textContent('#status')).toMatch(
      /case\.nii: 3 slices of 64x64 \(CT window \[-125, 275\] HU\)/,
    );
    await page.setInputFiles('#label-file', {
      name: 'case_seg.nii',
      mimeType: 'application/octet-stream',
      buffer: Buffer.from(niftiBytes(lab, 3, 64, 64)),
    });
    await whenReady(page);
    expect(await page.isVisible('#slice-row')).toBe(true);
    expect(await page.getAttribute('#slice-z', 'max')).toBe('2');
    await page.click('#segment');
    await whenReady(page, 'window.samlstDemo.segmentations === 4');

    // Checkpoints the user picks: a broken file is named in the message; the fixture loads.
    await page.setInputFiles('#ckpt-file', {
      name: 'broken.pth',
      mimeType: 'application/octet-stream',
      buffer: Buffer.from('not a checkpoint'),
    });
    await whenReady(page);
    expect(await page.textContent('#status')).toMatch(
      /loading broken\.pth failed: broken\.pth: neither a PyTorch checkpoint/,
    );
    await page.selectOption('#config', 'auto');
    await page.setInputFiles('#ckpt-file', {
      name: 'tiny_sam_lst.pth',
      mimeType: 'application/octet-stream',
      buffer: readFileSync(join(fixturesDir, 'tiny_sam_lst.pth')),
    });
    await whenReady(page);
    expect(await page.textContent('#model-info')).toMatch(/^tiny_sam_lst\.pth: 96 px, ViT width 32 x 4/);
    await page.click('#segment');
    await whenReady(page, 'window.samlstDemo.segmentations === 5');
    console.log(`demo on ${await page.textContent('#adapter')}: ${times.join(', ')}`);
    await page.close();
    expect(env.server.missing).toEqual([]);
    expect(env.browser.errors).toEqual([]);
  },
  BROWSER_TEST_TIMEOUT,
);

test(
  'demo: clear messages without WebGPU and with adapter limits that are too small',
  async () => {
    const noGpu = await env.browser.page();
    await noGpu.addInitScript(() => {
      Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
    });
    await noGpu.goto(`${env.server.url}/demo/index.html`);
    await noGpu.waitForSelector('body[data-state=unsupported]', { timeout: 30_000 });
    expect(await noGpu.textContent('#banner')).toMatch(/This browser has no WebGPU/);
    await noGpu.close();

    const small = await env.browser.page();
    await small.addInitScript(() => {
      const desc = Object.getOwnPropertyDescriptor(GPUDevice.prototype, 'limits')!;
      Object.defineProperty(GPUDevice.prototype, 'limits', {
        configurable: true,
        get(this: GPUDevice) {
          const real = desc.get!.call(this) as GPUSupportedLimits;
          return new Proxy(real, {
            get: (t, k) =>
              k === 'maxComputeInvocationsPerWorkgroup'
                ? 128
                : (t as unknown as Record<PropertyKey, unknown>)[k],
          });
        },
      });
    });
    await small.goto(`${env.server.url}/demo/index.html`);
    await small.waitForSelector('body[data-state=unsupported]', { timeout: 60_000 });
    expect(await small.textContent('#banner')).toMatch(
      /limits are too small[\s\S]*maxComputeInvocationsPerWorkgroup is 128, needs at least 256/,
    );
    await small.close();
    expect(env.browser.errors).toEqual([]);
  },
  BROWSER_TEST_TIMEOUT,
);
