/**
 * Shape, dtype and label-range validation at every public entry point (src/engine.ts, src/api.ts,
 * Tensor creation, SamLstConfig, src/app/load_model.ts, src/app/predict.ts, src/eval/inference.ts).
 *
 *  - one case per check, each asserting the message names the function, the argument, what was
 *    expected and what was got;
 *  - behaviour checks where a bad input used to do damage silently: out-of-range labels or a NaN
 *    input in SamLstTrainer.trainStep leave the weights and the optimizer untouched; a NaN voxel in
 *    predictVolume is refused instead of turning its slice into background;
 *  - a table-driven sweep that calls every public function with wrong-typed arguments (one
 *    position at a time, the others valid) and requires one of the project's error classes with the
 *    function named in the message: never a TypeError / RangeError from deep inside.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  argmaxClasses,
  configForCheckpoint,
  createEngine,
  createSamLst,
  Engine,
  prepareSlice,
  readCheckpoint,
  SamLstConfig,
  samLstConfig,
  SamLstTrainer,
  segment,
  type SamLST,
} from '../../src/index.js';
import { TrainStepError } from '../../src/api.js';
import {
  adaptToImgSize,
  loadModel,
  loadModelFromCheckpoint,
  readModelCheckpoint,
  resolveModelConfig,
  variantForward,
} from '../../src/app/load_model.js';
import { encodePrediction, predictNifti, writePredictionOverlays } from '../../src/app/predict.js';
import {
  argmaxChannels,
  inferVolume,
  modelPredictor,
  predictVolume,
  resampleLabelsBack,
  resampleSliceForNetwork,
  type SlicePredictor,
} from '../../src/eval/inference.js';
import type { Gpu } from '../../src/gpu/device.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { ArgumentError } from '../../src/util/args.js';
import { ShapeError } from '../../src/util/shape.js';
import { closeTestGpus, fixturesDir, testGpu } from '../helpers.js';
import { tinyModel } from '../train/util.js';

const tinyPth = join(fixturesDir, 'tiny_sam_lst.pth');

let gpu: Gpu;
let engine: Engine;
let model: SamLST;
/** Another engine on a second device (tensors from it must be refused by the first one's model). */
let other: Engine;
const S = 64;
const L = S / 4;

beforeAll(async () => {
  gpu = await testGpu();
  engine = new Engine(gpu);
  other = new Engine(await testGpu());
  model = createSamLst(engine, { config: tinyModel(), seed: 3 });
});
afterAll(() => {
  model.dispose();
  engine.dispose();
  other.dispose();
  closeTestGpus();
});

const image = (b = 1, c = 3, s = S) => engine.tensor(new Float32Array(b * c * s * s).fill(0.5), [b, c, s, s]);
const labels = (b = 1, fill = 1) => engine.tensor(new Int32Array(b * L * L).fill(fill), [b, L, L]);
const slice = (over: Record<string, unknown> = {}) => ({
  h: S,
  w: S,
  image: new Float32Array(S * S).fill(0.25),
  label: new Int32Array(S * S),
  ...over,
});
const bandPredictor = (size = 8): SlicePredictor => ({
  size,
  inChans: 3,
  channels: 9,
  run: (x, b) => Promise.resolve(new Float32Array(b * 9 * size * size)),
});

/** Runs `fn` (sync or async) and returns what it threw or rejected with. */
async function caught(fn: () => unknown): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error, but the call succeeded');
}

async function expectError(fn: () => unknown, cls: new (...a: never[]) => Error, msg: RegExp): Promise<void> {
  const e = await caught(fn);
  expect(e, `${e.name}: ${e.message}`).toBeInstanceOf(cls);
  expect(e.message).toMatch(msg);
}

// ------------------------------------------------------------------------------ engine and tensors

describe('engine and tensor creation', () => {
  test('Engine and createEngine refuse what is not a Gpu / GPUDevice', async () => {
    await expectError(
      () => new Engine({} as Gpu),
      ArgumentError,
      /new Engine: gpu must be a Gpu .*got an object \{\}/,
    );
    await expectError(
      () => createEngine('gpu' as never),
      ArgumentError,
      /createEngine: options must be an object .*got string "gpu"/,
    );
    await expectError(
      () => createEngine({ device: 42 as never }),
      ArgumentError,
      /options\.device must be a GPUDevice, got number 42/,
    );
    const adapter = { limits: {}, features: new Set(), requestDevice: () => null };
    await expectError(
      () => createEngine({ device: adapter as never }),
      ArgumentError,
      /options\.device must be a GPUDevice, got a GPUAdapter \(pass await adapter\.requestDevice\(\)\)/,
    );
    await expectError(
      () => createEngine({ device: gpu.device, profile: 'cpu' as never }),
      ArgumentError,
      /options\.profile must be an object, got string "cpu"/,
    );
  });

  test('tensor data: only Float32Array, Int32Array or numbers, filling the shape', async () => {
    await expectError(
      () => engine.tensor(new Float64Array(4) as never, [4]),
      ArgumentError,
      /Engine\.tensor: data must be a Float32Array, an Int32Array or an array of numbers, got Float64Array\(4\) \(convert with Float32Array\.from/,
    );
    await expectError(
      () => engine.tensor(new Uint8Array(4) as never, [4]),
      ArgumentError,
      /got Uint8Array\(4\)/,
    );
    await expectError(
      () => engine.tensor([1, 'a'] as never, [2]),
      ArgumentError,
      /Engine\.tensor: data must hold numbers only, got string "a" at index 1/,
    );
    await expectError(
      () => engine.tensor(new Float32Array(5), [2, 3]),
      ShapeError,
      /Engine\.tensor: 5 values do not fill shape \[2, 3\] \(6 values\)/,
    );
    await expectError(
      () => Tensor.fromData(gpu, new Float32Array(5), [2, 3]),
      ShapeError,
      /^Tensor\.fromData: 5 values/,
    );
    await expectError(
      () => Tensor.fromData(gpu, new Float64Array(1) as never, [1]),
      ArgumentError,
      /^Tensor\.fromData: data must be/,
    );
  });

  test('shapes and dtypes', async () => {
    await expectError(
      () => engine.tensor(new Float32Array(2), [2, -1]),
      ArgumentError,
      /Engine\.tensor: shape must be an array of integers >= 0, got array \[2,-1\]/,
    );
    await expectError(
      () => engine.tensor(new Float32Array(2), [2.5] as never),
      ArgumentError,
      /shape must be an array of integers >= 0, got array \[2\.5\]/,
    );
    await expectError(
      () => engine.tensor(new Float32Array(2), 2 as never),
      ArgumentError,
      /shape must be .*got number 2/,
    );
    await expectError(
      () => engine.zeros([2], 'f64' as never),
      ArgumentError,
      /Engine\.zeros: dtype must be 'f32' or 'i32', got string "f64"/,
    );
    await expectError(
      () => engine.empty(['2'] as never),
      ArgumentError,
      /Engine\.empty: shape must be an array of integers >= 0, got array \["2"\]/,
    );
  });

  test('fromBuffer: a STORAGE, unmapped GPUBuffer large enough for the shape', async () => {
    const dev = gpu.device;
    await expectError(
      () => engine.fromBuffer({} as GPUBuffer, [4]),
      ArgumentError,
      /Engine\.fromBuffer: buffer must be a GPUBuffer, got an object \{\}/,
    );
    await expectError(
      () => engine.fromBuffer(new Float32Array(4) as never, [4]),
      ArgumentError,
      /buffer must be a GPUBuffer, got Float32Array\(4\)/,
    );
    const readback = dev.createBuffer({ size: 64, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    await expectError(
      () => engine.fromBuffer(readback, [4]),
      ArgumentError,
      /Engine\.fromBuffer: buffer must have STORAGE usage, got usage MAP_READ\|COPY_DST/,
    );
    const small = dev.createBuffer({ size: 64, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    await expectError(
      () => engine.fromBuffer(small, [4, 8]),
      ShapeError,
      /Engine\.fromBuffer: buffer of 64 bytes is too small for f32\[4, 8\] \(128 bytes\)/,
    );
    await expectError(
      () => engine.fromBuffer(small, [4], 'u8' as never),
      ArgumentError,
      /dtype must be 'f32' or 'i32', got string "u8"/,
    );
    const mapped = dev.createBuffer({ size: 64, usage: GPUBufferUsage.STORAGE, mappedAtCreation: true });
    await expectError(
      () => engine.fromBuffer(mapped, [4]),
      ArgumentError,
      /buffer must be unmapped, got mapState 'mapped'/,
    );
    await expectError(
      () => Tensor.fromBuffer(gpu, small, [4, 8]),
      ShapeError,
      /^Tensor\.fromBuffer: buffer of 64 bytes/,
    );
    // a buffer that fits exactly is accepted
    const t = engine.fromBuffer(small, [4, 4]);
    expect(t.shape).toEqual([4, 4]);
    t.dispose();
    for (const b of [readback, small, mapped]) b.destroy();
  });
});

// ------------------------------------------------------------------------------ configuration

describe('configuration', () => {
  test('unknown fields name the field meant; wrong types are refused', async () => {
    await expectError(
      () => new SamLstConfig({ imgsize: 128 } as never),
      Error,
      /config: unknown field 'imgsize' \(did you mean 'imgSize'\?\); known fields: imgSize, patchSize/,
    );
    await expectError(
      () => new SamLstConfig({ img_size: 128 } as never),
      Error,
      /unknown field 'img_size' \(did you mean 'imgSize'\? snake_case keys are for SamLstConfig\.fromJson\)/,
    );
    await expectError(
      () => new SamLstConfig({ imgSize: '512' } as never),
      Error,
      /config: imgSize must be a number, got string "512"/,
    );
    await expectError(
      () => new SamLstConfig({ globalAttnIndexes: 3 } as never),
      Error,
      /config: globalAttnIndexes must be an array of numbers, got number 3/,
    );
    await expectError(
      () => new SamLstConfig(null as never),
      Error,
      /config: fields must be an object of SamLstConfig fields, got null/,
    );
    // a typo used to be ignored silently (the ViT-B default was used instead)
    expect(() => samLstConfig({ numclasses: 4 } as never)).toThrow(
      /unknown field 'numclasses' \(did you mean 'numClasses'\?\)/,
    );
  });

  test.each([
    [{ imgSize: 500 }, /config: imgSize 500 is not a multiple of patchSize 16/],
    [{ imgSize: 0 }, /config: imgSize must be a positive integer, got 0/],
    [{ imgSize: -16 }, /config: imgSize must be a positive integer, got -16/],
    [{ encHeads: 7 }, /config: encHeads 7 must divide encDim 768/],
    [
      { decHeads: 3 },
      /config: decHeads 3 must divide the cross-attention dim promptDim \/ attnDownsample = 128/,
    ],
    [{ cnnWidth: 32 }, /config: ResNet layer3 width 4 \* cnnWidth = 128 must equal promptDim 256/],
    [{ globalAttnIndexes: [12] }, /config: global attention index 12 is outside blocks 0\.\.11/],
    [{ pixelStd: [1, 0, 1] }, /config: pixelStd values must be finite and non-zero/],
    [{ bnEps: NaN }, /config: bnEps must be a finite number >= 0, got NaN/],
  ])('inconsistent fields %j', (fields, msg) => {
    expect(() => new SamLstConfig(fields)).toThrow(msg);
  });

  test('samLstConfig names the presets', async () => {
    await expectError(
      () => samLstConfig('vitb' as never),
      Error,
      /samLstConfig: unknown configuration preset 'vitb' \(known: tiny, vitB\)/,
    );
    await expectError(
      () => samLstConfig(42 as never),
      Error,
      /samLstConfig: spec must be a SamLstConfig, 'tiny', 'vitB' or an object of config fields, got number 42/,
    );
  });
});

// ------------------------------------------------------------------------------ checkpoints, model

describe('checkpoints and model creation', () => {
  test('readCheckpoint / configForCheckpoint / createSamLst arguments', async () => {
    await expectError(
      () => readCheckpoint(new Float32Array(10) as never),
      ArgumentError,
      /readCheckpoint: data must be the file's bytes as a Uint8Array or an ArrayBuffer, got Float32Array\(10\) \(wrap it: new Uint8Array/,
    );
    await expectError(
      () => readCheckpoint('model.pth' as never),
      ArgumentError,
      /data must be .*got string "model\.pth"/,
    );
    await expectError(
      () => readCheckpoint(new Uint8Array(16), 42 as never),
      ArgumentError,
      /readCheckpoint: name must be a non-empty string, got number 42/,
    );
    await expectError(
      () => configForCheckpoint({} as never),
      ArgumentError,
      /configForCheckpoint: checkpoint must be a readCheckpoint\(\) result or a state_dict Map, got an object \{\}/,
    );
    await expectError(
      () => createSamLst(gpu as never),
      ArgumentError,
      /createSamLst: engine must be an Engine \(from createEngine\), got a Gpu/,
    );
    await expectError(
      () => createSamLst(engine, { seed: -1 }),
      ArgumentError,
      /createSamLst: options\.seed must be an integer >= 0, got number -1/,
    );
    await expectError(
      () => createSamLst(engine, { seed: 1.5 }),
      ArgumentError,
      /options\.seed must be an integer >= 0, got number 1\.5/,
    );
    await expectError(
      () => createSamLst(engine, { checkpoint: 'tiny.pth' as never }),
      ArgumentError,
      /createSamLst: options\.checkpoint must be a readCheckpoint\(\) result or a state_dict Map, got string "tiny\.pth"/,
    );
    await expectError(
      () => createSamLst(engine, { config: 'huge' as never }),
      Error,
      /unknown configuration preset 'huge'/,
    );
  });
});

// ------------------------------------------------------------------------------ prepareSlice

describe('prepareSlice', () => {
  test('types, sizes and finite pixels', async () => {
    await expectError(
      () => prepareSlice(engine, model, slice({ image: new Float64Array(S * S) }) as never),
      ArgumentError,
      /prepareSlice: slice\.image must be a Float32Array, got Float64Array\(4096\) \(convert with Float32Array\.from/,
    );
    await expectError(
      () => prepareSlice(engine, model, slice({ image: [0.5] }) as never),
      ArgumentError,
      /slice\.image must be a Float32Array, got array \[0\.5\]/,
    );
    await expectError(
      () => prepareSlice(engine, model, slice({ h: 0 }) as never),
      ArgumentError,
      /prepareSlice: slice\.h must be a positive integer, got number 0/,
    );
    await expectError(
      () => prepareSlice(engine, model, slice({ w: 2.5 }) as never),
      ArgumentError,
      /slice\.w must be a positive integer, got number 2\.5/,
    );
    await expectError(
      () => prepareSlice(engine, model, { h: 10, w: 10, image: new Float32Array(99) }),
      ShapeError,
      /prepareSlice: image has 99 values, expected 10x10 \(slice\.image must hold h x w = 100 values\)/,
    );
    const nan = new Float32Array(S * S).fill(0.5);
    nan[3 * S + 5] = NaN;
    await expectError(
      () => prepareSlice(engine, model, slice({ image: nan }) as never),
      ArgumentError,
      /prepareSlice: slice\.image must be finite, got NaN at row 3, column 5 \(of 4096 values\)/,
    );
    await expectError(
      () => prepareSlice(engine, {} as never, slice() as never),
      ArgumentError,
      /prepareSlice: model must be a SamLST model or a SamLstConfig, got an object \{\}/,
    );
    await expectError(
      () => prepareSlice({} as never, model, slice() as never),
      ArgumentError,
      /prepareSlice: engine must be an Engine/,
    );
  });

  test('labels: Int32Array with class ids 0..numClasses', async () => {
    await expectError(
      () => prepareSlice(engine, model, slice({ label: new Uint8Array(S * S) }) as never),
      ArgumentError,
      /prepareSlice: slice\.label must be an Int32Array, got Uint8Array\(4096\) \(convert with Int32Array\.from/,
    );
    await expectError(
      () => prepareSlice(engine, model, slice({ label: new Int32Array(5) }) as never),
      ShapeError,
      /prepareSlice: label has 5 values, expected 64x64/,
    );
    for (const [v, at] of [
      [9, 1 * S + 2],
      [-1, 0],
    ] as const) {
      const lab = new Int32Array(S * S);
      lab[at] = v;
      const e = await caught(() => prepareSlice(engine, model, slice({ label: lab }) as never));
      expect(e.name).toBe('LabelRangeError');
      expect(e.message).toMatch(
        new RegExp(
          `prepareSlice: slice\\.label must hold class ids 0\\.\\.8 \\(background 0 \\+ the model's 8 classes\\), got ${v} at row ${Math.floor(at / S)}, column ${at % S}`,
        ),
      );
    }
    // the top class id itself is fine, and so is a slice without labels
    const ok = new Int32Array(S * S).fill(8);
    const a = prepareSlice(engine, model, slice({ label: ok }) as never);
    const b = prepareSlice(engine, model, slice({ label: null }) as never);
    expect(a.lowResLabels?.shape).toEqual([1, L, L]);
    expect(b.lowResLabels).toBeNull();
    for (const x of [a, b]) {
      x.image.dispose();
      x.lowResLabels?.dispose();
    }
  });
});

// ------------------------------------------------------------------------------ segment, argmax

describe('segment and argmaxClasses', () => {
  test('the image must be f32 (B, inChans, S, S) on the model device', async () => {
    const cases: [() => Tensor, RegExp, new (...a: never[]) => Error][] = [
      [
        () => engine.tensor(new Int32Array(3 * S * S), [1, 3, S, S]),
        /segment: image must be f32 \(B, 3, 64, 64\), got i32\[1, 3, 64, 64\] \(dtype\)/,
        ArgumentError,
      ],
      [
        () => engine.tensor(new Float32Array(3 * S * S), [3, S, S]),
        /segment: image must be f32 \(B, 3, 64, 64\), got f32\[3, 64, 64\] \(rank 3\)/,
        ShapeError,
      ],
      [() => image(1, 1), /got f32\[1, 1, 64, 64\] \(1 channels instead of 3\)/, ShapeError],
      [
        () => image(1, 3, 32),
        /got f32\[1, 3, 32, 32\] \(32x32; the model's input size is 64: resize with prepareSlice\)/,
        ShapeError,
      ],
      [
        () => engine.zeros([0, 3, S, S]),
        /must be f32 \(B, 3, 64, 64\) with B >= 1, got f32\[0, 3, 64, 64\]/,
        ShapeError,
      ],
      [
        () => other.tensor(new Float32Array(3 * S * S), [1, 3, S, S]),
        /segment: image #\d+\[1, 3, 64, 64\] lives on another engine's device than the model/,
        ArgumentError,
      ],
    ];
    for (const [make, msg, cls] of cases) {
      const t = make();
      await expectError(() => segment(model, t), cls, msg);
      t.dispose();
    }
    const gone = image();
    gone.dispose();
    await expectError(
      () => segment(model, gone),
      ArgumentError,
      /segment: image #\d+\[1, 3, 64, 64\] was used after dispose\(\)/,
    );
    await expectError(
      () => segment(model, new Float32Array(3 * S * S) as never),
      ArgumentError,
      /segment: image must be a Tensor, got Float32Array\(12288\)/,
    );
    await expectError(
      () => segment({} as never, image()),
      ArgumentError,
      /segment: model must be a SamLST model/,
    );
  });

  test('argmaxClasses: Float32Array logits of the given (B, C, H, W)', async () => {
    expect([...argmaxClasses(Float32Array.from([0, 5, 1, 1, 1, 5]), [1, 3, 1, 2])]).toEqual([1, 0]);
    await expectError(
      () => argmaxClasses(new Float64Array(6) as never, [1, 3, 1, 2]),
      ArgumentError,
      /argmaxClasses: logits must be a Float32Array, got Float64Array\(6\)/,
    );
    await expectError(
      () => argmaxClasses(new Float32Array(6), [3, 1, 2]),
      ArgumentError,
      /argmaxClasses: shape must be the logits shape \(B, C, H, W\) of 4 positive integers, got array \[3,1,2\]/,
    );
    await expectError(
      () => argmaxClasses(new Float32Array(5), [1, 3, 1, 2]),
      ShapeError,
      /argmaxClasses: logits has 5 values, expected \[1, 3, 1, 2\] = 6/,
    );
  });
});

// ------------------------------------------------------------------------------ trainer

describe('SamLstTrainer', () => {
  test('argument checks name the step function and the argument', async () => {
    await expectError(
      () => new SamLstTrainer({} as never),
      ArgumentError,
      /new SamLstTrainer: model must be a SamLST model/,
    );
    const tr = new SamLstTrainer(model);
    const x = image(2);
    const cases: [() => Tensor, RegExp, new (...a: never[]) => Error][] = [
      [
        () => engine.tensor(new Float32Array(2 * L * L), [2, L, L]),
        /SamLstTrainer\.trainStep: lowResLabels must be i32 \(2, 16, 16\) \(B = the image batch, S\/4 = 16\), got f32\[2, 16, 16\] \(make class ids with an Int32Array/,
        ArgumentError,
      ],
      [
        () => engine.tensor(new Int32Array(2 * S * S), [2, S, S]),
        /lowResLabels must be i32 \(2, 16, 16\) .*got i32\[2, 64, 64\]/,
        ShapeError,
      ],
      [() => labels(1), /lowResLabels must be i32 \(2, 16, 16\) .*got i32\[1, 16, 16\]/, ShapeError],
    ];
    for (const [make, msg, cls] of cases) {
      const y = make();
      await expectError(() => tr.trainStep(x, y), cls, msg);
      await expectError(
        () => tr.stepTensor(x, y),
        cls,
        new RegExp(msg.source.replace('trainStep', 'stepTensor')),
      );
      y.dispose();
    }
    const y = labels(2);
    await expectError(
      () => tr.trainStep(x, y, NaN),
      ArgumentError,
      /SamLstTrainer\.trainStep: lr must be a finite number >= 0 \(or omitted: the optimizer default\), got number NaN/,
    );
    await expectError(
      () => tr.stepTensor(x, y, -1),
      ArgumentError,
      /SamLstTrainer\.stepTensor: lr must be .*got number -1/,
    );
    await expectError(
      () => tr.trainStep(y, y),
      ArgumentError,
      /SamLstTrainer\.trainStep: image must be f32 \(B, 3, 64, 64\), got i32\[2, 16, 16\] \(dtype\)/,
    );
    expect(tr.step).toBe(0);
    x.dispose();
    y.dispose();
    tr.dispose();
  });

  test('out-of-range labels and a NaN loss are refused before the update; the weights stay', async () => {
    const tr = new SamLstTrainer(model, { lr: 1e-2 });
    const trainable = model.trainableParameters();
    const snapshot = async () => Promise.all(trainable.map(async ([, p]) => p.read()));
    const x = image(2);
    const good = labels(2, 1);
    // one good step first, so the optimizer has moments to keep
    const l0 = await tr.trainStep(x, good);
    expect(Number.isFinite(l0)).toBe(true);
    expect(tr.step).toBe(1);
    const before = await snapshot();
    const moments = await tr.optimizer.exportState();

    const bad = new Int32Array(2 * L * L).fill(2);
    bad[5] = 9;
    bad[L * L + 7] = -3;
    const badT = engine.tensor(bad, [2, L, L]);
    const e = await caught(() => tr.trainStep(x, badT));
    expect(e.name).toBe('LabelRangeError');
    expect(e.message).toMatch(
      /SamLstTrainer\.trainStep: lowResLabels must hold class ids 0\.\.8 \(background 0 \+ the model's 8 classes\), got 2 value\(s\) outside that range; the update of step 2 was not applied/,
    );

    const nanX = engine.tensor(new Float32Array(2 * 3 * S * S).fill(NaN), [2, 3, S, S]);
    const e2 = await caught(() => tr.trainStep(nanX, good));
    expect(e2).toBeInstanceOf(TrainStepError);
    expect(e2.message).toMatch(
      /SamLstTrainer\.trainStep: the loss is NaN at step 2; the update was not applied \(the weights are those after step 1\)/,
    );
    expect((e2 as TrainStepError).step).toBe(2);

    expect(tr.step).toBe(1);
    const after = await snapshot();
    trainable.forEach(([name], i) => expect(after[i], name).toEqual(before[i]));
    const m2 = await tr.optimizer.exportState();
    expect(Object.keys(m2.params).length).toBeGreaterThan(0);
    for (const [k, st] of Object.entries(moments.params)) {
      expect(m2.params[k]!.step, k).toBe(st.step);
      expect(m2.params[k]!.m.data, k).toEqual(st.m.data);
      expect(m2.params[k]!.v.data, k).toEqual(st.v.data);
    }
    // and training continues normally afterwards
    expect(Number.isFinite(await tr.trainStep(x, good))).toBe(true);
    expect(tr.step).toBe(2);
    for (const t of [x, good, badT, nanX]) t.dispose();
    tr.dispose();
  });
});

// ------------------------------------------------------------------------------ app and eval

describe('app and eval entry points', () => {
  test('loadModel / readModelCheckpoint / variantForward', async () => {
    await expectError(
      () => loadModel(engine as never, tinyPth),
      ArgumentError,
      /loadModel: gpu must be a Gpu, got an Engine \(that is an Engine: pass engine\.gpu\)/,
    );
    await expectError(
      () => loadModel(gpu, 42 as never),
      ArgumentError,
      /loadModel: path must be a non-empty string, got number 42/,
    );
    await expectError(
      () => loadModel(gpu, tinyPth, { imgSize: '64' as never }),
      ArgumentError,
      /loadModel: options\.imgSize must be a positive integer \(a multiple of the patch size\), or null, got string "64"/,
    );
    await expectError(
      () => loadModel(gpu, tinyPth, { config: 5 as never }),
      ArgumentError,
      /loadModel: options\.config must be 'tiny', 'vitb', a JSON file path or a SamLstConfig, got number 5/,
    );
    await expectError(
      () => readModelCheckpoint(undefined as never),
      ArgumentError,
      /readModelCheckpoint: path must be a non-empty string, got undefined/,
    );
    await expectError(
      () => loadModelFromCheckpoint(gpu, { path: 'x' } as never),
      ArgumentError,
      /loadModelFromCheckpoint: checkpoint must be a readModelCheckpoint\(\) result/,
    );
    await expectError(
      () => variantForward('LST' as never),
      ArgumentError,
      /variantForward: variant must be 'lst', 'cnn-decoder', 'sam-decoder', got string "LST"/,
    );
  });

  test('predictNifti / encodePrediction / writePredictionOverlays', async () => {
    const p = bandPredictor();
    await expectError(
      () => predictNifti(p, 'scan.nii' as never, 'scan.nii'),
      ArgumentError,
      /predictNifti: bytes must be the NIfTI file's bytes as a Uint8Array \(\.nii or \.nii\.gz\), got string "scan\.nii"/,
    );
    await expectError(
      () => predictNifti({} as never, new Uint8Array(10), 'x.nii'),
      ArgumentError,
      /predictNifti: model must be a SamLST model or a SlicePredictor, got an object \{\}/,
    );
    await expectError(
      () => predictNifti(p, new Uint8Array(10), 'x.nii', { window: 'soft' as never }),
      ArgumentError,
      /predictNifti: options\.window must be a \[low, high\] pair of finite HU values, or null, got string "soft"/,
    );
    await expectError(
      () => predictNifti(p, new Uint8Array(10), 'x.nii', { orientation: 'RAS' as never }),
      ArgumentError,
      /options\.orientation must be 'stored' or 'radiological', got string "RAS"/,
    );
    await expectError(
      () => encodePrediction({} as never, true),
      ArgumentError,
      /encodePrediction: prediction must be a predictNifti\(\) result/,
    );
    const pred = { shape: [1, 2, 2], prediction: new Int32Array(4), image: new Float32Array(4) };
    await expectError(
      () => encodePrediction(pred as never, 'yes' as never),
      ArgumentError,
      /encodePrediction: gzip must be a boolean, got string "yes"/,
    );
    await expectError(
      () => writePredictionOverlays({ ...pred, prediction: new Uint8Array(4) } as never, '/tmp'),
      ArgumentError,
      /writePredictionOverlays: prediction\.prediction must be an Int32Array, got Uint8Array\(4\)/,
    );
  });

  test('predictVolume and its helpers', async () => {
    const p = bandPredictor();
    const vol = { id: 'v', d: 2, h: 4, w: 4, image: new Float32Array(32) };
    await expectError(
      () => predictVolume(p, { ...vol, image: new Float64Array(32) } as never),
      ArgumentError,
      /predictVolume: volume\.image must be a Float32Array, got Float64Array\(32\)/,
    );
    const nan = new Float32Array(32);
    nan[16 + 2 * 4 + 3] = NaN;
    await expectError(
      () => predictVolume(p, { ...vol, image: nan }, { inputSize: 8 }),
      Error,
      /predictVolume: volume 'v': image must be finite, got NaN at slice 1, row 2, column 3/,
    );
    await expectError(
      () => predictVolume({} as never, vol),
      ArgumentError,
      /predictVolume: predictor must be a SlicePredictor \{size, inChans, channels, run\}/,
    );
    await expectError(
      () => predictVolume({ ...p, size: 0 }, vol),
      ArgumentError,
      /predictVolume: predictor\.size must be a positive integer, got number 0/,
    );
    await expectError(
      () => predictVolume(p, vol, { onProgress: 1 as never }),
      ArgumentError,
      /options\.onProgress must be a function, got number/,
    );
    await expectError(
      () => predictVolume(p, 'v' as never),
      ArgumentError,
      /predictVolume: volume must be an object \{id, d, h, w, image\}, got string "v"/,
    );
    await expectError(
      () => argmaxChannels([1, 2] as never, 1, 2, 1),
      ArgumentError,
      /argmaxChannels: logits must be a Float32Array, got array \[1,2\]/,
    );
    await expectError(
      () => argmaxChannels(new Float32Array(2), 1, 0, 2),
      ArgumentError,
      /argmaxChannels: c must be a positive integer, got number 0/,
    );
    await expectError(
      () => resampleSliceForNetwork(new Float32Array(15), 4, 4, 8, 8),
      Error,
      /resampleSliceForNetwork: slice has 15 values, expected h x w = 4 x 4 = 16/,
    );
    await expectError(
      () => resampleLabelsBack(new Float32Array(64) as never, 8, 4, 4),
      ArgumentError,
      /resampleLabelsBack: labels must be an Int32Array, got Float32Array\(64\)/,
    );
    await expectError(
      () => modelPredictor('m' as never),
      ArgumentError,
      /modelPredictor: model must be a SamLST model, got string "m"/,
    );
    await expectError(
      () => modelPredictor(model).run(new Float32Array(4), 0),
      ArgumentError,
      /modelPredictor\.run: b must be a positive integer, got number 0/,
    );
    await expectError(
      () => inferVolume(null as never, vol),
      ArgumentError,
      /inferVolume: model must be a SamLST model, got null/,
    );
  });
});

// ------------------------------------------------------------------------------ sweep

/** Error classes the entry points throw on a bad argument. */
const CLEAR = new Set([
  'ArgumentError',
  'ShapeError',
  'ConfigError',
  'CheckpointError',
  'LabelRangeError',
  'InferenceError',
  'PredictError',
]);

/** Wrong values for an argument: none of them is valid for any position swept below. */
const WRONG: [string, () => unknown][] = [
  ['null', () => null],
  ['a number', () => -7.5],
  ['a string', () => 'x'],
  ['an empty object', () => ({})],
  ['a Float64Array', () => new Float64Array(4)],
  ['a function', () => () => 0],
];

interface Entry {
  /** The name the message must contain. */
  name: string;
  /** Valid arguments (fresh each call). */
  args: () => unknown[];
  call: (...a: unknown[]) => unknown;
  /** Argument positions to sweep (default: all). */
  positions?: number[];
  /** Also sweep `undefined` at these positions (required arguments). */
  required?: number[];
  /** Labels of WRONG that are valid at a position (not swept there): an options bag may be {}, a name any string. */
  ok?: Record<number, string[]>;
}

const OPTS = ['an empty object'];
const STR = ['a string'];
const e = () => engine;
const vol = () => ({ id: 'v', d: 1, h: 4, w: 4, image: new Float32Array(16) });
// prettier-ignore
const entries = (): Entry[] => [
  { name: 'new Engine', args: () => [gpu], call: (g) => new Engine(g as Gpu), required: [0] },
  { name: 'createEngine', args: () => [{ device: gpu.device }], call: (o) => createEngine(o as never), ok: { 0: OPTS } },
  { name: 'Engine.tensor', args: () => [new Float32Array(4), [4]], call: (d, s) => e().tensor(d as never, s as never), required: [0, 1] },
  { name: 'Engine.zeros', args: () => [[4], 'f32'], call: (s, t) => e().zeros(s as never, t as never), required: [0] },
  { name: 'Engine.empty', args: () => [[4], 'f32'], call: (s, t) => e().empty(s as never, t as never), required: [0] },
  { name: 'Engine.fromBuffer', args: () => [null, [1], 'f32'], call: (b, s, t) => e().fromBuffer(b as never, s as never, t as never), positions: [0], required: [0] },
  { name: 'Tensor.fromData', args: () => [gpu, new Float32Array(4), [4]], call: (g, d, s) => Tensor.fromData(g as never, d as never, s as never), positions: [1, 2], required: [1, 2] },
  { name: 'readCheckpoint', args: () => [new Uint8Array(16), 'f'], call: (d, n) => readCheckpoint(d as never, n as never), required: [0], ok: { 1: STR } },
  { name: 'samLstConfig', args: () => ['tiny'], call: (s) => samLstConfig(s as never), ok: { 0: OPTS } },
  { name: 'config', args: () => [{}], call: (f) => new SamLstConfig(f as never), ok: { 0: OPTS } },
  { name: 'configForCheckpoint', args: () => [new Map(), 'c'], call: (c, n) => configForCheckpoint(c as never, n as never), required: [0], ok: { 1: STR } },
  { name: 'createSamLst', args: () => [engine, {}], call: (g, o) => createSamLst(g as never, o as never), required: [0], ok: { 1: OPTS } },
  { name: 'prepareSlice', args: () => [engine, model, slice()], call: (g, m, s) => prepareSlice(g as never, m as never, s as never), required: [0, 1, 2] },
  { name: 'segment', args: () => [model, null], call: (m, x) => segment(m as never, x as never), required: [0, 1] },
  { name: 'argmaxClasses', args: () => [new Float32Array(6), [1, 3, 1, 2]], call: (l, s) => argmaxClasses(l as never, s as never), required: [0, 1] },
  { name: 'new SamLstTrainer', args: () => [model, {}], call: (m, o) => new SamLstTrainer(m as never, o as never), required: [0], ok: { 1: OPTS } },
  { name: 'SamLstTrainer.trainStep', args: () => [null, null, 1e-3], call: (x, y, lr) => new SamLstTrainer(model).trainStep(x as never, y as never, lr as never), required: [0, 1] },
  { name: 'SamLstTrainer.stepTensor', args: () => [null, null, 1e-3], call: (x, y, lr) => new SamLstTrainer(model).stepTensor(x as never, y as never, lr as never), required: [0, 1] },
  { name: 'readModelCheckpoint', args: () => [tinyPth], call: (p) => readModelCheckpoint(p as never), required: [0], ok: { 0: STR } },
  { name: 'loadModel', args: () => [gpu, tinyPth, {}], call: (g, p, o) => loadModel(g as never, p as never, o as never), required: [0, 1], ok: { 1: STR, 2: OPTS } },
  { name: 'loadModelFromCheckpoint', args: () => [gpu, null, {}], call: (g, c, o) => loadModelFromCheckpoint(g as never, c as never, o as never), positions: [0, 1], required: [1] },
  { name: 'resolveModelConfig', args: () => [null, 'tiny'], call: (c, a) => resolveModelConfig(c as never, a as never), positions: [0], required: [0] },
  { name: 'adaptToImgSize', args: () => [new Map(), SamLstConfig.tiny(), 's'], call: (t, c, s) => adaptToImgSize(t as never, c as never, s as never), required: [0, 1, 2], ok: { 2: STR } },
  { name: 'variantForward', args: () => ['lst'], call: (v) => variantForward(v as never), required: [0] },
  { name: 'predictNifti', args: () => [bandPredictor(), new Uint8Array(8), 'x.nii', {}], call: (m, b, s, o) => predictNifti(m as never, b as never, s as never, o as never), required: [0, 1, 2], ok: { 2: STR, 3: OPTS } },
  { name: 'encodePrediction', args: () => [null, true], call: (p, g) => encodePrediction(p as never, g as never), required: [0, 1] },
  { name: 'writePredictionOverlays', args: () => [null, '/tmp'], call: (p, d) => writePredictionOverlays(p as never, d as never), positions: [0], required: [0] },
  { name: 'modelPredictor', args: () => [model], call: (m, f) => modelPredictor(m as never, f as never), required: [0], ok: { 1: ['a function'] } },
  { name: 'argmaxChannels', args: () => [new Float32Array(2), 1, 2, 1], call: (l, b, c, h) => argmaxChannels(l as never, b as never, c as never, h as never), required: [0, 1, 2, 3] },
  { name: 'resampleSliceForNetwork', args: () => [new Float32Array(16), 4, 4, 4, 4], call: (s, h, w, i, z) => resampleSliceForNetwork(s as never, h as never, w as never, i as never, z as never), required: [0, 1, 2, 3, 4] },
  { name: 'resampleLabelsBack', args: () => [new Int32Array(16), 4, 4, 4], call: (l, s, h, w) => resampleLabelsBack(l as never, s as never, h as never, w as never), required: [0, 1, 2, 3] },
  { name: 'predictVolume', args: () => [bandPredictor(), vol(), {}], call: (p, v, o) => predictVolume(p as never, v as never, o as never), required: [0, 1], ok: { 2: OPTS } },
  { name: 'inferVolume', args: () => [model, vol()], call: (m, v) => inferVolume(m as never, v as never), required: [0, 1] },
];

describe('sweep: every public function, wrong-typed arguments', () => {
  test('each bad argument gets one of the project errors naming the function (never a TypeError from inside)', async () => {
    const failures: string[] = [];
    let calls = 0;
    for (const en of entries()) {
      const n = en.args().length;
      const positions = en.positions ?? Array.from({ length: n }, (_, i) => i);
      for (const pos of positions) {
        const values: [string, () => unknown][] = [...WRONG];
        if (en.required?.includes(pos)) values.push(['undefined', () => undefined]);
        for (const [label, make] of values) {
          if (en.ok?.[pos]?.includes(label)) continue;
          const args = en.args();
          args[pos] = make();
          calls++;
          let err: unknown = null;
          try {
            await en.call(...args);
          } catch (x) {
            err = x;
          }
          const where = `${en.name} arg ${pos} = ${label}`;
          if (!(err instanceof Error)) {
            failures.push(`${where}: no error`);
            continue;
          }
          if (
            !CLEAR.has(err.name) ||
            [TypeError, RangeError, ReferenceError].includes(err.constructor as never)
          )
            failures.push(`${where}: ${err.constructor.name} ${err.name}: ${err.message}`);
          else if (!err.message.includes(en.name))
            failures.push(`${where}: message does not name ${en.name}: ${err.message}`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(calls).toBeGreaterThan(250);
    console.log(
      `entry-point sweep: ${entries().length} functions, ${calls} wrong-typed calls, all refused clearly`,
    );
  });
});
