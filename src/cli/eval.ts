/**
 * npm run eval -- --checkpoint C --data DIR [options]
 *
 * Per-volume inference over a dataset's test volumes and DSC / HD95 per organ (src/eval/evaluate.ts);
 * prints the per-organ table and writes <out>/eval.json and <out>/eval.md. Exit codes: 0 done,
 * 1 failure while running, 2 usage / file / checkpoint errors.
 */
import { openDataset, type Dataset, type DatasetSpec } from '../data/datasets.js';
import type { LabelMapName } from '../data/labels.js';
import { evaluate } from '../eval/evaluate.js';
import { readModelCheckpoint, type ModelCheckpoint } from '../app/load_model.js';
import { datasetSpec as runDatasetSpec } from '../train/loop.js';
import { intArg, parseOrExitCode, scanArgs, UsageError } from './args.js';
import { runIfScript, withLoadedModel } from './session.js';

const USAGE = `usage: npm run eval -- --checkpoint C --data DIR [options]

  --checkpoint C      trained SAM-LST checkpoint: PyTorch .pth or safetensors (engine checkpoint)
  --data DIR          dataset folder (Synapse train_npz/ + test_vol_h5/, NIfTI image/label pairs,
                      PNG images/ + masks/) or phantom[:seed] for the synthetic phantom
                      (default for a training checkpoint: the run's dataset)
  --out DIR           report folder (default runs/eval): eval.json, eval.md
  --config X          model config: tiny | vitb | file.json (default: stored with the checkpoint,
                      else inferred from its tensor shapes)
  --img-size S        run the network at S x S (default: the checkpoint's; resizes position tables)
  --input-size I      intermediate resampling size of spec §13 (default 224)
  --batch-size N      slices per model call (default 4; results do not depend on it)
  --limit N           evaluate only the first N test volumes
  --overlays          also write one PNG (ground truth | prediction) per case into <out>/overlays
  --label-map M       NIfTI folders: label ids to Synapse organs (totalsegmentator, btcv, synapse)
  --orientation O     NIfTI folders: stored (default) or radiological
  --phantom-cases N, --phantom-size S, --phantom-depth D
                      phantom test set: volumes, in-plane size (default 512), slices (default 48)
  --backend=dawn      WebGPU backend (Node: dawn)
  --quiet             only the final table
  -h, --help          this text`;

interface EvalArgs {
  checkpoint: string;
  data: string;
  out: string;
  config: string | null;
  imgSize: number | null;
  inputSize: number;
  batchSize: number;
  limit: number | null;
  overlays: boolean;
  labelMap: LabelMapName | null;
  orientation: 'stored' | 'radiological';
  phantom: { testCases?: number; testSize?: number; depth?: number };
  backend: string | undefined;
  quiet: boolean;
}

export function parseEvalArgs(argv: readonly string[]): EvalArgs | 'help' {
  const a: Partial<EvalArgs> & { phantom: EvalArgs['phantom'] } = { phantom: {} };
  const help = scanArgs(argv, ({ raw, flag, takes, str }) => {
    switch (flag) {
      case '--checkpoint':
        a.checkpoint = str();
        break;
      case '--data':
        a.data = str();
        break;
      case '--out':
        a.out = str();
        break;
      case '--config':
        a.config = str();
        break;
      case '--img-size':
        a.imgSize = intArg(flag, takes(), 16);
        break;
      case '--input-size':
        a.inputSize = intArg(flag, takes());
        break;
      case '--batch-size':
        a.batchSize = intArg(flag, takes());
        break;
      case '--limit':
        a.limit = intArg(flag, takes());
        break;
      case '--overlays':
        a.overlays = true;
        break;
      case '--label-map': {
        const v = str();
        if (v !== 'totalsegmentator' && v !== 'btcv' && v !== 'synapse')
          throw new UsageError(`--label-map must be totalsegmentator, btcv or synapse, got '${v}'`);
        a.labelMap = v as LabelMapName;
        break;
      }
      case '--orientation': {
        const v = str();
        if (v !== 'stored' && v !== 'radiological')
          throw new UsageError(`--orientation must be stored or radiological, got '${v}'`);
        a.orientation = v;
        break;
      }
      case '--phantom-cases':
        a.phantom.testCases = intArg(flag, takes());
        break;
      case '--phantom-size':
        a.phantom.testSize = intArg(flag, takes());
        break;
      case '--phantom-depth':
        a.phantom.depth = intArg(flag, takes());
        break;
      case '--backend':
        a.backend = str();
        break;
      case '--quiet':
        a.quiet = true;
        break;
      default:
        throw new UsageError(`unknown argument '${raw}'`);
    }
  });
  if (help) return 'help';
  if (!a.checkpoint) throw new UsageError('--checkpoint is required');
  return {
    checkpoint: a.checkpoint,
    data: a.data ?? '',
    out: a.out ?? 'runs/eval',
    config: a.config ?? null,
    imgSize: a.imgSize ?? null,
    inputSize: a.inputSize ?? 224,
    batchSize: a.batchSize ?? 4,
    limit: a.limit ?? null,
    overlays: a.overlays ?? false,
    labelMap: a.labelMap ?? null,
    orientation: a.orientation ?? 'stored',
    phantom: a.phantom,
    backend: a.backend,
    quiet: a.quiet ?? false,
  };
}

function datasetSpec(args: EvalArgs, ck: ModelCheckpoint): DatasetSpec {
  if (!args.data) {
    const run = ck.train?.config;
    if (!run) throw new UsageError('--data is required (only training checkpoints remember their dataset)');
    const spec = runDatasetSpec(run);
    if (typeof spec !== 'string' && spec.kind === 'phantom')
      return { ...spec, trainCases: 0, ...args.phantom };
    args.data = run.data;
    if (!args.labelMap && run.labelMap) args.labelMap = run.labelMap as LabelMapName;
  }
  const m = /^phantom(?::(\d+))?$/.exec(args.data);
  if (m) return { kind: 'phantom', seed: m[1] ? Number(m[1]) : 0, trainCases: 0, ...args.phantom };
  if (Object.keys(args.phantom).length)
    throw new UsageError('--phantom-* flags only apply with --data phantom[:seed]');
  return args.data;
}

export async function main(argv: readonly string[]): Promise<number> {
  const args = parseOrExitCode('eval', USAGE, argv, parseEvalArgs);
  if (typeof args === 'number') return args;
  const say = (l: string) => {
    if (!args.quiet) console.log(l);
  };

  // host-side checks first: checkpoint and dataset are read before a device is opened
  let ck: ModelCheckpoint;
  let dataset: Dataset;
  try {
    ck = readModelCheckpoint(args.checkpoint);
    dataset = await openDataset(datasetSpec(args, ck), {
      validate: 'quick',
      ...(args.labelMap ? { labelMap: args.labelMap } : {}),
      orientation: args.orientation,
    });
    if (!dataset.test || dataset.test.size === 0)
      throw new Error(`${args.data}: the dataset has no test volumes`);
  } catch (e) {
    console.error(`eval: ${(e as Error).message}`);
    return 2;
  }

  const opts = { config: args.config, imgSize: args.imgSize };
  return withLoadedModel('eval', args.backend, ck, opts, async (gpu, loaded) => {
    const cfg = loaded.config;
    say(
      `eval: ${args.checkpoint} (${ck.format}; config ${loaded.configHow}; network ${cfg.imgSize}x${cfg.imgSize}, ` +
        `${cfg.numClasses} classes${loaded.variant !== 'lst' ? `, variant ${loaded.variant}` : ''}) on ${gpu.profile.description || 'unknown adapter'}`,
    );
    for (const n of loaded.notes) say(`note: ${n}`);
    const res = await evaluate(loaded.predictor, dataset, {
      inputSize: args.inputSize,
      batchSize: args.batchSize,
      ...(args.limit ? { limit: args.limit } : {}),
      outDir: args.out,
      overlayDir: args.overlays ? `${args.out}/overlays` : null,
      log: say,
      perCase: true,
      meta: {
        checkpoint: args.checkpoint,
        checkpointFormat: ck.format,
        config: loaded.configHow,
        variant: loaded.variant,
        imgSize: cfg.imgSize,
        inputSize: args.inputSize,
        batchSize: args.batchSize,
        adapter: gpu.profile.description || 'unknown',
      },
    });
    const table = res.markdown.split('\n## Per case')[0]!.trim();
    console.log(`\n${table}\n`);
    if (res.files) console.log(`eval: wrote ${res.files.json} and ${res.files.md}`);
    const ov = res.cases.flatMap((c) => c.overlays);
    if (ov.length) say(`eval: wrote ${ov.length} overlays into ${args.out}/overlays`);
    return 0;
  });
}

runIfScript(import.meta.url, main);
