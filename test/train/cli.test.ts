/**
 * `npm run train` arguments (src/train/config.ts) and the CLI as a subprocess (src/cli/train.ts):
 *  - flags in both `--flag value` and `--flag=value` form; the presets (default, and --preset paper
 *    = ViT-B/16, 512, batch 24, 200 epochs, lr 1e-3, warm-up 250, AdamW wd 0.1, λ 0.8);
 *  - unknown flags, malformed and out-of-range values, duplicates and bad combinations are errors
 *    naming the flag and the value; --resume refuses flags that would change the run;
 *  - subprocess: --help (exit 0), a usage error (exit 2), a data error (exit 1, the file named), and
 *    the default `npm run train -- --backend=dawn` path cut to 2 steps (exit 0, progress, validation
 *    table before/after, outputs listed and present).
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { SamLstConfig } from '../../src/nn/config.js';
import {
  mergeResumeConfig,
  modelConfig,
  parseTrainArgs,
  presetConfig,
  TrainConfigError,
} from '../../src/train/config.js';
import { testDir } from '../helpers.js';
import { tempDir } from './util.js';

const root = join(testDir, '..');
const tsx = join(root, 'node_modules', '.bin', 'tsx');

function cli(args: string[], timeout = 170_000): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(tsx, ['src/cli/train.ts', ...args], { cwd: root, timeout }, (e, stdout, stderr) => {
      const code = e ? (typeof e.code === 'number' ? e.code : 1) : 0;
      resolve({ code, out: stdout, err: stderr });
    });
  });
}

describe('arguments', () => {
  test('defaults, both flag forms, presets', () => {
    const a = parseTrainArgs(['--backend=dawn']);
    expect(a.action).toBe('train');
    expect(a.config.preset).toBe('default');
    expect(a.config.data).toBe('phantom');
    expect(a.config.variant).toBe('lst');
    const m = modelConfig(a.config);
    expect(m.imgSize).toBe(128);
    expect(4 * m.cnnWidth).toBe(m.promptDim);

    const b = parseTrainArgs([
      '--backend',
      'dawn',
      '--img-size=96',
      '--batch-size',
      '4',
      '--epochs=2',
      '--max-steps',
      '5',
      '--lr',
      '3e-4',
      '--seed=7',
      '--variant',
      'cnn-decoder',
      '--cache-dtype=f16',
      '--out',
      '/tmp/x',
      '--cache-dir',
      '/tmp/c',
    ]);
    expect(modelConfig(b.config).imgSize).toBe(96);
    expect(b.config).toMatchObject({
      batchSize: 4,
      epochs: 2,
      maxSteps: 5,
      lr: 3e-4,
      seed: 7,
      variant: 'cnn-decoder',
      cacheDtype: 'f16',
      out: '/tmp/x',
      cacheDir: '/tmp/c',
    });

    const p = parseTrainArgs(['--backend=dawn', '--preset', 'paper']).config;
    expect(p).toMatchObject({
      batchSize: 24,
      epochs: 200,
      lr: 1e-3,
      warmupPeriod: 250,
      weightDecay: 0.1,
      diceWeight: 0.8,
      betas: [0.9, 0.999],
      seed: 1234,
      augment: 'paper',
    });
    expect(modelConfig(p)).toEqual(SamLstConfig.vitB(512, 8));
    expect(presetConfig('paper').model).toEqual(SamLstConfig.vitB().toJson());
    expect(parseTrainArgs(['--help']).action).toBe('help');
  });

  test.each([
    [['--bogus'], /unknown flag '--bogus'/],
    [['--epoch', '3'], /unknown flag '--epoch' \(did you mean --epochs\?\)/],
    [['--backend=webgl'], /--backend: unknown 'webgl'/],
    [['--img-size', '100'], /--img-size: must be a positive multiple of 16, got 100/],
    [['--img-size', 'big'], /--img-size: expected an integer, got 'big'/],
    [['--batch-size', '0'], /--batch-size: must be a positive integer, got 0/],
    [['--epochs', '1.5'], /--epochs: expected an integer, got '1.5'/],
    [['--lr', 'abc'], /--lr: expected a finite number, got 'abc'/],
    [['--lr', '-1'], /--lr: must be a finite number > 0, got -1/],
    [['--lr=Infinity'], /--lr: expected a finite number, got 'Infinity'/],
    [['--seed', '-3'], /--seed: must be an integer in 0..4294967295, got -3/],
    [['--variant', 'both'], /--variant: unknown 'both'/],
    [['--preset', 'huge'], /--preset: unknown 'huge'/],
    [['--cache-dtype', 'bf16'], /--cache-dtype: unknown 'bf16'/],
    [['--label-map', 'nope'], /--label-map: unknown 'nope'/],
    [['--max-steps'], /--max-steps: needs a value/],
    [['--data', '--epochs', '2'], /--data: needs a value/],
    [['--epochs', '2', '--epochs', '3'], /--epochs: given more than once/],
    [['--quiet=yes'], /--quiet: takes no value/],
    [['stray'], /unexpected argument 'stray'/],
    [['--export-state-dict', 'x.safetensors'], /--export-state-dict: needs --resume/],
  ])('%j is an error', (args, msg) => {
    expect(() => parseTrainArgs(args as string[])).toThrow(TrainConfigError);
    expect(() => parseTrainArgs(args as string[])).toThrow(msg);
  });

  test('--resume keeps the run: only run-length / output flags may change', () => {
    const saved = parseTrainArgs(['--epochs', '3', '--lr', '0.001', '--out', '/tmp/run']).config;
    const ok = mergeResumeConfig(
      saved,
      parseTrainArgs(['--resume', '/tmp/run', '--max-steps', '10', '--epochs', '3', '--cache-dir', '/tmp/c']),
    );
    expect(ok).toMatchObject({ epochs: 3, maxSteps: 10, cacheDir: '/tmp/c', out: '/tmp/run' });
    expect(() => mergeResumeConfig(saved, parseTrainArgs(['--resume', '/tmp/run', '--lr', '0.01']))).toThrow(
      /--lr: cannot change on --resume \(the checkpoint's run has 0.001, given 0.01\)/,
    );
    expect(() => mergeResumeConfig(saved, parseTrainArgs(['--resume', '/tmp/run', '--epochs', '4']))).toThrow(
      /--epochs: cannot change/,
    );
    expect(() =>
      mergeResumeConfig(saved, parseTrainArgs(['--resume', '/tmp/run', '--preset', 'paper'])),
    ).toThrow(/--preset: cannot change/);
  });
});

describe('subprocess', () => {
  test('--help, usage error, data error', async () => {
    const h = await cli(['--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/usage: npm run train -- --backend=dawn/);
    expect(h.out).toMatch(/--variant S\s+lst .*cnn-decoder .*sam-decoder/);
    const u = await cli(['--backend=dawn', '--batch-size', 'many']);
    expect(u.code).toBe(2);
    expect(u.err).toMatch(/--batch-size: expected an integer, got 'many'/);
    const d = await cli(['--backend=dawn', '--data', '/nonexistent/dataset', '--out', tempDir('cli-bad')]);
    expect(d.code).toBe(1);
    expect(d.err).toMatch(/\/nonexistent\/dataset: dataset folder not found/);
  });

  test('default `npm run train -- --backend=dawn` path, cut to 2 steps', async () => {
    const out = tempDir('cli-default');
    const r = await cli(['--backend=dawn', '--max-steps', '2', '--val-cases', '1', '--out', out]);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toMatch(/SAM weights: RANDOM/);
    expect(r.out).toMatch(/untrained: mean DSC/);
    expect(r.out).toMatch(/step 2\/2 +epoch 1\/5 +loss \d\.\d+ +\d+\.\d img\/s +ETA/);
    expect(r.out).toMatch(/organ +DSC before +DSC after +HD95 before +HD95 after/);
    expect(r.out).toMatch(/spleen/);
    expect(r.out).toMatch(new RegExp(`report +${out}/report\\.md`));
    for (const f of [
      'checkpoint.safetensors',
      'state_dict.safetensors',
      'metrics.jsonl',
      'report.md',
      'loss.svg',
      'val_dice.svg',
      'alpha.svg',
      'legend.svg',
      'config.json',
      'validation.md',
    ])
      expect(existsSync(join(out, f)), f).toBe(true);
    expect(readdirSync(join(out, 'overlays')).length).toBeGreaterThan(0);
    const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"type":"step"'));
    expect(steps).toHaveLength(2);
    const first = JSON.parse(steps[0]!) as Record<string, number>;
    expect(first).toMatchObject({ step: 1, epoch: 1, lr: parseTrainArgs([]).config.lr / 20 });
    expect(first.gate).toBeCloseTo(1 / (1 + Math.exp(-first.alpha!)), 12);
    expect(first.gate).toBeCloseTo(0.5, 3);
    for (const k of ['loss', 'ce', 'dice', 'imagesPerSec']) expect(Number.isFinite(first[k]), k).toBe(true);
  });
});
