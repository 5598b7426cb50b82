/**
 * Prediction of a NIfTI volume (src/eval/predict.ts) and overlays (src/eval/overlay.ts), no GPU:
 *  - alignment: with a fake model whose label is a function of the windowed voxel value, voxel
 *    (i, j, k) of the written mask (read back with nifti-reader-js) is that function of input
 *    voxel (i, j, k), for 'stored' and 'radiological' orientation, and the mask has the input's
 *    dims and affine; a non-square volume (resampled on the way) keeps its orientation;
 *  - HU windowing as training: [-125, 275] → [0, 1];
 *  - overlays: sizes, colours, legend, flips; decodable PNGs; slice picking.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import * as nifti from 'nifti-reader-js';
import { describe, expect, test } from 'vitest';
import type { SlicePredictor } from '../../src/eval/inference.js';
import {
  ORGAN_COLOURS,
  pickSlices,
  radiologicalDisplayFlips,
  renderOverlay,
  encodeRgbPng,
} from '../../src/eval/overlay.js';
import { encodePrediction, predictNifti, writePredictionOverlays } from '../../src/app/predict.js';
import { defaultGeometry, encodeNifti, type NiftiGeometry } from '../../src/io/nifti_write.js';

/** label = intensity band: floor(9 v) clipped to 0..8, from channel 0 of the network input. */
function bandModel(size: number): SlicePredictor {
  return {
    size,
    inChans: 3,
    channels: 9,
    run(images, b) {
      const n = size * size;
      const out = new Float32Array(b * 9 * n);
      for (let i = 0; i < b; i++)
        for (let p = 0; p < n; p++) {
          const v = images[i * 3 * n + p]!;
          out[(i * 9 + band(v)) * n + p] = 1;
        }
      return Promise.resolve(out);
    },
  };
}
const band = (v: number) => Math.max(0, Math.min(8, Math.floor(9 * v)));
const windowed = (hu: number) => (Math.min(275, Math.max(-125, hu)) + 125) / 400;

/** An int16 HU volume whose value depends on x, y and z differently. */
function huVolume(X: number, Y: number, Z: number): Int16Array {
  const a = new Int16Array(X * Y * Z);
  for (let z = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++) a[x + X * (y + Y * z)] = -200 + 13 * x + 3 * y + 29 * z;
  return a;
}

function geometry(X: number, Y: number, Z: number, flipX: boolean): NiftiGeometry {
  const g = defaultGeometry(X, Y, Z, [0.5, 0.75, 3]);
  return {
    ...g,
    sformCode: 2,
    srow: [
      [flipX ? -0.5 : 0.5, 0, 0, -50],
      [0, 0.75, 0, 20],
      [0, 0, 3, 100],
    ],
  };
}

function readBack(bytes: Uint8Array) {
  let ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  if (nifti.isCompressed(ab)) ab = nifti.decompress(ab) as ArrayBuffer;
  const hdr = nifti.readHeader(ab) as nifti.NIFTI1;
  return { hdr, data: new Uint8Array(nifti.readImage(hdr, ab)) };
}

describe('predict output is aligned with the input', () => {
  const X = 24;
  const Y = 24;
  const Z = 4;
  const hu = huVolume(X, Y, Z);
  for (const flipX of [false, true])
    test.each(['stored', 'radiological'] as const)(
      `orientation %s (x axis flipped: ${flipX})`,
      async (orientation) => {
        const input = encodeNifti(hu, [Z, Y, X], {
          datatype: 'int16',
          geometry: geometry(X, Y, Z, flipX),
          gzip: true,
        });
        // network size = input size = slice size: no resampling, so the band is exact per voxel
        const p = await predictNifti(bandModel(24), input, 'in.nii.gz', {
          inputSize: 24,
          orientation,
          batchSize: 3,
        });
        expect(p.shape).toEqual([Z, Y, X]);
        const { hdr, data } = readBack(encodePrediction(p, true));
        const inHdr = readBack(input).hdr;
        expect(hdr.dims).toEqual(inHdr.dims);
        expect(hdr.affine).toEqual(inHdr.affine);
        expect(hdr.pixDims).toEqual(inHdr.pixDims);
        expect(hdr.intent_code).toBe(1002);
        let bad = 0;
        for (let k = 0; k < Z; k++)
          for (let j = 0; j < Y; j++)
            for (let i = 0; i < X; i++) {
              const at = i + X * (j + Y * k);
              if (data[at] !== band(Math.fround(windowed(hu[at]!)))) bad++;
            }
        expect(bad).toBe(0);
        expect(new Set(data).size).toBeGreaterThan(4);
      },
    );

  test('a non-square volume is resampled and comes back in place', async () => {
    // blocky pattern: 4 x 4 voxel blocks, so labels agree away from block borders
    const X2 = 40;
    const Y2 = 28;
    const Z2 = 2;
    const a = new Int16Array(X2 * Y2 * Z2);
    for (let k = 0; k < Z2; k++)
      for (let j = 0; j < Y2; j++)
        for (let i = 0; i < X2; i++)
          a[i + X2 * (j + Y2 * k)] = Math.round(
            ((((i >> 3) + 2 * (j >> 3) + k) % 9) + 0.5) * (400 / 9) - 125,
          ); // band centres
    const input = encodeNifti(a, [Z2, Y2, X2], { datatype: 'int16', geometry: geometry(X2, Y2, Z2, false) });
    const p = await predictNifti(bandModel(32), input, 'in.nii', { inputSize: 48 });
    const { hdr, data } = readBack(encodePrediction(p, false));
    expect(hdr.dims.slice(0, 4)).toEqual([3, X2, Y2, Z2]);
    // block interiors (2..5 of each 8-voxel block) agree exactly; borders blur with resampling
    let agree = 0;
    let interior = 0;
    for (let k = 0; k < Z2; k++)
      for (let j = 0; j < Y2; j++)
        for (let i = 0; i < X2; i++) {
          if (i % 8 < 2 || i % 8 > 5 || j % 8 < 2 || j % 8 > 5 || j >= 24) continue;
          interior++;
          const at = i + X2 * (j + Y2 * k);
          if (data[at] === band(Math.fround(windowed(a[at]!)))) agree++;
        }
    expect(agree).toBe(interior);
    // transposing the mask would not agree
    let agreeT = 0;
    for (let k = 0; k < Z2; k++)
      for (let j = 0; j < Y2; j++)
        for (let i = 0; i < X2; i++)
          if (
            j < X2 &&
            i < Y2 &&
            data[j + X2 * (i + Y2 * k)] === band(Math.fround(windowed(a[i + X2 * (j + Y2 * k)]!)))
          )
            agreeT++;
    expect(agreeT / a.length).toBeLessThan(0.6);
  });

  test('HU window and errors', async () => {
    const input = encodeNifti(huVolume(16, 16, 1), [1, 16, 16], { datatype: 'int16' });
    const p = await predictNifti(bandModel(16), input, 'in.nii', { inputSize: 16 });
    expect(p.image[0]).toBeCloseTo(windowed(-200), 6);
    const raw = await predictNifti(bandModel(16), input, 'in.nii', { inputSize: 16, window: null });
    expect(raw.image[0]).toBe(-200);
    await expect(predictNifti(bandModel(16), new Uint8Array(10), 'junk.nii', {})).rejects.toThrow(
      /junk\.nii/,
    );
    const oblique = encodeNifti(huVolume(16, 16, 1), [1, 16, 16], {
      datatype: 'int16',
      geometry: {
        ...defaultGeometry(16, 16, 1),
        sformCode: 1,
        srow: [
          [0, 1, 0, 0],
          [1, 0, 0, 0],
          [0, 0, 1, 0],
        ],
      },
    });
    await expect(
      predictNifti(bandModel(16), oblique, 'ob.nii', { inputSize: 16, orientation: 'radiological' }),
    ).rejects.toThrow(/ob\.nii: orientation 'radiological' needs an axial, axis-aligned affine/);
  });

  test('overlays of chosen slices are written and decodable', async () => {
    const input = encodeNifti(huVolume(24, 24, 4), [4, 24, 24], {
      datatype: 'int16',
      geometry: geometry(24, 24, 4, false),
    });
    const p = await predictNifti(bandModel(24), input, 'in.nii', { inputSize: 24 });
    const dir = mkdtempSync(join(tmpdir(), 'samlst-ov-'));
    const files = writePredictionOverlays(p, dir, [0, 3], 'vol');
    expect(files.map((f) => f.slice(dir.length + 1))).toEqual(['vol_slice000.png', 'vol_slice003.png']);
    for (const f of files) {
      const png = decode(readFileSync(f));
      expect(png.channels).toBe(3);
      expect(png.width).toBeGreaterThan(2 * 24);
    }
    expect(writePredictionOverlays(p, dir, null, 'auto')).toHaveLength(3);
    expect(() => writePredictionOverlays(p, dir, [4])).toThrow(/slice 4 is outside 0\.\.3/);
  });
});

describe('overlay rendering', () => {
  test('grey image, organ colours, borders, legend, flips', () => {
    const h = 10;
    const w = 12;
    const img = new Float32Array(h * w).fill(0.5);
    const lab = new Int32Array(h * w);
    for (let y = 2; y < 8; y++) for (let x = 3; x < 9; x++) lab[y * w + x] = 5; // liver block
    const o = renderOverlay(
      img,
      h,
      w,
      [
        { labels: null, caption: 'input' },
        { labels: lab, caption: 'pred' },
      ],
      {
        scale: 2,
        title: 'test',
      },
    );
    const px = (x: number, y: number) =>
      Array.from(o.rgb.subarray((y * o.width + x) * 3, (y * o.width + x) * 3 + 3));
    // panel geometry: PAD 6, title row 13, caption row 13
    const y0 = 6 + 13 + 13;
    const x1 = 6 + 2 * w + 6; // second panel
    expect(px(6, y0)).toEqual([128, 128, 128]); // grey 0.5 in the plain panel
    const c = ORGAN_COLOURS[5]!;
    const blend = (a: number) => c.map((v) => Math.round((1 - a) * 128 + a * v));
    expect(px(x1 + 2 * 5, y0 + 2 * 5)).toEqual(blend(0.45)); // organ interior
    expect(px(x1 + 2 * 3, y0 + 2 * 2)).toEqual(blend(0.9)); // organ border
    expect(px(x1, y0)).toEqual([128, 128, 128]); // background of the overlay panel
    // the legend has a swatch of the liver colour
    const legendY = y0 + 2 * h + 6;
    expect(px(6, legendY)).toEqual([...c]);
    const png = decode(encodeRgbPng(o));
    expect([png.width, png.height, png.channels]).toEqual([o.width, o.height, 3]);
    // flips move the organ block
    const lab2 = new Int32Array(h * w);
    lab2[0] = 1;
    const f = renderOverlay(img, h, w, [{ labels: lab2 }], {
      scale: 1,
      flipRows: true,
      flipCols: true,
      legend: 'all',
    });
    const at = (x: number, y: number) =>
      Array.from(f.rgb.subarray((y * f.width + x) * 3, (y * f.width + x) * 3 + 3));
    expect(at(6 + w - 1, 6 + h - 1)).not.toEqual([128, 128, 128]);
    expect(at(6, 6)).toEqual([128, 128, 128]);
    expect(() => renderOverlay(img, h, w, [{ labels: new Int32Array(3) }])).toThrow(
      /panel 0 has 3 labels, expected 10x12/,
    );
  });

  test('pickSlices and display flips', () => {
    const lab = new Int32Array(5 * 2 * 2);
    lab.fill(1, 8, 12); // slice 2 full
    lab[17] = 3; // slice 4 one voxel
    expect(pickSlices(lab, [5, 2, 2], 2)).toEqual([2, 4]);
    expect(pickSlices(new Int32Array(20), [5, 2, 2], 2)).toEqual([1, 3]);
    expect(
      radiologicalDisplayFlips([
        [3, 0, 0, 0],
        [0, 3, 0, 0],
        [0, 0, 3, 0],
        [0, 0, 0, 1],
      ]),
    ).toEqual({
      flipRows: true,
      flipCols: true,
    });
    expect(
      radiologicalDisplayFlips([
        [-1, 0, 0, 0],
        [0, -1, 0, 0],
        [0, 0, 1, 0],
      ]),
    ).toEqual({
      flipRows: false,
      flipCols: false,
    });
  });
});
