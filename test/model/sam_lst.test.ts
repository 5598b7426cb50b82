/**
 * SamLST behaviour beyond the oracle numbers (test/model/parity.test.ts has those):
 *  - configuration: presets, the oracle's to_dict() round trip, validation messages;
 *  - wrong inputs give errors naming the module and the shapes;
 *  - forwardFromEmbedding(image, encode(image)) equals forward(image);
 *  - memory hygiene: a training step inside tidy() leaves the pool's live bytes unchanged from step
 *    to step, creates no pipeline and no pool buffer after the first steps, and lowers the loss;
 *  - BatchNorm num_batches_tracked counts train-mode forwards only, like PyTorch.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { noGrad } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/device.js';
import { readPth } from '../../src/io/pth.js';
import { ConfigError, SamLstConfig } from '../../src/nn/config.js';
import type { BatchNorm2d } from '../../src/nn/layers.js';
import { SamLST } from '../../src/nn/sam_lst.js';
import { AdamW, SAM_LST_ADAMW } from '../../src/optim/adamw.js';
import { tidy } from '../../src/tensor/scope.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { samLstTrainStep } from '../../src/train/parity.js';
import { closeTestGpus, fixturesDir, testGpu, tinyCase } from '../helpers.js';

const fx = tinyCase();
const tinyCkpt = readPth(
  new Uint8Array(readFileSync(join(fixturesDir, 'tiny_sam_lst.pth'))),
  'tiny_sam_lst.pth',
);

let gpu: Gpu;
let model: SamLST;
let image: Tensor;
let labels: Tensor;
beforeAll(async () => {
  gpu = await testGpu();
  model = SamLST.fromCheckpoint(gpu, SamLstConfig.tiny(), tinyCkpt);
  image = Tensor.fromHost(gpu, fx.get('input.image')).keep();
  labels = Tensor.fromHost(gpu, fx.get('input.low_res_label')).keep();
});
afterAll(() => {
  image.dispose();
  labels.dispose();
  model.dispose();
  closeTestGpus();
});

describe('SamLstConfig', () => {
  test('presets match the oracle and the manifest config round-trips', () => {
    const j = fx.manifest.config as Record<string, unknown>;
    expect(SamLstConfig.fromJson(j).toJson()).toEqual(j);
    expect(SamLstConfig.tiny().toJson()).toEqual(j);
    const b = SamLstConfig.vitB();
    expect([b.imgSize, b.encDim, b.encDepth, b.encHeads, b.windowSize, b.grid, b.numMaskTokens]).toEqual([
      512, 768, 12, 12, 14, 32, 9,
    ]);
    expect(b.globalAttnIndexes).toEqual([2, 5, 8, 11]);
    expect(SamLstConfig.vitB(224).grid).toBe(14);
  });

  test('invalid configurations are refused with the reason', () => {
    expect(() => new SamLstConfig({ imgSize: 500 })).toThrow(/imgSize 500 is not a multiple of patchSize 16/);
    expect(() => new SamLstConfig({ cnnWidth: 32 })).toThrow(/4 \* cnnWidth = 128 must equal promptDim 256/);
    expect(() => new SamLstConfig({ encHeads: 7 })).toThrow(ConfigError);
    expect(() => new SamLstConfig({ globalAttnIndexes: [12] })).toThrow(/index 12 is outside blocks 0\.\.11/);
    expect(() => SamLstConfig.fromJson({ img_size: 96, bogus: 1 })).toThrow(/unknown key 'bogus'/);
    expect(() => SamLstConfig.fromJson({ ...(fx.manifest.config as object), grid: 7 })).toThrow(/grid 7/);
  });
});

describe('input checks name the module and the shapes', () => {
  const t = (shape: number[]) => Tensor.zeros(gpu, shape);
  test.each([
    [
      [2, 3, 100, 100],
      /SamLST\.forward: image \[2, 3, 100, 100\] is 100x100, not a multiple of the patch size 16/,
    ],
    [[2, 1, 96, 96], /SamLST\.forward: image \[2, 1, 96, 96\] has 1 channels, expected 3/],
    [
      [2, 3, 112, 112],
      /SamLST\.forward: image \[2, 3, 112, 112\] is 112x112 but the model is built for img_size 96/,
    ],
    [[3, 96, 96], /SamLST\.forward: image must be an f32 NCHW tensor \(B, 3, 96, 96\), got f32\[3, 96, 96\]/],
  ])('forward(%j)', (shape, re) => {
    const x = t(shape);
    expect(() => model.forward(x)).toThrow(re);
    x.dispose();
  });

  test('parts and forwardFromEmbedding', () => {
    const x = t([1, 3, 96, 96]);
    const e = t([1, 32, 5, 5]);
    expect(() => model.forwardFromEmbedding(x, e)).toThrow(
      /SamLST\.forwardFromEmbedding: embedding \[1, 32, 5, 5\] must be \[1, 32, 6, 6\] for image \[1, 3, 96, 96\]/,
    );
    const small = t([1, 3, 64, 64]);
    expect(() => model.sam.image_encoder.forward(small)).toThrow(
      /ImageEncoderViT: input \[1, 3, 64, 64\] must be \(B, 3, 96, 96\)/,
    );
    const gray = t([1, 1, 96, 96]);
    expect(() => model.CNN_encoder.forward(gray)).toThrow(
      /ResNet18: input must be \(B, 3, H, W\), got \[1, 1, 96, 96\]/,
    );
    expect(() => model.CNN_encoder.bn1.forward(gray)).toThrow(
      /BatchNorm2d\(8\): input must be \(N, 8, H, W\), got \[1, 1, 96, 96\]/,
    );
    const pe = model.sam.prompt_encoder.densePe();
    expect(() => model.sam.mask_decoder.forward(e, pe, pe)).toThrow(
      /MaskDecoder: image embeddings \[1, 32, 5, 5\] must be \(B, 32, 6, 6\)/,
    );
    for (const z of [x, e, small, gray]) z.dispose();
  });
});

describe('forward paths', () => {
  test('forwardFromEmbedding(image, encode(image)) equals forward(image)', async () => {
    model.eval();
    const [a, b] = tidy(() =>
      noGrad(() => {
        const emb = model.encode(image);
        expect(emb.shape).toEqual([2, 32, 6, 6]);
        return [model.forward(image).lowResLogits, model.forwardFromEmbedding(image, emb).lowResLogits];
      }),
    );
    const [x, y] = [await a!.readFloat(), await b!.readFloat()];
    expect(x.length).toBe(2 * 9 * 24 * 24);
    expect(Array.from(y)).toEqual(Array.from(x));
    a!.dispose();
    b!.dispose();
    model.train();
  });

  test('num_batches_tracked counts train-mode forwards only', async () => {
    const bn = model.CNN_encoder.layer2.at(0).bn1 as BatchNorm2d;
    const key = 'CNN_encoder.layer2.0.bn1.num_batches_tracked';
    const n0 = bn.numBatchesTracked;
    expect((await model.stateDict().get(key)!.read())[0]).toBe(n0);
    model.eval();
    tidy(() => {
      noGrad(() => model.forward(image));
    });
    expect(bn.numBatchesTracked).toBe(n0);
    model.train();
    tidy(() => {
      noGrad(() => model.forward(image));
    });
    expect(bn.numBatchesTracked).toBe(n0 + 1);
    const st = model.stateDict().get(key)!;
    expect(st.dtype).toBe('i32');
    expect(st.shape).toEqual([]);
    expect((await st.read())[0]).toBe(n0 + 1);
    // layer4 is never run.
    expect((model.CNN_encoder.layer4.at(0).bn1 as BatchNorm2d).numBatchesTracked).toBe(0);
  });
});

describe('memory hygiene of a training step', () => {
  test('live pool bytes stay put, no pipelines or buffers are created after warm-up, loss goes down', async () => {
    const opt = new AdamW(
      model.trainableParameters().map(([name, tensor]) => ({ name, tensor })),
      SAM_LST_ADAMW,
    );
    const losses: number[] = [];
    const stats = [];
    for (let s = 0; s < 5; s++) {
      const l = samLstTrainStep(model, opt, image, labels);
      losses.push((await l.readFloat())[0]!);
      l.dispose();
      await gpu.sync();
      stats.push(gpu.stats());
    }
    const [s0, s1] = [stats[0]!, stats[1]!];
    for (const s of stats.slice(1)) {
      // Between steps only the parameters, their .grad and the AdamW state are alive.
      expect(s.pool.liveBytes).toBe(s0.pool.liveBytes);
      expect(s.pool.liveBuffers).toBe(s0.pool.liveBuffers);
      expect(s.pipelinesCreated).toBe(s0.pipelinesCreated);
    }
    for (const s of stats.slice(2)) expect(s.pool.created).toBe(s1.pool.created);
    const params = model.namedParameters().reduce((n, [, p]) => n + p.bytes, 0);
    const trainable = model.trainableParameters().reduce((n, [, p]) => n + p.bytes, 0);
    console.log(
      `train step: live ${s0.pool.liveBytes} B (params ${params} B, trainable ${trainable} B), ` +
        `${s1.dispatches - s0.dispatches} dispatches/step, losses ${losses.map((l) => l.toFixed(5)).join(' ')}`,
    );
    for (let i = 1; i < losses.length; i++) expect(losses[i]!).toBeLessThan(losses[i - 1]!);
    opt.dispose();
    for (const [, p] of model.namedParameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  });
});
