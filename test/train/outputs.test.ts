/**
 * Run-folder outputs without a GPU: atomic writes (src/io/atomic.ts), metrics.jsonl (resume keeps
 * the records up to the checkpoint's step, a torn line is ignored), the progress display (TTY bar
 * vs plain lines), SVG plots (ticks, series, legend) and the
 * validation tables / report.md (organ colours = the overlays' colours of src/eval/overlay.ts).
 */
import { readdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { summarize } from '../../src/eval/metrics.js';
import { removeStaleTemps, writeFileAtomic } from '../../src/io/atomic.js';
import { formatDuration, MetricsLog, Progress, type MetricsRecord } from '../../src/train/log.js';
import { legendSvg, lineChartSvg, niceTicks, runPlots } from '../../src/train/plots.js';
import { ORGAN_COLOURS } from '../../src/eval/overlay.js';
import {
  organLegend,
  reportMarkdown,
  validationTable,
  validationTableMd,
} from '../../src/train/run_report.js';
import { sink, tempDir } from './util.js';

describe('atomic writes', () => {
  test('replace, crash before rename keeps the old file, stale temps removed', () => {
    const dir = tempDir('atomic');
    const p = join(dir, 'a.bin');
    writeFileAtomic(p, 'one');
    writeFileAtomic(p, [new Uint8Array([116, 119]), new Uint8Array([111])]);
    expect(readFileSync(p, 'utf8')).toBe('two');
    expect(() =>
      writeFileAtomic(p, 'three', {
        beforeRename: (tmp) => {
          expect(readFileSync(tmp, 'utf8')).toBe('three');
          throw new Error('boom');
        },
      }),
    ).toThrow(/cannot write .*a\.bin: boom/);
    expect(readFileSync(p, 'utf8')).toBe('two');
    expect(readdirSync(dir)).toEqual(['a.bin']);
    writeFileSync(join(dir, '.a.bin.tmp-123-0-deadbeef'), 'left by a killed writer');
    expect(removeStaleTemps(dir, 'a.bin')).toHaveLength(1);
    expect(readdirSync(dir)).toEqual(['a.bin']);
    // deadWritersOnly spares a living writer's temporary (this process) and removes a dead one's.
    const live = `.a.bin.tmp-${process.pid}-0-00000000`;
    let deadPid = 4_194_000;
    while (pidExists(deadPid)) deadPid--;
    const dead = `.a.bin.tmp-${deadPid}-0-00000000`;
    writeFileSync(join(dir, live), 'in progress');
    writeFileSync(join(dir, dead), 'left by a killed writer');
    expect(removeStaleTemps(dir, undefined, { deadWritersOnly: true })).toEqual([join(dir, dead)]);
    expect(readdirSync(dir).sort()).toEqual([live, 'a.bin'].sort());
    expect(removeStaleTemps(dir)).toEqual([join(dir, live)]);
    writeFileAtomic(join(dir, 'sub', 'deep', 'b.txt'), 'x', { durable: false });
    expect(readFileSync(join(dir, 'sub', 'deep', 'b.txt'), 'utf8')).toBe('x');
  });
});

const step = (s: number, loss: number): MetricsRecord => ({
  type: 'step',
  step: s,
  epoch: 1,
  loss,
  ce: loss / 2,
  dice: loss,
  lr: 1e-3,
  alpha: -0.01 * s,
  gate: 1 / (1 + Math.exp(0.01 * s)),
  imagesPerSec: 5,
  time: s,
  cacheHits: 0,
  cacheMisses: 8,
});

describe('metrics.jsonl', () => {
  test('a new run starts empty; a resumed run keeps records up to its step; torn lines ignored', () => {
    const dir = tempDir('metrics');
    const m = new MetricsLog(join(dir, 'metrics.jsonl'));
    expect(m.init(null)).toEqual([]);
    for (let s = 1; s <= 5; s++) m.write(step(s, 1 / s));
    appendFileSync(m.path, '{"type":"step","step":6,"lo'); // killed mid-line
    expect(MetricsLog.read(m.path)).toHaveLength(5);
    const kept = new MetricsLog(m.path).init(3);
    expect(kept.map((r) => r.step)).toEqual([1, 2, 3]);
    expect(MetricsLog.read(m.path).map((r) => r.step)).toEqual([1, 2, 3]);
  });
});

describe('progress', () => {
  const st = {
    step: 1,
    totalSteps: 40,
    epoch: 1,
    epochs: 4,
    loss: 1.2345,
    imagesPerSec: 6.21,
    etaSeconds: 125,
  };
  test('plain lines (not a TTY): first, every 5 %, last', () => {
    const o = sink();
    const p = new Progress(o, { tty: false });
    for (let s = 1; s <= 40; s++) p.update({ ...st, step: s });
    const lines = o.text().trim().split('\n');
    expect(lines[0]).toBe('step 1/40  epoch 1/4  loss 1.2345  6.2 img/s  ETA 2:05');
    expect(lines.length).toBe(21);
    expect(lines.at(-1)).toMatch(/^step 40\/40 /);
  });
  test('TTY: one rewritten line with a bar; messages clear it', () => {
    const o = sink();
    const p = new Progress({ ...o, write: o.write, isTTY: true, columns: 120 }, {});
    p.update({ ...st, step: 20 });
    p.line('epoch done');
    expect(o.text().startsWith('\r\u001b[2K[')).toBe(true);
    expect(o.text()).toMatch(/\[#+\.+\] step 20\/40/);
    expect(o.text().endsWith('\r\u001b[2Kepoch done\n')).toBe(true);
    expect(formatDuration(3725)).toBe('1:02:05');
    expect(formatDuration(NaN)).toBe('--:--');
  });
  test('quiet prints no progress', () => {
    const o = sink();
    new Progress(o, { quiet: true }).update(st);
    expect(o.text()).toBe('');
  });
});

describe('plots', () => {
  test('ticks and a well-formed chart', () => {
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0, 216)).toEqual([0, 50, 100, 150, 200]);
    const svg = lineChartSvg(
      [
        {
          name: 'a<b',
          points: [
            [0, 1],
            [1, 2],
            [2, NaN],
            [3, 0.5],
          ],
        },
        { name: 'dots', points: [[1, 1]], dots: true },
      ],
      { title: 'T', xLabel: 'step', yLabel: 'loss' },
    );
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('a&lt;b');
    expect((svg.match(/<polyline/g) ?? []).length).toBe(1);
    expect((svg.match(/<circle/g) ?? []).length).toBe(1);
    const empty = lineChartSvg([{ name: 'none', points: [] }], { title: 'E', xLabel: 'x', yLabel: 'y' });
    expect(empty).toContain('none');
  });
  test('run plots from records; legend', () => {
    const recs: MetricsRecord[] = [1, 2, 3].map((s) => step(s, 1 / s));
    recs.push({
      type: 'val',
      step: 0,
      epoch: 0,
      when: 'before',
      meanDice: 0.01,
      meanHd95: 90,
      perOrganDice: [],
      perOrganHd95: [],
      seconds: 1,
    });
    recs.push({
      type: 'val',
      step: 3,
      epoch: 1,
      when: 'final',
      meanDice: 0.5,
      meanHd95: 9,
      perOrganDice: [],
      perOrganHd95: [],
      seconds: 1,
    });
    const p = runPlots(recs);
    expect(p.loss).toContain('loss (EMA 0.9)');
    expect(p.valDice).toContain('mean DSC');
    expect((p.valDice.match(/<circle/g) ?? []).length).toBe(2);
    expect(p.alpha).toContain('sigmoid(alpha)');
    const l = legendSvg(organLegend());
    expect(l).toContain('spleen');
    expect(l).toContain(`rgb(${ORGAN_COLOURS[8]!.join(',')})`); // pancreas, as the overlays draw it
  });
});

describe('report', () => {
  test('validation tables and report.md', () => {
    const organs = (d: number) => Array.from({ length: 8 }, (_, i) => ({ dice: d + i * 0.01, hd95: 10 - i }));
    const after = summarize([{ name: 'c1', organs: organs(0.5) }]);
    const before = summarize([{ name: 'c1', organs: organs(0.01) }]);
    const t = validationTable(after, before);
    expect(t.split('\n')[0]).toMatch(/^organ +DSC before +DSC after +HD95 before +HD95 after$/);
    expect(t).toMatch(/spleen +1\.00 +50\.00 +10\.00 +10\.00/);
    expect(t).toMatch(/mean +4\.50 +53\.50/);
    expect(validationTable(after)).toMatch(/^organ +DSC \(%\) +HD95/);
    expect(validationTableMd(after, before)).toContain('| **mean** | **4.50** | **53.50** |');
    const md = reportMarkdown({
      title: 'run',
      summary: ['steps 3'],
      before,
      after,
      validationNote: 'note',
      plots: { loss: 'loss.svg', valDice: 'val_dice.svg', alpha: 'alpha.svg' },
      legend: 'legend.svg',
      overlays: [{ file: 'overlays/01.png', caption: 'v, slice 3' }],
      cacheLines: ['1 hit'],
      files: [{ name: 'checkpoint.safetensors', what: 'ckpt' }],
      notes: [],
    });
    for (const s of [
      '![training loss](loss.svg)',
      '![validation Dice](val_dice.svg)',
      '![gate](alpha.svg)',
      '![v, slice 3](overlays/01.png)',
      `| 5 | liver | ${ORGAN_COLOURS[5]!.join(', ')} |`,
      '[checkpoint.safetensors](checkpoint.safetensors)',
    ])
      expect(md).toContain(s);
  });
});

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
