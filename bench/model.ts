/**
 * npm run bench:model [-- --quick]: whole-model timings beside Debian's PyTorch CPU on the same
 * machine (bench/torch_model.py, when /usr/bin/python3 has torch):
 *  - the frozen ViT-B encoder forward per image at 224 and 512 (random weights in the official
 *    layout), and the peak GPU memory of that pass above the weights;
 *  - one cached training step: side network + decoder forward and backward + AdamW, batch 24 at
 *    224 (--quick: batch 2), with the encoder embedding given (as the cache provides it).
 * Writes bench/results/model.json and prints a Markdown table. With --profile, one more encoder
 * pass per size and one more cached step run under Gpu.startProfiling(), and their device time per
 * kernel (timestamp queries) is printed and written to bench/results/encoder_profile.{md,json} and
 * step_profile.{md,json}.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { noGrad } from '../src/autograd/tape.js';
import { Gpu } from '../src/gpu/device.js';
import { SamLstConfig } from '../src/nn/config.js';
import { SamLST } from '../src/nn/sam_lst.js';
import { AdamW, SAM_LST_ADAMW } from '../src/optim/adamw.js';
import { createNodeDevice, releaseDawn } from '../src/platform/node.js';
import { tidy } from '../src/tensor/scope.js';
import { Tensor } from '../src/tensor/tensor.js';
import { samLstTrainStep } from '../src/train/parity.js';
import { Rng } from '../src/util/rng.js';

const here = dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');
const profile = process.argv.includes('--profile');
const reps = quick ? 2 : 3;

async function median(f: () => Promise<void>, n: number): Promise<number> {
  await f();
  const ts: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await f();
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)]!;
}

const node = await createNodeDevice();
const gpu = new Gpu({ device: node.device, adapterInfo: node.info });
const rng = new Rng(1);
const ours: Record<string, number> = {};

/** Runs `work` once under the kernel profiler; returns its wall time, kernels and a Markdown table. */
async function profiled(title: string, work: () => Promise<void>) {
  gpu.startProfiling();
  const t0 = performance.now();
  await work();
  const wall = performance.now() - t0;
  const kernels = await gpu.stopProfiling();
  const total = kernels.reduce((s, k) => s + k.ms, 0);
  let md = `${title}: ${wall.toFixed(0)} ms wall (profiled), ${total.toFixed(0)} ms device time in kernels.\n\n`;
  md += '| kernel {overrides} | calls | ms | share |\n| --- | ---: | ---: | ---: |\n';
  for (const k of kernels)
    md += `| ${k.kernel} | ${k.calls} | ${k.ms.toFixed(1)} | ${((100 * k.ms) / total).toFixed(1)} % |\n`;
  console.log(md);
  return { wall, kernels, md };
}

function writeResult(name: string, md: string, json: object): void {
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results', `${name}.md`), md);
  writeFileSync(join(here, 'results', `${name}.json`), JSON.stringify(json, null, 2) + '\n');
}

const encoderProfiles: { md: string; json: object }[] = [];

for (const size of quick ? [224] : [224, 512]) {
  const model = new SamLST(gpu, SamLstConfig.vitB(size), { seed: 1 });
  const x = Tensor.fromData(gpu, rng.fill(3 * size * size, 0, 1), [1, 3, size, size]);
  await gpu.sync();
  gpu.pool.resetPeak();
  const base = gpu.stats().pool.liveBytes;
  ours[`encoder_ms_${size}`] = await median(async () => {
    const e = tidy(() => noGrad(() => model.encode(x)));
    await gpu.sync();
    e.dispose();
  }, reps);
  ours[`encoder_peak_mib_${size}`] = (gpu.stats().pool.peakLiveBytes - base) / 2 ** 20;
  if (profile) {
    const p = await profiled(`ViT-B encoder forward, 1 image at ${size}`, async () => {
      const e = tidy(() => noGrad(() => model.encode(x)));
      await gpu.sync();
      e.dispose();
    });
    encoderProfiles.push({ md: p.md, json: { size, wall_ms: p.wall, kernels: p.kernels } });
  }
  x.dispose();
  model.dispose();
  gpu.trim();
}

const B = quick ? 2 : 24;
{
  const cfg = SamLstConfig.vitB(224);
  const model = new SamLST(gpu, cfg, { seed: 1 });
  const opt = new AdamW(
    model.trainableParameters().map(([name, tensor]) => ({ name, tensor })),
    SAM_LST_ADAMW,
  );
  const x = Tensor.fromData(gpu, rng.fill(B * 3 * 224 * 224, 0, 1), [B, 3, 224, 224]);
  const emb = Tensor.fromData(gpu, rng.fill(B * 256 * 14 * 14, -1, 1), [B, 256, 14, 14]);
  const lab = Tensor.fromData(
    gpu,
    Int32Array.from({ length: B * 56 * 56 }, () => rng.int(0, 9)),
    [B, 56, 56],
  );
  ours.cached_step_ms = await median(async () => {
    const loss = samLstTrainStep(model, opt, x, lab, { embedding: emb, lr: 1e-3 });
    await loss.read();
    loss.dispose();
  }, reps);
  if (profile) {
    const p = await profiled(`Cached training step, batch ${B} at 224`, async () => {
      const loss = samLstTrainStep(model, opt, x, lab, { embedding: emb, lr: 1e-3 });
      await loss.read();
      loss.dispose();
    });
    writeResult('step_profile', p.md, { batch: B, wall_ms: p.wall, kernels: p.kernels });
  }
  [x, emb, lab].forEach((t) => t.dispose());
  opt.dispose();
  model.dispose();
}
if (profile)
  writeResult(
    'encoder_profile',
    encoderProfiles.map((p) => p.md).join('\n'),
    encoderProfiles.map((p) => p.json),
  );
gpu.destroy();
node.close();
releaseDawn();

let torch: Record<string, unknown> | null = null;
try {
  const outText = execFileSync(
    '/usr/bin/python3',
    [join(here, 'torch_model.py'), ...(quick ? ['--quick'] : [])],
    {
      encoding: 'utf8',
      timeout: 3_600_000,
    },
  );
  torch = JSON.parse(outText.trim().split('\n').pop()!) as Record<string, unknown>;
} catch (e) {
  console.warn(`PyTorch comparison skipped: ${(e as Error).message.split('\n')[0]}`);
}
const enc = (torch?.encoder_ms ?? {}) as Record<string, number>;
const rows: [string, number, number | undefined, string][] = [];
for (const size of quick ? [224] : [224, 512]) {
  rows.push([
    `ViT-B encoder forward, 1 image at ${size}`,
    ours[`encoder_ms_${size}`]!,
    enc[String(size)],
    'ms',
  ]);
}
rows.push([
  `cached training step, batch ${B} at 224`,
  ours.cached_step_ms!,
  torch?.cached_step_ms as number | undefined,
  'ms',
]);
let table = '| work | ours | PyTorch CPU | ours / PyTorch time |\n| --- | ---: | ---: | ---: |\n';
for (const [w, o, t] of rows)
  table += `| ${w} | ${o.toFixed(0)} ms | ${t === undefined ? '–' : `${t.toFixed(0)} ms`} | ${t === undefined ? '–' : (o / t).toFixed(2)} |\n`;
for (const size of quick ? [224] : [224, 512])
  table += `| encoder peak GPU memory above weights at ${size} | ${ours[`encoder_peak_mib_${size}`]!.toFixed(1)} MiB | | |\n`;
console.log(table);
writeResult('model', table, { ours, torch, quick });
process.exit(0);
