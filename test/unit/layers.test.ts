/**
 * The import arrows of ARCHITECTURE.md, checked over the import statements of src/:
 * util ← gpu ← kernels ← ops ← nn ← eval ← train ← app ← cli; util, gpu ← tensor ← autograd ← ops (the tape uses
 * the elementwise kernels to accumulate gradients);
 * optim → tensor, kernels; io and data are host-only; platform/node only from cli/test/bench;
 * only src/gpu (and platform, which obtains devices) may call WebGPU device methods.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, dirname, normalize } from 'node:path';
import { expect, test } from 'vitest';
import { testDir } from '../helpers.js';

const src = join(testDir, '..', 'src');

function walk(d: string): string[] {
  return readdirSync(d).flatMap((f) => {
    const p = join(d, f);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const ALLOWED: Record<string, string[]> = {
  util: [],
  gpu: ['util'],
  platform: ['gpu', 'util'],
  kernels: ['gpu', 'util', 'tensor'],
  tensor: ['gpu', 'util'],
  autograd: ['tensor', 'util', 'gpu', 'kernels/elementwise'],
  ops: ['autograd', 'tensor', 'kernels', 'gpu', 'util'],
  optim: ['tensor', 'kernels', 'gpu', 'util'],
  io: ['util', 'tensor/host'],
  data: ['util', 'tensor/host', 'io'],
  nn: ['ops', 'autograd', 'tensor', 'kernels', 'gpu', 'util', 'io'],
  eval: ['nn', 'ops', 'autograd', 'tensor', 'kernels', 'gpu', 'util', 'io', 'data'],
  train: ['eval', 'nn', 'ops', 'optim', 'autograd', 'tensor', 'kernels', 'gpu', 'util', 'io', 'data'],
  app: ['train', 'eval', 'nn', 'ops', 'optim', 'autograd', 'tensor', 'kernels', 'gpu', 'util', 'io', 'data'],
  // prettier-ignore
  cli: ['app', 'train', 'eval', 'nn', 'ops', 'optim', 'autograd', 'tensor', 'kernels', 'gpu', 'util', 'io', 'data', 'platform'],
};

function layerOf(rel: string): string {
  return rel.split('/')[0]!.replace(/\.ts$/, '');
}

test('src/ imports follow the layer arrows', () => {
  const bad: string[] = [];
  for (const file of walk(src)) {
    const rel = relative(src, file);
    const layer = layerOf(rel);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)[^'";]*?from\s+['"](\.[^'"]+)['"]/gm)) {
      const target = relative(src, normalize(join(dirname(file), m[1]!))).replace(/\.js$/, '');
      if (target.startsWith('..')) {
        bad.push(`${rel} imports outside src: ${m[1]}`);
        continue;
      }
      const tl = layerOf(target);
      if (tl === layer) continue;
      if (target === 'platform/node' && layer !== 'cli') bad.push(`${rel} imports platform/node`);
      if (layer === 'index' || layer === 'engine') continue;
      const allowed = ALLOWED[layer];
      if (!allowed) continue;
      const ok = allowed.some((a) => target === a || target.startsWith(`${a}/`) || tl === a);
      if (!ok) bad.push(`${rel} (${layer}) imports ${target}`);
    }
  }
  expect(bad).toEqual([]);
});

test('only src/gpu and src/platform talk to the GPUDevice', () => {
  const bad: string[] = [];
  const deviceCalls =
    /\.(createBuffer|createComputePipeline|createShaderModule|createBindGroup|queue\.submit|queue\.writeBuffer|createCommandEncoder)\(/;
  for (const file of walk(src)) {
    const rel = relative(src, file);
    if (rel.startsWith('gpu/') || rel.startsWith('platform/')) continue;
    if (deviceCalls.test(readFileSync(file, 'utf8'))) bad.push(rel);
  }
  expect(bad).toEqual([]);
});

test('the browser entry point does not import Node-only modules', () => {
  const index = join(src, 'index.ts');
  const seen = new Set<string>();
  const stack = [index];
  const nodeOnly: string[] = [];
  while (stack.length) {
    const f = stack.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const m of text.matchAll(/(?:import|export)[^'";]*?from\s+['"]([^'"]+)['"]/g)) {
      const spec = m[1]!;
      if (spec.startsWith('node:') || spec === 'webgpu') nodeOnly.push(`${relative(src, f)} -> ${spec}`);
      if (spec.startsWith('.')) stack.push(normalize(join(dirname(f), spec)).replace(/\.js$/, '.ts'));
    }
    // import('webgpu') in dynamic form
    if (/import\(\s*['"]webgpu['"]\s*\)/.test(text)) nodeOnly.push(`${relative(src, f)} -> import('webgpu')`);
  }
  expect(nodeOnly).toEqual([]);
});
