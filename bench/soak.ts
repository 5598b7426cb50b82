/**
 * A long soak of the training loop: `npx tsx bench/soak.ts --steps 5000` runs the run of
 * test/reliability/soak.test.ts (test/reliability/soak_run.ts: the real loop on the tiny model at
 * 64 px, batch 2, checkpoint every 4 steps, encoder cache on disk behind a small memory LRU) for
 * more steps, prints progress every `--progress` steps, then the figures as a Markdown table and
 * the broken expectations (exit code 1 when there are any).
 *
 * Flags: --steps N (default 5000; a multiple of 8 / batch), --batch B (2), --img-size S (64),
 * --sample-every K (10), --progress P (500), --out FILE (also write the table there).
 */
import { writeFileSync } from 'node:fs';
import { Gpu } from '../src/gpu/device.js';
import { createNodeDevice, releaseDawn } from '../src/platform/node.js';
import { runSoak, soakFigures, soakLine, soakTable, soakViolations } from '../test/reliability/soak_run.js';

function flags(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument '${a}' (flags: --steps N, --batch B, ...)`);
    const [k, v] = a.includes('=') ? a.slice(2).split('=', 2) : [a.slice(2), argv[++i]];
    if (v === undefined) throw new Error(`--${k} needs a value`);
    out[k!] = v;
  }
  return out;
}

function int(f: Record<string, string>, k: string, d: number): number {
  const v = f[k] === undefined ? d : Number(f[k]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer, got ${f[k]}`);
  return v;
}

async function main(): Promise<number> {
  const f = flags(process.argv.slice(2));
  const known = ['steps', 'batch', 'img-size', 'sample-every', 'progress', 'out'];
  for (const k of Object.keys(f))
    if (!known.includes(k)) throw new Error(`unknown flag --${k} (${known.join(', ')})`);
  const steps = int(f, 'steps', 5000);
  const batchSize = int(f, 'batch', 2);
  const imgSize = int(f, 'img-size', 64);
  const sampleEvery = int(f, 'sample-every', 10);
  const progress = int(f, 'progress', 500);
  const node = await createNodeDevice();
  const gpu = new Gpu({ device: node.device, adapterInfo: node.info, owned: false });
  console.log(
    `soak: ${steps} steps, batch ${batchSize}, input ${imgSize}, on ${gpu.profile.description || 'WebGPU'}`,
  );
  try {
    const r = await runSoak(gpu, {
      steps,
      batchSize,
      imgSize,
      sampleEvery,
      onSample: (s) => {
        if (s.step % progress === 0)
          console.log(
            `  step ${s.step}: ${s.t.toFixed(0)} s, pool ${s.liveBytes} B / ${s.liveBuffers} buffers, ` +
              `pipelines ${s.pipelines}, uniform ${s.uniformBuffers}, RSS ${(s.rss / 2 ** 20).toFixed(1)} MiB, ` +
              `heap ${(s.heap / 2 ** 20).toFixed(1)} MiB, fds ${s.fds}`,
          );
      },
    });
    const fig = soakFigures(r);
    const table = soakTable(fig);
    const bad = soakViolations(r);
    console.log('');
    console.log(soakLine(fig));
    console.log('');
    console.log(table);
    console.log('');
    console.log(bad.length ? `BROKEN:\n${bad.map((b) => `  - ${b}`).join('\n')}` : 'all expectations held');
    if (f.out) writeFileSync(f.out, `${table}\n`);
    return bad.length ? 1 : 0;
  } finally {
    gpu.destroy();
    node.close();
    releaseDawn();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(2);
  },
);
