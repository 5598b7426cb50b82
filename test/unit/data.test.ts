/**
 * Host-side data readers and datasets (src/data): .npy/.npz (dtypes, Fortran order, real numpy
 * output, corrupt files), HDF5 volumes written here with h5wasm, NIfTI pairs built here (layout,
 * HU window, label maps), PNG slices + masks, the Synapse folder layout and openDataset
 * validation (every error names the file), augmentation, and the phantom dataset.
 */
import { gzipSync } from 'fflate';
import { encode as encodePng } from 'fast-png';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import {
  applyAugmentation,
  applyGeometric,
  augmentationKey,
  augmentationVariants,
  parseAugmentationKey,
  randomAugmentation,
  sampleAugmentation,
  type Augmentation,
} from '../../src/data/augment.js';
import { detectLayout, openDataset } from '../../src/data/datasets.js';
import { writeH5 } from '../../src/data/h5.js';
import {
  labelCounts,
  organNameToSynapse,
  resolveLabelMap,
  toSynapseLabels,
  windowHU,
  TOTALSEGMENTATOR_TO_SYNAPSE,
} from '../../src/data/labels.js';
import { niftiPairToVolume, parseNifti } from '../../src/data/nifti.js';
import { encodeNpy, encodeNpz, parseNpy, parseNpz, type NpyWriteDType } from '../../src/data/npy.js';
import { decodeGreyPng, encodeGreyPng } from '../../src/data/png.js';
import { flip, rot90, rotate2d, zoom2d } from '../../src/data/resample.js';
import { readSynapseSlice, readSynapseVolume } from '../../src/data/synapse.js';
import { assertClose, kernelCase, rng } from '../helpers.js';

const tmpRoot = mkdtempSync(join(tmpdir(), 'samlst-data-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));
let dirCount = 0;
function freshDir(name: string): string {
  const d = join(tmpRoot, `${name}-${dirCount++}`);
  mkdirSync(d, { recursive: true });
  return d;
}

const b64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));

// Written by numpy 2.4.6: np.savez(f, image=arange(12,f4).reshape(3,4)/7, label=[[0,1,8],[2,3,4]] f4)
// (stored members with zip64 extra fields, as numpy ≥ 1.x writes them).
const NPZ_NUMPY24_STORED =
  'UEsDBC0AAAAAAAAAIQA7Z5yw//////////8JABQAaW1hZ2UubnB5AQAQALAAAAAAAAAAsAAAAAAAAACTTlVNUFkBAHYAeydkZXNjcic6ICc8ZjQnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMywgNCksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgCgAAAAAlSRI+JUmSPrdt2z4lSRI/bts2P7dtWz8AAIA/JUmSP0mSpD9u27Y/kiTJP1BLAwQtAAAAAAAAACEAfA1A7f//////////CQAUAGxhYmVsLm5weQEAEACYAAAAAAAAAJgAAAAAAAAAk05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAACAPwAAAEEAAABAAABAQAAAgEBQSwECLQMtAAAAAAAAACEAO2ecsLAAAACwAAAACQAAAAAAAAAAAAAAgAEAAAAAaW1hZ2UubnB5UEsBAi0DLQAAAAAAAAAhAHwNQO2YAAAAmAAAAAkAAAAAAAAAAAAAAIAB6wAAAGxhYmVsLm5weVBLBQYAAAAAAgACAG4AAAC+AQAAAAA=';
// The same arrays written by numpy 1.24.2 np.savez_compressed (deflated members).
const NPZ_NUMPY124_DEFLATED =
  'UEsDBBQAAAAIAAAAIQA7Z5ywcgAAALAAAAAJABQAaW1hZ2UubnB5AQAQALAAAAAAAAAAcgAAAAAAAACb7BfqGxDJyFDGUK2eklqcXKRupaBuk2airqOgnpZfVFKUmBefX5SSChJ3S8wpTgWKF2ckFqQC+RrGOgommjoKtQpkAy4GIFD1FLJT9Zxktz33NpAWss+7bWa/PTfanoGhwR4obu85aQlQbJv9JJWT9gBQSwMEFAAAAAgAAAAhAHwNQO1VAAAAmAAAAAkAFABsYWJlbC5ucHkBABAAmAAAAAAAAABVAAAAAAAAAJvsF+obEMnIUMZQrZ6SWpxcpG6loG6TZqKuo6Cell9UUpSYF59flJIKEndLzClOBYoXZyQWpAL5GkY6CsaaOgq1CmQDLgYwaLAHEo5A7ABEQNzgAABQSwECFAMUAAAACAAAACEAO2ecsHIAAACwAAAACQAAAAAAAAAAAAAAgAEAAAAAaW1hZ2UubnB5UEsBAhQDFAAAAAgAAAAhAHwNQO1VAAAAmAAAAAkAAAAAAAAAAAAAAIABrQAAAGxhYmVsLm5weVBLBQYAAAAAAgACAG4AAAA9AQAAAAA=';
// numpy 2.4.6: np.save(f, np.asfortranarray(np.arange(24, dtype='<f8').reshape(2,3,4)))
const NPY_FORTRAN_F8 =
  'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY4JywgJ2ZvcnRyYW5fb3JkZXInOiBUcnVlLCAnc2hhcGUnOiAoMiwgMywgNCksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAAAAAAAAAAAChAAAAAAAAAEEAAAAAAAAAwQAAAAAAAACBAAAAAAAAANEAAAAAAAADwPwAAAAAAACpAAAAAAAAAFEAAAAAAAAAxQAAAAAAAACJAAAAAAAAANUAAAAAAAAAAQAAAAAAAACxAAAAAAAAAGEAAAAAAAAAyQAAAAAAAACRAAAAAAAAANkAAAAAAAAAIQAAAAAAAAC5AAAAAAAAAHEAAAAAAAAAzQAAAAAAAACZAAAAAAAAAN0A=';

/** Rewrite an encoded v1.0 .npy with a different header text (same data). */
function withHeader(npy: Uint8Array, header: string, version: 1 | 2 = 1): Uint8Array {
  const oldLen = new DataView(npy.buffer, npy.byteOffset).getUint16(8, true);
  const data = npy.subarray(10 + oldLen);
  const pre = version === 1 ? 10 : 12;
  let h = header;
  h += ' '.repeat((64 - ((pre + h.length + 1) % 64)) % 64) + '\n';
  const out = new Uint8Array(pre + h.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, h.length, true);
  else dv.setUint32(8, h.length, true);
  for (let i = 0; i < h.length; i++) out[pre + i] = h.charCodeAt(i);
  out.set(data, pre + h.length);
  return out;
}

// ---------------------------------------------------------------------------- npy / npz

describe('.npy / .npz', () => {
  test('every supported dtype round-trips in C order', () => {
    const vals = [0, 1, 2, 3, 4, 5];
    const cases: [NpyWriteDType, string][] = [
      ['<f4', 'Float32Array'],
      ['<f8', 'Float64Array'],
      ['<i4', 'Int32Array'],
      ['<i8', 'Float64Array'],
      ['|u1', 'Uint8Array'],
      ['<i2', 'Int16Array'],
      ['>f4', 'Float32Array'],
      ['>i4', 'Int32Array'],
    ];
    for (const [descr, type] of cases) {
      const a = parseNpy(encodeNpy(vals, [2, 3], descr), `x${descr}.npy`);
      expect(a.descr).toBe(descr);
      expect(a.shape).toEqual([2, 3]);
      expect(a.fortranOrder).toBe(false);
      expect(a.data.constructor.name).toBe(type);
      expect(Array.from(a.data)).toEqual(vals);
    }
    expect(Array.from(parseNpy(encodeNpy([-1.5, 2.25], [2], '<f4')).data)).toEqual([-1.5, 2.25]);
    expect(parseNpy(encodeNpy([7], [], '<i4')).shape).toEqual([]);
  });

  test('Fortran-order arrays come back in C order (2-D and 3-D, ours and numpy’s)', () => {
    const c2 = [1, 2, 3, 4, 5, 6]; // C order of [[1,2,3],[4,5,6]]
    const f2 = parseNpy(encodeNpy(c2, [2, 3], '<f4', true));
    expect(f2.fortranOrder).toBe(true);
    expect(Array.from(f2.data)).toEqual(c2);
    const c3 = Array.from({ length: 24 }, (_, i) => i);
    expect(Array.from(parseNpy(encodeNpy(c3, [2, 3, 4], '<i4', true)).data)).toEqual(c3);
    const np = parseNpy(b64(NPY_FORTRAN_F8), 'numpy_fortran.npy');
    expect(np.descr).toBe('<f8');
    expect(np.shape).toEqual([2, 3, 4]);
    expect(np.fortranOrder).toBe(true);
    expect(Array.from(np.data)).toEqual(c3);
  });

  test('format 2.0 headers, bool arrays, Python 2 long shapes', () => {
    const base = encodeNpy([1, 0, 1], [3], '|u1');
    const v2 = withHeader(base, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", 2);
    const a = parseNpy(v2);
    expect(a.descr).toBe('|b1');
    expect(Array.from(a.data)).toEqual([1, 0, 1]);
    const py2 = withHeader(
      encodeNpy([1, 2], [1, 2], '<i4'),
      "{'descr': '<i4', 'fortran_order': False, 'shape': (1L, 2L), }",
    );
    expect(parseNpy(py2).shape).toEqual([1, 2]);
  });

  test('reads .npz archives written by numpy (stored with zip64, and deflated)', () => {
    for (const [name, s] of [
      ['numpy24_stored.npz', NPZ_NUMPY24_STORED],
      ['numpy124_deflated.npz', NPZ_NUMPY124_DEFLATED],
    ] as const) {
      const m = parseNpz(b64(s), name);
      expect([...m.keys()].sort()).toEqual(['image', 'label']);
      const img = m.get('image')!;
      expect(img.shape).toEqual([3, 4]);
      assertClose(
        img.data,
        Array.from({ length: 12 }, (_, i) => Math.fround(Math.fround(i) / 7)),
        { atol: 0, rtol: 0 },
      );
      expect(Array.from(m.get('label')!.data)).toEqual([0, 1, 8, 2, 3, 4]);
    }
  });

  test('our .npz writer round-trips (compressed and stored)', () => {
    for (const compressed of [true, false]) {
      const z = encodeNpz(
        { image: { values: [0.5, 0.25], shape: [1, 2] }, label: { values: [3, 4], shape: [1, 2] } },
        compressed,
      );
      const m = parseNpz(z);
      expect(Array.from(m.get('image')!.data)).toEqual([0.5, 0.25]);
      expect(Array.from(m.get('label')!.data)).toEqual([3, 4]);
    }
  });

  test('corrupt or unsupported files throw errors that name the file', () => {
    const good = encodeNpy([1, 2, 3, 4], [2, 2], '<f4');
    expect(() => parseNpy(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), 'a.npy')).toThrow(
      /a\.npy: not a \.npy file/,
    );
    expect(() => parseNpy(good.subarray(0, good.length - 3), 'b.npy')).toThrow(/b\.npy: data truncated/);
    expect(() => parseNpy(withHeader(good, "{'fortran_order': False, 'shape': (2, 2), }"), 'c.npy')).toThrow(
      /c\.npy: header has no 'descr'/,
    );
    expect(() =>
      parseNpy(withHeader(good, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }"), 'd.npy'),
    ).toThrow(/d\.npy: unsupported dtype '<c8'/);
    expect(() =>
      parseNpy(
        withHeader(good, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }"),
        'e.npy',
      ),
    ).toThrow(/e\.npy/);
    const npz = b64(NPZ_NUMPY124_DEFLATED);
    expect(() => parseNpz(npz.subarray(0, 100), 'f.npz')).toThrow(/f\.npz: corrupt \.npz/);
    expect(() => parseNpz(good, 'g.npz')).toThrow(/g\.npz: not a \.npz file/);
    const flipped = npz.slice();
    flipped[80] = flipped[80]! ^ 0xff; // damage the deflate stream of image.npy
    expect(() => parseNpz(flipped, 'h.npz')).toThrow(/h\.npz/);
  });
});

// ---------------------------------------------------------------------------- labels

describe('labels', () => {
  test('maps TotalSegmentator / BTCV / organ names to Synapse ids and validates ranges', () => {
    expect(Array.from(toSynapseLabels([0, 1, 52, 7, 5, 117, 10], 'ts', TOTALSEGMENTATOR_TO_SYNAPSE))).toEqual(
      [0, 1, 7, 8, 5, 0, 0],
    );
    expect(Array.from(toSynapseLabels([6, 11, 5, 13, 8], 'btcv', resolveLabelMap('btcv')))).toEqual([
      5, 8, 0, 0, 7,
    ]);
    expect(() => toSynapseLabels([0, 9], 'lab.npz')).toThrow(
      /lab\.npz: label value 9 at index 1 is outside 0\.\.8/,
    );
    expect(() => toSynapseLabels([0, 1.5], 'lab.npz')).toThrow(
      /lab\.npz: label value 1\.5 .* not an integer/,
    );
    expect(() => toSynapseLabels([NaN], 'lab.npz')).toThrow(/lab\.npz: label value NaN/);
    expect(() => resolveLabelMap('nope' as 'btcv')).toThrow(/unknown label map 'nope'/);
    expect(() => resolveLabelMap({ 3: 12 })).toThrow(/3 → 12/);
    expect(organNameToSynapse('liver')).toBe(5);
    expect(organNameToSynapse('kidney_right')).toBe(2);
    expect(organNameToSynapse('Left Kidney')).toBe(3);
    expect(organNameToSynapse('inferior_vena_cava')).toBe(0);
    expect(labelCounts([0, 0, 5, 8])).toEqual([2, 0, 0, 0, 0, 1, 0, 0, 1]);
  });

  test('HU window [-125, 275] → [0, 1]', () => {
    expect(Array.from(windowHU([-1000, -125, 75, 275, 3000]))).toEqual([0, 0, 0.5, 1, 1]);
  });
});

// ---------------------------------------------------------------------------- HDF5

describe('HDF5 test volumes (h5wasm)', () => {
  test('reads image/label (D,H,W) datasets written with h5wasm', async () => {
    const d = freshDir('h5');
    const p = join(d, 'case0001.npy.h5');
    const image = Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => i / 24);
    const label = Float32Array.from({ length: 24 }, (_, i) => i % 9);
    await writeH5(p, { image: { data: image, shape: [2, 3, 4] }, label: { data: label, shape: [2, 3, 4] } });
    const v = await readSynapseVolume(p);
    expect([v.id, v.d, v.h, v.w]).toEqual(['case0001', 2, 3, 4]);
    expect(Array.from(v.image)).toEqual(Array.from(image));
    expect(v.label).toBeInstanceOf(Int32Array);
    expect(Array.from(v.label)).toEqual(Array.from(label));
    const meta = await readSynapseVolume(p, 'x', false);
    expect([meta.d, meta.h, meta.w, meta.image.length]).toEqual([2, 3, 4, 0]);
  });

  test('corrupt, truncated, incomplete and invalid files name the file', async () => {
    const d = freshDir('h5bad');
    const garbage = join(d, 'garbage.npy.h5');
    writeFileSync(garbage, 'this is not hdf5 at all');
    await expect(readSynapseVolume(garbage)).rejects.toThrow(`${garbage}: not an HDF5 file`);
    const empty = join(d, 'empty.npy.h5');
    writeFileSync(empty, '');
    await expect(readSynapseVolume(empty)).rejects.toThrow(`${empty}: file is empty`);
    await expect(readSynapseVolume(join(d, 'nope.npy.h5'))).rejects.toThrow(/nope\.npy\.h5: file not found/);

    const good = join(d, 'good.npy.h5');
    const img = new Float32Array(2 * 4 * 4);
    await writeH5(good, {
      image: { data: img, shape: [2, 4, 4] },
      label: { data: new Float32Array(32), shape: [2, 4, 4] },
    });
    const trunc = join(d, 'trunc.npy.h5');
    writeFileSync(trunc, readFileSync(good).subarray(0, 900));
    await expect(readSynapseVolume(trunc)).rejects.toThrow(new RegExp(`${trunc}: .*(truncated|cannot open)`));

    const noLabel = join(d, 'nolabel.npy.h5');
    await writeH5(noLabel, { image: { data: img, shape: [2, 4, 4] } });
    await expect(readSynapseVolume(noLabel)).rejects.toThrow(`${noLabel}: no dataset 'label' (found: image)`);

    const mism = join(d, 'mismatch.npy.h5');
    await writeH5(mism, {
      image: { data: img, shape: [2, 4, 4] },
      label: { data: new Float32Array(32), shape: [2, 2, 8] },
    });
    await expect(readSynapseVolume(mism)).rejects.toThrow(
      `${mism}: image shape (2, 4, 4) and label shape (2, 2, 8) differ`,
    );

    const badLab = join(d, 'badlabel.npy.h5');
    const lab = new Float32Array(32);
    lab[5] = 12;
    await writeH5(badLab, { image: { data: img, shape: [2, 4, 4] }, label: { data: lab, shape: [2, 4, 4] } });
    await expect(readSynapseVolume(badLab)).rejects.toThrow(
      `${badLab}: label value 12 at index 5 is outside 0..8`,
    );

    const nan = join(d, 'nan.npy.h5');
    const imgNan = img.slice();
    imgNan[3] = NaN;
    await writeH5(nan, {
      image: { data: imgNan, shape: [2, 4, 4] },
      label: { data: new Float32Array(32), shape: [2, 4, 4] },
    });
    await expect(readSynapseVolume(nan)).rejects.toThrow(`${nan}: image value NaN at index 3`);

    const flat = join(d, 'flat.npy.h5');
    await writeH5(flat, {
      image: { data: new Float32Array(4), shape: [4] },
      label: { data: new Float32Array(4), shape: [4] },
    });
    await expect(readSynapseVolume(flat)).rejects.toThrow(`${flat}: 'image' has shape (4), expected 3-D`);
  });
});

// ---------------------------------------------------------------------------- Synapse layout

function slicePair(h: number, w: number, seed: number) {
  const r = rng(seed);
  const image = r.fill(h * w, 0, 1);
  const label = new Float32Array(h * w).map(() => r.int(0, 9));
  return { image, label };
}

function writeSlice(
  dir: string,
  name: string,
  h: number,
  w: number,
  seed: number,
  edit?: (img: Float32Array, lab: Float32Array) => void,
) {
  const { image, label } = slicePair(h, w, seed);
  edit?.(image, label);
  writeFileSync(
    join(dir, `${name}.npz`),
    encodeNpz({ image: { values: image, shape: [h, w] }, label: { values: label, shape: [h, w] } }),
  );
  return { image, label };
}

async function synapseFolder(opts: { list?: 'lists' | 'beside' | 'none' } = {}) {
  const root = freshDir('synapse');
  const tr = join(root, 'train_npz');
  const te = join(root, 'test_vol_h5');
  mkdirSync(tr);
  mkdirSync(te);
  const names = ['case0005_slice010', 'case0005_slice002', 'case0006_slice000'];
  const slices = names.map((n, i) => writeSlice(tr, n, 6, 5, i + 1));
  const img = Float32Array.from({ length: 2 * 6 * 5 }, (_, i) => (i % 7) / 7);
  const lab = Float32Array.from({ length: 60 }, (_, i) => i % 9);
  await writeH5(join(te, 'case0001.npy.h5'), {
    image: { data: img, shape: [2, 6, 5] },
    label: { data: lab, shape: [2, 6, 5] },
  });
  const list = opts.list ?? 'lists';
  if (list === 'lists') {
    mkdirSync(join(root, 'lists', 'lists_Synapse'), { recursive: true });
    writeFileSync(join(root, 'lists', 'lists_Synapse', 'train.txt'), names.join('\n') + '\n');
    writeFileSync(join(root, 'lists', 'lists_Synapse', 'test_vol.txt'), 'case0001\n');
  } else if (list === 'beside') {
    writeFileSync(join(tr, 'train.txt'), names.join('\r\n'));
    writeFileSync(join(te, 'test_vol.txt'), 'case0001');
  }
  return { root, tr, te, names, slices, img, lab };
}

describe('Synapse layout (train_npz + test_vol_h5 + lists)', () => {
  test('openDataset reads the lists in order and serves slices and volumes', async () => {
    const f = await synapseFolder();
    expect(detectLayout(f.root)).toBe('synapse');
    const ds = await openDataset(f.root);
    expect(ds.layout).toBe('synapse');
    expect(ds.notes).toEqual([]);
    expect(ds.train!.ids).toEqual(f.names);
    const s = await ds.train!.get(1);
    expect([s.id, s.h, s.w]).toEqual(['case0005_slice002', 6, 5]);
    expect(Array.from(s.image)).toEqual(Array.from(f.slices[1]!.image));
    expect(Array.from(s.label)).toEqual(Array.from(f.slices[1]!.label));
    expect(ds.test!.ids).toEqual(['case0001']);
    const v = await ds.test!.get(0);
    expect([v.d, v.h, v.w]).toEqual([2, 6, 5]);
    expect(Array.from(v.label)).toEqual(Array.from(f.lab));
    await expect(ds.train!.get(3)).rejects.toThrow(/outside 0\.\.2/);
  });

  test('accepts lists next to the data, and falls back to all files (with a note) without lists', async () => {
    const a = await synapseFolder({ list: 'beside' });
    expect((await openDataset(a.root)).train!.ids).toEqual(a.names);
    const b = await synapseFolder({ list: 'none' });
    const ds = await openDataset({ kind: 'synapse', root: b.root });
    expect(ds.train!.ids).toEqual(['case0005_slice002', 'case0005_slice010', 'case0006_slice000']);
    expect(ds.notes.join('\n')).toMatch(/no train\.txt found: using all 3 \.npz files/);
    // the train_npz folder itself also works
    expect((await openDataset(join(b.root, 'train_npz'))).train!.size).toBe(3);
  });

  test('validation up front: every failure names the file', async () => {
    // missing / empty folders
    await expect(openDataset(join(tmpRoot, 'does-not-exist'))).rejects.toThrow(
      /does-not-exist: dataset folder not found/,
    );
    const empty = freshDir('empty');
    await expect(openDataset(empty)).rejects.toThrow(
      new RegExp(`${empty}: unrecognised dataset layout .*folder is empty`),
    );
    const emptyTrain = freshDir('emptytrain');
    mkdirSync(join(emptyTrain, 'train_npz'));
    await expect(openDataset(emptyTrain)).rejects.toThrow(/train_npz: folder has no \.npz files/);

    // a listed file is missing
    let f = await synapseFolder();
    rmSync(join(f.tr, 'case0005_slice002.npz'));
    await expect(openDataset(f.root)).rejects.toThrow(
      /train\.txt: 1 of 3 listed training files are missing .*case0005_slice002\.npz/,
    );

    // label outside 0..8
    f = await synapseFolder();
    writeSlice(f.tr, 'case0006_slice000', 6, 5, 9, (_i, l) => (l[7] = 9));
    await expect(openDataset(f.root)).rejects.toThrow(
      /case0006_slice000\.npz: label value 9 at index 7 is outside 0\.\.8/,
    );

    // NaN in an image
    f = await synapseFolder();
    writeSlice(f.tr, 'case0005_slice010', 6, 5, 9, (i) => (i[0] = NaN));
    await expect(openDataset(f.root)).rejects.toThrow(/case0005_slice010\.npz: image value NaN at index 0/);

    // image / label shape mismatch
    f = await synapseFolder();
    writeFileSync(
      join(f.tr, 'case0005_slice002.npz'),
      encodeNpz({
        image: { values: new Float32Array(30), shape: [6, 5] },
        label: { values: new Float32Array(30), shape: [5, 6] },
      }),
    );
    await expect(openDataset(f.root)).rejects.toThrow(
      /case0005_slice002\.npz: image shape \(6, 5\) and label shape \(5, 6\) differ/,
    );

    // missing key, corrupt archive, empty file
    f = await synapseFolder();
    writeFileSync(
      join(f.tr, 'case0005_slice002.npz'),
      encodeNpz({ image: { values: new Float32Array(30), shape: [6, 5] } }),
    );
    await expect(openDataset(f.root)).rejects.toThrow(/case0005_slice002\.npz: no 'label' array/);
    writeFileSync(join(f.tr, 'case0005_slice002.npz'), 'PK\x03\x04garbage');
    await expect(openDataset(f.root)).rejects.toThrow(/case0005_slice002\.npz: corrupt \.npz/);
    writeFileSync(join(f.tr, 'case0005_slice002.npz'), '');
    await expect(openDataset(f.root)).rejects.toThrow(/case0005_slice002\.npz: file is empty/);

    // a bad test volume
    f = await synapseFolder();
    writeFileSync(join(f.te, 'case0001.npy.h5'), 'not hdf5');
    await expect(openDataset(f.root)).rejects.toThrow(/case0001\.npy\.h5: not an HDF5 file/);

    // 'quick' validation skips reading slice contents
    f = await synapseFolder();
    writeSlice(f.tr, 'case0006_slice000', 6, 5, 9, (_i, l) => (l[0] = 42));
    const quick = await openDataset(f.root, { validate: 'quick' });
    await expect(quick.train!.get(2)).rejects.toThrow(/case0006_slice000\.npz: label value 42/);
  });

  test('readSynapseSlice converts float32 labels to Int32 ids', () => {
    const d = freshDir('one');
    const { label } = writeSlice(d, 'case0001_slice000', 4, 3, 5);
    const s = readSynapseSlice(join(d, 'case0001_slice000.npz'));
    expect(s.label).toBeInstanceOf(Int32Array);
    expect(Array.from(s.label)).toEqual(Array.from(label));
  });
});

// ---------------------------------------------------------------------------- NIfTI

/** Minimal NIfTI-1 single file (.nii) writer for tests: x fastest, sform = diag(spacing). */
function niftiBytes(
  values: ArrayLike<number>,
  dims: [number, number, number],
  datatype: 2 | 4 | 16 = 4,
  opts: { slope?: number; inter?: number; flipX?: boolean } = {},
): Uint8Array {
  const bpv = datatype === 2 ? 1 : datatype === 4 ? 2 : 4;
  const n = dims[0] * dims[1] * dims[2];
  const out = new Uint8Array(352 + n * bpv);
  const dv = new DataView(out.buffer);
  dv.setInt32(0, 348, true);
  const dim = [3, dims[0], dims[1], dims[2], 1, 1, 1, 1];
  dim.forEach((v, i) => dv.setInt16(40 + 2 * i, v, true));
  dv.setInt16(70, datatype, true);
  dv.setInt16(72, bpv * 8, true);
  [1, 2, 2, 3, 1, 1, 1, 1].forEach((v, i) => dv.setFloat32(76 + 4 * i, v, true));
  dv.setFloat32(108, 352, true);
  dv.setFloat32(112, opts.slope ?? 1, true);
  dv.setFloat32(116, opts.inter ?? 0, true);
  dv.setInt16(252, 0, true);
  dv.setInt16(254, 1, true); // sform_code
  const sx = opts.flipX ? -2 : 2;
  [sx, 0, 0, 0].forEach((v, i) => dv.setFloat32(280 + 4 * i, v, true));
  [0, 2, 0, 0].forEach((v, i) => dv.setFloat32(296 + 4 * i, v, true));
  [0, 0, 3, 0].forEach((v, i) => dv.setFloat32(312 + 4 * i, v, true));
  out.set([0x6e, 0x2b, 0x31, 0], 344); // "n+1\0"
  for (let i = 0; i < n; i++) {
    const o = 352 + i * bpv;
    if (datatype === 2) dv.setUint8(o, values[i]!);
    else if (datatype === 4) dv.setInt16(o, values[i]!, true);
    else dv.setFloat32(o, values[i]!, true);
  }
  return out;
}

const X = 5;
const Y = 4;
const Z = 3;
/** HU at voxel (x, y, z): distinct and spanning the window. */
const huAt = (x: number, y: number, z: number) => -200 + 10 * x + 40 * y + 130 * z;
function ctVolume(): number[] {
  const v: number[] = [];
  for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) v.push(huAt(x, y, z));
  return v;
}
/** TotalSegmentator-style labels: liver (5) where x<2, aorta (52) at (4,3,z), rib (92) at (4,0,2). */
function tsLabels(): number[] {
  const v: number[] = [];
  for (let z = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++)
        v.push(x < 2 ? 5 : x === 4 && y === 3 ? 52 : x === 4 && y === 0 && z === 2 ? 92 : 0);
  return v;
}

describe('NIfTI pairs', () => {
  test('(H,W,D) → (D,W,H) layout, HU window and the TotalSegmentator label map', () => {
    const ct = niftiBytes(ctVolume(), [X, Y, Z], 4);
    const seg = gzipSync(niftiBytes(tsLabels(), [X, Y, Z], 2));
    const raw = parseNifti(ct, 'ct.nii');
    expect([raw.d, raw.h, raw.w, raw.datatype]).toEqual([Z, Y, X, 'int16']);
    expect(raw.spacing).toEqual([2, 2, 3]);
    const v = niftiPairToVolume('c1', ct, seg, 'ct.nii', 'seg.nii.gz', { labelMap: 'totalsegmentator' });
    expect([v.d, v.h, v.w]).toEqual([Z, Y, X]);
    for (let z = 0; z < Z; z++)
      for (let y = 0; y < Y; y++)
        for (let x = 0; x < X; x++) {
          const k = (z * Y + y) * X + x; // volume[z][y][x] = nibabel array[x][y][z]
          const hu = huAt(x, y, z);
          expect(v.image[k]).toBe(Math.fround((Math.min(275, Math.max(-125, hu)) + 125) / 400));
          expect(v.label[k]).toBe(x < 2 ? 5 : x === 4 && y === 3 ? 7 : 0);
        }
  });

  test('scl_slope/inter, float data, radiological orientation', () => {
    const ct = niftiBytes(
      ctVolume().map((h) => (h + 1000) / 2),
      [X, Y, Z],
      4,
      { slope: 2, inter: -1000 },
    );
    expect(Array.from(parseNifti(ct).data).slice(0, 3)).toEqual([-200, -190, -180]);
    const lab = niftiBytes(
      new Array(X * Y * Z).fill(0).map((_, i) => (i === 0 ? 3 : 0)),
      [X, Y, Z],
      2,
    );
    const stored = niftiPairToVolume('a', ct, lab, 'ct', 'lab');
    const radio = niftiPairToVolume('a', ct, lab, 'ct', 'lab', { orientation: 'radiological' });
    // sform diag(+2,+2,+3): columns run to patient right, rows to anterior → both flipped
    expect(radio.label[(0 * Y + (Y - 1)) * X + (X - 1)]).toBe(3);
    expect(radio.image[(0 * Y + (Y - 1)) * X + (X - 1)]).toBe(stored.image[0]);
    const ctL = niftiBytes(ctVolume(), [X, Y, Z], 4, { flipX: true });
    const radioL = niftiPairToVolume('b', ctL, lab, 'ct', 'lab', { orientation: 'radiological' });
    expect(radioL.label[(0 * Y + (Y - 1)) * X + 0]).toBe(3); // only rows flipped
  });

  test('errors name the file: shape mismatch, unmapped labels, NaN, corrupt, truncated', () => {
    const ct = niftiBytes(ctVolume(), [X, Y, Z], 4);
    const seg = niftiBytes(tsLabels(), [X, Y, Z], 2);
    expect(() =>
      niftiPairToVolume('c', ct, niftiBytes(new Array(60).fill(0), [4, 5, 3], 2), 'ct.nii', 'seg.nii'),
    ).toThrow(/seg\.nii: label shape \(x,y,z\) 4x5x3 does not match image ct\.nii 5x4x3/);
    expect(() => niftiPairToVolume('c', ct, seg, 'ct.nii', 'seg.nii')).toThrow(
      /seg\.nii: label value 52 at index \d+ is outside 0\.\.8 \(pass a label map/,
    );
    const nan = ctVolume();
    nan[7] = NaN;
    expect(() =>
      niftiPairToVolume('c', niftiBytes(nan, [X, Y, Z], 16), seg, 'nan.nii', 'seg.nii', {
        labelMap: 'totalsegmentator',
      }),
    ).toThrow(/nan\.nii: image value NaN at index 7/);
    expect(() => parseNifti(new Uint8Array(400), 'zero.nii')).toThrow(/zero\.nii: not a NIfTI/);
    expect(() => parseNifti(new Uint8Array(0), 'empty.nii')).toThrow(/empty\.nii: file is empty/);
    expect(() => parseNifti(ct.subarray(0, 360), 'short.nii')).toThrow(/short\.nii: image data truncated/);
    const gz = gzipSync(ct);
    expect(() => parseNifti(gz.subarray(0, 40), 'cut.nii.gz')).toThrow(/cut\.nii\.gz/);
  });

  test('openDataset finds pairs: imagesTr/labelsTr, raw Synapse img/label (BTCV map), flat *_seg folders', async () => {
    const ct = niftiBytes(ctVolume(), [X, Y, Z], 4);
    // MSD / nnU-Net
    const a = freshDir('msd');
    mkdirSync(join(a, 'imagesTr'));
    mkdirSync(join(a, 'labelsTr'));
    writeFileSync(join(a, 'imagesTr', 'abd_001_0000.nii.gz'), gzipSync(ct));
    writeFileSync(
      join(a, 'labelsTr', 'abd_001.nii.gz'),
      gzipSync(niftiBytes(new Array(60).fill(1), [X, Y, Z], 2)),
    );
    const dsA = await openDataset(a);
    expect(dsA.layout).toBe('nifti');
    expect(dsA.test!.ids).toEqual(['abd_001']);
    expect(dsA.train!.ids).toEqual(['abd_001_slice000', 'abd_001_slice001', 'abd_001_slice002']);
    const s1 = await dsA.train!.get(1);
    expect([s1.h, s1.w]).toEqual([Y, X]);
    expect(s1.image[0]).toBe(Math.fround((huAt(0, 0, 1) + 125) / 400));
    // raw Synapse RawData layout with BTCV ids
    const b = freshDir('rawsyn');
    mkdirSync(join(b, 'img'));
    mkdirSync(join(b, 'label'));
    writeFileSync(join(b, 'img', 'img0001.nii.gz'), gzipSync(ct));
    const btcv = new Array(60).fill(0).map((_, i) => [0, 6, 11, 5, 13][i % 5]!);
    writeFileSync(join(b, 'label', 'label0001.nii.gz'), gzipSync(niftiBytes(btcv, [X, Y, Z], 2)));
    const dsB = await openDataset(b);
    expect(dsB.test!.ids).toEqual(['case0001']);
    expect(Array.from((await dsB.test!.get(0)).label.slice(0, 5))).toEqual([0, 5, 8, 0, 0]);
    // flat folder like the TotalSegmentator example: label paired by prefix and shape
    const c = freshDir('flat');
    writeFileSync(join(c, 'sub_ct.nii'), ct);
    writeFileSync(join(c, 'sub_ct_big.nii'), niftiBytes(new Array(X * Y * 6).fill(0), [X, Y, 6], 4));
    writeFileSync(join(c, 'sub_seg.nii.gz'), gzipSync(niftiBytes(tsLabels(), [X, Y, Z], 2)));
    await expect(openDataset(c)).rejects.toThrow(/sub_seg\.nii\.gz: label value 52/);
    const dsC = await openDataset(c, { labelMap: 'totalsegmentator' });
    expect(dsC.test!.ids).toEqual(['sub_ct']);
    const labelled = await openDataset({
      kind: 'nifti',
      root: c,
      labelMap: 'totalsegmentator',
      trainSlices: 'labelled',
    });
    expect(labelled.train!.size).toBe(3);
    // explicit pairs
    const dsD = await openDataset({
      kind: 'nifti',
      pairs: [{ id: 'x', image: join(c, 'sub_ct.nii'), label: join(c, 'sub_seg.nii.gz') }],
      labelMap: 'totalsegmentator',
      window: null,
    });
    expect((await dsD.test!.get(0)).image[0]).toBe(huAt(0, 0, 0));
    await expect(
      openDataset({
        kind: 'nifti',
        pairs: [{ image: join(c, 'missing.nii'), label: join(c, 'sub_seg.nii.gz') }],
      }),
    ).rejects.toThrow(/missing\.nii: file not found/);
  });
});

// ---------------------------------------------------------------------------- PNG

function rgbPng(values: number[], h: number, w: number): Uint8Array {
  const data = new Uint8Array(h * w * 3);
  for (let i = 0; i < h * w; i++) data.fill(values[i]!, i * 3, i * 3 + 3);
  return encodePng({ width: w, height: h, data, channels: 3, depth: 8 });
}

describe('PNG slices + per-organ masks (SAM-Med2D layout)', () => {
  function pngFolder() {
    const root = freshDir('png');
    mkdirSync(join(root, 'images'));
    mkdirSync(join(root, 'masks'));
    const h = 4;
    const w = 6;
    const px = Array.from({ length: h * w }, (_, i) => i * 10);
    writeFileSync(join(root, 'images', 'amos_0001_5.png'), rgbPng(px, h, w));
    writeFileSync(join(root, 'images', 'amos_0001_50.png'), encodeGreyPng(px, h, w));
    const mask = (cond: (k: number) => boolean) =>
      encodeGreyPng(
        Array.from({ length: h * w }, (_, k) => (cond(k) ? 255 : 0)),
        h,
        w,
      );
    writeFileSync(
      join(root, 'masks', 'amos_0001_5_liver_000.png'),
      mask((k) => k < 6),
    );
    writeFileSync(
      join(root, 'masks', 'amos_0001_5_spleen_000.png'),
      mask((k) => k >= 20),
    );
    writeFileSync(
      join(root, 'masks', 'amos_0001_5_inferior_vena_cava_000.png'),
      mask((k) => k === 10),
    );
    writeFileSync(
      join(root, 'masks', 'amos_0001_50_aorta_000.png'),
      mask((k) => k === 0),
    );
    writeFileSync(
      join(root, 'masks', 'amos_0001_50_kidney_left_001.png'),
      mask((k) => k === 1),
    );
    return { root, px, h, w };
  }

  test('images scale to [0, 1]; organ masks map to Synapse ids (IVC → background)', async () => {
    const f = pngFolder();
    expect(detectLayout(f.root)).toBe('png');
    const ds = await openDataset(f.root);
    expect(ds.layout).toBe('png');
    expect(ds.train!.ids).toEqual(['amos_0001_5', 'amos_0001_50']);
    const a = await ds.train!.get(0);
    expect([a.h, a.w]).toEqual([f.h, f.w]);
    assertClose(
      a.image,
      f.px.map((v) => v / 255),
      { atol: 1e-7, rtol: 0 },
    );
    const want = Array.from({ length: 24 }, (_, k) => (k < 6 ? 5 : k >= 20 ? 1 : 0));
    expect(Array.from(a.label)).toEqual(want);
    const b = await ds.train!.get(1); // "amos_0001_50_…" masks must not attach to "amos_0001_5"
    expect(Array.from(b.label.slice(0, 3))).toEqual([7, 3, 0]);
    const v = await ds.test!.get(0);
    expect([v.d, v.h, v.w]).toEqual([1, 4, 6]);
    expect(decodeGreyPng(encodeGreyPng([0, 255], 1, 2)).data[1]).toBe(1);
  });

  test('mask size mismatch and corrupt PNGs name the file', async () => {
    let f = pngFolder();
    const bad = join(f.root, 'masks', 'amos_0001_5_spleen_000.png');
    writeFileSync(bad, encodeGreyPng(new Array(12).fill(255), 3, 4));
    await expect(openDataset(f.root)).rejects.toThrow(`${bad}: mask is 4x3 but image`);
    f = pngFolder();
    const img = join(f.root, 'images', 'amos_0001_50.png');
    writeFileSync(img, readFileSync(img).subarray(0, 40));
    await expect(openDataset(f.root)).rejects.toThrow(new RegExp(`${img}: corrupt PNG`));
    writeFileSync(img, 'not a png');
    await expect(openDataset(f.root)).rejects.toThrow(`${img}: not a PNG file`);
  });
});

// ---------------------------------------------------------------------------- augmentation

describe('augmentation (SAM-LST RandomGenerator)', () => {
  test('draws are deterministic in the seed with the 50/25/25 split, k∈0..3, axis∈0..1, angle∈[-20,19]', () => {
    const a = Array.from({ length: 50 }, (_, i) => augmentationKey(randomAugmentation(rng(99 + i))));
    const b = Array.from({ length: 50 }, (_, i) => augmentationKey(randomAugmentation(rng(99 + i))));
    expect(a).toEqual(b);
    const r = rng(5);
    const count = { none: 0, rotflip: 0, rotate: 0 };
    const ks = new Set<number>();
    const angles = new Set<number>();
    const N = 40000;
    for (let i = 0; i < N; i++) {
      const g = randomAugmentation(r);
      count[g.kind]++;
      if (g.kind === 'rotflip') ks.add(g.k * 2 + g.axis);
      if (g.kind === 'rotate') angles.add(g.angle);
    }
    expect(count.rotflip / N).toBeCloseTo(0.5, 1);
    expect(count.rotate / N).toBeCloseTo(0.25, 1);
    expect(count.none / N).toBeCloseTo(0.25, 1);
    expect(ks.size).toBe(8);
    expect(Math.min(...angles)).toBe(-20);
    expect(Math.max(...angles)).toBe(19);
    expect(angles.size).toBe(40);
  });

  test('keys round-trip; 49 variants with probabilities summing to 1; sampling from a finite set', () => {
    const vs = augmentationVariants();
    expect(vs.length).toBe(49);
    expect(vs.reduce((s, v) => s + v.p, 0)).toBeCloseTo(1, 12);
    const keys = new Set(vs.map((v) => augmentationKey(v.aug)));
    expect(keys.size).toBe(49);
    for (const v of vs) expect(parseAugmentationKey(augmentationKey(v.aug))).toEqual(v.aug);
    expect(() => parseAugmentationKey('spin:3')).toThrow(/not an augmentation key/);
    const set: Augmentation[] = [
      { kind: 'none' },
      { kind: 'rotflip', k: 1, axis: 0 },
      { kind: 'rotate', angle: 7 },
    ];
    const r = rng(1);
    const got = new Map<string, number>();
    for (let i = 0; i < 6000; i++) {
      const k = augmentationKey(sampleAugmentation(r, set));
      got.set(k, (got.get(k) ?? 0) + 1);
    }
    expect([...got.keys()].sort()).toEqual(['none', 'rotate:7', 'rotflip:k1:a0']);
    // weights 0.25 : 0.0625 : 0.00625
    expect(got.get('none')! / 6000).toBeCloseTo(0.25 / 0.31875, 1);
    expect(() => sampleAugmentation(r, [])).toThrow(/empty variant set/);
  });

  test('apply = geometric op, zoom to S (image order 3, label order 0), label zoom to S/4', () => {
    const c = kernelCase('zoom_up_order3');
    const img = c.f32('x'); // 14×14
    const lab = Int32Array.from({ length: 196 }, (_, i) => (i * 7) % 9);
    // no augmentation: the image zoom is exactly the scipy fixture
    const none = applyAugmentation(img, lab, 14, 14, { kind: 'none' }, 32);
    assertClose(none.image, c.f32('y'), { atol: 1e-7, rtol: 1e-6 });
    expect(Array.from(none.label)).toEqual(Array.from(zoom2d(lab, 14, 14, 32, 32, 0)));
    expect(Array.from(none.lowResLabel)).toEqual(Array.from(zoom2d(none.label, 32, 32, 8, 8, 0)));
    expect([none.size, none.lowRes, none.lowResLabel.length]).toEqual([32, 8, 64]);
    // rot90 + flip, on a non-square slice (rot90 transposes the size)
    const r = rng(2);
    const im = r.fill(10 * 14, 0, 1);
    const lb = Int32Array.from({ length: 140 }, () => r.int(0, 9));
    const rf = applyAugmentation(im, lb, 10, 14, { kind: 'rotflip', k: 1, axis: 1 }, 32);
    const rot = rot90(im, 10, 14, 1);
    expect(Array.from(rf.image)).toEqual(Array.from(zoom2d(flip(rot.data, 14, 10, 1), 14, 10, 32, 32, 3)));
    // rotate
    const ro = applyGeometric(im, lb, 10, 14, { kind: 'rotate', angle: -13 });
    expect(Array.from(ro.label)).toEqual(Array.from(rotate2d(lb, 10, 14, -13, 0)));
    const full = applyAugmentation(im, lb, 10, 14, { kind: 'rotate', angle: -13 }, 16);
    const present = new Set(lb);
    for (const v of full.label) expect(present.has(v) || v === 0).toBe(true);
    // already at size S: no zoom, a copy of the input
    const same = applyAugmentation(im.subarray(0, 100), lb.subarray(0, 100), 10, 10, { kind: 'none' }, 10, 5);
    expect(Array.from(same.image)).toEqual(Array.from(im.subarray(0, 100)));
    expect(same.image).not.toBe(im);
    // same (slice, augmentation) → identical network input, as the embedding cache assumes
    const again = applyAugmentation(im, lb, 10, 14, { kind: 'rotflip', k: 1, axis: 1 }, 32);
    expect(Array.from(again.image)).toEqual(Array.from(rf.image));
    expect(() => applyAugmentation(im, lb, 10, 14, { kind: 'none' }, 30, 7.5)).toThrow(
      /invalid low-res size/,
    );
  });
});

// ---------------------------------------------------------------------------- phantom dataset

describe('phantom dataset', () => {
  test("openDataset('phantom') serves disjoint train/test cases with the common shapes", async () => {
    const ds = await openDataset({
      kind: 'phantom',
      seed: 3,
      trainCases: 2,
      testCases: 1,
      size: 64,
      testSize: 48,
      depth: 6,
      slicesPerCase: 5,
    });
    expect(ds.layout).toBe('phantom');
    expect(ds.train!.size).toBe(10);
    const s = await ds.train!.get(7);
    expect([s.h, s.w, s.image.length, s.label.length]).toEqual([64, 64, 4096, 4096]);
    const v = await ds.test!.get(0);
    expect([v.d, v.h, v.w, v.image.length]).toEqual([6, 48, 48, 6 * 48 * 48]);
    const trainCases = new Set(ds.train!.ids.map((id) => id.split('_')[0]));
    for (const id of ds.test!.ids) expect(trainCases.has(id)).toBe(false);
    const def = await openDataset('phantom:1');
    expect([def.train!.size, def.test!.size]).toEqual([18 * 24, 12]);
    await expect(openDataset({ kind: 'phantom', size: 0 })).rejects.toThrow(/invalid size 0/);
  });
});
