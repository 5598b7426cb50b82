/**
 * The engine in a real browser (Debian's Chromium, headless, WebGPU; on this machine the
 * SwiftShader adapter) computes what it computes in Node on Dawn — the tiny SAM-LST fixture:
 * forward and one training step through the public API (see test/browser/parity.ts). Kernels built
 * for 8-lane subgroups are not picked on narrower subgroups (SwiftShader: 4 lanes); the page logs
 * no console error and fetches nothing that is missing.
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
  'the tiny fixture computation in Chromium equals Node/Dawn (forward and one training step)',
  async () => {
    const got = await P.runInBrowser();
    const p = got.profile;
    // Kernels designed around 8-lane subgroups (broadcast within 8 lanes) must not run on narrower
    // ones: forced onto SwiftShader's 4-lane subgroups they give wrong numbers without any error.
    if (p.kind === 'cpu' && (!p.subgroups || Number(p.subgroupMinSize) < 8))
      expect(got.variants).toEqual({ gemm: 'plain', attention: 'plain', conv2d: 'plain' });
    P.expectEqualToNode(got);
    expect(P.env.server.missing).toEqual([]);
    expect(P.env.browser.errors).toEqual([]);
  },
  BROWSER_TEST_TIMEOUT,
);
