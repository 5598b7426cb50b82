import { describe, expect, test } from 'vitest';
import { packUniforms, uniformByteSize, uniformStructWgsl } from '../../src/gpu/uniforms.js';
import { sizeClass } from '../../src/gpu/pool.js';

describe('uniform layouts', () => {
  const layout = [
    ['M', 'u32'],
    ['off', 'i32'],
    ['alpha', 'f32'],
    ['K', 'u32'],
    ['N', 'u32'],
  ] as const;

  test('struct text and byte size follow WGSL rules (16-byte rounded)', () => {
    expect(uniformStructWgsl('Params', layout)).toBe(
      'struct Params {\n  M: u32,\n  off: i32,\n  alpha: f32,\n  K: u32,\n  N: u32,\n}',
    );
    expect(uniformByteSize(layout)).toBe(32);
    expect(uniformByteSize([])).toBe(16);
  });

  test('packs each type at 4*i', () => {
    const u = packUniforms('k', layout, { M: 7, off: -3, alpha: 0.5, K: 0xffffffff, N: 1 });
    expect(u.byteLength).toBe(32);
    expect(u[0]).toBe(7);
    expect(new Int32Array(u.buffer)[1]).toBe(-3);
    expect(new Float32Array(u.buffer)[2]).toBe(0.5);
    expect(u[3]).toBe(0xffffffff);
  });

  test('rejects missing, unknown, non-integer and out-of-range values naming the kernel', () => {
    expect(() => packUniforms('gemm.main', layout, { M: 1, off: 0, alpha: 0, K: 1 })).toThrow(
      /gemm.main.*'N' not set/,
    );
    expect(() => packUniforms('k', layout, { M: 1, off: 0, alpha: 0, K: 1, N: 1, Z: 2 })).toThrow(
      /unknown uniform 'Z'/,
    );
    expect(() => packUniforms('k', layout, { M: 1.5, off: 0, alpha: 0, K: 1, N: 1 })).toThrow(
      /not an integer/,
    );
    expect(() => packUniforms('k', layout, { M: -1, off: 0, alpha: 0, K: 1, N: 1 })).toThrow(
      /out of u32 range/,
    );
    expect(() => packUniforms('k', layout, { M: 1, off: 2 ** 31, alpha: 0, K: 1, N: 1 })).toThrow(
      /out of i32 range/,
    );
  });
});

describe('pool size classes', () => {
  test.each([
    [1, 256],
    [256, 256],
    [257, 512],
    [1 << 20, 1 << 20],
    [(1 << 20) + 1, (1 << 20) + (1 << 17)],
    [3 * (1 << 20), 3 * (1 << 20)],
    [100_000_000, 100_663_296],
  ])('%i bytes -> %i', (n, want) => {
    expect(sizeClass(n)).toBe(want);
    expect(sizeClass(n)).toBeGreaterThanOrEqual(n);
    expect(sizeClass(n) / n).toBeLessThanOrEqual(n > 1 << 20 ? 1.125 : 256);
  });
});
