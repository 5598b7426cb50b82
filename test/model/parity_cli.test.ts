/**
 * The `npm run parity` CLI (src/cli/parity.ts) as a subprocess: the tiny case passes (exit 0,
 * per-tensor table), a case whose reference was tampered with fails (exit 1, the tensor is named),
 * and usage / file errors exit 2.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { expect, test } from 'vitest';
import {
  decodeEntry,
  parseSafetensors,
  writeSafetensors,
  type StWriteEntry,
} from '../../src/io/safetensors.js';
import { fixturesDir, testDir } from '../helpers.js';

const root = join(testDir, '..');
const tsx = join(root, 'node_modules', '.bin', 'tsx');

function cli(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(tsx, ['src/cli/parity.ts', ...args], { cwd: root, timeout: 110_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, out: stdout + stderr });
    });
  });
}

test('usage and unreadable manifests exit 2', async () => {
  const a = await cli([]);
  expect(a.code).toBe(2);
  expect(a.out).toMatch(/--manifest is required/);
  const b = await cli(['--manifest', '/nonexistent/case.json']);
  expect(b.code).toBe(2);
  expect(b.out).toMatch(/cannot read \/nonexistent\/case\.json/);
});

test('the tiny case passes; a tampered reference fails and is named', async () => {
  const ok = await cli(['--manifest', join(fixturesDir, 'tiny_case.json')]);
  expect(ok.out).toMatch(/act\.fused\s+\S+\s+\S+\s+\S+\s+ok/);
  expect(ok.out).toMatch(/all 211 tensors and 3 checks within tolerance/);
  expect(ok.code).toBe(0);

  // Same case, act.fused shifted by 1e-3 in one element; files referenced relative to the manifest.
  const dir = mkdtempSync(join(tmpdir(), 'samlst-parity-'));
  const st = parseSafetensors(new Uint8Array(readFileSync(join(fixturesDir, 'tiny_case.safetensors'))));
  const entries = new Map<string, StWriteEntry>();
  for (const [n, e] of st.tensors) {
    const data = decodeEntry(e, n);
    if (n === 'act.fused') (data as Float32Array)[5]! += 1e-3;
    entries.set(n, { dtype: data instanceof Int32Array ? 'I32' : 'F32', shape: e.shape, data });
  }
  writeFileSync(join(dir, 'bad.safetensors'), writeSafetensors(entries));
  const manifest = JSON.parse(readFileSync(join(fixturesDir, 'tiny_case.json'), 'utf8')) as {
    files: Record<string, string>;
  };
  manifest.files = {
    state_dict: relative(dir, join(fixturesDir, 'tiny_sam_lst.pth')),
    tensors: 'bad.safetensors',
  };
  writeFileSync(join(dir, 'bad.json'), JSON.stringify(manifest));
  const bad = await cli(['--manifest', join(dir, 'bad.json'), '--quiet']);
  expect(bad.out).toMatch(/act\.fused\s.*FAIL\s+\(1\/2304 over tolerance\)/);
  expect(bad.out).toMatch(/1 of 214 failed/);
  expect(bad.code).toBe(1);
});
