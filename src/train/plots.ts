/**
 * Self-contained SVG line plots (no dependencies): axes with "nice" ticks, one polyline per series,
 * a legend. Used for the run folder's loss.svg, val_dice.svg and alpha.svg, and the organ colour
 * legend of the overlays.
 */
import type { MetricsRecord, StepRecord, ValRecord } from './log.js';

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  color?: string;
  /** Draw the points as dots too (for sparse series such as validations). */
  dots?: boolean;
}

export interface PlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** Force the y range (else from the data, padded). */
  yMin?: number;
  yMax?: number;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi === lo) return [lo];
  const span = hi - lo;
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    out.push(Number(v.toPrecision(12)));
  return out;
}

function fmtTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

/** An SVG line chart of `series`. Series without finite points are listed in the legend only. */
export function lineChartSvg(series: readonly Series[], o: PlotOptions): string {
  const W = o.width ?? 640;
  const H = o.height ?? 360;
  const m = { l: 64, r: 16, t: 36, b: 48 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const pts = series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  let x0 = Math.min(...pts.map((p) => p[0]));
  let x1 = Math.max(...pts.map((p) => p[0]));
  let y0 = o.yMin ?? Math.min(...pts.map((p) => p[1]));
  let y1 = o.yMax ?? Math.max(...pts.map((p) => p[1]));
  if (!pts.length) {
    x0 = 0;
    x1 = 1;
    y0 = o.yMin ?? 0;
    y1 = o.yMax ?? 1;
  }
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) {
    y0 -= 0.5;
    y1 += 0.5;
  } else if (o.yMin === undefined || o.yMax === undefined) {
    const pad = (y1 - y0) * 0.05;
    if (o.yMin === undefined) y0 -= pad;
    if (o.yMax === undefined) y1 += pad;
  }
  const X = (x: number) => m.l + ((x - x0) / (x1 - x0)) * pw;
  const Y = (y: number) => m.t + ph - ((y - y0) / (y1 - y0)) * ph;
  const f = (v: number) => v.toFixed(1);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(o.title)}</text>`,
  );
  for (const t of niceTicks(y0, y1)) {
    out.push(
      `<line x1="${m.l}" x2="${m.l + pw}" y1="${f(Y(t))}" y2="${f(Y(t))}" stroke="#e5e5e5"/>`,
      `<text x="${m.l - 6}" y="${f(Y(t) + 4)}" text-anchor="end">${fmtTick(t)}</text>`,
    );
  }
  for (const t of niceTicks(x0, x1)) {
    out.push(
      `<line x1="${f(X(t))}" x2="${f(X(t))}" y1="${m.t}" y2="${m.t + ph}" stroke="#f0f0f0"/>`,
      `<text x="${f(X(t))}" y="${m.t + ph + 16}" text-anchor="middle">${fmtTick(t)}</text>`,
    );
  }
  out.push(
    `<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`,
    `<text x="${m.l + pw / 2}" y="${H - 10}" text-anchor="middle">${esc(o.xLabel)}</text>`,
    `<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`,
  );
  const legend: string[] = series.length
    ? [
        `<rect x="${m.l + pw - 156}" y="${m.t + 2}" width="152" height="${series.length * 16 + 4}" fill="white" fill-opacity="0.85" stroke="#ccc"/>`,
      ]
    : [];
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    const p = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (p.length > 1)
      out.push(
        `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${p.map(([x, y]) => `${f(X(x))},${f(Y(y))}`).join(' ')}"/>`,
      );
    if (s.dots || p.length === 1)
      for (const [x, y] of p) out.push(`<circle cx="${f(X(x))}" cy="${f(Y(y))}" r="3" fill="${color}"/>`);
    const ly = m.t + 14 + i * 16;
    legend.push(
      `<rect x="${m.l + pw - 150}" y="${ly - 6}" width="12" height="3" fill="${color}"/>`,
      `<text x="${m.l + pw - 132}" y="${ly - 1}">${esc(s.name)}</text>`,
    );
  });
  out.push(...legend, '</svg>');
  return out.join('\n') + '\n';
}

/** Exponential moving average of a series' y values (for noisy per-step losses). */
export function smooth(points: readonly (readonly [number, number])[], beta = 0.9): [number, number][] {
  let m = NaN;
  return points.map(([x, y], i) => {
    m = i === 0 || !Number.isFinite(m) ? y : beta * m + (1 - beta) * y;
    return [x, m];
  });
}

/** The three plots of a run from its metrics records. */
export function runPlots(records: readonly MetricsRecord[]): {
  loss: string;
  valDice: string;
  alpha: string;
} {
  const steps = records.filter((r): r is StepRecord => r.type === 'step');
  const vals = records.filter((r): r is ValRecord => r.type === 'val');
  const xy = (k: 'loss' | 'ce' | 'dice' | 'alpha' | 'gate') =>
    steps.map((r) => [r.step, r[k]] as [number, number]);
  const loss = lineChartSvg(
    [
      { name: 'loss', points: xy('loss'), color: '#bbbbbb' },
      { name: 'loss (EMA 0.9)', points: smooth(xy('loss')), color: '#1f77b4' },
      { name: 'CE', points: smooth(xy('ce')), color: '#2ca02c' },
      { name: 'Dice loss', points: smooth(xy('dice')), color: '#d62728' },
    ],
    { title: 'Training loss (0.2·CE + 0.8·Dice)', xLabel: 'step', yLabel: 'loss', yMin: 0 },
  );
  const valDice = lineChartSvg(
    [{ name: 'mean DSC', points: vals.map((v) => [v.step, v.meanDice] as [number, number]), dots: true }],
    { title: 'Validation mean DSC (8 organs)', xLabel: 'step', yLabel: 'DSC', yMin: 0, yMax: 1 },
  );
  const alpha = lineChartSvg(
    [
      { name: 'gate = sigmoid(alpha)', points: xy('gate'), color: '#9467bd' },
      { name: 'alpha (raw)', points: xy('alpha'), color: '#ff7f0e' },
    ],
    { title: 'Fusion gate (weight of the SAM features)', xLabel: 'step', yLabel: 'value' },
  );
  return { loss, valDice, alpha };
}

/** A legend of coloured boxes and names (one row each). */
export function legendSvg(
  items: readonly { name: string; rgb: readonly [number, number, number] }[],
): string {
  const rowH = 20;
  const W = 200;
  const H = 10 + rowH * items.length;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="13">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
  ];
  items.forEach((it, i) => {
    const y = 6 + i * rowH;
    out.push(
      `<rect x="8" y="${y}" width="14" height="14" fill="rgb(${it.rgb.join(',')})" stroke="#333"/>`,
      `<text x="30" y="${y + 12}">${esc(it.name)}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
