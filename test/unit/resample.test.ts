/**
 * scipy.ndimage / numpy data ops (src/data/resample.ts) against the committed scipy 1.10.1
 * fixtures (kernels.safetensors cases zoom_*, rotate_*, rot90k*) and against behaviours observed
 * in scipy 1.10.1 that the fixtures do not cover (edge round-off, nearest ties).
 */
import { describe, expect, test } from 'vitest';
import {
  cosdg,
  flip,
  fma,
  rot90,
  rotate2d,
  sindg,
  splineFilter2d,
  zoom2d,
  zoomBy,
  zoomFactor,
  zoomOutputSize,
  zoomSlices,
} from '../../src/data/resample.js';
import { assertClose, kernelCase, rng, tinyCase } from '../helpers.js';

function fixture(name: string) {
  const c = kernelCase(name);
  const x = c.get('x');
  const y = c.get('y');
  return { x, y, h: x.shape[0]!, w: x.shape[1]!, oh: y.shape[0]!, ow: y.shape[1]! };
}

function expectExact(actual: ArrayLike<number>, expected: ArrayLike<number>, name: string): void {
  expect(actual.length, `${name}: length`).toBe(expected.length);
  const bad: string[] = [];
  for (let i = 0; i < expected.length; i++)
    if (actual[i] !== expected[i] && bad.length < 5) bad.push(`[${i}] got ${actual[i]} want ${expected[i]}`);
  expect(bad, `${name}: first mismatches`).toEqual([]);
}

describe('scipy.ndimage.zoom fixtures', () => {
  for (const name of ['zoom_up_order3', 'zoom_down_order3']) {
    test(`${name}: order 3 spline (prefilter, mode constant) within 1e-6 relative`, () => {
      const f = fixture(name);
      expect(f.x.dtype).toBe('f32');
      const y = zoom2d(f.x.data as Float32Array, f.h, f.w, f.oh, f.ow, 3);
      expect(y).toBeInstanceOf(Float32Array);
      // float64 arithmetic in scipy's order, stored as float32: in practice bit-exact.
      const err = assertClose(y, f.y.data, { atol: 1e-7, rtol: 1e-6, name });
      expect(err).toBeLessThan(1e-6);
    });
  }

  for (const name of ['zoom_down_order0', 'zoom_up_order0']) {
    test(`${name}: order 0 on integer labels, exact`, () => {
      const f = fixture(name);
      expect(f.x.dtype).toBe('i32');
      const y = zoom2d(f.x.data as Int32Array, f.h, f.w, f.oh, f.ow, 0);
      expect(y).toBeInstanceOf(Int32Array);
      expectExact(y, f.y.data, name);
    });
  }

  test('factor form picks the output size like scipy (Python round, ties to even)', () => {
    const f = fixture('zoom_up_order3');
    const r = zoomBy(f.x.data as Float32Array, 14, 14, 32 / 14, 32 / 14, 3);
    expect([r.h, r.w]).toEqual([32, 32]);
    assertClose(r.data, f.y.data, { atol: 1e-7, rtol: 1e-6 });
    expect(zoomOutputSize(5, 0.5)).toBe(2); // round(2.5) = 2
    expect(zoomOutputSize(7, 0.5)).toBe(4); // round(3.5) = 4
    expect(zoomOutputSize(512, 224 / 512)).toBe(224);
    expect(zoomOutputSize(224, 512 / 224)).toBe(512);
  });

  test('the SAM-LST loss target: tiny_case low_res_label = zoom(label 96→24, order 0)', () => {
    const c = tinyCase();
    const lab = c.get('input.label');
    const low = c.get('input.low_res_label');
    const [b, h, w] = lab.shape as [number, number, number];
    const [, oh, ow] = low.shape as [number, number, number];
    const y = zoomSlices(lab.data as Int32Array, b, h, w, oh, ow, 0);
    expectExact(y, low.data, 'low_res_label');
  });
});

describe('scipy.ndimage.zoom edge semantics (observed in scipy 1.10.1)', () => {
  test('512→224: the last output row/column map to 511.00000000000006 > 511 and become cval 0', () => {
    expect(223 * zoomFactor(512, 224)).toBeGreaterThan(511);
    const r = rng(1);
    const x = r.fill(512 * 512, 1, 2);
    for (const order of [0, 3] as const) {
      const y = zoom2d(x, 512, 512, 224, 224, order);
      for (let i = 0; i < 224; i++) {
        expect(y[223 * 224 + i]).toBe(0);
        expect(y[i * 224 + 223]).toBe(0);
      }
      expect(y[222 * 224 + 222]).toBeGreaterThan(0.9);
    }
    // 224→512 has no such round-off: the whole output is filled
    const up = zoom2d(r.fill(224 * 224, 1, 2), 224, 224, 512, 512, 3);
    expect(up[511 * 512 + 511]).toBeGreaterThan(0.5);
  });

  test('order 3 reproduces constants (mirror-initialised B-spline prefilter)', () => {
    const y = zoom2d(new Float32Array(9 * 13).fill(0.625), 9, 13, 17, 29, 3);
    for (const v of y) expect(v).toBeCloseTo(0.625, 6);
    // the prefilter of a constant is the constant
    const c = splineFilter2d(new Float32Array(20).fill(3), 4, 5);
    for (const v of c) expect(v).toBeCloseTo(3, 12);
  });

  test('same size is returned unchanged; size-1 axes use zoom factor 1', () => {
    const x = Float32Array.from([1, 2, 3, 4, 5, 6]);
    expect(Array.from(zoom2d(x, 2, 3, 2, 3, 3))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(zoomFactor(5, 1)).toBe(1);
    const y = zoom2d(Int32Array.from([7, 8, 9]), 1, 3, 1, 5, 0);
    expect(Array.from(y)).toEqual([7, 8, 8, 9, 9]); // nearest: 0, .5→1, 1, 1.5→2, 2
  });

  test('rejects bad sizes and orders with the op name', () => {
    expect(() => zoom2d(new Float32Array(5), 2, 3, 4, 4, 3)).toThrow(/zoom2d: input has 5 values/);
    expect(() => zoom2d(new Float32Array(6), 2, 3, 0, 4, 3)).toThrow(/zoom2d: invalid output size/);
    expect(() => zoom2d(new Float32Array(6), 2, 3, 4, 4, 1 as 0)).toThrow(/order 1 not supported/);
  });
});

describe('scipy.ndimage.rotate (order 0, reshape=False) fixtures', () => {
  test('rotate_13deg_order0_img: float image, exact', () => {
    const f = fixture('rotate_13deg_order0_img');
    expectExact(rotate2d(f.x.data as Float32Array, f.h, f.w, 13, 0), f.y.data, '13°');
  });

  test('rotate_m20deg_order0_lab: integer label, exact', () => {
    const f = fixture('rotate_m20deg_order0_lab');
    expectExact(rotate2d(f.x.data as Int32Array, f.h, f.w, -20, 0), f.y.data, '-20°');
  });

  test('45° on 32×32: a nearest-neighbour tie decided by the last bit of the rotation centre', () => {
    // scipy 1.10.1 / numpy 1.24.2 (the fixture versions): rotate(arange(1024).reshape(32,32), 45,
    // order=0, reshape=False)[25, 6] = 514 = x[16, 2]: the input row lands exactly on 15.5 and
    // rounds up. (scipy 1.17 / numpy 2.4 compute the centre differently and give 482 = x[15, 2].)
    const x = Float32Array.from({ length: 1024 }, (_, i) => i);
    const y = rotate2d(x, 32, 32, 45, 0);
    expect(y[25 * 32 + 6]).toBe(514);
  });

  test('angle 0 is the identity; ±90° equal rot90 on a square where no coordinate leaves the grid', () => {
    const x = rng(3).fill(7 * 7, 0, 1);
    expect(Array.from(rotate2d(x, 7, 7, 0, 0))).toEqual(Array.from(x));
    // scipy rotates by +angle with axes (1,0): +90 matches np.rot90(k=1)
    expect(Array.from(rotate2d(x, 7, 7, 90, 0))).toEqual(Array.from(rot90(x, 7, 7, 1).data));
    expect(Array.from(rotate2d(x, 7, 7, -90, 0))).toEqual(Array.from(rot90(x, 7, 7, 3).data));
  });

  test('Cephes sindg / cosdg are exact at multiples of 90° and symmetric', () => {
    // signed zeros as scipy.special returns them
    expect([sindg(0), sindg(90), sindg(180), sindg(270), sindg(-90)]).toEqual([0, 1, -0, -1, -1]);
    expect([cosdg(0), cosdg(90), cosdg(180), cosdg(-180), cosdg(360)]).toEqual([1, -0, -1, -1, 1]);
    for (let a = -20; a < 20; a++) {
      expect(sindg(a)).toBeCloseTo(Math.sin((a * Math.PI) / 180), 15);
      expect(cosdg(a)).toBeCloseTo(Math.cos((a * Math.PI) / 180), 15);
      expect(sindg(-a) + sindg(a)).toBe(0);
    }
    // scipy.special (Cephes) value that differs from Math.sin(45°) in the last bit
    expect(sindg(45)).toBe(0.7071067811865476);
    expect(cosdg(45)).toBe(0.7071067811865475);
  });

  test('fma is correctly rounded', () => {
    expect(fma(0.1, 10, -1)).toBe(5.551115123125783e-17); // 0.1*10 - 1 rounds to 0 unfused
    expect(0.1 * 10 - 1).toBe(0);
    expect(fma(2, 3, 4)).toBe(10);
    expect(fma(1 + 2 ** -52, 1 - 2 ** -53, -1)).toBe(2 ** -52 - 2 ** -53 - 2 ** -105);
    expect(fma(-1.5, 2, 0.25)).toBe(-2.75);
  });
});

describe('np.rot90 + np.flip fixtures', () => {
  test('rot90k3_flip0: np.flip(np.rot90(a, 3), axis=0)', () => {
    const f = fixture('rot90k3_flip0');
    const r = rot90(f.x.data as Float32Array, f.h, f.w, 3);
    expectExact(flip(r.data, r.h, r.w, 0), f.y.data, 'k3 flip0');
  });

  test('rot90k1_flip1: np.flip(np.rot90(a, 1), axis=1)', () => {
    const f = fixture('rot90k1_flip1');
    const r = rot90(f.x.data as Float32Array, f.h, f.w, 1);
    expectExact(flip(r.data, r.h, r.w, 1), f.y.data, 'k1 flip1');
  });

  test('non-square: rot90 swaps the size, k and 4−k are inverse, k=2 is flip of both axes', () => {
    const x = Int32Array.from({ length: 12 }, (_, i) => i); // 3×4
    const r1 = rot90(x, 3, 4, 1);
    expect([r1.h, r1.w]).toEqual([4, 3]);
    // np.rot90(np.arange(12).reshape(3,4)) = [[3,7,11],[2,6,10],[1,5,9],[0,4,8]]
    expect(Array.from(r1.data)).toEqual([3, 7, 11, 2, 6, 10, 1, 5, 9, 0, 4, 8]);
    const back = rot90(r1.data, r1.h, r1.w, 3);
    expect(Array.from(back.data)).toEqual(Array.from(x));
    expect(Array.from(rot90(x, 3, 4, 2).data)).toEqual(Array.from(flip(flip(x, 3, 4, 0), 3, 4, 1)));
    expect(Array.from(rot90(x, 3, 4, -1).data)).toEqual(Array.from(rot90(x, 3, 4, 3).data));
  });
});
