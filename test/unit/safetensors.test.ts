import { describe, expect, test } from 'vitest';
import { decodeEntry, parseSafetensors, writeSafetensors } from '../../src/io/safetensors.js';

function roundTrip() {
  const m = new Map([
    ['b.weight', { dtype: 'F32' as const, shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6.5]) }],
    ['a.idx', { dtype: 'I32' as const, shape: [4], data: Int32Array.from([-1, 0, 7, 2 ** 30]) }],
    ['scalar', { dtype: 'F32' as const, shape: [], data: Float32Array.from([3]) }],
  ]);
  return writeSafetensors(m, { format: 'pt' });
}

describe('safetensors', () => {
  test('write then read round-trips names, shapes, dtypes and data', () => {
    const st = parseSafetensors(roundTrip(), 'mem');
    expect([...st.tensors.keys()].sort()).toEqual(['a.idx', 'b.weight', 'scalar']);
    expect(st.metadata).toEqual({ format: 'pt' });
    const w = st.tensors.get('b.weight')!;
    expect(w.shape).toEqual([2, 3]);
    expect(Array.from(decodeEntry(w))).toEqual([1, 2, 3, 4, 5, 6.5]);
    expect(Array.from(decodeEntry(st.tensors.get('a.idx')!))).toEqual([-1, 0, 7, 2 ** 30]);
    expect(Array.from(decodeEntry(st.tensors.get('scalar')!))).toEqual([3]);
  });

  test('reads the committed PyTorch fixtures', async () => {
    const { readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { fixturesDir } = await import('../helpers.js');
    const st = parseSafetensors(
      new Uint8Array(readFileSync(join(fixturesDir, 'kernels.safetensors'))),
      'kernels',
    );
    expect(st.tensors.size).toBe(305);
    const e = st.tensors.get('conv2d_stem7x7_s2_p3/x')!;
    expect(e.dtype).toBe('F32');
    expect(e.shape).toEqual([2, 3, 20, 20]);
  });

  const bad: [string, (b: Uint8Array) => Uint8Array, RegExp][] = [
    ['too short', () => new Uint8Array(4), /too short/],
    ['truncated', (b) => b.subarray(0, b.length - 3), /runs past the end/],
    [
      'huge header length',
      (b) => {
        const c = Uint8Array.from(b);
        new DataView(c.buffer).setBigUint64(0, 1n << 40n, true);
        return c;
      },
      /header length/,
    ],
    [
      'garbage header',
      (b) => {
        const c = Uint8Array.from(b);
        c[9] = 0xff;
        return c;
      },
      /not valid JSON/,
    ],
  ];
  test.each(bad)('rejects %s with a message naming the source', (_n, mutate, re) => {
    expect(() => parseSafetensors(mutate(roundTrip()), 'model.safetensors')).toThrow(re);
    expect(() => parseSafetensors(mutate(roundTrip()), 'model.safetensors')).toThrow(/model\.safetensors/);
  });

  test('rejects wrong sizes, dtypes and overlaps', () => {
    const mk = (h: object, dataLen: number) => {
      const j = new TextEncoder().encode(JSON.stringify(h));
      const out = new Uint8Array(8 + j.length + dataLen);
      new DataView(out.buffer).setBigUint64(0, BigInt(j.length), true);
      out.set(j, 8);
      return out;
    };
    expect(() => parseSafetensors(mk({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8))).toThrow(
      /needs 12 bytes/,
    );
    expect(() => parseSafetensors(mk({ a: { dtype: 'Q4', shape: [1], data_offsets: [0, 4] } }, 4))).toThrow(
      /unsupported dtype/,
    );
    expect(() =>
      parseSafetensors(
        mk(
          {
            a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
            b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
          },
          12,
        ),
      ),
    ).toThrow(/overlap/);
    expect(() => parseSafetensors(mk({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4))).toThrow(
      /invalid shape/,
    );
  });
});
