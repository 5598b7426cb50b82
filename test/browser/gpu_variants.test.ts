/**
 * The real-GPU kernel variants (adapter profile kind 'gpu', forced on the browser's adapter) run
 * within a browser adapter's limits and agree with Node/Dawn on the tiny fixture (forward and one
 * training step, see test/browser/parity.ts). Browsers often report WebGPU's default limits (256
 * invocations per workgroup); Dawn on lavapipe offers 1024, so only a browser adapter shows that
 * the 'gpu' tilings fit.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startParity, type ParityEnv } from './parity.js';
import { BROWSER_TEST_TIMEOUT, SETUP_TIMEOUT } from './setup.js';

let P: ParityEnv;
beforeAll(async () => {
  P = await startParity();
}, SETUP_TIMEOUT);
afterAll(async () => {
  await P?.close();
});

test(
  "the real-GPU kernel variants fit the browser adapter's limits and agree with Node/Dawn",
  async () => {
    const got = await P.runInBrowser({ kind: 'gpu' });
    expect(got.variants.gemm).toBe('tiled');
    P.expectEqualToNode(got);
    expect(P.env.browser.errors).toEqual([]);
  },
  BROWSER_TEST_TIMEOUT,
);
