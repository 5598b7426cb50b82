/**
 * Shared pieces of the fault tests (test/reliability/faults_*.test.ts): a clean reference run of
 * the tiny training configuration whose checkpoints at the ends of epochs 1 and 2 (steps 3 and 6)
 * and at step 7 are kept, and bit-exact comparisons of checkpoints.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../../src/gpu/device.js';
import { readCheckpoint, type Checkpoint } from '../../src/train/checkpoint.js';
import type { TrainConfig } from '../../src/train/config.js';
import { MetricsLog, type StepRecord } from '../../src/train/log.js';
import { CHECKPOINT_FILE, train } from '../../src/train/loop.js';
import { sink, tempDir, tinyTrainConfig } from '../train/util.js';

export { expectSameCheckpoint } from '../train/util.js';

export const TOTAL = 7;

export interface Reference {
  dir: string;
  /** Checkpoint bytes on disk after steps 3 and 6 (ends of epochs 1 and 2). */
  bytes: Map<number, Buffer>;
  final: Checkpoint;
  losses: number[];
}

/**
 * The tiny configuration cut to `TOTAL` steps (3 per epoch, checkpoints at 3 and 6, final at 7),
 * without test volumes (no validation: these tests are about the training state).
 */
export function faultConfig(out: string, over: Partial<TrainConfig> = {}): TrainConfig {
  const c = tinyTrainConfig(out, { maxSteps: TOTAL, ...over });
  return { ...c, phantom: { ...c.phantom, testCases: 0 }, ...over };
}

/** A clean run straight through, keeping the checkpoint bytes after steps 3 and 6. */
export async function referenceRun(gpu: Gpu): Promise<Reference> {
  const dir = tempDir('fault-ref');
  const bytes = new Map<number, Buffer>();
  await train(faultConfig(dir), {
    gpu,
    out: sink(),
    hooks: {
      afterStep: (s) => {
        if (s === 3 || s === 6) bytes.set(s, readFileSync(join(dir, CHECKPOINT_FILE)));
      },
    },
  });
  return { dir, bytes, final: readCheckpoint(join(dir, CHECKPOINT_FILE)), losses: stepLosses(dir) };
}

export function stepLosses(dir: string): number[] {
  return MetricsLog.read(join(dir, 'metrics.jsonl'))
    .filter((r): r is StepRecord => r.type === 'step')
    .map((r) => r.loss);
}

/** The checkpoint of `bytes`, parsed and verified (checksum) by readCheckpoint. */
export function parseCheckpointBytes(bytes: Buffer): Checkpoint {
  const p = join(tempDir('fault-ck'), CHECKPOINT_FILE);
  writeFileSync(p, bytes);
  return readCheckpoint(p);
}

/** Temporary files an interrupted writer left in `dir`. */
export function temporaries(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => /\.tmp-\d+-/.test(f)) : [];
}
