/**
 * Device loss mid-training by a real `device.destroy()` of the Dawn device (the shared suite in
 * faults_lost.ts): after step 4, in step 5 between backward and the update, and while the
 * checkpoint of step 6 is being serialised. Each run stops with a TrainDeviceLostError naming the
 * step or the save and the `--resume` that continues it; the step-3 checkpoint is left byte for byte
 * and verifies; the resume on another device ends bit-identical to a straight run.
 */
import { describeDeviceLoss, type LostCase } from './faults_lost.js';

const cases: LostCase[] = [
  {
    name: 'device.destroy() after step 4',
    kind: 'destroy between steps',
    destroys: true,
    hooks: (gpu) => ({ afterStep: (s) => void (s === 4 && gpu.device.destroy()) }),
    reason: 'destroyed',
    where: /at step 5 of 7 \(epoch 2, batch 2 of 3\)/,
    step: 5,
  },
  {
    name: 'device.destroy() in step 5 between backward and the update',
    kind: 'destroy mid-step',
    destroys: true,
    hooks: (gpu) => ({ onGrads: (s) => void (s === 5 && gpu.device.destroy()) }),
    reason: 'destroyed',
    where: /at step 5 of 7 \(epoch 2, batch 2 of 3\)/,
    step: 5,
  },
  {
    name: 'device.destroy() while the checkpoint of step 6 is serialised',
    kind: 'destroy during save',
    destroys: true,
    hooks: (gpu) => ({ beforeSave: (s) => void (s === 6 && gpu.device.destroy()) }),
    reason: 'destroyed',
    where: /while saving the checkpoint of step 6/,
    step: 6,
  },
];

describeDeviceLoss('device.destroy() mid-training, then --resume', cases, 'faults_device');
