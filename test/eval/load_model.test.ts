/**
 * Model loading for evaluation / prediction (src/eval/load_model.ts):
 *  - the tiny .pth: config inferred from the shapes (preset tiny), or given as 'tiny' or as a JSON
 *    file (tiny_case.json); a 'module.'-prefixed, wrapped copy loads the same;
 *  - safetensors with the config in __metadata__ or in a sidecar JSON, extra non-model tensors
 *    ignored; same predictions as the .pth;
 *  - --img-size runs the model at another network size;
 *  - errors: missing / empty / foreign files, an official SAM checkpoint, a config that differs
 *    from the stored one, a config whose shapes differ from the checkpoint's, shapes that match no
 *    preset without a config (then a JSON config of the right shape loads it).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { inferVolume } from '../../src/eval/inference.js';
import { loadModel, readModelCheckpoint, resolveModelConfig } from '../../src/app/load_model.js';
import type { Gpu } from '../../src/gpu/device.js';
import { readPth } from '../../src/io/pth.js';
import { writeSafetensors, type StWriteEntry } from '../../src/io/safetensors.js';
import { SamLstConfig } from '../../src/nn/config.js';
import type { HostTensor } from '../../src/tensor/host.js';
import { closeTestGpus, fixturesDir, testGpu } from '../helpers.js';

const tinyPth = join(fixturesDir, 'tiny_sam_lst.pth');
const tinyJson = join(fixturesDir, 'tiny_case.json');
const dir = mkdtempSync(join(tmpdir(), 'samlst-load-'));
const tensors = readPth(new Uint8Array(readFileSync(tinyPth)), 'tiny_sam_lst.pth');

function st(map: ReadonlyMap<string, HostTensor>, metadata?: Record<string, string>): Uint8Array {
  const e = new Map<string, StWriteEntry>();
  for (const [k, t] of map)
    e.set(k, { dtype: t.data instanceof Int32Array ? 'I32' : 'F32', shape: [...t.shape], data: t.data });
  return writeSafetensors(e, metadata);
}

const vol = (() => {
  const d = 2;
  const h = 30;
  const w = 26;
  const image = new Float32Array(d * h * w).map((_, i) => 0.5 + 0.4 * Math.sin(i / 7));
  return { id: 'v', d, h, w, image };
})();

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => closeTestGpus());

describe('configs and formats', () => {
  test('.pth: preset inferred from the shapes, "tiny", or a JSON file; same predictions', async () => {
    const a = await loadModel(gpu, tinyPth);
    expect(a.configHow).toBe('preset tiny (inferred from the tensor shapes)');
    expect(a.config.toJson()).toEqual(SamLstConfig.tiny().toJson());
    expect(a.model.training).toBe(false);
    const ref = await inferVolume(a.model, vol, { inputSize: 64 });
    a.model.dispose();
    for (const config of ['tiny', tinyJson]) {
      const b = await loadModel(gpu, tinyPth, { config });
      expect(b.config.toJson()).toEqual(SamLstConfig.tiny().toJson());
      expect(await inferVolume(b.model, vol, { inputSize: 64 })).toEqual(ref);
      b.model.dispose();
    }
  });

  test('safetensors with the config in the metadata or a sidecar; extra tensors ignored', async () => {
    const a = await loadModel(gpu, tinyPth);
    const ref = await inferVolume(a.model, vol, { inputSize: 64 });
    a.model.dispose();
    const withOpt = new Map<string, HostTensor>(tensors);
    withOpt.set('optim.m.sam.alpha', { shape: [1], dtype: 'f32', data: new Float32Array(1) });
    const meta = join(dir, 'meta.safetensors');
    writeFileSync(meta, st(withOpt, { config: JSON.stringify(SamLstConfig.tiny().toJson()), step: '7' }));
    const b = await loadModel(gpu, meta);
    expect(b.checkpoint.format).toBe('safetensors');
    expect(b.configHow).toBe('stored in the checkpoint metadata');
    expect(b.notes.join('\n')).toMatch(/ignored 1 non-model tensors \(optim\.m\.sam\.alpha\)/);
    expect(await inferVolume(b.model, vol, { inputSize: 64 })).toEqual(ref);
    b.model.dispose();

    const side = join(dir, 'side.safetensors');
    writeFileSync(side, st(tensors));
    writeFileSync(join(dir, 'side.json'), JSON.stringify({ config: SamLstConfig.tiny().toJson(), epoch: 3 }));
    const c = readModelCheckpoint(side);
    expect(c.configSource).toBe(`sidecar ${join(dir, 'side.json')}`);
    expect(c.config?.toJson()).toEqual(SamLstConfig.tiny().toJson());

    // a stored config and a different --config: refused, naming the fields
    const other = join(dir, 'other.json');
    writeFileSync(other, JSON.stringify(SamLstConfig.tiny().with({ bnEps: 1e-3 }).toJson()));
    expect(() => resolveModelConfig(readModelCheckpoint(meta), other)).toThrow(
      /config mismatch: --config .*other\.json differs from the config stored in the checkpoint metadata \(bn_eps 0\.001 vs 0\.00001\)/,
    );
  });

  test('--img-size runs at another network size', async () => {
    const m = await loadModel(gpu, tinyPth, { imgSize: 64 });
    expect(m.config.imgSize).toBe(64);
    expect(m.notes.join('\n')).toMatch(
      /running at network size 64 instead of 96: resized 5 position tensors/,
    );
    const pred = await inferVolume(m.model, vol, { inputSize: 64 });
    expect(pred.length).toBe(vol.d * vol.h * vol.w);
    m.model.dispose();
    await expect(loadModel(gpu, tinyPth, { imgSize: 70 })).rejects.toThrow(
      /--img-size 70: must be a positive multiple of the patch size 16/,
    );
  });

  test('shapes that match no preset need a config file', async () => {
    // drop encoder blocks 2 and 3: a 2-block tiny variant
    const cut = new Map([...tensors].filter(([k]) => !/image_encoder\.blocks\.[23]\./.test(k)));
    const p = join(dir, 'two_blocks.safetensors');
    writeFileSync(p, st(cut));
    await expect(loadModel(gpu, p)).rejects.toThrow(
      /cannot determine the model configuration: .*depth 2.*match no preset \(vitb, tiny\); pass --config/,
    );
    const cfgFile = join(dir, 'two_blocks_cfg.json');
    writeFileSync(
      cfgFile,
      JSON.stringify({
        config: SamLstConfig.tiny()
          .with({ encDepth: 2, globalAttnIndexes: [1] })
          .toJson(),
      }),
    );
    const m = await loadModel(gpu, p, { config: cfgFile });
    expect(m.config.encDepth).toBe(2);
    m.model.dispose();
  });
});

describe('errors name the file and the problem', () => {
  test('files', async () => {
    await expect(loadModel(gpu, join(dir, 'nope.pth'))).rejects.toThrow(
      /checkpoint .*nope\.pth: file not found/,
    );
    writeFileSync(join(dir, 'empty.pth'), new Uint8Array(0));
    await expect(loadModel(gpu, join(dir, 'empty.pth'))).rejects.toThrow(/empty\.pth: file is empty/);
    writeFileSync(join(dir, 'text.pth'), 'hello world');
    await expect(loadModel(gpu, join(dir, 'text.pth'))).rejects.toThrow(
      /text\.pth: not a PyTorch \.pth .* nor a safetensors file/,
    );
    await expect(loadModel(gpu, join(fixturesDir, 'pth', 'truncated_tiny_sam_lst.pth'))).rejects.toThrow(
      /checkpoint .*truncated_tiny_sam_lst\.pth: /,
    );
    await expect(loadModel(gpu, join(fixturesDir, 'pth', 'official_small.pth'))).rejects.toThrow(
      /is an official SAM checkpoint .* not a trained SAM-LST model/,
    );
    await expect(loadModel(gpu, tinyPth, { config: join(dir, 'missing.json') })).rejects.toThrow(
      /--config .*missing\.json: file not found/,
    );
  });

  test('a config for another architecture is refused before the model is built', async () => {
    const t0 = performance.now();
    await expect(loadModel(gpu, tinyPth, { config: 'vitb' })).rejects.toThrow(
      /config mismatch: preset vitb \(--config vitb\) describes a model with encoder width 768, depth 12.* but checkpoint .* has encoder width 32, depth 4/,
    );
    expect(performance.now() - t0).toBeLessThan(5000);
    const wrongSize = join(dir, 'wrong_size.json');
    writeFileSync(wrongSize, JSON.stringify(SamLstConfig.tiny().with({ imgSize: 128 }).toJson()));
    await expect(loadModel(gpu, tinyPth, { config: wrongSize })).rejects.toThrow(
      /has img_size 128 but checkpoint .* was saved at 96 \(pos_embed grid 6\); use --img-size/,
    );
  });
});

test('an official SAM checkpoint as safetensors is named as such', async () => {
  const p = join(dir, 'official.safetensors');
  writeFileSync(
    p,
    st(
      new Map<string, HostTensor>([
        ['image_encoder.pos_embed', { shape: [1, 2, 2, 4], dtype: 'f32', data: new Float32Array(16) }],
        ['optim.x', { shape: [1], dtype: 'f32', data: new Float32Array(1) }],
      ]),
    ),
  );
  await expect(loadModel(gpu, p)).rejects.toThrow(/is an official SAM checkpoint/);
});
