/**
 * Browser-vs-Node parity for the browser tests: the tiny SAM-LST fixture computation
 * (test/browser/reference.ts: eval forward, one training step — loss, gradients of every parameter
 * on the loss path, parameters after AdamW, BatchNorm running statistics — and the eval forward
 * after it) run in Node on Dawn once per test file, and in Chromium through the harness page.
 * Tolerance: twice the fixture's float32 tolerance for the same quantity (each side may deviate
 * from the float64 truth by one).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { Engine } from '../../src/engine.js';
import type { AdapterProfile } from '../../src/gpu/device.js';
import { decodeEntry, parseSafetensors } from '../../src/io/safetensors.js';
import { tolerance, type ManifestEntry } from '../../src/train/parity.js';
import { closeTestGpus, fixturesDir, loadJson, testGpu } from '../helpers.js';
import type { HarnessResult } from './harness/harness.js';
import { runReferenceComputation, type ReferenceResult } from './reference.js';
import { startWebEnv, type WebEnv } from './setup.js';

const manifest = loadJson('tiny_case.json') as { tensors: Record<string, ManifestEntry> };
const LR = 1e-3;

export interface ParityEnv {
  env: WebEnv;
  /** The Node/Dawn result. */
  ref: ReferenceResult;
  /** Runs the computation in a fresh Chromium page (optionally with an adapter-profile override). */
  runInBrowser(profile?: Partial<AdapterProfile>): Promise<HarnessResult>;
  /** Every browser tensor within tolerance of Node's; logs the worst ratio per group. */
  expectEqualToNode(got: HarnessResult): void;
  close(): Promise<void>;
}

function fromB64(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

/** The fixture manifest's tolerance for the same quantity as result tensor `name`. */
function atolFor(name: string): number {
  const key = name.startsWith('param.')
    ? `train2.${name}` // after AdamW: the group-wide float32 floor of TOLERANCE_RULES
    : name.startsWith('running.')
      ? `bn_after.${name.slice('running.'.length)}`
      : name === 'after.low_res_logits'
        ? 'eval.low_res_logits'
        : name;
  const e = manifest.tensors[key];
  if (!e) throw new Error(`no manifest entry '${key}' for '${name}'`);
  return tolerance(key, e, manifest.tensors).atol;
}

export async function startParity(): Promise<ParityEnv> {
  const env = await startWebEnv();
  const nodeEngine = new Engine(await testGpu());
  const st = parseSafetensors(new Uint8Array(readFileSync(join(fixturesDir, 'tiny_case.safetensors'))));
  const get = (n: string) => ({
    shape: [...st.tensors.get(n)!.shape],
    data: decodeEntry(st.tensors.get(n)!, n),
  });
  const t0 = performance.now();
  const ref = await runReferenceComputation(nodeEngine, {
    checkpoint: new Uint8Array(readFileSync(join(fixturesDir, 'tiny_sam_lst.pth'))),
    image: get('input.image'),
    lowResLabels: get('input.low_res_label'),
    lr: LR,
  });
  const tNode = performance.now() - t0;

  return {
    env,
    ref,
    async runInBrowser(profile) {
      const page = await env.browser.page();
      await page.goto(`${env.server.url}/test/browser/harness/index.html`);
      await page.waitForFunction(() => 'samlstHarness' in window);
      const t1 = performance.now();
      const got = (await page.evaluate((o) => window.samlstHarness.run(o), {
        checkpointUrl: '/test/fixtures/tiny_sam_lst.pth',
        inputsUrl: '/test/fixtures/tiny_case.safetensors',
        lr: LR,
        ...(profile ? { profile } : {}),
      })) as HarnessResult;
      const ms = performance.now() - t1;
      await page.close();
      const p = got.profile;
      console.log(
        `browser adapter: ${String(p.description)}, kind ${String(p.kind)}${profile ? ' (forced)' : ''}, subgroups ` +
          `${String(p.subgroups)} (${String(p.subgroupMinSize)}..${String(p.subgroupMaxSize)} lanes), variants ` +
          `${JSON.stringify(got.variants)}\nnode ${tNode.toFixed(0)} ms; browser ${ms.toFixed(0)} ms ` +
          JSON.stringify(got.timings, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v) : v)),
      );
      return got;
    },
    expectEqualToNode(got) {
      expect(Object.keys(got.tensors).sort()).toEqual([...ref.tensors.keys()].sort());
      expect(ref.tensors.size).toBeGreaterThan(100);
      const bad: string[] = [];
      const worst = new Map<string, { name: string; ratio: number }>();
      for (const [name, r] of ref.tensors) {
        const g = got.tensors[name]!;
        expect(g.shape, name).toEqual(r.shape);
        const b = fromB64(g.b64);
        expect(b.length, name).toBe(r.data.length);
        const atol = 2 * atolFor(name);
        let maxAbs = 0;
        for (let i = 0; i < b.length; i++) {
          const d = Math.abs(b[i]! - r.data[i]!);
          if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? Infinity : d;
        }
        if (!(maxAbs <= atol)) bad.push(`${name}: max |browser - node| ${maxAbs} > ${atol}`);
        const group = name.split('.')[0]!;
        if ((worst.get(group)?.ratio ?? -1) < maxAbs / atol) worst.set(group, { name, ratio: maxAbs / atol });
      }
      console.log(
        'worst |browser - node| / atol per group: ' +
          [...worst].map(([k, w]) => `${k} ${w.ratio.toFixed(3)} (${w.name})`).join(', '),
      );
      expect(bad).toEqual([]);
      const lossTol = 2 * tolerance('loss.total', manifest.tensors['loss.total']!).atol;
      expect(
        Math.abs(got.losses[0]! - ref.losses[0]!),
        `loss ${got.losses[0]} vs ${ref.losses[0]}`,
      ).toBeLessThanOrEqual(lossTol);
    },
    async close() {
      await env.close();
      nodeEngine.dispose();
      closeTestGpus();
    },
  };
}
