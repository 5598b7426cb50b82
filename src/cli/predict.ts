/**
 * npm run predict -- --checkpoint C --input volume.nii.gz --out mask.nii.gz [options]
 *
 * Segments one NIfTI CT volume (src/eval/predict.ts): writes the label map as NIfTI with the input's
 * geometry (same dims, pixdim, qform/sform, voxel order: it overlays the input in a viewer) and,
 * with --overlays, PNGs of chosen slices. Exit codes: 0 done, 1 failure while running, 2 usage /
 * file / checkpoint errors.
 */
import { existsSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { readModelCheckpoint, type ModelCheckpoint } from '../app/load_model.js';
import { organName } from '../eval/report.js';
import { encodePrediction, predictNifti, writePredictionOverlays } from '../app/predict.js';
import { niftiGzipFor, readNiftiGeometry } from '../io/nifti_write.js';
import { intArg, parseOrExitCode, scanArgs, UsageError } from './args.js';
import { runIfScript, withLoadedModel } from './session.js';

const USAGE = `usage: npm run predict -- --checkpoint C --input volume.nii[.gz] --out mask.nii[.gz] [options]

  --checkpoint C      trained SAM-LST checkpoint: PyTorch .pth or safetensors (engine checkpoint)
  --input F           CT volume (NIfTI-1/2, .nii or .nii.gz), values in HU
  --out F             label map to write (.nii or .nii.gz; uint8, the input's geometry)
  --overlays DIR      also write PNG overlays (input | prediction) of some slices into DIR
  --slices Z,Z,...    slices for the overlays (0-based z; default: the 3 with the most foreground)
  --config X          model config: tiny | vitb | file.json (default: stored with the checkpoint,
                      else inferred from its tensor shapes)
  --img-size S        run the network at S x S (default: the checkpoint's; resizes position tables)
  --input-size I      intermediate resampling size of spec §13 (default 224)
  --batch-size N      slices per model call (default 4)
  --window LO,HI      HU window mapped to [0, 1] (default -125,275, as training)
  --no-window         use the voxel values as they are (input already in [0, 1])
  --orientation O     orientation the model was trained with: stored (default) or radiological
  --backend=dawn      WebGPU backend (Node: dawn)
  --quiet             less output
  -h, --help          this text`;

interface PredictArgs {
  checkpoint: string;
  input: string;
  out: string;
  overlays: string | null;
  slices: number[] | null;
  config: string | null;
  imgSize: number | null;
  inputSize: number;
  batchSize: number;
  window: [number, number] | null;
  orientation: 'stored' | 'radiological';
  backend: string | undefined;
  quiet: boolean;
}

export function parsePredictArgs(argv: readonly string[]): PredictArgs | 'help' {
  const a: Partial<PredictArgs> = {};
  let noWindow = false;
  const help = scanArgs(argv, ({ raw, flag, takes, str }) => {
    switch (flag) {
      case '--checkpoint':
        a.checkpoint = str();
        break;
      case '--input':
        a.input = str();
        break;
      case '--out':
        a.out = str();
        break;
      case '--overlays':
        a.overlays = str();
        break;
      case '--slices': {
        const v = str();
        a.slices = v.split(',').map((s) => intArg('--slices', s.trim(), 0));
        break;
      }
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
      case '--window': {
        const v = str();
        const p = v.split(',').map(Number);
        if (p.length !== 2 || !p.every(Number.isFinite) || !(p[1]! > p[0]!))
          throw new UsageError(`--window must be LO,HI with LO < HI, got '${v}'`);
        a.window = [p[0]!, p[1]!];
        break;
      }
      case '--no-window':
        noWindow = true;
        break;
      case '--orientation': {
        const v = str();
        if (v !== 'stored' && v !== 'radiological')
          throw new UsageError(`--orientation must be stored or radiological, got '${v}'`);
        a.orientation = v;
        break;
      }
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
  if (!a.input) throw new UsageError('--input is required');
  if (!a.out) throw new UsageError('--out is required');
  if (noWindow && a.window) throw new UsageError('--window and --no-window exclude each other');
  if (a.slices && !a.overlays) throw new UsageError('--slices needs --overlays DIR');
  try {
    niftiGzipFor(a.out);
  } catch (e) {
    throw new UsageError(`--out ${(e as Error).message}`);
  }
  return {
    checkpoint: a.checkpoint,
    input: a.input,
    out: a.out,
    overlays: a.overlays ?? null,
    slices: a.slices ?? null,
    config: a.config ?? null,
    imgSize: a.imgSize ?? null,
    inputSize: a.inputSize ?? 224,
    batchSize: a.batchSize ?? 4,
    window: noWindow ? null : (a.window ?? [-125, 275]),
    orientation: a.orientation ?? 'stored',
    backend: a.backend,
    quiet: a.quiet ?? false,
  };
}

export async function main(argv: readonly string[]): Promise<number> {
  const args = parseOrExitCode('predict', USAGE, argv, parsePredictArgs);
  if (typeof args === 'number') return args;
  const say = (l: string) => {
    if (!args.quiet) console.log(l);
  };

  // host-side checks before a device is opened
  let input: Uint8Array;
  let ck: ModelCheckpoint;
  try {
    if (!existsSync(args.input)) throw new Error(`--input ${args.input}: file not found`);
    if (statSync(args.input).isDirectory()) throw new Error(`--input ${args.input}: is a folder, not a file`);
    try {
      input = new Uint8Array(readFileSync(args.input));
    } catch (e) {
      throw new Error(`--input ${args.input}: cannot read (${(e as Error).message})`);
    }
    const geo = readNiftiGeometry(input, args.input);
    const depth = (geo.dim[0] ?? 0) >= 3 ? (geo.dim[3] ?? 1) : 1;
    for (const z of args.slices ?? [])
      if (z >= depth)
        throw new Error(
          `--slices: slice ${z} is outside 0..${depth - 1} (${args.input} has ${depth} slices)`,
        );
    const outDir = dirname(args.out);
    if (!existsSync(outDir)) mkdirSync(outDir, { recursive: true });
    ck = readModelCheckpoint(args.checkpoint);
  } catch (e) {
    console.error(`predict: ${(e as Error).message}`);
    return 2;
  }

  const opts = { config: args.config, imgSize: args.imgSize };
  return withLoadedModel('predict', args.backend, ck, opts, async (gpu, loaded) => {
    const cfg = loaded.config;
    say(
      `predict: ${args.checkpoint} (${ck.format}; config ${loaded.configHow}; network ${cfg.imgSize}x${cfg.imgSize}) ` +
        `on ${gpu.profile.description || 'unknown adapter'}`,
    );
    for (const n of loaded.notes) say(`note: ${n}`);
    const t0 = performance.now();
    let pred;
    try {
      let last = t0;
      pred = await predictNifti(loaded.predictor, input, args.input, {
        window: args.window,
        orientation: args.orientation,
        inputSize: args.inputSize,
        batchSize: args.batchSize,
        onProgress: (done, all) => {
          const now = performance.now();
          if (done < all && now - last > 15000) {
            last = now;
            say(`predict: ${done}/${all} slices`);
          }
        },
      });
    } catch (e) {
      const name = (e as Error).name;
      if (
        name === 'NiftiError' ||
        name === 'NiftiWriteError' ||
        name === 'DataError' ||
        name === 'PredictError'
      ) {
        console.error(`predict: ${(e as Error).message}`);
        return 2;
      }
      throw e;
    }
    const [d, h, w] = pred.shape;
    say(
      `predict: ${args.input}: ${w}x${h}x${d} (x, y, z) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    writeFileSync(args.out, encodePrediction(pred, niftiGzipFor(args.out)));
    const organs = pred.counts
      .map((n, l) => [l, n] as const)
      .filter(([l, n]) => l > 0 && n > 0)
      .map(([l, n]) => `${organName(l)} ${n}`);
    say(`predict: voxels per organ: ${organs.length ? organs.join(', ') : 'none'}`);
    console.log(`predict: wrote ${args.out}`);
    if (args.overlays) {
      const stem = basename(args.input).replace(/\.nii(\.gz)?$/i, '');
      let files: string[];
      try {
        files = writePredictionOverlays(pred, args.overlays, args.slices, stem);
      } catch (e) {
        console.error(`predict: ${(e as Error).message}`);
        return 2;
      }
      console.log(`predict: wrote ${files.length} overlays into ${args.overlays}`);
    }
    return 0;
  });
}

runIfScript(import.meta.url, main);
