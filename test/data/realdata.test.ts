/**
 * Real data shipped next to the repository (../shared/data, see each folder's SOURCE.md):
 *  - totalsegmentator-example: NIfTI CT + TotalSegmentator label map → Synapse ids; shapes and
 *    the per-organ voxel counts listed in SOURCE.md.
 *  - sam-med2d-demo: AMOS PNG slices with liver / spleen / aorta masks mapped to Synapse ids.
 * When the folder is absent the suites are skipped and the reason is printed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { openDataset } from '../../src/data/datasets.js';
import { labelCounts, SYNAPSE_ID } from '../../src/data/labels.js';
import { niftiPairToVolume, parseNifti } from '../../src/data/nifti.js';
import { applyAugmentation } from '../../src/data/augment.js';
import { testDir } from '../helpers.js';

const repoRoot = resolve(testDir, '..');
const dataRoot = resolve(repoRoot, '..', 'shared', 'data');
const tsDir = join(dataRoot, 'totalsegmentator-example');
const pngDir = join(dataRoot, 'sam-med2d-demo');
const haveTs = existsSync(join(tsDir, 'example_seg.nii.gz'));
const havePng = existsSync(join(pngDir, 'images'));
if (!haveTs)
  console.warn(`data/realdata (issue 4, real data): skipping TotalSegmentator tests, ${tsDir} is missing`);
if (!havePng)
  console.warn(`data/realdata (issue 4, real data): skipping SAM-Med2D demo tests, ${pngDir} is missing`);

describe.skipIf(!haveTs)('TotalSegmentator example (NIfTI)', () => {
  test('shapes, dtypes and spacing as SOURCE.md lists them', () => {
    const want: Record<string, [number, number, number, string]> = {
      'example_ct.nii.gz': [122, 101, 112, 'int32'],
      'example_ct_sm.nii.gz': [122, 101, 30, 'int16'],
      'example_seg.nii.gz': [122, 101, 30, 'uint8'],
    };
    for (const [f, [x, y, z, dt]] of Object.entries(want)) {
      const v = parseNifti(readFileSync(join(tsDir, f)), f);
      expect([v.w, v.h, v.d, v.datatype], f).toEqual([x, y, z, dt]);
      expect(v.spacing).toEqual([3, 3, 3]);
    }
    // example_ct_sm is slices z = 82..111 of example_ct
    const full = parseNifti(readFileSync(join(tsDir, 'example_ct.nii.gz')));
    const sm = parseNifti(readFileSync(join(tsDir, 'example_ct_sm.nii.gz')));
    const n = 122 * 101;
    for (const z of [0, 17, 29])
      for (let k = 0; k < n; k += 101) expect(sm.data[z * n + k]).toBe(full.data[(82 + z) * n + k]);
  });

  test('label map gives the 8 organs with the voxel counts SOURCE.md lists', () => {
    const v = niftiPairToVolume(
      'example',
      readFileSync(join(tsDir, 'example_ct_sm.nii.gz')),
      readFileSync(join(tsDir, 'example_seg.nii.gz')),
      'example_ct_sm.nii.gz',
      'example_seg.nii.gz',
      { labelMap: 'totalsegmentator' },
    );
    expect([v.d, v.h, v.w]).toEqual([30, 101, 122]); // (D, W, H) of the NIfTI (H, W, D)
    const c = labelCounts(v.label);
    expect(c.slice(1)).toEqual([9452, 3947, 3676, 1333, 38634, 4675, 997, 644]);
    expect(c.reduce((a, b) => a + b, 0)).toBe(30 * 101 * 122);
    let lo = Infinity;
    let hi = -Infinity;
    for (const x of v.image) {
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
    }
    expect([lo, hi]).toEqual([0, 1]);
    // organ mean intensities are soft tissue, inside the window (mean HU from SOURCE.md)
    const meanHu: Record<number, number> = { 1: 32.8, 5: 45.3, 7: 42.3 };
    for (const [id, hu] of Object.entries(meanHu)) {
      let s = 0;
      let n = 0;
      for (let k = 0; k < v.label.length; k++)
        if (v.label[k] === Number(id)) {
          s += v.image[k]!;
          n++;
        }
      expect((s / n) * 400 - 125).toBeCloseTo(hu, -1);
    }
  });

  test('openDataset pairs example_seg with example_ct_sm and serves 30 training slices', async () => {
    const ds = await openDataset(tsDir, { labelMap: 'totalsegmentator' });
    expect(ds.layout).toBe('nifti');
    expect(ds.test!.ids).toEqual(['example_ct_sm']);
    expect(ds.train!.size).toBe(30);
    const s = await ds.train!.get(15);
    expect([s.h, s.w]).toEqual([101, 122]);
    const aug = applyAugmentation(s.image, s.label, s.h, s.w, { kind: 'rotate', angle: 10 }, 64);
    expect(aug.image.length).toBe(64 * 64);
    expect(aug.lowResLabel.length).toBe(16 * 16);
    // without the label map the TotalSegmentator ids are rejected, naming the file
    await expect(openDataset(tsDir)).rejects.toThrow(
      /example_seg\.nii\.gz: label value \d+ .* outside 0\.\.8/,
    );
  });
});

describe.skipIf(!havePng)('SAM-Med2D demo (AMOS PNG slices)', () => {
  test('AMOS slices with liver / spleen / aorta masks mapped to Synapse ids', async () => {
    const ds = await openDataset(pngDir);
    expect(ds.layout).toBe('png');
    expect(ds.train!.ids).toEqual(['amos_0004_75', 'amos_0006_90', 'amos_0507_31', 's0114_111', 's0619_32']);
    const a4 = await ds.train!.get(0);
    expect([a4.h, a4.w]).toEqual([512, 512]);
    const c4 = labelCounts(a4.label);
    expect(c4[SYNAPSE_ID.liver]).toBeGreaterThan(1000);
    expect(c4[SYNAPSE_ID.aorta]).toBeGreaterThan(100);
    expect(c4[SYNAPSE_ID.spleen]).toBe(0); // IVC mask → background, no spleen mask
    const a6 = await ds.train!.get(1);
    const c6 = labelCounts(a6.label);
    for (const id of [SYNAPSE_ID.liver, SYNAPSE_ID.spleen, SYNAPSE_ID.aorta])
      expect(c6[id]).toBeGreaterThan(100);
    for (const id of [2, 3, 4, 6, 8]) expect(c6[id]).toBe(0);
    // images are grey 0..254 scaled to [0, 1]
    let hi = 0;
    for (const x of a6.image) hi = Math.max(hi, x);
    expect(hi).toBeLessThanOrEqual(254 / 255 + 1e-7);
    expect(hi).toBeGreaterThan(0.5);
    // the MR slice has no masks: all background, and a note says so
    expect(labelCounts((await ds.train!.get(2)).label)[0]).toBe(290 * 320);
    expect(ds.notes.join('\n')).toMatch(/amos_0507_31\.png: no mask of the 8 Synapse organs/);
  });
});
