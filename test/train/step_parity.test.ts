/**
 * The training loop's step function (src/train/loop.ts trainStep, lst variant, embedding from the
 * frozen encoder as the loop supplies it) reproduces the oracle's two AdamW steps of the tiny
 * fixture case (tiny_case: lr 1e-3, betas .9/.999, eps 1e-8, wd 0.1, same batch twice, BatchNorm in
 * train mode): the losses before step 1, before step 2 and after step 2, and every updated parameter,
 * within the manifest tolerances of src/train/parity.ts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { noGrad } from '../../src/autograd/tape.js';
import { readPth } from '../../src/io/pth.js';
import { SamLstConfig } from '../../src/nn/config.js';
import { SamLST } from '../../src/nn/sam_lst.js';
import { ceDiceLoss } from '../../src/ops/loss.js';
import { AdamW, SAM_LST_ADAMW } from '../../src/optim/adamw.js';
import { tidy } from '../../src/tensor/scope.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { trainStep } from '../../src/train/loop.js';
import { compareTensor, type ParityCase, type ParityManifest } from '../../src/train/parity.js';
import { closeTestGpus, fixturesDir, testGpu, tinyCase } from '../helpers.js';

afterAll(closeTestGpus);

test('two AdamW steps through trainStep match tiny_case train2.*', async () => {
  const gpu = await testGpu();
  const fx = tinyCase();
  const manifest = fx.manifest as unknown as ParityManifest;
  const pc: ParityCase = {
    manifest,
    checkpoint: readPth(
      new Uint8Array(readFileSync(join(fixturesDir, manifest.files.state_dict))),
      manifest.files.state_dict,
    ),
    tensor: (n) => fx.get(n),
  };
  const cfg = SamLstConfig.fromJson(manifest.config);
  const model = SamLST.fromCheckpoint(gpu, cfg, pc.checkpoint, 'tiny_sam_lst.pth');
  const opt = new AdamW(
    model.trainableParameters().map(([name, tensor]) => ({ name, tensor })),
    { ...SAM_LST_ADAMW, lr: 1e-3 },
  );
  const image = Tensor.fromHost(gpu, pc.tensor('input.image')).keep();
  const labels = Tensor.fromHost(gpu, pc.tensor('input.low_res_label')).keep();
  try {
    model.train();
    const losses: number[] = [];
    for (let s = 0; s < 2; s++) {
      const emb = tidy(() => noGrad(() => model.encode(image)));
      const l = await trainStep(model, opt, 'lst', image, labels, emb, {
        lr: 1e-3,
        diceWeight: 0.8,
        step: s + 1,
      });
      emb.dispose();
      losses.push(l.total);
    }
    const l3 = tidy(() =>
      noGrad(
        () =>
          ceDiceLoss(model.forward(image).lowResLogits, labels, { lambda: 0.8, classes: cfg.numMaskTokens })
            .total,
      ),
    );
    losses.push((await l3.readFloat())[0]!);
    l3.dispose();

    const rows = [compareTensor('train2.losses', Float32Array.from(losses), pc)];
    const params = new Map(model.namedParameters());
    const names = Object.keys(manifest.tensors).filter((n) => n.startsWith('train2.param.'));
    expect(names.length).toBe(52);
    for (const n of names)
      rows.push(compareTensor(n, await params.get(n.slice('train2.param.'.length))!.readFloat(), pc));
    const bad = rows
      .filter((r) => !r.ok)
      .map((r) => `${r.name}: max abs ${r.maxAbs} > atol ${r.atol} ${r.note}`);
    expect(bad, bad.join('\n')).toEqual([]);
    // The loss went down over the two steps, as in the oracle.
    expect(losses[2]!).toBeLessThan(losses[0]!);
  } finally {
    image.dispose();
    labels.dispose();
    opt.dispose();
    model.dispose();
  }
});
