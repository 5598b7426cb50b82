/**
 * npm run train -- --backend=dawn [options]     (see --help, and src/train/config.ts for presets)
 *
 * Parses the arguments, opens a Dawn device and calls src/train/loop.ts. Exit codes: 0 done,
 * 1 training failed (data errors, a non-finite loss or gradient, a lost device, out of GPU memory:
 * one `train: <ErrorName>: <message>` line on stderr naming the step, the last checkpoint and, for
 * a lost device, the `--resume <out>` that continues the run), 2 usage errors.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Gpu } from '../gpu/device.js';
import { createNodeDevice, releaseDawn } from '../platform/node.js';
import { exportStateDict, readCheckpoint, type Checkpoint } from '../train/checkpoint.js';
import {
  mergeResumeConfig,
  parseTrainArgs,
  TrainConfigError,
  usage,
  type ParsedArgs,
} from '../train/config.js';
import { buildModel } from '../train/variant.js';
import { CHECKPOINT_FILE, NonFiniteLossError, train } from '../train/loop.js';
import { restoreCheckpoint } from '../train/checkpoint.js';
import { AdamW } from '../optim/adamw.js';
import { runIfScript } from './session.js';

function checkpointPath(p: string): string {
  if (existsSync(p) && statSync(p).isDirectory()) return join(p, CHECKPOINT_FILE);
  return p;
}

export async function main(argv: readonly string[]): Promise<number> {
  let parsed: ParsedArgs;
  let resume: Checkpoint | null = null;
  try {
    parsed = parseTrainArgs(argv);
    if (parsed.action === 'help') {
      console.log(usage());
      return 0;
    }
    if (parsed.resume) {
      const p = checkpointPath(parsed.resume);
      if (!existsSync(p)) throw new TrainConfigError(`--resume: ${p} does not exist`);
      resume = readCheckpoint(p);
      parsed.config = mergeResumeConfig(resume.meta.config, parsed);
    }
  } catch (e) {
    console.error(`train: ${(e as Error).message}`);
    if (e instanceof TrainConfigError) console.error('run with --help for the options');
    return e instanceof TrainConfigError ? 2 : 1;
  }

  let node;
  try {
    node = await createNodeDevice({ backend: parsed.backend });
  } catch (e) {
    console.error(
      `train: no WebGPU adapter (${(e as Error).message}); on Linux without a GPU run: bash scripts/setup-vulkan.sh`,
    );
    return 1;
  }
  let gpu: Gpu | null = null;
  try {
    gpu = new Gpu({ device: node.device, adapterInfo: node.info, owned: false });
    if (parsed.action === 'export') {
      const { model } = buildModel(gpu, parsed.config);
      try {
        const opt = new AdamW(model.trainableParameters().map(([name, tensor]) => ({ name, tensor })));
        await restoreCheckpoint(model, opt, resume!);
        opt.dispose();
        await exportStateDict(model, parsed.exportStateDict!, {
          config: JSON.stringify(parsed.config),
          step: String(resume!.meta.state.step),
        });
        console.log(
          `train: wrote ${parsed.exportStateDict} (state_dict of ${resume!.path}, step ${resume!.meta.state.step})`,
        );
      } finally {
        model.dispose();
      }
      return 0;
    }
    await train(parsed.config, { gpu, resume, quiet: parsed.quiet });
    return 0;
  } catch (e) {
    // Errors the project defines (DataError, NiftiError, CheckpointError, ...) carry a message that
    // names the file / flag / value; anything else is unexpected and gets its stack.
    const err = e as Error;
    const known =
      e instanceof NonFiniteLossError ||
      (err.name && !['Error', 'TypeError', 'RangeError', 'ReferenceError'].includes(err.name));
    console.error(`train: ${known ? `${err.name}: ${err.message}` : (err.stack ?? String(e))}`);
    return 1;
  } finally {
    gpu?.destroy();
    node.close();
    releaseDawn();
  }
}

runIfScript(import.meta.url, main);
