/**
 * npm run bench [-- --only=gemm,conv2d] [--quick] [--no-tfjs]
 * Runs every bench/<stem>.bench.ts (each exports `cases(opts)`), prints a Markdown table and writes
 * bench/results/latest.json (list of {kernel, shape, ours_gflops, tfjs_gflops, ratio, ...}) and
 * bench/results/latest.md.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Gpu } from '../src/gpu/device.js';
import { createNodeDevice } from '../src/platform/node.js';
import { markdownTable, runCase, type BenchCase, type BenchRecord } from './harness.js';
import { setupTfjs } from './tfjs.js';

export interface BenchOpts {
  quick: boolean;
}

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (n: string) => args.includes(`--${n}`);
const only = args
  .find((a) => a.startsWith('--only='))
  ?.slice(7)
  .split(',');
const opts: BenchOpts = { quick: flag('quick') };

const node = await createNodeDevice();
const gpu = new Gpu({ device: node.device, adapterInfo: node.info });
const tf = flag('no-tfjs') ? null : await setupTfjs(node.device, node.info);
console.log(`adapter: ${gpu.profile.description} (${gpu.profile.kind}, subgroups ${gpu.profile.subgroups})`);

const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => !only || only.includes(f.replace('.bench.ts', '')))
  .sort();
const records: BenchRecord[] = [];
for (const f of files) {
  const mod = (await import(pathToFileURL(join(here, f)).href)) as { cases(o: BenchOpts): BenchCase[] };
  for (const c of mod.cases(opts)) {
    const r = await runCase(c, gpu, tf, node.device, {
      time: opts.quick ? 300 : 1000,
      iterations: opts.quick ? 3 : 5,
      rounds: opts.quick ? 3 : 5,
    });
    records.push(r);
    console.log(
      `${r.kernel.padEnd(18)} ${r.shape.padEnd(40)} ours ${String(r.ours_gflops).padStart(8)} GFLOP/s` +
        (r.tfjs_gflops !== null ? `  tfjs ${String(r.tfjs_gflops).padStart(8)}  ratio ${r.ratio}x` : ''),
    );
  }
}
const table = markdownTable(records);
console.log(`\n${table}`);
const out = join(here, 'results');
mkdirSync(out, { recursive: true });
const meta = {
  adapter: gpu.profile.description,
  kind: gpu.profile.kind,
  date: new Date().toISOString(),
  quick: opts.quick,
};
writeFileSync(join(out, 'latest.json'), JSON.stringify(records, null, 2) + '\n');
writeFileSync(join(out, 'latest.meta.json'), JSON.stringify(meta, null, 2) + '\n');
writeFileSync(join(out, 'latest.md'), `Adapter: ${meta.adapter}\n\n${table}`);
gpu.destroy();
node.close();
process.exit(0);
