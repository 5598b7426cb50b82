/**
 * Browser test harness (built only in vite mode 'test'): `window.samlstHarness.run(opts)` runs the
 * fixed computation that test/browser/browser.test.ts also runs in Node on Dawn — the tiny
 * SAM-LST fixture: eval-mode forward, one training step (loss, gradients, parameters after the
 * AdamW update), and the eval forward after the step — and returns every tensor as base64 f32.
 */
import { parseSafetensors, decodeEntry } from '../../../src/io/safetensors.js';
import { runReferenceComputation, type ReferenceResult } from '../reference.js';
import { createEngine, type AdapterProfile } from '../../../src/index.js';
import { gemmVariant } from '../../../src/kernels/gemm.js';
import { attentionVariant } from '../../../src/kernels/attention.js';
import { conv2dVariant } from '../../../src/kernels/conv2d.js';

export interface HarnessOptions {
  checkpointUrl: string;
  inputsUrl: string;
  lr: number;
  /** Overrides of the detected adapter profile (experiments: e.g. force a kernel variant). */
  profile?: Partial<AdapterProfile>;
}

export interface HarnessResult {
  profile: Record<string, unknown>;
  /** Kernel variants the engine picked for this adapter. */
  variants: Record<string, string>;
  timings: Record<string, number>;
  tensors: Record<string, { shape: number[]; b64: string }>;
  losses: number[];
}

function toB64(a: Float32Array | Int32Array): string {
  const u8 = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  let s = '';
  for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode(...u8.subarray(i, i + 0x8000));
  return btoa(s);
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function run(opts: HarnessOptions): Promise<HarnessResult> {
  const [ckpt, inputs] = await Promise.all([fetchBytes(opts.checkpointUrl), fetchBytes(opts.inputsUrl)]);
  const st = parseSafetensors(inputs, opts.inputsUrl);
  const get = (n: string) => {
    const e = st.tensors.get(n);
    if (!e) throw new Error(`${opts.inputsUrl}: no tensor '${n}'`);
    return { shape: [...e.shape], data: decodeEntry(e, n) };
  };
  const engine = await createEngine(opts.profile ? { profile: opts.profile } : {});
  try {
    const r: ReferenceResult = await runReferenceComputation(engine, {
      checkpoint: ckpt,
      image: get('input.image'),
      lowResLabels: get('input.low_res_label'),
      lr: opts.lr,
    });
    const tensors: HarnessResult['tensors'] = {};
    for (const [k, v] of r.tensors) tensors[k] = { shape: v.shape, b64: toB64(v.data) };
    return {
      profile: { ...engine.gpu.profile },
      variants: {
        gemm: gemmVariant(engine.gpu),
        attention: attentionVariant(engine.gpu),
        conv2d: conv2dVariant(engine.gpu),
      },
      timings: r.timings,
      tensors,
      losses: r.losses,
    };
  } finally {
    engine.dispose();
  }
}

declare global {
  interface Window {
    samlstHarness: { run(opts: HarnessOptions): Promise<HarnessResult> };
  }
}

window.samlstHarness = { run };
document.getElementById('status')!.textContent = 'ready';
