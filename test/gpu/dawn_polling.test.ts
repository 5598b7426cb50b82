import { afterAll, describe, expect, test } from 'vitest';
import { runGemm } from '../../src/kernels/gemm.js';
import { dawnPolling, dawnPollingStats, installDawnPolling } from '../../src/platform/node.js';
import { isBindingTick } from '../../src/platform/dawn_polling.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { closeTestGpus, testGpu } from '../helpers.js';

afterAll(() => {
  installDawnPolling('polite');
  closeTestGpus();
});

describe("Dawn's wait polling", () => {
  test('only unnamed native functions count as the binding tick', () => {
    // An N-API function prints as native code and has an empty name; a Proxy over an anonymous
    // function looks the same from JS.
    expect(isBindingTick(new Proxy(function () {}, {}))).toBe(true);
    expect(isBindingTick(() => {})).toBe(false);
    expect(isBindingTick(function named() {})).toBe(false);
    expect(isBindingTick((() => {}).bind(null))).toBe(false); // named "bound "
    expect(isBindingTick(Math.max)).toBe(false); // native, named
    expect(isBindingTick(undefined)).toBe(false);
  });

  test('an unknown mode is refused, naming the function and the value', () => {
    expect(() => installDawnPolling('sleepy' as never)).toThrow(
      /installDawnPolling: mode must be 'polite' or 'spin', got/,
    );
    expect(dawnPolling()).not.toBe('sleepy');
  });

  test('other setImmediate callbacks run immediately, ahead of a 1 ms timer', async () => {
    installDawnPolling('polite');
    const order: string[] = [];
    await new Promise<void>((done) => {
      setTimeout(() => {
        order.push('timer');
        done();
      }, 1);
      setImmediate(() => order.push('immediate'));
    });
    expect(order).toEqual(['immediate', 'timer']);
  });

  test("'polite' sleeps between polls during a long wait, 'spin' does not; results are unchanged", async () => {
    const gpu = await testGpu();
    expect(dawnPolling()).toBe('polite'); // what createNodeDevice installs
    // ~80 ms or more of GPU work per wait on a CPU adapter.
    const M = 512;
    const N = 1536;
    const K = 768;
    const a = Tensor.fromData(gpu, new Float32Array(M * K).fill(0.5), [M * K]);
    const b = Tensor.fromData(gpu, new Float32Array(N * K).fill(0.25), [N * K]);
    const c = Tensor.empty(gpu, [M * N]);
    const wait = async (m: 'polite' | 'spin') => {
      installDawnPolling(m);
      const s0 = dawnPollingStats();
      const t0 = performance.now();
      runGemm({ a, b, c, M, N, K, transB: true });
      const out = await c.read();
      const ms = performance.now() - t0;
      const s1 = dawnPollingStats();
      expect(out[0]).toBeCloseTo(0.5 * 0.25 * K, 3);
      expect(out[M * N - 1]).toBeCloseTo(0.5 * 0.25 * K, 3);
      return { ms, immediate: s1.immediate - s0.immediate, deferred: s1.deferred - s0.deferred };
    };
    await wait('polite'); // compile
    const polite = await wait('polite');
    const spin = await wait('spin');
    // Polite: a 0.5 ms spin, then polls at least 0.5 ms apart.
    expect(polite.deferred).toBeGreaterThan(0);
    expect(polite.deferred).toBeLessThanOrEqual(polite.ms * 2 + 10);
    expect(polite.immediate + polite.deferred).toBeLessThan((polite.ms + 5) * 100);
    // Spin: the binding polls back to back for the whole wait.
    expect(spin.deferred).toBe(0);
    expect(spin.immediate).toBeGreaterThan(3 * (polite.immediate + polite.deferred));
    for (const t of [a, b, c]) t.dispose();
  });
});
