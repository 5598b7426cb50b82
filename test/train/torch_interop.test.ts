/**
 * Interoperability with PyTorch (Debian's python3-torch, run with /usr/bin/python3; skipped with
 * the reason printed when it is not installed):
 *  - the state_dict export of a trained run loads with `load_state_dict(strict=True)` into the
 *    oracle's SamLST (test/oracle/sam_lst_ref.py) and, in eval mode, gives the low-res logits our
 *    model gives;
 *  - `--sam-checkpoint` / `--resnet-checkpoint` with .pth files made by torch.save: an
 *    official-SAM-named checkpoint at input 128 (grid 8, 4 mask tokens) is adapted to the run's
 *    input 64 (pos_embed and global rel-pos resized, mask tokens / hypernetworks / IoU head left at
 *    their random init) and a torchvision-named ResNet18 is loaded; both show up in the export.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { noGrad } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/device.js';
import {
  decodeEntry,
  parseSafetensors,
  writeSafetensors,
  type StWriteEntry,
} from '../../src/io/safetensors.js';
import { SamLST } from '../../src/nn/sam_lst.js';
import { tidy } from '../../src/tensor/scope.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { train } from '../../src/train/loop.js';
import { closeTestGpus, assertClose, testDir, testGpu } from '../helpers.js';
import { sink, tempDir, tinyModel, tinyTrainConfig } from './util.js';

const root = join(testDir, '..');
const PY = '/usr/bin/python3';
let havePy = false;
try {
  execFileSync(PY, ['-c', 'import torch, numpy'], { stdio: 'ignore' });
  havePy = true;
} catch {
  // CI installs it (scripts/setup-python-torch.sh): there a missing torch is a failure, not a skip.
  if (process.env.CI === 'true')
    throw new Error(`train/torch_interop: ${PY} cannot import torch; run bash scripts/setup-python-torch.sh`);
  console.warn(
    `train/torch_interop (issue 4, PyTorch-style state_dict export): skipped, ${PY} with torch is not available (Debian: apt-get install python3-torch)`,
  );
}

function python(code: string): string {
  return execFileSync(
    PY,
    ['-c', `import sys; sys.path.insert(0, ${JSON.stringify(join(root, 'test', 'oracle'))})\n${code}`],
    {
      encoding: 'utf8',
      timeout: 120_000,
    },
  );
}

function load(path: string): Map<string, Float32Array | Int32Array> {
  const st = parseSafetensors(readFileSync(path));
  return new Map([...st.tensors].map(([k, e]) => [k, decodeEntry(e, k)]));
}

let gpu: Gpu;
beforeAll(async () => {
  if (havePy) gpu = await testGpu();
});
afterAll(closeTestGpus);

describe.skipIf(!havePy)('PyTorch', () => {
  test('the state_dict export loads strictly into the oracle and predicts the same logits', async () => {
    const out = tempDir('torch-export');
    const r = await train(tinyTrainConfig(out, { maxSteps: 3 }), { gpu, out: sink() });
    const cfg = tinyModel();
    const S = cfg.imgSize;
    const image = Float32Array.from(
      { length: 2 * 3 * S * S },
      (_, i) => 0.5 + 0.4 * Math.sin(i / 37) * Math.cos(i / 101),
    );
    writeFileSync(
      join(out, 'x.safetensors'),
      writeSafetensors(new Map([['image', { dtype: 'F32', shape: [2, 3, S, S], data: image }]])),
    );
    const fields = Object.fromEntries(
      Object.entries(cfg.toJson()).filter(([k]) => k !== 'grid' && k !== 'num_mask_tokens'),
    );
    const msg = python(`
import json, torch, st_io, sam_lst_ref as R
f = json.loads(${JSON.stringify(JSON.stringify(fields))})
cfg = R.Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in f.items()})
m = R.SamLST(cfg)
res = m.load_state_dict(st_io.load(${JSON.stringify(r.stateDict)}), strict=True)
m.eval()
with torch.no_grad():
    out = m(st_io.load(${JSON.stringify(join(out, 'x.safetensors'))})['image'])
st_io.save({'low_res_logits': out['low_res_logits']}, ${JSON.stringify(join(out, 'torch.safetensors'))})
print('strict load ok', len(m.state_dict()))
`);
    expect(msg).toMatch(/strict load ok/);
    // Our model from the same export, eval mode.
    const sd = load(r.stateDict);
    const m = new SamLST(gpu, cfg, { init: 'none' });
    try {
      m.loadStateDict(
        new Map(
          [...sd].map(
            ([k, d]) =>
              [
                k,
                {
                  shape: [...m.stateDict().get(k)!.shape],
                  dtype: d instanceof Int32Array ? 'i32' : 'f32',
                  data: d,
                },
              ] as const,
          ),
        ),
      );
      m.eval();
      const x = Tensor.fromData(gpu, image, [2, 3, S, S]);
      const low = tidy(() => noGrad(() => m.forward(x).lowResLogits));
      const ours = await low.readFloat();
      low.dispose();
      x.dispose();
      const ref = load(join(out, 'torch.safetensors')).get('low_res_logits') as Float32Array;
      let mx = 0;
      for (const v of ref) mx = Math.max(mx, Math.abs(v));
      assertClose(ours, ref, { atol: 1e-4 * Math.max(1, mx), rtol: 1e-4, name: 'low_res_logits' });
    } finally {
      m.dispose();
    }
  });

  test('--sam-checkpoint (official names, adapted 128 -> 64) and --resnet-checkpoint (.pth)', async () => {
    const dir = tempDir('torch-official');
    // An "official" SAM at input 128 with 4 mask tokens, and a torchvision-named ResNet18.
    const off = new SamLST(gpu, tinyModel().with({ imgSize: 128, numClasses: 3 }), { seed: 77 });
    const samSd = new Map<string, StWriteEntry>();
    const resSd = new Map<string, StWriteEntry>();
    for (const [k, t] of off.stateDict()) {
      const h = await t.toHost();
      const e: StWriteEntry = { dtype: h.dtype === 'i32' ? 'I32' : 'F32', shape: [...h.shape], data: h.data };
      if (k.startsWith('sam.') && k !== 'sam.alpha') samSd.set(k.slice(4), e);
      if (k.startsWith('CNN_encoder.')) resSd.set(k.slice('CNN_encoder.'.length), e);
    }
    off.dispose();
    writeFileSync(join(dir, 'sam.safetensors'), writeSafetensors(samSd));
    writeFileSync(join(dir, 'res.safetensors'), writeSafetensors(resSd));
    python(`
import torch, st_io
for a, b in (('sam', 'sam_official.pth'), ('res', 'resnet18.pth')):
    d = st_io.load(${JSON.stringify(dir)} + '/' + a + '.safetensors')
    d = {k: (v.long() if k.endswith('num_batches_tracked') else v) for k, v in d.items()}
    torch.save(d, ${JSON.stringify(dir)} + '/' + b)
`);
    const o = sink();
    const r = await train(
      tinyTrainConfig(join(dir, 'run'), {
        maxSteps: 2,
        samCheckpoint: join(dir, 'sam_official.pth'),
        resnetCheckpoint: join(dir, 'resnet18.pth'),
      }),
      { gpu, out: o },
    );
    expect(o.text()).toMatch(/SAM weights: .*sam_official\.pth .*resized for input 64/);
    expect(o.text()).toMatch(/ResNet18 weights: .*resnet18\.pth/);
    const sd = load(r.stateDict);
    const samIn = new Map([...samSd].map(([k, e]) => [k, e.data]));
    // frozen, loaded as is
    expect(sd.get('sam.image_encoder.blocks.0.attn.qkv.weight')).toEqual(
      samIn.get('image_encoder.blocks.0.attn.qkv.weight'),
    );
    expect(sd.get('sam.mask_decoder.transformer.layers.0.self_attn.q_proj.weight')).toEqual(
      samIn.get('mask_decoder.transformer.layers.0.self_attn.q_proj.weight'),
    );
    // adapted to grid 4 (from 8): 2x2 average pooling of the pos_embed
    const pe = sd.get('sam.image_encoder.pos_embed') as Float32Array;
    const pe0 = samIn.get('image_encoder.pos_embed') as Float32Array;
    const C = 32;
    expect(pe.length).toBe(4 * 4 * C);
    const at = (a: Float32Array, g: number, y: number, x: number, c: number) => a[(y * g + x) * C + c]!;
    expect(at(pe, 4, 1, 2, 5)).toBeCloseTo(
      (at(pe0, 8, 2, 4, 5) + at(pe0, 8, 2, 5, 5) + at(pe0, 8, 3, 4, 5) + at(pe0, 8, 3, 5, 5)) / 4,
      6,
    );
    // 9 mask tokens (8 organs + background), not the file's 4: fresh random init
    expect(sd.get('sam.mask_decoder.mask_tokens.weight')!.length).toBe(9 * 32);
    // ResNet layer4 never gets a gradient: exactly the file's values after training
    expect(sd.get('CNN_encoder.layer4.1.conv2.weight')).toEqual(resSd.get('layer4.1.conv2.weight')!.data);
  });
});
