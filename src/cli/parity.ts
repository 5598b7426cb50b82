/**
 * npm run parity -- --manifest <case.json> [--quiet]
 *
 * Runs an oracle fixture case (the manifest's `config`, and its `files.state_dict` / `files.tensors`
 * relative to the manifest) through src/train/parity.ts, prints max abs / relative error per
 * tensor, and exits 1 if any tensor exceeds its tolerance or a check fails (2 on usage errors).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Gpu } from '../gpu/device.js';
import { createNodeDevice, releaseDawn } from '../platform/node.js';
import {
  compareAll,
  formatParityTable,
  parityCaseFromBytes,
  runParityCase,
  type ParityManifest,
} from '../train/parity.js';
import { runIfScript } from './session.js';

const USAGE = 'usage: npm run parity -- --manifest <case.json> [--quiet]';

export async function main(argv: readonly string[]): Promise<number> {
  let manifestPath: string | undefined;
  let quiet = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--manifest') manifestPath = argv[++i];
    else if (a.startsWith('--manifest=')) manifestPath = a.slice('--manifest='.length);
    else if (a === '--quiet') quiet = true;
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      return 0;
    } else {
      console.error(`parity: unknown argument '${a}'\n${USAGE}`);
      return 2;
    }
  }
  if (!manifestPath) {
    console.error(`parity: --manifest is required\n${USAGE}`);
    return 2;
  }
  let manifest: ParityManifest;
  let pc;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as ParityManifest;
    const dir = dirname(resolve(manifestPath));
    const file = (rel: string | undefined, what: string) => {
      if (!rel) throw new Error(`the manifest has no files.${what}`);
      return { bytes: new Uint8Array(readFileSync(resolve(dir, rel))), name: rel };
    };
    pc = parityCaseFromBytes(
      manifest,
      file(manifest.files?.state_dict, 'state_dict'),
      file(manifest.files?.tensors, 'tensors'),
    );
  } catch (e) {
    console.error(`parity: cannot read ${manifestPath}: ${(e as Error).message}`);
    return 2;
  }

  const node = await createNodeDevice();
  let gpu: Gpu | null = null;
  try {
    gpu = new Gpu({ device: node.device, adapterInfo: node.info, owned: false });
    console.log(`parity: ${manifestPath} on ${gpu.profile.description || 'unknown adapter'}`);
    const t0 = performance.now();
    const run = await runParityCase(gpu, pc, { log: quiet ? undefined : (l) => console.log(`  ${l}`) });
    const rows = compareAll(run, pc);
    const table = formatParityTable(rows, run.checks);
    const bad = rows.filter((r) => !r.ok).length + run.checks.filter((c) => !c.ok).length;
    if (quiet)
      console.log(
        table
          .split('\n')
          .filter((l) => /FAIL|failed|within/.test(l))
          .join('\n'),
      );
    else console.log(table);
    console.log(`parity: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return bad ? 1 : 0;
  } catch (e) {
    console.error(`parity: ${(e as Error).stack ?? String(e)}`);
    return 1;
  } finally {
    gpu?.destroy();
    node.close();
    releaseDawn();
  }
}

runIfScript(import.meta.url, main);
