/**
 * Uniform layouts, declared once. A kernel's uniform block is an ordered list of 4-byte scalar
 * fields; from it we derive both the WGSL struct text (checked against each .wgsl file by the
 * contract test) and the byte packing used at dispatch.
 *
 * All fields are 4-byte scalars, so WGSL offsets are 4*i; the buffer is padded to 16 bytes as the
 * uniform address space requires for the struct size.
 */
export type ScalarType = 'u32' | 'i32' | 'f32';
export type UniformLayout = readonly (readonly [name: string, type: ScalarType])[];

export function uniformByteSize(layout: UniformLayout): number {
  return Math.max(16, Math.ceil((layout.length * 4) / 16) * 16);
}

export function uniformStructWgsl(structName: string, layout: UniformLayout): string {
  return `struct ${structName} {\n${layout.map(([n, t]) => `  ${n}: ${t},`).join('\n')}\n}`;
}

/** Packs `values` in layout order; every field must be given, unknown names are rejected. */
export function packUniforms(
  kernel: string,
  layout: UniformLayout,
  values: Readonly<Record<string, number>>,
): Uint32Array {
  const out = new Uint32Array(uniformByteSize(layout) / 4);
  const f32 = new Float32Array(out.buffer);
  const i32 = new Int32Array(out.buffer);
  for (const key of Object.keys(values)) {
    if (!layout.some(([n]) => n === key)) throw new Error(`kernel '${kernel}': unknown uniform '${key}'`);
  }
  layout.forEach(([name, type], i) => {
    const v = values[name];
    if (v === undefined) throw new Error(`kernel '${kernel}': uniform '${name}' not set`);
    if (type === 'f32') f32[i] = v;
    else {
      if (!Number.isInteger(v))
        throw new Error(`kernel '${kernel}': uniform '${name}' = ${v} is not an integer`);
      if (type === 'u32') {
        if (v < 0 || v > 0xffffffff)
          throw new Error(`kernel '${kernel}': uniform '${name}' = ${v} out of u32 range`);
        out[i] = v;
      } else {
        if (v < -0x80000000 || v > 0x7fffffff)
          throw new Error(`kernel '${kernel}': uniform '${name}' = ${v} out of i32 range`);
        i32[i] = v;
      }
    }
  });
  return out;
}
