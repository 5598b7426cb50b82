/**
 * What a person looks at after a run: the validation table (console and Markdown) and report.md,
 * which links the plots, the prediction overlays on validation slices (PNG, ground truth |
 * prediction, written by src/eval/overlay.ts through the validation; their organ colours are listed
 * in legend.svg and in the report) and the run's files.
 */
import type { MetricsSummary } from '../eval/metrics.js';
import { ORGAN_COLOURS } from '../eval/overlay.js';
import { ORGAN_NAMES } from '../eval/report.js';

/** The organ colours of the overlays (src/eval/overlay.ts), label i + 1 → names[i]. */
export function organLegend(): { name: string; rgb: readonly [number, number, number] }[] {
  return ORGAN_NAMES.map((name, i) => ({ name, rgb: ORGAN_COLOURS[i + 1]! }));
}

const pct = (x: number) => (Number.isFinite(x) ? (100 * x).toFixed(2) : String(x));
const num = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : String(x));

/** Per-organ DSC (%) and HD95 table; with `before`, both columns side by side. */
export function validationTable(after: MetricsSummary, before?: MetricsSummary | null): string {
  const rows: string[][] = [];
  const head = before
    ? ['organ', 'DSC before', 'DSC after', 'HD95 before', 'HD95 after']
    : ['organ', 'DSC (%)', 'HD95'];
  after.perOrgan.forEach((m, i) => {
    const name = ORGAN_NAMES[i] ?? `class ${i + 1}`;
    const b = before?.perOrgan[i];
    rows.push(
      before
        ? [name, pct(b!.dice), pct(m.dice), num(b!.hd95), num(m.hd95)]
        : [name, pct(m.dice), num(m.hd95)],
    );
  });
  rows.push(
    before
      ? ['mean', pct(before.meanDice), pct(after.meanDice), num(before.meanHd95), num(after.meanHd95)]
      : ['mean', pct(after.meanDice), num(after.meanHd95)],
  );
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) =>
    r.map((v, c) => (c === 0 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The same table as Markdown. */
export function validationTableMd(after: MetricsSummary, before?: MetricsSummary | null): string {
  const head = before
    ? '| organ | DSC % before | DSC % after | HD95 before | HD95 after |\n| --- | ---: | ---: | ---: | ---: |'
    : '| organ | DSC % | HD95 |\n| --- | ---: | ---: |';
  const rows = after.perOrgan.map((m, i) => {
    const name = ORGAN_NAMES[i] ?? `class ${i + 1}`;
    const b = before?.perOrgan[i];
    return before
      ? `| ${name} | ${pct(b!.dice)} | ${pct(m.dice)} | ${num(b!.hd95)} | ${num(m.hd95)} |`
      : `| ${name} | ${pct(m.dice)} | ${num(m.hd95)} |`;
  });
  rows.push(
    before
      ? `| **mean** | **${pct(before.meanDice)}** | **${pct(after.meanDice)}** | **${num(before.meanHd95)}** | **${num(after.meanHd95)}** |`
      : `| **mean** | **${pct(after.meanDice)}** | **${num(after.meanHd95)}** |`,
  );
  return [head, ...rows].join('\n');
}

export interface ReportInfo {
  title: string;
  /** Lines of the run summary (configuration, weights, timing). */
  summary: string[];
  before: MetricsSummary | null;
  after: MetricsSummary | null;
  /** How the validation was made (dataset, slices, preprocessing). */
  validationNote: string;
  plots: { loss: string; valDice: string; alpha: string };
  legend: string;
  overlays: { file: string; caption: string }[];
  cacheLines: string[];
  files: { name: string; what: string }[];
  notes: string[];
}

/** report.md of a run folder (all links relative to it). */
export function reportMarkdown(r: ReportInfo): string {
  const L: string[] = [`# ${r.title}`, ''];
  for (const s of r.summary) L.push(`- ${s}`);
  L.push('', '## Validation', '', r.validationNote, '');
  if (r.after) L.push(validationTableMd(r.after, r.before), '');
  else L.push('(no validation was run)', '');
  L.push('DSC in percent (MedPy semantics, spec §13); HD95 in voxels (unit spacing).', '');
  L.push('## Curves', '');
  L.push(
    `![training loss](${r.plots.loss})`,
    '',
    `![validation Dice](${r.plots.valDice})`,
    '',
    `![gate](${r.plots.alpha})`,
    '',
  );
  if (r.overlays.length) {
    L.push('## Predictions on validation slices', '');
    L.push('Each image: ground truth | prediction on the slice. Organ colours:', '');
    L.push(`![organ colours](${r.legend})`, '');
    L.push('| label | organ | colour (RGB) |', '| ---: | --- | --- |');
    organLegend().forEach((o, i) => L.push(`| ${i + 1} | ${o.name} | ${o.rgb.join(', ')} |`));
    L.push('');
    for (const o of r.overlays) L.push(`**${o.caption}**`, '', `![${o.caption}](${o.file})`, '');
  }
  if (r.cacheLines.length) {
    L.push('## Frozen-encoder cache', '');
    for (const c of r.cacheLines) L.push(`- ${c}`);
    L.push('');
  }
  L.push('## Files', '');
  for (const f of r.files) L.push(`- [${f.name}](${f.name}): ${f.what}`);
  if (r.notes.length) {
    L.push('', '## Notes', '');
    for (const n of r.notes) L.push(`- ${n}`);
  }
  return L.join('\n') + '\n';
}
