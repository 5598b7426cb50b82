/**
 * The public model API (src/api.ts) and the embeddable engine (src/engine.ts), in Node on Dawn:
 *  - readCheckpoint tells .pth from safetensors by content, keeps only model tensors of a
 *    safetensors file (noted), reads a stored config (plain, `{config}` or the trainer's
 *    `{model}`), and names the file in errors;
 *  - configForCheckpoint reads the preset off the tensor shapes (tiny fixture; a ViT-B shape set);
 *  - createSamLst from bytes equals SamLST.fromCheckpoint; without weights it is seeded;
 *  - prepareSlice is SAM-LST's preprocessing (applyAugmentation without augmentation);
 *  - segment = eval-mode, no-gradient forward and restores the training flag;
 *  - SamLstTrainer steps lower the loss on a fixed batch and hold memory steady;
 *  - the engine on a caller's device: limit checks, fromBuffer wraps without copying or freeing,
 *    flush() lets the caller's own commands read engine buffers, dispose() keeps the device alive.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  AdapterLimitsError,
  argmaxClasses,
  CheckpointError,
  configForCheckpoint,
  createEngine,
  createSamLst,
  Engine,
  limitProblems,
  noGrad,
  phantomSlice,
  prepareSlice,
  readCheckpoint,
  REQUIRED_LIMITS,
  SamLST,
  SamLstConfig,
  SamLstTrainer,
  segment,
} from '../../src/index.js';
import { applyAugmentation } from '../../src/data/augment.js';
import { writeSafetensors, type StWriteEntry } from '../../src/io/safetensors.js';
import { createNodeDevice, type NodeDevice } from '../../src/platform/node.js';
import type { HostTensor } from '../../src/tensor/host.js';
import { closeTestGpus, fixturesDir, testGpu, tinyCase } from '../helpers.js';

const pthBytes = new Uint8Array(readFileSync(join(fixturesDir, 'tiny_sam_lst.pth')));
const fx = tinyCase();

let engine: Engine;
beforeAll(async () => {
  engine = new Engine(await testGpu());
});
afterAll(() => {
  engine.dispose();
  closeTestGpus();
});

function safetensorsOf(sd: ReadonlyMap<string, HostTensor>, meta?: Record<string, string>): Uint8Array {
  const entries = new Map<string, StWriteEntry>();
  for (const [k, t] of sd)
    entries.set(k, {
      dtype: t.data instanceof Int32Array ? 'I32' : 'F32',
      shape: [...t.shape],
      data: t.data,
    });
  return writeSafetensors(entries, meta);
}

describe('checkpoints from bytes', () => {
  test('.pth and safetensors are told apart by content; a stored config is read', () => {
    const pth = readCheckpoint(pthBytes.buffer.slice(0) as ArrayBuffer, 'tiny_sam_lst.pth');
    expect(pth.format).toBe('pth');
    expect(pth.config).toBeNull();
    expect(pth.tensors.size).toBeGreaterThan(100);

    const tiny = SamLstConfig.tiny();
    const withJunk = new Map(pth.tensors);
    withJunk.set('optim.step', { shape: [1], dtype: 'i32', data: Int32Array.of(3) });
    const forms = {
      plain: JSON.stringify(tiny.toJson()),
      wrapped: JSON.stringify({ config: tiny.toJson() }),
      trainer: JSON.stringify({ preset: 'x', batchSize: 2, model: tiny.toJson() }),
    };
    for (const [form, json] of Object.entries(forms)) {
      const ck = readCheckpoint(safetensorsOf(withJunk, { config: json }), `${form}.safetensors`);
      expect(ck.format, form).toBe('safetensors');
      expect(ck.config?.toJson(), form).toEqual(tiny.toJson());
      expect(ck.tensors.has('optim.step')).toBe(false);
      expect(ck.notes.join(' ')).toMatch(/ignored 1 non-model tensors \(optim\.step\)/);
      expect(configForCheckpoint(ck)).toBe(ck.config);
    }
    const st = readCheckpoint(safetensorsOf(pth.tensors), 'plain.safetensors');
    expect(st.config).toBeNull();
    expect([...st.tensors.keys()].sort()).toEqual([...pth.tensors.keys()].sort());
  });

  test('bad bytes name the file', () => {
    expect(() => readCheckpoint(new TextEncoder().encode('hello world, not a model'), 'notes.txt')).toThrow(
      /notes\.txt: neither a PyTorch checkpoint \(zip or pickle\) nor a safetensors file \(first bytes 68 65 6c 6c\)/,
    );
    expect(() => readCheckpoint(new Uint8Array(3), 'tiny.bin')).toThrow(CheckpointError);
    const cut = pthBytes.subarray(0, 5000);
    expect(() => readCheckpoint(cut, 'cut.pth')).toThrow(/cut\.pth/);
    const bad = safetensorsOf(new Map(), { config: '{"img_size": 96, "bogus": 1}' });
    expect(() => readCheckpoint(bad, 'bad.safetensors')).toThrow(
      /bad\.safetensors metadata: config: unknown key 'bogus'/,
    );
  });

  test('the configuration is read off the tensor shapes', () => {
    const ck = readCheckpoint(pthBytes, 'tiny_sam_lst.pth');
    expect(configForCheckpoint(ck).toJson()).toEqual(SamLstConfig.tiny().toJson());
    // The shapes that identify ViT-B at 224 px with 4 classes (values irrelevant).
    const z = (shape: number[]): HostTensor => ({
      shape,
      dtype: 'f32',
      data: new Float32Array(shape.reduce((a, b) => a * b, 1)),
    });
    const vit = new Map<string, HostTensor>([
      ['sam.image_encoder.pos_embed', z([1, 14, 14, 768])],
      ['sam.image_encoder.patch_embed.proj.weight', z([768, 3, 16, 16])],
      ['sam.image_encoder.neck.0.weight', z([256, 768, 1, 1])],
      ['CNN_encoder.conv1.weight', z([64, 3, 7, 7])],
      ['sam.mask_decoder.mask_tokens.weight', z([5, 256])],
      ...Array.from(
        { length: 12 },
        (_, i) => [`sam.image_encoder.blocks.${i}.norm1.weight`, z([768])] as const,
      ),
    ]);
    expect(configForCheckpoint(vit, 'vit.pth').toJson()).toEqual(SamLstConfig.vitB(224, 4).toJson());
    vit.delete('sam.image_encoder.blocks.11.norm1.weight');
    expect(() => configForCheckpoint(vit, 'vit.pth')).toThrow(
      /vit\.pth: no configuration is stored with it and its shapes \(encoder width 768, depth 11, .*match no preset/,
    );
    expect(() => configForCheckpoint(new Map(), 'empty.pth')).toThrow(/empty\.pth: not a SAM-LST checkpoint/);
  });
});

describe('model', () => {
  test('createSamLst from bytes equals SamLST.fromCheckpoint; random init is seeded', async () => {
    const a = createSamLst(engine, { checkpoint: pthBytes, checkpointName: 'tiny_sam_lst.pth' });
    const b = SamLST.fromCheckpoint(engine.gpu, SamLstConfig.tiny(), readCheckpoint(pthBytes).tensors);
    expect(a.cfg.toJson()).toEqual(SamLstConfig.tiny().toJson());
    const pa = new Map(a.namedParameters());
    for (const [n, t] of b.namedParameters().slice(0, 20))
      expect(await pa.get(n)!.read(), n).toEqual(await t.read());
    a.dispose();
    b.dispose();
    const r1 = createSamLst(engine, { config: 'tiny', seed: 7 });
    const r2 = createSamLst(engine, { config: 'tiny', seed: 7 });
    const w1 = r1.CNN_encoder.conv1.weight;
    expect(await w1.read()).toEqual(await r2.CNN_encoder.conv1.weight.read());
    r1.dispose();
    r2.dispose();
    expect(() =>
      createSamLst(engine, { config: 'vitB', checkpoint: pthBytes, checkpointName: 'tiny_sam_lst.pth' }),
    ).toThrow(/tiny_sam_lst\.pth/);
  });

  test('prepareSlice is SAM-LST preprocessing; segment is an eval-mode forward', async () => {
    const model = createSamLst(engine, { checkpoint: pthBytes });
    const s = phantomSlice(2, 0.5, 130, 120);
    const input = prepareSlice(engine, model, { h: s.h, w: s.w, image: s.image, label: s.label });
    const ref = applyAugmentation(s.image, s.label, s.h, s.w, { kind: 'none' }, 96);
    expect(input.image.shape).toEqual([1, 3, 96, 96]);
    const img = await input.image.readFloat();
    for (let c = 0; c < 3; c++) expect(img.subarray(c * 96 * 96, (c + 1) * 96 * 96)).toEqual(ref.image);
    expect(input.lowResLabels!.shape).toEqual([1, 24, 24]);
    expect(await input.lowResLabels!.read()).toEqual(ref.lowResLabel);
    expect(input.label).toEqual(ref.label);
    const noLabel = prepareSlice(engine, model.cfg, { h: s.h, w: s.w, image: s.image });
    expect(noLabel.lowResLabels).toBeNull();
    expect(await noLabel.image.readFloat()).toEqual(img);
    expect(() => prepareSlice(engine, model, { h: 10, w: 10, image: new Float32Array(99) })).toThrow(
      /prepareSlice: image has 99 values, expected 10x10/,
    );

    model.train();
    const out = segment(model, input.image);
    expect(model.training).toBe(true);
    expect(out.masks.shape).toEqual([1, 9, 96, 96]);
    expect(out.masks.requiresGrad || out.masks.gradFn !== null).toBe(false);
    model.eval();
    const ref2 = noGrad(() => model.forward(input.image));
    expect(await out.masks.read()).toEqual(await ref2.masks.read());
    const cls = argmaxClasses(await out.masks.readFloat(), out.masks.shape);
    expect(cls.length).toBe(96 * 96);
    for (const t of [
      ...Object.values(out),
      ...Object.values(ref2),
      input.image,
      input.lowResLabels!,
      noLabel.image,
    ])
      t.dispose();
    model.dispose();
  });

  test('SamLstTrainer lowers the loss on a fixed batch and holds memory steady', async () => {
    const model = createSamLst(engine, { checkpoint: pthBytes });
    const image = engine.tensor(fx.f32('input.image'), [2, 3, 96, 96]);
    const labels = engine.tensor(fx.get('input.low_res_label').data, [2, 24, 24]);
    const trainer = new SamLstTrainer(model, { lr: 1e-3 });
    const losses: number[] = [];
    const live: number[] = [];
    for (let i = 0; i < 4; i++) {
      losses.push(await trainer.trainStep(image, labels));
      live.push(engine.stats().pool.liveBytes);
    }
    expect(trainer.step).toBe(4);
    // The first step matches the oracle's loss on this batch.
    expect(losses[0]).toBeCloseTo(fx.f32('loss.total')[0] as number, 4);
    expect(losses[3]!).toBeLessThan(losses[0]!);
    expect(live[3]).toBe(live[1]);
    trainer.dispose();
    for (const t of [image, labels, model]) t.dispose();
  });
});

describe('engine on a caller-owned device', () => {
  let nd: NodeDevice;
  beforeAll(async () => {
    nd = await createNodeDevice();
  });
  afterAll(() => nd.close());

  test('limits below the kernels’ needs are refused, naming each limit', () => {
    expect(limitProblems(nd.device.limits)).toEqual([]);
    const small = {
      ...REQUIRED_LIMITS,
      maxComputeInvocationsPerWorkgroup: 128,
      maxStorageBuffersPerShaderStage: 4,
    };
    expect(limitProblems(small as unknown as GPUSupportedLimits)).toEqual([
      'maxComputeInvocationsPerWorkgroup is 128, needs at least 256',
      'maxStorageBuffersPerShaderStage is 4, needs at least 8',
    ]);
    const fake = { limits: small } as unknown as GPUDevice;
    return expect(createEngine({ device: fake })).rejects.toThrow(AdapterLimitsError);
  });

  test('fromBuffer wraps the app buffer; flush lets the app read engine buffers; dispose keeps the device', async () => {
    const device = nd.device;
    const e = await createEngine({ device, adapterInfo: nd.info });
    const model = createSamLst(e, { checkpoint: pthBytes });
    const S = 96;
    const s = phantomSlice(4, 0.47, S);
    const host = new Float32Array(3 * S * S);
    for (let c = 0; c < 3; c++) host.set(s.image, c * S * S);
    const appBuf = device.createBuffer({
      size: host.byteLength,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
    });
    device.queue.writeBuffer(appBuf, 0, host);
    const image = e.fromBuffer(appBuf, [1, 3, S, S]);
    expect(image.buffer).toBe(appBuf);
    const out = segment(model, image);
    e.flush();
    // The app's own command buffer reads the engine's output buffer directly.
    const bytes = out.masks.bytes;
    const staging = device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(out.masks.buffer, 0, staging, 0, bytes);
    device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const viaApp = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    expect(viaApp).toEqual(await out.masks.readFloat());

    image.dispose();
    model.dispose();
    for (const t of Object.values(out)) t.dispose();
    e.dispose();
    // The device and the app's buffer outlive the engine.
    device.pushErrorScope('validation');
    const check = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc2 = device.createCommandEncoder();
    enc2.copyBufferToBuffer(appBuf, 0, check, 0, 16);
    device.queue.submit([enc2.finish()]);
    expect(await device.popErrorScope()).toBeNull();
    await check.mapAsync(GPUMapMode.READ);
    expect(Array.from(new Float32Array(check.getMappedRange().slice(0)))).toEqual(
      Array.from(host.subarray(0, 4)),
    );
    check.unmap();
    appBuf.destroy();
  });
});
