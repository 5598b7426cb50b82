/** Drawing for the demo: the slice with mask overlays, the legend, the loss curve. */
import { ORGAN_COLORS, SYNAPSE_ORGANS } from '../src/index.js';

export interface OverlayLayers {
  /** S x S image in [0, 1]. */
  image: Float32Array;
  size: number;
  pred: Int32Array | null;
  truth: Int32Array | null;
  showPred: boolean;
  showTruth: boolean;
  opacity: number;
}

/** Draws the grey slice, the predicted organs filled, the ground truth as outlines. */
export function drawSlice(canvas: HTMLCanvasElement, l: OverlayLayers): void {
  const S = l.size;
  if (canvas.width !== S || canvas.height !== S) canvas.width = canvas.height = S;
  const ctx = canvas.getContext('2d')!;
  const img = ctx.createImageData(S, S);
  const px = img.data;
  for (let p = 0; p < S * S; p++) {
    const g = Math.min(1, Math.max(0, l.image[p]!)) * 255;
    let r = g;
    let gg = g;
    let b = g;
    const c = l.showPred && l.pred ? l.pred[p]! : 0;
    if (c > 0) {
      const col = ORGAN_COLORS[c]!;
      r = (1 - l.opacity) * r + l.opacity * col[0];
      gg = (1 - l.opacity) * gg + l.opacity * col[1];
      b = (1 - l.opacity) * b + l.opacity * col[2];
    }
    if (l.showTruth && l.truth) {
      const t = l.truth[p]!;
      const x = p % S;
      const y = (p - x) / S;
      const edge =
        t > 0 &&
        ((x > 0 && l.truth[p - 1] !== t) ||
          (x < S - 1 && l.truth[p + 1] !== t) ||
          (y > 0 && l.truth[p - S] !== t) ||
          (y < S - 1 && l.truth[p + S] !== t));
      if (edge) [r, gg, b] = ORGAN_COLORS[t]!;
    }
    px[4 * p] = r;
    px[4 * p + 1] = gg;
    px[4 * p + 2] = b;
    px[4 * p + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

/** Dice of organ c between prediction and truth (null when the organ is in neither). */
export function dice(pred: Int32Array, truth: Int32Array, c: number): number | null {
  let a = 0;
  let b = 0;
  let both = 0;
  for (let i = 0; i < pred.length; i++) {
    const x = pred[i] === c;
    const y = truth[i] === c;
    if (x) a++;
    if (y) b++;
    if (x && y) both++;
  }
  return a + b === 0 ? null : (2 * both) / (a + b);
}

/** The organ legend: colour, name, predicted pixel share, and Dice when there is ground truth. */
export function drawLegend(el: HTMLElement, pred: Int32Array | null, truth: Int32Array | null): void {
  const counts = new Array<number>(SYNAPSE_ORGANS.length).fill(0);
  if (pred) for (const c of pred) counts[c] = (counts[c] ?? 0) + 1;
  const n = pred?.length ?? 1;
  el.replaceChildren(
    ...SYNAPSE_ORGANS.slice(1).map((name, i) => {
      const c = i + 1;
      const li = document.createElement('li');
      li.dataset.organ = name;
      const sw = document.createElement('i');
      sw.style.background = `rgb(${ORGAN_COLORS[c]!.join(',')})`;
      const label = document.createElement('span');
      label.textContent = name.replace('_', ' ');
      const stat = document.createElement('small');
      const parts: string[] = [];
      if (pred) parts.push(`${((100 * counts[c]!) / n).toFixed(1)}%`);
      if (pred && truth) {
        const d = dice(pred, truth, c);
        parts.push(d === null ? 'Dice -' : `Dice ${d.toFixed(2)}`);
      }
      stat.textContent = parts.join(' · ');
      li.append(sw, label, stat);
      return li;
    }),
  );
}

/** The training loss per step as a polyline with its range. */
export function drawLoss(canvas: HTMLCanvasElement, losses: readonly number[]): void {
  const ctx = canvas.getContext('2d')!;
  const { width: W, height: H } = canvas;
  ctx.fillStyle = '#181818';
  ctx.fillRect(0, 0, W, H);
  ctx.strokeStyle = '#444';
  ctx.strokeRect(0.5, 0.5, W - 1, H - 1);
  ctx.fillStyle = '#aaa';
  ctx.font = '12px system-ui, sans-serif';
  if (!losses.length) {
    ctx.fillText('training loss (0.2 CE + 0.8 Dice) appears here', 12, H / 2);
    return;
  }
  const lo = Math.min(...losses);
  const hi = Math.max(...losses);
  const pad = 28;
  const span = hi - lo || Math.max(1e-6, Math.abs(hi) * 0.1);
  const x = (i: number) => pad + ((W - 2 * pad) * i) / Math.max(1, losses.length - 1);
  const y = (v: number) => H - pad - ((H - 2 * pad) * (v - lo)) / span;
  ctx.fillText(hi.toFixed(4), 4, pad - 8);
  ctx.fillText(lo.toFixed(4), 4, H - 8);
  ctx.fillText(`step ${losses.length}`, W - 64, H - 8);
  ctx.strokeStyle = '#4fc3f7';
  ctx.lineWidth = 2;
  ctx.beginPath();
  losses.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
  ctx.stroke();
  ctx.fillStyle = '#4fc3f7';
  for (const [i, v] of losses.entries()) ctx.fillRect(x(i) - 2, y(v) - 2, 4, 4);
}
