/**
 * Training output for people and for tools:
 *  - `Progress`: on a TTY one self-rewriting line (bar, step, epoch, loss, images/s, ETA); otherwise
 *    plain lines every ~5 % of the run (and on the first and last step), so CI logs stay short.
 *  - `MetricsLog`: metrics.jsonl, one JSON object per line: `{"type":"step",...}` per optimizer step
 *    (loss, ce, dice, lr, alpha raw and gate = sigmoid(alpha), images/s, cache hits/misses),
 *    `{"type":"epoch",...}` per epoch (cache statistics, encoder time saved), `{"type":"val",...}`
 *    per validation. `step` is the number of optimizer steps done when the record was written; on
 *    --resume the records past the checkpoint's step are dropped, so the file describes one run.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../io/atomic.js';

export interface StepRecord {
  type: 'step';
  step: number;
  epoch: number;
  loss: number;
  ce: number;
  dice: number;
  lr: number;
  /** Raw gate parameter sam.alpha after the step. */
  alpha: number;
  /** sigmoid(alpha): the weight of the SAM features. */
  gate: number;
  imagesPerSec: number;
  /** Seconds since the start of this process's training loop. */
  time: number;
  cacheHits: number;
  cacheMisses: number;
}

export interface EpochRecord {
  type: 'epoch';
  step: number;
  epoch: number;
  seconds: number;
  cacheHits: number;
  cacheMisses: number;
  /** Mean encoder time per image on misses, ms. */
  encoderMsPerImage: number;
  /** hits × encoderMsPerImage / 1000. */
  secondsSaved: number;
  cacheMemMB: number;
}

export interface ValRecord {
  type: 'val';
  step: number;
  epoch: number;
  /** 'before' (untrained), 'epoch' or 'final'. */
  when: string;
  meanDice: number;
  meanHd95: number;
  perOrganDice: number[];
  perOrganHd95: number[];
  seconds: number;
}

export type MetricsRecord = StepRecord | EpochRecord | ValRecord;

export class MetricsLog {
  constructor(readonly path: string) {}

  /**
   * Starts the file: empty for a new run; for a resumed run the records up to `resumeStep` of
   * `from` (the resumed run's metrics.jsonl; default: this file).
   */
  init(resumeStep: number | null, from: string = this.path): MetricsRecord[] {
    if (resumeStep === null || !existsSync(from)) {
      writeFileAtomic(this.path, '', { durable: false });
      return [];
    }
    const kept = MetricsLog.read(from).filter((r) => r.step <= resumeStep);
    writeFileAtomic(this.path, kept.map((r) => JSON.stringify(r) + '\n').join(''), { durable: false });
    return kept;
  }

  write(r: MetricsRecord): void {
    appendFileSync(this.path, JSON.stringify(r) + '\n');
  }

  /** Parses a metrics.jsonl file (a torn last line is ignored). */
  static read(path: string): MetricsRecord[] {
    const out: MetricsRecord[] = [];
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as MetricsRecord);
      } catch {
        // a line cut by a crash
      }
    }
    return out;
  }
}

/** m:ss or h:mm:ss. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export interface ProgressState {
  step: number;
  totalSteps: number;
  epoch: number;
  epochs: number;
  loss: number;
  imagesPerSec: number;
  etaSeconds: number;
  gate?: number;
}

export interface OutputStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export class Progress {
  private readonly tty: boolean;
  private readonly quiet: boolean;
  private open = false;
  private lastPrinted = -1;

  constructor(
    private readonly out: OutputStream = process.stdout,
    opts: { tty?: boolean; quiet?: boolean } = {},
  ) {
    this.tty = opts.tty ?? !!out.isTTY;
    this.quiet = opts.quiet ?? false;
  }

  /** One line of text (clears the bar first on a TTY). */
  line(msg: string): void {
    this.clear();
    this.out.write(msg + '\n');
  }

  update(s: ProgressState): void {
    if (this.quiet) return;
    const text =
      `step ${s.step}/${s.totalSteps}  epoch ${s.epoch}/${s.epochs}  loss ${s.loss.toFixed(4)}  ` +
      `${s.imagesPerSec.toFixed(1)} img/s  ETA ${formatDuration(s.etaSeconds)}` +
      (s.gate !== undefined ? `  gate ${s.gate.toFixed(3)}` : '');
    if (this.tty) {
      const width = Math.max(10, Math.min(30, (this.out.columns ?? 100) - text.length - 10));
      const frac = s.totalSteps > 0 ? Math.min(1, s.step / s.totalSteps) : 0;
      const fill = Math.round(frac * width);
      this.out.write(`\r\x1b[2K[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${text}`);
      this.open = true;
      return;
    }
    const every = Math.max(1, Math.round(s.totalSteps / 20));
    if (s.step === 1 || s.step === s.totalSteps || s.step - this.lastPrinted >= every) {
      this.out.write(`${text}\n`);
      this.lastPrinted = s.step;
    }
  }

  /** Ends the bar line (TTY). */
  clear(): void {
    if (this.tty && this.open) {
      this.out.write('\r\x1b[2K');
      this.open = false;
    }
  }
}

/** Moving estimate of seconds per step over the last `window` steps. */
export class RateMeter {
  private readonly times: number[] = [];
  constructor(private readonly window = 20) {}
  add(seconds: number): void {
    this.times.push(seconds);
    if (this.times.length > this.window) this.times.shift();
  }
  get perStep(): number {
    if (!this.times.length) return NaN;
    return this.times.reduce((a, b) => a + b, 0) / this.times.length;
  }
}
