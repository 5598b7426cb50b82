/**
 * The fixed computation the browser test runs twice — in Node on Dawn and in Chromium on its
 * WebGPU adapter — through the public API only (browser-safe imports): the tiny SAM-LST fixture
 * model on the fixture batch: eval-mode forward, one training step, eval-mode forward after it.
 */
import { createSamLst, segment, SamLstTrainer, type Engine } from '../../src/index.js';

export interface ReferenceInputs {
  /** Bytes of test/fixtures/tiny_sam_lst.pth. */
  checkpoint: Uint8Array;
  image: { shape: number[]; data: Float32Array | Int32Array };
  lowResLabels: { shape: number[]; data: Float32Array | Int32Array };
  lr: number;
}

export interface ReferenceResult {
  /** name -> values: eval.* (before the step), grad.<param>, param.<param> (after the step; parameters that got a gradient),
   * running.<buffer> (BatchNorm statistics after the step), after.* (eval forward after the step). */
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  /** Training loss of the step (before the update). */
  losses: number[];
  timings: Record<string, number>;
}

export async function runReferenceComputation(
  engine: Engine,
  inp: ReferenceInputs,
): Promise<ReferenceResult> {
  const tensors: ReferenceResult['tensors'] = new Map();
  const timings: Record<string, number> = {};
  const now = () => performance.now();
  let t0 = now();
  const model = createSamLst(engine, {
    config: 'tiny',
    checkpoint: inp.checkpoint,
    checkpointName: 'tiny_sam_lst.pth',
  });
  const image = engine.tensor(inp.image.data, inp.image.shape);
  const labels = engine.tensor(inp.lowResLabels.data, inp.lowResLabels.shape);
  const trainer = new SamLstTrainer(model, { lr: inp.lr });
  const put = async (name: string, t: { shape: readonly number[]; readFloat(): Promise<Float32Array> }) =>
    tensors.set(name, { shape: [...t.shape], data: await t.readFloat() });
  try {
    await engine.sync();
    timings.load = now() - t0;

    t0 = now();
    let out = segment(model, image);
    await put('eval.low_res_logits', out.lowResLogits);
    await put('eval.masks', out.masks);
    for (const t of Object.values(out)) t.dispose();
    timings.forward = now() - t0;

    t0 = now();
    const loss = await trainer.trainStep(image, labels);
    timings.trainStep = now() - t0;
    const trainable = new Set(model.trainableParameters().map(([n]) => n));
    for (const [n, p] of model.namedParameters()) {
      if (!trainable.has(n)) continue;
      if (!p.grad) continue; // layer4 / fc: trainable but off the loss path, unchanged by AdamW
      await put(`grad.${n}`, p.grad);
      await put(`param.${n}`, p);
    }
    for (const [n, b] of model.namedBuffers()) if (n.includes('running')) await put(`running.${n}`, b);

    t0 = now();
    out = segment(model, image);
    await put('after.low_res_logits', out.lowResLogits);
    for (const t of Object.values(out)) t.dispose();
    timings.forwardAfter = now() - t0;
    return { tensors, losses: [loss], timings };
  } finally {
    trainer.dispose();
    image.dispose();
    labels.dispose();
    model.dispose();
  }
}
