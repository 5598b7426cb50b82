/**
 * No GPU: every kernels/*.wgsl parses, opens with a header comment, and every KernelSpec exported
 * by src/kernels/*.ts matches its WGSL entry point: storage bindings (name, index, access), the
 * uniform struct (name, fields, order, types) and the override constants.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import type { KernelSpec } from '../src/gpu/kernel.js';
import { testDir } from './helpers.js';

const root = join(testDir, '..');
const wgslFiles = readdirSync(join(root, 'kernels')).filter((f) => f.endsWith('.wgsl'));
const tsFiles = readdirSync(join(root, 'src/kernels')).filter(
  (f) => f.endsWith('.ts') && !f.endsWith('.gen.ts'),
);

function isSpec(v: unknown): v is KernelSpec {
  return !!v && typeof v === 'object' && 'entry' in v && 'storage' in v && 'source' in v && 'uniforms' in v;
}

async function allSpecs(): Promise<KernelSpec[]> {
  const specs: KernelSpec[] = [];
  for (const f of tsFiles) {
    const mod = (await import(join(root, 'src/kernels', f))) as Record<string, unknown>;
    for (const v of Object.values(mod)) if (isSpec(v)) specs.push(v);
  }
  return specs;
}

describe('WGSL files', () => {
  test.each(wgslFiles)('%s parses and has a header comment', (f) => {
    const src = readFileSync(join(root, 'kernels', f), 'utf8');
    expect(src.startsWith('//'), `${f} must open with a header comment`).toBe(true);
    const r = new WgslReflect(src);
    expect(r.entry.compute.length).toBeGreaterThan(0);
  });
});

describe('kernel specs match their WGSL', async () => {
  const specs = await allSpecs();
  test('every WGSL file has a TS face with the same stem, and every spec names a real file', () => {
    const stems = new Set(specs.map((s) => s.file));
    for (const f of wgslFiles) expect(stems.has(f.slice(0, -5)), `no KernelSpec for ${f}`).toBe(true);
    for (const s of specs) expect(wgslFiles).toContain(`${s.file}.wgsl`);
    const names = specs.map((s) => s.name);
    expect(new Set(names).size, 'kernel names must be unique').toBe(names.length);
  });

  test.each(specs.map((s) => [s.name, s] as const))('%s', (_name, spec) => {
    const src = readFileSync(join(root, 'kernels', `${spec.file}.wgsl`), 'utf8');
    expect(spec.source).toBe(src);
    const r = new WgslReflect(src);
    const entry = r.entry.compute.find((e) => e.name === spec.entry);
    expect(entry, `entry point '${spec.entry}' not found`).toBeDefined();
    const used = entry!.resources;
    for (const res of used) expect(res.group, `${res.name} must be in group 0`).toBe(0);
    const storage = used.filter((x) => x.resourceType === 1 /* Storage */);
    const uniforms = used.filter((x) => x.resourceType === 0 /* Uniform */);
    // Every declared binding is used by the entry, and nothing else is.
    const got = storage.map((x) => [x.binding, x.name, x.access] as const).sort((a, b) => a[0] - b[0]);
    const want = spec.storage.map(([n, a], i) => [i, n, a] as const);
    expect(got).toEqual(want);
    if (spec.uniformStruct) {
      expect(uniforms.length).toBe(1);
      const u = uniforms[0]!;
      expect(u.binding).toBe(spec.storage.length);
      expect(u.type.name).toBe(spec.uniformStruct);
      const members = (
        u.type as unknown as { members: { name: string; type: { name: string }; offset: number }[] }
      ).members;
      expect(members.map((m) => [m.name, m.type.name])).toEqual(spec.uniforms.map(([n, t]) => [n, t]));
      members.forEach((m, i) => expect(m.offset).toBe(4 * i));
    } else {
      expect(uniforms.length).toBe(0);
    }
    const overrides = new Set(r.overrides.map((o) => o.name));
    for (const k of Object.keys(spec.overrides))
      expect(overrides.has(k), `override '${k}' not in WGSL`).toBe(true);
  });
});
