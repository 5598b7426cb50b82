/**
 * Evaluation report: the per-organ table of a MetricsSummary (src/eval/metrics.ts) as JSON and as
 * Markdown, with the Synapse organ names and DSC ×100 as in the SAM-LST paper (HD95 in voxels, or
 * spacing units when a spacing was used). Host-only.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { MetricsSummary, OrganMetric } from './metrics.js';

/** Synapse organ names, label i + 1 → ORGAN_NAMES[i]. */
export const ORGAN_NAMES: readonly string[] = [
  'spleen',
  'right kidney',
  'left kidney',
  'gallbladder',
  'liver',
  'stomach',
  'aorta',
  'pancreas',
];

/** Name of organ label `label` (1-based); "class <label>" past the 8 Synapse organs. */
export function organName(label: number): string {
  return ORGAN_NAMES[label - 1] ?? `class ${label}`;
}

/** One row of the per-organ table. DSC is ×100. */
export interface OrganRow {
  label: number;
  name: string;
  dice: number;
  hd95: number;
}

/** The JSON report (what reportJson serialises). */
export interface ReportJson {
  title: string;
  /** "DSC x100" note, so a reader of the file does not have to guess the scale. */
  units: { dice: string; hd95: string };
  numCases: number;
  mean: { dice: number; hd95: number };
  organs: OrganRow[];
  cases: { name: string; organs: OrganRow[]; mean: { dice: number; hd95: number } }[];
}

export interface ReportOptions {
  /** Heading / title (default "SAM-LST evaluation"). */
  title?: string;
  /** Decimals in the Markdown table (default 2). */
  digits?: number;
  /** Include the per-case table in the Markdown (default true). */
  perCase?: boolean;
}

function row(label: number, m: OrganMetric): OrganRow {
  return { label, name: organName(label), dice: 100 * m.dice, hd95: m.hd95 };
}

/** Plain arithmetic mean (only for the per-case rows of the report; the summary means come from aggregate). */
function mean(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return xs.length === 0 ? NaN : s / xs.length;
}

/** The per-organ table (DSC ×100). */
export function organTable(summary: MetricsSummary): OrganRow[] {
  return summary.perOrgan.map((m, i) => row(i + 1, m));
}

export function reportObject(summary: MetricsSummary, opts: ReportOptions = {}): ReportJson {
  return {
    title: opts.title ?? 'SAM-LST evaluation',
    units: { dice: 'DSC x100 (percent)', hd95: 'HD95 in voxels (unit spacing) unless a spacing was given' },
    numCases: summary.cases.length,
    mean: { dice: 100 * summary.meanDice, hd95: summary.meanHd95 },
    organs: organTable(summary),
    cases: summary.cases.map((c) => ({
      name: c.name,
      organs: c.organs.map((m, i) => row(i + 1, m)),
      mean: { dice: 100 * mean(c.organs.map((m) => m.dice)), hd95: mean(c.organs.map((m) => m.hd95)) },
    })),
  };
}

/** The report as pretty-printed JSON text (full double precision). */
export function reportJson(summary: MetricsSummary, opts: ReportOptions = {}): string {
  return JSON.stringify(reportObject(summary, opts), null, 2) + '\n';
}

function num(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : String(x);
}

/**
 * The report as Markdown: a one-line summary (mean DSC ×100, mean HD95), the per-organ table
 * (label, organ, DSC, HD95) and, unless perCase is false, a case × organ DSC / HD95 table.
 */
export function reportMarkdown(summary: MetricsSummary, opts: ReportOptions = {}): string {
  const d = opts.digits ?? 2;
  const title = opts.title ?? 'SAM-LST evaluation';
  const lines: string[] = [];
  lines.push(`# ${title}`, '');
  lines.push(
    `${summary.cases.length} cases, ${summary.classes} organs. Mean DSC ${num(100 * summary.meanDice, d)} %, ` +
      `mean HD95 ${num(summary.meanHd95, d)}.`,
    '',
  );
  lines.push('| label | organ | DSC (%) | HD95 |', '| ---: | --- | ---: | ---: |');
  for (const r of organTable(summary))
    lines.push(`| ${r.label} | ${r.name} | ${num(r.dice, d)} | ${num(r.hd95, d)} |`);
  lines.push(`| | **mean** | **${num(100 * summary.meanDice, d)}** | **${num(summary.meanHd95, d)}** |`);
  if (opts.perCase ?? true) {
    const names = Array.from({ length: summary.classes }, (_, i) => organName(i + 1));
    lines.push('', '## Per case (DSC % / HD95)', '');
    lines.push(`| case | ${names.join(' | ')} |`, `| --- |${' ---: |'.repeat(names.length)}`);
    for (const c of summary.cases)
      lines.push(
        `| ${c.name} | ${c.organs.map((m) => `${num(100 * m.dice, d)} / ${num(m.hd95, d)}`).join(' | ')} |`,
      );
  }
  return lines.join('\n') + '\n';
}

/**
 * Write `<basePath>.json` and `<basePath>.md` (creating the folder). Returns the two paths.
 */
export function writeReport(
  summary: MetricsSummary,
  basePath: string,
  opts: ReportOptions = {},
): { json: string; md: string } {
  const json = `${basePath}.json`;
  const md = `${basePath}.md`;
  mkdirSync(dirname(json), { recursive: true });
  writeFileSync(json, reportJson(summary, opts));
  writeFileSync(md, reportMarkdown(summary, opts));
  return { json, md };
}
