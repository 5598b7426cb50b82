/**
 * examples/embed in Chromium: the page owns its GPUDevice, runs SAM-LST through the engine on it
 * and draws the predicted organ mask with its own render pipeline from the engine's output buffer.
 *  - the screenshot equals the picture computed from Node/Dawn's logits for the same input and
 *    weights (argmax per pixel, the example's overlay colours); a pixel may differ only where the
 *    two best logits are within the float32 tolerance of each other (a near-tie argmax flip);
 *  - no GPUBuffer is ever mapped on the page (no readback between inference and drawing);
 *  - engine.dispose() leaves the app's device alive and the app's own buffer (wrapped as the model
 *    input with engine.fromBuffer) intact;
 *  - nothing is logged as a console error.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decode as decodePng } from 'fast-png';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ALPHA, SCALE, SIZE, overlayColor, sceneInput, sceneSlice } from '../../examples/embed/scene.js';
import { Engine } from '../../src/engine.js';
import { argmaxClasses, createSamLst, segment } from '../../src/index.js';
import { tolerance, type ManifestEntry } from '../../src/train/parity.js';
import { closeTestGpus, fixturesDir, loadJson, testGpu } from '../helpers.js';
import { BROWSER_TEST_TIMEOUT, SETUP_TIMEOUT, startWebEnv, type WebEnv } from './setup.js';

const manifest = loadJson('tiny_case.json') as { tensors: Record<string, ManifestEntry> };

let env: WebEnv;
let nodeEngine: Engine;

beforeAll(async () => {
  env = await startWebEnv();
  nodeEngine = new Engine(await testGpu());
}, SETUP_TIMEOUT);

afterAll(async () => {
  await env?.close();
  nodeEngine?.dispose();
  closeTestGpus();
});

interface EmbedGlobals {
  mapAsyncCalls: number;
  samlstEmbed: { device: GPUDevice; engine: { dispose(): void }; imageBuffer: GPUBuffer };
}

test(
  'the embed example draws the predicted mask from the engine buffer on its own device',
  async () => {
    // The expected picture: Node's logits for the same input, argmax, the example's colours.
    const model = createSamLst(nodeEngine, {
      config: 'tiny',
      checkpoint: new Uint8Array(readFileSync(join(fixturesDir, 'tiny_sam_lst.pth'))),
    });
    const image = nodeEngine.tensor(sceneInput(), [1, 3, SIZE, SIZE]);
    const out = segment(model, image);
    const logits = await out.masks.readFloat();
    const C = out.masks.shape[1]!;
    for (const t of [image, out.masks, out.lowResLogits, out.iouPred, model]) t.dispose();
    const cls = argmaxClasses(logits, [1, C, SIZE, SIZE]);
    const grey = sceneSlice();
    const maskTol = 2 * tolerance('eval.masks', manifest.tensors['eval.masks']!).atol;

    const page = await env.browser.page();
    await page.addInitScript(() => {
      const w = window as unknown as EmbedGlobals;
      w.mapAsyncCalls = 0;
      const orig = GPUBuffer.prototype.mapAsync;
      GPUBuffer.prototype.mapAsync = function (...args: Parameters<GPUBuffer['mapAsync']>) {
        w.mapAsyncCalls++;
        return orig.apply(this, args);
      };
    });
    const t0 = performance.now();
    await page.goto(`${env.server.url}/examples/embed/index.html`);
    await page.waitForSelector('body[data-state]', { timeout: 120_000 });
    const state = await page.getAttribute('body', 'data-state');
    const statusText = (await page.textContent('#status')) ?? '';
    expect(state, statusText).toBe('done');
    console.log(`embed example: page done in ${(performance.now() - t0).toFixed(0)} ms; ${statusText}`);
    expect(await page.evaluate(() => (window as unknown as EmbedGlobals).mapAsyncCalls)).toBe(0);

    // The canvas's pixels on screen (CSS size = canvas size, device scale 1). Block centres are
    // sampled, so a sub-pixel layout offset cannot move a sample into the neighbouring block.
    const box = await page.locator('#view').boundingBox();
    expect(box && [box.width, box.height]).toEqual([SIZE * SCALE, SIZE * SCALE]);
    const shot = decodePng(
      await page.screenshot({
        clip: { x: Math.round(box!.x), y: Math.round(box!.y), width: SIZE * SCALE, height: SIZE * SCALE },
      }),
    );
    const ch = shot.channels;
    let exact = 0;
    let nearTie = 0;
    const wrong: string[] = [];
    const drawn = new Set<number>();
    for (let y = 0; y < SIZE; y++)
      for (let x = 0; x < SIZE; x++) {
        const p = y * SIZE + x;
        const o = ((y * SCALE + SCALE / 2) * shot.width + x * SCALE + SCALE / 2) * ch;
        const rgb = [shot.data[o]!, shot.data[o + 1]!, shot.data[o + 2]!];
        const looksLike = (c: number) =>
          overlayColor(grey[p]!, c).every((v, i) => Math.abs(v - rgb[i]!) <= 2);
        if (looksLike(cls[p]!)) {
          exact++;
          drawn.add(cls[p]!);
          continue;
        }
        const seen = [...Array(C).keys()].find(looksLike);
        const at = (c: number) => logits[c * SIZE * SIZE + p]!;
        if (seen !== undefined && Math.abs(at(seen) - at(cls[p]!)) <= maskTol) nearTie++;
        else
          wrong.push(
            `(${x}, ${y}): rgb ${rgb.join(',')}, expected class ${cls[p]} ${overlayColor(grey[p]!, cls[p]!).join(',')}`,
          );
      }
    console.log(
      `embed overlay: ${exact} of ${SIZE * SIZE} pixels as expected, ${nearTie} argmax near-ties; ` +
        `classes drawn: ${[...drawn].sort().join(', ')}`,
    );
    expect(wrong.slice(0, 5), `${wrong.length} pixels differ`).toEqual([]);
    expect(drawn.size).toBeGreaterThan(1);
    expect(ALPHA).toBeGreaterThan(0);

    // engine.dispose() frees only the engine's own buffers: the app's device stays usable and the
    // app's buffer (the model input, wrapped with engine.fromBuffer) keeps its contents.
    const after = await page.evaluate(async () => {
      const { device, engine, imageBuffer } = (window as unknown as EmbedGlobals).samlstEmbed;
      let lost = false;
      void device.lost.then(() => (lost = true));
      engine.dispose();
      device.pushErrorScope('validation');
      const staging = device.createBuffer({
        size: 16,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      const enc = device.createCommandEncoder();
      enc.copyBufferToBuffer(imageBuffer, 0, staging, 0, 16);
      device.queue.submit([enc.finish()]);
      const err = await device.popErrorScope();
      await staging.mapAsync(GPUMapMode.READ);
      const head = Array.from(new Float32Array(staging.getMappedRange().slice(0)));
      staging.unmap();
      await new Promise((r) => setTimeout(r, 100));
      return { lost, error: err?.message ?? null, head };
    });
    expect(after).toEqual({ lost: false, error: null, head: Array.from(sceneInput().subarray(0, 4)) });
    await page.close();
    expect(env.server.missing).toEqual([]);
    expect(env.browser.errors).toEqual([]);
  },
  BROWSER_TEST_TIMEOUT,
);
