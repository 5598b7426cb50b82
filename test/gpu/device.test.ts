import { afterAll, describe, expect, test } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import {
  DeviceLostError,
  GpuOutOfMemoryError,
  GpuValidationError,
  KernelCompileError,
} from '../../src/gpu/errors.js';
import { defineKernel } from '../../src/gpu/kernel.js';
import { runUnary, unaryKernel } from '../../src/kernels/elementwise.js';
import { runSumMid } from '../../src/kernels/reduce.js';
import { createNodeDevice } from '../../src/platform/node.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { closeTestGpus, testGpu } from '../helpers.js';

afterAll(closeTestGpus);

const broken = defineKernel({
  file: 'broken',
  source: `struct Params { n: u32, }
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) { y[g.x] = undefined_fn(1.0); }`,
  entry: 'main',
  storage: [['y', 'read_write']],
  uniforms: [['n', 'u32']],
});

describe('errors become exceptions naming the kernel', () => {
  test('a WGSL compile error', async () => {
    const gpu = await testGpu();
    const y = Tensor.empty(gpu, [4]);
    gpu.dispatch(broken, [y.binding()], { n: 4 }, [1]);
    const err = await gpu.sync().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KernelCompileError);
    expect((err as Error).message).toMatch(/kernel 'broken.main' failed to compile/);
    expect((err as Error).message).toMatch(/undefined_fn/);
    // The engine stays usable afterwards.
    const x = Tensor.fromData(gpu, [1, -2], [2]);
    const z = Tensor.empty(gpu, [2]);
    runUnary('relu', x, z);
    expect(Array.from(await z.read())).toEqual([1, 0]);
  });

  test('a validation error in a batch names the kernels in it', async () => {
    const gpu = await testGpu();
    const x = Tensor.fromData(gpu, [1, 2], [2]);
    // x bound both read-only and writable in one dispatch.
    gpu.dispatch(unaryKernel, [x.binding(), x.binding()], { ...zeroU(), n: 2 }, [1], { OP: 0 });
    await expect(gpu.sync()).rejects.toThrow(GpuValidationError);
    await expect(gpu.sync()).resolves.toBeUndefined();
  });

  test('wrong binding count and oversize grids are refused up front', async () => {
    const gpu = await testGpu();
    const x = Tensor.empty(gpu, [2]);
    expect(() => gpu.dispatch(unaryKernel, [x.binding()], { ...zeroU(), n: 2 }, [1])).toThrow(
      /elementwise.unary.*expected 2 storage bindings/,
    );
    expect(() =>
      gpu.dispatch(unaryKernel, [x.binding(), x.binding()], { ...zeroU(), n: 2 }, [70000]),
    ).toThrow(/exceeds 65535/);
  });

  test('an allocation over maxBufferSize says what was asked, the limit and the flag', async () => {
    const gpu = await testGpu({ profile: { maxBufferBytes: 1 << 20 } });
    let err: unknown;
    try {
      Tensor.empty(gpu, [1024, 1024]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GpuOutOfMemoryError);
    expect((err as Error).message).toMatch(/tensor \[1024, 1024\] needs 4\.0 MiB but the limit is 1\.0 MiB/);
    expect((err as Error).message).toMatch(/--batch-size/);
  });

  test('a binding over maxStorageBufferBindingSize is refused with both sizes', async () => {
    const gpu = await testGpu({ profile: { maxStorageBindingBytes: 1024 } });
    const x = Tensor.empty(gpu, [1000]);
    const y = Tensor.empty(gpu, [1000]);
    // Kernel wrappers split such tensors; the device layer itself refuses an oversize binding.
    expect(() =>
      gpu.dispatch(unaryKernel, [x.binding(), y.binding()], { ...zeroU(), n: 1000 }, [4], { OP: 0 }),
    ).toThrow(/elementwise.unary.*binding 'x' is 4000 bytes, over.*1024/);
  });
});

function zeroU(): Record<string, number> {
  const u: Record<string, number> = { n: 0, alpha: 0, beta: 0, i_off: 0, a_off: 0, b_off: 0 };
  Object.assign(u, { x_lo: 0, x_len: 0xffffffff, b_lo: 0, b_len: 0xffffffff, write_pad: 1, nd: 6 });
  for (let i = 0; i < 6; i++)
    Object.assign(u, { [`d${i}`]: 1, [`as${i}`]: 0, [`bs${i}`]: 0, [`ast${i}`]: 0, [`ae${i}`]: 1 });
  return u;
}

describe('device loss', () => {
  test('is reported with its reason and every later call throws', async () => {
    const node = await createNodeDevice();
    const gpu = new Gpu({ device: node.device, adapterInfo: node.info });
    const x = Tensor.fromData(gpu, [1, 2, 3], [3]);
    node.device.destroy();
    await node.device.lost;
    expect(gpu.lost).toBe(true);
    expect(() => Tensor.empty(gpu, [3])).toThrow(DeviceLostError);
    await expect(x.read()).rejects.toThrow(/device lost \(reason: destroyed\)/);
    gpu.destroy();
    node.close();
  });
});

describe('pool, pipelines, ordering', () => {
  test('pipelines are cached per kernel and override set', async () => {
    const gpu = await testGpu();
    const x = Tensor.fromData(gpu, [1, -1], [2]);
    const y = Tensor.empty(gpu, [2]);
    const c0 = gpu.stats().pipelinesCreated;
    runUnary('relu', x, y);
    runUnary('relu', x, y);
    expect(gpu.stats().pipelinesCreated).toBe(c0 + 1);
    runUnary('abs', x, y);
    expect(gpu.stats().pipelinesCreated).toBe(c0 + 2);
    await gpu.sync();
  });

  test("companion entries are made with the first of them, with the call's override constants", async () => {
    const gpu = await testGpu();
    const run = (R: number) => {
      const x = Tensor.zeros(gpu, [3 * R]);
      const y = Tensor.empty(gpu, [3]);
      runSumMid(x, y, 3, R, 1);
      x.dispose();
      y.dispose();
    };
    const c0 = gpu.stats().pipelinesCreated;
    run(1024); // sum_wide4 (rows of whole vec4s), with its companion sum_wide
    expect(gpu.stats().pipelinesCreated).toBe(c0 + 2);
    run(1023); // sum_wide with the same overrides (WG 8 on CPU adapters): made already
    expect(gpu.stats().pipelinesCreated).toBe(c0 + 2);
    await gpu.sync();
  });

  test('released buffers are reused and counted', async () => {
    const gpu = await testGpu();
    const s0 = gpu.stats().pool;
    const a = Tensor.empty(gpu, [1000]);
    a.dispose();
    const b = Tensor.empty(gpu, [900]);
    const s1 = gpu.stats().pool;
    expect(s1.created).toBe(s0.created + 1);
    expect(s1.reused).toBe(s0.reused + 1);
    expect(s1.liveBuffers).toBe(s0.liveBuffers + 1);
    b.dispose();
    expect(gpu.stats().pool.liveBytes).toBe(s0.liveBytes);
    gpu.trim();
    expect(gpu.stats().pool.freeBytes).toBe(0);
  });

  test('an upload waits for recorded work that reads the old contents', async () => {
    const gpu = await testGpu();
    const x = Tensor.fromData(gpu, [1, -2, 3], [3]);
    const y = Tensor.empty(gpu, [3]);
    runUnary('abs', x, y); // recorded, not yet submitted
    gpu.upload(x.buffer, 0, Float32Array.from([-7, -8, -9]));
    expect(Array.from(await y.read())).toEqual([1, 2, 3]);
    expect(Array.from(await x.read())).toEqual([-7, -8, -9]);
  });

  test('a caller-owned device survives the engine', async () => {
    const node = await createNodeDevice();
    const gpu = new Gpu({ device: node.device, adapterInfo: node.info, owned: false });
    Tensor.fromData(gpu, [1], [1]);
    gpu.destroy();
    const buf = node.device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
    expect(buf.size).toBe(16);
    buf.destroy();
    node.close();
  });
});

describe('kernel profiling (timestamp queries)', () => {
  test('device time per kernel and override set, with call counts; results stay correct', async () => {
    const gpu = await testGpu({ maxDispatchesPerSubmit: 3 });
    if (!gpu.device.features.has('timestamp-query')) {
      // The engine requests the feature whenever the adapter offers it; lavapipe and Dawn do.
      expect(() => gpu.startProfiling()).toThrow(/timestamp-query/);
      return;
    }
    const x = Tensor.fromData(
      gpu,
      Float32Array.from({ length: 1 << 16 }, (_, i) => i - 30000),
      [1 << 16],
    );
    const y = Tensor.empty(gpu, x.shape);
    const z = Tensor.empty(gpu, x.shape);
    gpu.startProfiling();
    expect(() => gpu.startProfiling()).toThrow(/already on/);
    for (let i = 0; i < 4; i++) runUnary('relu', x, y); // over two submits (3 dispatches each)
    runUnary('abs', x, z);
    const prof = await gpu.stopProfiling();
    const relu = prof.find((p) => p.kernel === 'elementwise.unary4{OP=0}');
    const abs = prof.find((p) => p.kernel === 'elementwise.unary4{OP=7}');
    expect(relu?.calls).toBe(4);
    expect(abs?.calls).toBe(1);
    expect(prof.reduce((s, p) => s + p.calls, 0)).toBe(5);
    expect(relu!.ms).toBeGreaterThan(0);
    for (let i = 1; i < prof.length; i++) expect(prof[i - 1]!.ms).toBeGreaterThanOrEqual(prof[i]!.ms);
    const yv = await y.read();
    expect(yv[0]).toBe(0);
    expect(yv[40000]).toBe(10000);
    expect((await z.read())[0]).toBe(30000);
    // Off again: dispatches are not timed, a second stop is refused.
    runUnary('relu', x, y);
    await gpu.sync();
    await expect(gpu.stopProfiling()).rejects.toThrow(/not on/);
    [x, y, z].forEach((t) => t.dispose());
  });

  test('a device without timestamp-query is refused with a message naming the feature', async () => {
    const node = await createNodeDevice();
    const real = node.device;
    const device = new Proxy(real, {
      get(t, p) {
        if (p === 'features') return new Set([...real.features].filter((f) => f !== 'timestamp-query'));
        const v = Reflect.get(t, p, t) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
    const gpu = new Gpu({ device, adapterInfo: node.info });
    expect(() => gpu.startProfiling()).toThrow(/timestamp-query feature/);
    gpu.destroy();
    node.close();
  });
});
