/**
 * Checkpoint key remapping onto the engine's module names, which are the PyTorch state_dict names
 * of SAM-LST (spec §15-16):
 *   sam.<official SAM key>        the SAM (image_encoder, prompt_encoder, mask_decoder) + sam.alpha
 *   CNN_encoder.<torchvision key> the ResNet18 side network
 * Three kinds of checkpoint map onto them:
 *   'sam-lst'       a SAM-LST training checkpoint: keys already in engine form, saved through
 *                   nn.DataParallel ('module.' prefix, stripped) and carrying 'sam_encoder.*', an
 *                   alias of sam.image_encoder (same tensors; skipped);
 *   'sam-official'  sam_vit_b_01ec64.pth style: image_encoder.* / prompt_encoder.* / mask_decoder.*
 *                   → sam.* (adapt it to the input size first: adapt.ts);
 *   'resnet18'      torchvision resnet18: conv1, bn1, layer1-4, fc → CNN_encoder.*.
 * `loadReport` then compares the remapped map with the model's expected {key: shape}.
 */
import { fmt, sameShape, type Shape } from '../util/shape.js';

export type CheckpointKind = 'sam-lst' | 'sam-official' | 'resnet18';

/** One rule: keys matching `pattern` become `pattern.replace(key, replace)`, or are skipped (null). */
export interface RemapRule {
  pattern: RegExp;
  replace: string | null;
  why: string;
}

/** Applied to every key first, repeatedly (nested DataParallel wrappers). */
export const MODULE_PREFIX = /^module\./;

export const REMAP_RULES: Readonly<Record<CheckpointKind, readonly RemapRule[]>> = {
  'sam-lst': [
    { pattern: /^sam_encoder\./, replace: null, why: 'alias of sam.image_encoder (same tensors)' },
    { pattern: /^(sam|CNN_encoder)\./, replace: '$1.', why: 'already engine names' },
  ],
  'sam-official': [
    {
      pattern: /^(image_encoder|prompt_encoder|mask_decoder)\./,
      replace: 'sam.$1.',
      why: 'official SAM key under sam.',
    },
  ],
  resnet18: [
    {
      pattern: /^(conv1|bn1|layer[1-4]|fc)\./,
      replace: 'CNN_encoder.$1.',
      why: 'torchvision key under CNN_encoder.',
    },
  ],
};

export class RemapError extends Error {
  override name = 'RemapError';
}

function stripModule(key: string): string {
  let k = key;
  while (MODULE_PREFIX.test(k)) k = k.replace(MODULE_PREFIX, '');
  return k;
}

/** Which kind of checkpoint these keys come from (after stripping 'module.'). */
export function detectCheckpointKind(keys: Iterable<string>): CheckpointKind {
  const ks = [...keys].map(stripModule);
  if (ks.some((k) => /^(sam|CNN_encoder|sam_encoder)\./.test(k))) return 'sam-lst';
  if (ks.some((k) => /^(image_encoder|prompt_encoder|mask_decoder)\./.test(k))) return 'sam-official';
  if (ks.includes('conv1.weight') && ks.some((k) => k.startsWith('layer1.'))) return 'resnet18';
  throw new RemapError(
    `cannot tell which checkpoint this is (not SAM-LST, official SAM or torchvision resnet18); ` +
      `first keys: ${ks.slice(0, 5).join(', ')}`,
  );
}

export interface RemapResult<T> {
  kind: CheckpointKind;
  /** Engine key → value, in checkpoint order. */
  map: Map<string, T>;
  /** Original keys dropped by a skip rule (e.g. the sam_encoder alias). */
  skipped: string[];
  /** Original keys no rule matched; kept unchanged (they show up as unexpected in loadReport). */
  unmatched: string[];
}

/**
 * Renames a checkpoint's keys to engine names: strips 'module.', then applies the first matching
 * rule of the checkpoint kind ('auto': detected from the keys). Two keys landing on one name is an
 * error.
 */
export function remapCheckpoint<T>(
  checkpoint: ReadonlyMap<string, T>,
  kind: CheckpointKind | 'auto' = 'auto',
  source = 'checkpoint',
): RemapResult<T> {
  const k0 = kind === 'auto' ? detectCheckpointKind(checkpoint.keys()) : kind;
  const rules = REMAP_RULES[k0];
  const map = new Map<string, T>();
  const from = new Map<string, string>();
  const skipped: string[] = [];
  const unmatched: string[] = [];
  for (const [orig, v] of checkpoint) {
    const key = stripModule(orig);
    const rule = rules.find((r) => r.pattern.test(key));
    let target = key;
    if (!rule) unmatched.push(orig);
    else if (rule.replace === null) {
      skipped.push(orig);
      continue;
    } else target = key.replace(rule.pattern, rule.replace);
    const prev = from.get(target);
    if (prev !== undefined)
      throw new RemapError(`${source}: keys '${prev}' and '${orig}' both map to '${target}'`);
    from.set(target, orig);
    map.set(target, v);
  }
  return { kind: k0, map, skipped, unmatched };
}

export interface WrongShape {
  key: string;
  got: number[];
  want: number[];
}

export interface LoadReport {
  /** Expected keys the checkpoint lacks. */
  missing: string[];
  /** Checkpoint keys the model does not have. */
  unexpected: string[];
  wrongShape: WrongShape[];
  /** Keys present with the right shape. */
  matched: number;
  ok: boolean;
}

/**
 * Compares a (remapped) checkpoint with the model's expected {key: shape}: missing, unexpected
 * and wrong-shape keys (the strict load_state_dict check, as data).
 */
export function loadReport(
  checkpoint: ReadonlyMap<string, { shape: Shape }>,
  expected: ReadonlyMap<string, Shape> | Readonly<Record<string, Shape>>,
): LoadReport {
  const exp = expected instanceof Map ? expected : new Map(Object.entries(expected));
  const missing: string[] = [];
  const unexpected: string[] = [];
  const wrongShape: WrongShape[] = [];
  let matched = 0;
  for (const [key, want] of exp) {
    const t = checkpoint.get(key);
    if (!t) missing.push(key);
    else if (!sameShape(t.shape, want)) wrongShape.push({ key, got: [...t.shape], want: [...want] });
    else matched++;
  }
  for (const key of checkpoint.keys()) if (!exp.has(key)) unexpected.push(key);
  return {
    missing,
    unexpected,
    wrongShape,
    matched,
    ok: missing.length === 0 && unexpected.length === 0 && wrongShape.length === 0,
  };
}

/** A readable multi-line summary (at most `maxPerList` keys per list). */
export function formatLoadReport(r: LoadReport, maxPerList = 10): string {
  const list = (keys: string[]) =>
    keys.slice(0, maxPerList).join(', ') + (keys.length > maxPerList ? `, ... (${keys.length} in all)` : '');
  const lines = [`${r.matched} keys match`];
  if (r.missing.length) lines.push(`missing (${r.missing.length}): ${list(r.missing)}`);
  if (r.unexpected.length) lines.push(`unexpected (${r.unexpected.length}): ${list(r.unexpected)}`);
  if (r.wrongShape.length)
    lines.push(
      `wrong shape (${r.wrongShape.length}): ` +
        r.wrongShape
          .slice(0, maxPerList)
          .map((w) => `${w.key} ${fmt(w.got)} (expected ${fmt(w.want)})`)
          .join(', ') +
        (r.wrongShape.length > maxPerList ? ', ...' : ''),
    );
  return lines.join('\n');
}

/** Throws with the formatted report unless it is clean. */
export function assertLoadReport(r: LoadReport, source = 'checkpoint'): void {
  if (!r.ok) throw new RemapError(`${source} does not match the model:\n${formatLoadReport(r)}`);
}
