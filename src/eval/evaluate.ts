/**
 * Evaluation of a model on test volumes (spec §13): per-volume inference (inference.ts), per case
 * and organ DSC / HD95 on the whole 3-D volume with MedPy semantics (metrics.ts), per-organ means
 * over cases and their mean (summarize), written as JSON + Markdown (report.ts), with progress
 * lines. `evaluateVolumes` is the core (also the training loop's validation table); `evaluate`
 * runs it on a Dataset's test split and writes the report files. Optionally writes a PNG overlay
 * (ground truth | prediction) of each case's slices with the most labelled voxels.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset, Source, Volume } from '../data/types.js';
import type { SamLST } from '../nn/sam_lst.js';
import { modelPredictor, predictVolume, type InferenceOptions, type SlicePredictor } from './inference.js';
import { caseMetrics, summarize, type MetricsSummary, type OrganMetric } from './metrics.js';
import { pickSlices, sliceOverlayPng } from './overlay.js';
import { reportMarkdown, reportObject, type ReportOptions } from './report.js';

/** Test volumes: a dataset split or an array. */
export type VolumeSet = Source<Volume> | readonly Volume[];

export interface EvaluateOptions extends Omit<InferenceOptions, 'onProgress'> {
  /** Organ classes scored, labels 1..classes (default: the model's output channels − 1). */
  classes?: number;
  /** Evaluate only the first `limit` volumes. */
  limit?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** Seconds between in-volume progress lines (default 15). */
  progressEvery?: number;
  /** Keep each case's predicted label volume in the result (default false). */
  keepPredictions?: boolean;
  /** Write overlay PNGs here (created). */
  overlayDir?: string | null;
  /** Overlay slices per case (default 1): those with the most ground-truth foreground. */
  overlaySlices?: number;
  /** Called after each case (e.g. to stream results). */
  onCase?: (c: CaseEvaluation, index: number, total: number) => void;
}

export interface CaseEvaluation {
  name: string;
  /** organs[i] = label i + 1; DSC as a fraction. */
  organs: OrganMetric[];
  shape: [number, number, number];
  inferSeconds: number;
  metricSeconds: number;
  /** The predicted (d, h, w) label volume, with keepPredictions. */
  prediction?: Int32Array;
  /** Overlay PNG paths written for this case. */
  overlays: string[];
}

export interface Evaluation {
  summary: MetricsSummary;
  cases: CaseEvaluation[];
  /** Total wall time, slices inferred. */
  seconds: number;
  slices: number;
}

const isPredictor = (m: SamLST | SlicePredictor): m is SlicePredictor =>
  typeof (m as SlicePredictor).run === 'function';

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_');
}

/**
 * Runs inference on every volume and scores it against its label (see the file comment).
 * Volumes are loaded one at a time (a Source loads on demand).
 */
export async function evaluateVolumes(
  model: SamLST | SlicePredictor,
  volumes: VolumeSet,
  opts: EvaluateOptions = {},
): Promise<Evaluation> {
  const predictor = isPredictor(model) ? model : modelPredictor(model);
  const classes = opts.classes ?? predictor.channels - 1;
  if (!Number.isInteger(classes) || classes < 1)
    throw new RangeError(`evaluateVolumes: classes must be a positive integer, got ${classes}`);
  const log = opts.log ?? (() => {});
  const total0 = 'get' in volumes ? volumes.size : volumes.length;
  const total = opts.limit !== undefined ? Math.min(opts.limit, total0) : total0;
  if (total < 1) throw new RangeError('evaluateVolumes: no test volumes to evaluate');
  const get = async (i: number): Promise<Volume> =>
    'get' in volumes ? volumes.get(i) : (volumes as readonly Volume[])[i]!;
  const every = (opts.progressEvery ?? 15) * 1000;
  const nOverlay = opts.overlaySlices ?? 1;
  if (opts.overlayDir) mkdirSync(opts.overlayDir, { recursive: true });

  const t0 = performance.now();
  const cases: CaseEvaluation[] = [];
  let slices = 0;
  for (let i = 0; i < total; i++) {
    const v = await get(i);
    if (v.label.length !== v.d * v.h * v.w)
      throw new RangeError(
        `volume '${v.id}': label has ${v.label.length} values, expected ${v.d} x ${v.h} x ${v.w}`,
      );
    const tag = `[${i + 1}/${total}] ${v.id}`;
    let last = performance.now();
    const ti = performance.now();
    const prediction = await predictVolume(predictor, v, {
      inputSize: opts.inputSize,
      batchSize: opts.batchSize,
      onProgress: (done, all) => {
        const now = performance.now();
        if (done < all && now - last >= every) {
          last = now;
          log(`${tag}: ${done}/${all} slices, ${((now - ti) / 1000).toFixed(1)} s`);
        }
      },
    });
    const inferSeconds = (performance.now() - ti) / 1000;
    const tm = performance.now();
    const organs = caseMetrics(prediction, v.label, [v.d, v.h, v.w], classes);
    const metricSeconds = (performance.now() - tm) / 1000;
    slices += v.d;
    const overlays: string[] = [];
    if (opts.overlayDir && nOverlay > 0) {
      for (const z of pickSlices(v.label, [v.d, v.h, v.w], nOverlay)) {
        const file = join(opts.overlayDir, `${safeName(v.id)}_slice${String(z).padStart(3, '0')}.png`);
        writeFileSync(
          file,
          sliceOverlayPng(
            v.image,
            [v.d, v.h, v.w],
            z,
            [
              { labels: v.label, caption: 'ground truth' },
              { labels: prediction, caption: 'prediction' },
            ],
            { title: `${v.id} slice ${z}` },
          ),
        );
        overlays.push(file);
      }
    }
    const c: CaseEvaluation = {
      name: v.id,
      organs,
      shape: [v.d, v.h, v.w],
      inferSeconds,
      metricSeconds,
      overlays,
      ...(opts.keepPredictions ? { prediction } : {}),
    };
    cases.push(c);
    log(
      `${tag}: ${v.d} slices ${v.h}x${v.w} in ${inferSeconds.toFixed(1)} s ` +
        `(${(v.d / Math.max(inferSeconds, 1e-9)).toFixed(1)} slices/s), metrics ${metricSeconds.toFixed(1)} s; ` +
        `mean DSC ${(100 * mean(organs.map((o) => o.dice))).toFixed(2)} %, ` +
        `mean HD95 ${mean(organs.map((o) => o.hd95)).toFixed(2)}`,
    );
    opts.onCase?.(c, i, total);
  }
  const summary = summarize(cases.map((c) => ({ name: c.name, organs: c.organs })));
  return { summary, cases, seconds: (performance.now() - t0) / 1000, slices };
}

export interface EvaluateDatasetOptions extends EvaluateOptions, ReportOptions {
  /** Folder for the report files (created); none are written when absent. */
  outDir?: string | null;
  /** Base name of the report files (default 'eval' → eval.json, eval.md). */
  reportName?: string;
  /** Extra facts recorded in the report (checkpoint, config, sizes...). */
  meta?: Record<string, unknown>;
}

export interface DatasetEvaluation extends Evaluation {
  /** The JSON report object (reportObject + meta + timing). */
  report: Record<string, unknown>;
  /** The Markdown report. */
  markdown: string;
  /** Paths written (null without outDir). */
  files: { json: string; md: string } | null;
}

/** The JSON and Markdown reports of an evaluation (reportObject / reportMarkdown + meta and timing). */
export function evaluationReport(
  ev: Evaluation,
  opts: ReportOptions & { meta?: Record<string, unknown> } = {},
): { report: Record<string, unknown>; markdown: string } {
  const meta = opts.meta ?? {};
  const timing = {
    seconds: ev.seconds,
    slices: ev.slices,
    slicesPerSecond: ev.slices / Math.max(ev.seconds, 1e-9),
    cases: ev.cases.map((c) => ({
      name: c.name,
      shape: c.shape,
      inferSeconds: c.inferSeconds,
      metricSeconds: c.metricSeconds,
    })),
  };
  const report = { ...reportObject(ev.summary, opts), meta, timing };
  const lines = ['', '## Run', ''];
  for (const [k, v] of Object.entries(meta))
    lines.push(`- ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  lines.push(
    `- time: ${ev.seconds.toFixed(1)} s for ${ev.slices} slices (${timing.slicesPerSecond.toFixed(2)} slices/s)`,
  );
  const markdown = reportMarkdown(ev.summary, opts) + lines.join('\n') + '\n';
  return { report, markdown };
}

/** Evaluates a model on a dataset's test volumes and writes `<outDir>/<reportName>.{json,md}`. */
export async function evaluate(
  model: SamLST | SlicePredictor,
  dataset: Dataset,
  opts: EvaluateDatasetOptions = {},
): Promise<DatasetEvaluation> {
  if (!dataset.test || dataset.test.size === 0)
    throw new RangeError(`dataset ${dataset.root} (${dataset.layout}) has no test volumes`);
  const log = opts.log ?? (() => {});
  const n = opts.limit !== undefined ? Math.min(opts.limit, dataset.test.size) : dataset.test.size;
  log(`evaluating ${n} test volume${n === 1 ? '' : 's'} of ${dataset.root} (${dataset.layout})`);
  for (const note of dataset.notes) log(`note: ${note}`);
  const ev = await evaluateVolumes(model, dataset.test, opts);
  const meta = { dataset: dataset.root, layout: dataset.layout, ...(opts.meta ?? {}) };
  const { report, markdown } = evaluationReport(ev, { ...opts, meta });
  let files: DatasetEvaluation['files'] = null;
  if (opts.outDir) {
    mkdirSync(opts.outDir, { recursive: true });
    const base = join(opts.outDir, opts.reportName ?? 'eval');
    files = { json: `${base}.json`, md: `${base}.md` };
    writeFileSync(files.json, JSON.stringify(report, null, 2) + '\n');
    writeFileSync(files.md, markdown);
  }
  return { ...ev, report, markdown, files };
}
