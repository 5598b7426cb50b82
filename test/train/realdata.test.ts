/**
 * Short training + validation runs on the real data next to the repository (../shared/data):
 *  - totalsegmentator-example (NIfTI CT + TotalSegmentator labels, --label-map totalsegmentator):
 *    30 axial slices of 122x101 as training slices, the volume as the test case;
 *  - sam-med2d-demo (AMOS PNG slices, 512x512, liver / spleen / aorta masks).
 * A few steps at input 64 with the small test model; checks that the loop reads the layouts,
 * augments non-square / large slices, validates (per-organ DSC / HD95 table) and writes its outputs.
 * Each suite is skipped, with the reason printed, when its folder is absent.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Gpu } from '../../src/gpu/device.js';
import { MetricsLog } from '../../src/train/log.js';
import { train } from '../../src/train/loop.js';
import { closeTestGpus, testDir, testGpu } from '../helpers.js';
import { sink, tempDir, tinyTrainConfig } from './util.js';

const dataRoot = resolve(testDir, '..', '..', 'shared', 'data');
const tsDir = join(dataRoot, 'totalsegmentator-example');
const pngDir = join(dataRoot, 'sam-med2d-demo');
const haveTs = existsSync(join(tsDir, 'example_seg.nii.gz'));
const havePng = existsSync(join(pngDir, 'images'));
if (!haveTs)
  console.warn(`train/realdata (issue 4, real data): skipping the NIfTI training run, ${tsDir} is missing`);
if (!havePng)
  console.warn(`train/realdata (issue 4, real data): skipping the PNG training run, ${pngDir} is missing`);

let gpu: Gpu;
beforeAll(async () => {
  if (haveTs || havePng) gpu = await testGpu();
});
afterAll(closeTestGpus);

describe.skipIf(!haveTs)('TotalSegmentator example (NIfTI)', () => {
  test('4 steps + validation on the volume', async () => {
    const out = tempDir('real-nifti');
    const o = sink();
    const r = await train(
      tinyTrainConfig(out, {
        data: tsDir,
        labelMap: 'totalsegmentator',
        maxSteps: 4,
        batchSize: 4,
        evalBefore: true,
      }),
      { gpu, out: o },
    );
    expect(r.steps).toBe(4);
    expect(o.text()).toMatch(/data: nifti .*totalsegmentator-example: 30 training slices, 1 test volumes/);
    expect(r.after!.cases).toHaveLength(1);
    expect(r.after!.perOrgan).toHaveLength(8);
    expect(r.before).not.toBeNull();
    expect(o.text()).toMatch(/liver/);
    const steps = MetricsLog.read(join(out, 'metrics.jsonl')).filter((x) => x.type === 'step');
    expect(steps).toHaveLength(4);
    expect(steps.every((s) => s.type === 'step' && Number.isFinite(s.loss))).toBe(true);
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toMatch(/overlays\/example_ct_sm_slice\d{3}\.png/);
  });
});

describe.skipIf(!havePng)('SAM-Med2D demo (AMOS PNG slices)', () => {
  test('3 steps + validation on the 5 slices', async () => {
    const out = tempDir('real-png');
    const o = sink();
    const r = await train(tinyTrainConfig(out, { data: pngDir, maxSteps: 3, batchSize: 2 }), { gpu, out: o });
    expect(r.steps).toBe(3);
    expect(o.text()).toMatch(/data: png .*sam-med2d-demo: 5 training slices, 5 test volumes/);
    expect(r.after!.cases).toHaveLength(5);
    expect(existsSync(r.stateDict)).toBe(true);
  });
});
