/**
 * SamLstConfig: every size of the SAM-LST model, mirroring the oracle's `Config`
 * (test/oracle/sam_lst_ref.py) field for field (camelCase here, snake_case there). `vitB()` is the
 * paper configuration (ViT-B/16 at 512, 8 classes), `tiny()` the fixture configuration; any other
 * combination the oracle can express is accepted, and `fromJson` reads the oracle's `to_dict()`
 * output (the `config` object of tiny_case.json).
 */
import { describeValue } from '../util/args.js';

export interface SamLstConfigFields {
  /** Network input side S (SAM-LST: 512). */
  imgSize: number;
  patchSize: number;
  inChans: number;
  encDim: number;
  encDepth: number;
  encHeads: number;
  encMlpRatio: number;
  /** Window side of the windowed blocks (0: every block attends globally). */
  windowSize: number;
  /** 0-based indexes of the global-attention blocks. */
  globalAttnIndexes: readonly number[];
  encLnEps: number;
  /** Prompt / decoder width (= neck output channels = transformer dim). */
  promptDim: number;
  maskInChans: number;
  decDepth: number;
  decHeads: number;
  decMlpDim: number;
  attnDownsample: number;
  decLnEps: number;
  /** Organ classes; mask tokens = numClasses + 1 (background + organs). */
  numClasses: number;
  iouHeadDepth: number;
  iouHeadHidden: number;
  /** ResNet18 base width; layer3 has 4 * cnnWidth channels, which must equal promptDim. */
  cnnWidth: number;
  cnnFcOut: number;
  bnEps: number;
  bnMomentum: number;
  pixelMean: readonly number[];
  pixelStd: readonly number[];
}

const DEFAULTS: SamLstConfigFields = {
  imgSize: 512,
  patchSize: 16,
  inChans: 3,
  encDim: 768,
  encDepth: 12,
  encHeads: 12,
  encMlpRatio: 4.0,
  windowSize: 14,
  globalAttnIndexes: [2, 5, 8, 11],
  encLnEps: 1e-6,
  promptDim: 256,
  maskInChans: 16,
  decDepth: 2,
  decHeads: 8,
  decMlpDim: 2048,
  attnDownsample: 2,
  decLnEps: 1e-5,
  numClasses: 8,
  iouHeadDepth: 3,
  iouHeadHidden: 256,
  cnnWidth: 64,
  cnnFcOut: 1000,
  bnEps: 1e-5,
  bnMomentum: 0.1,
  pixelMean: [0, 0, 0],
  pixelStd: [1, 1, 1],
};

/** snake_case key of the oracle's Config for each field. */
const ORACLE_KEYS: Record<keyof SamLstConfigFields, string> = {
  imgSize: 'img_size',
  patchSize: 'patch_size',
  inChans: 'in_chans',
  encDim: 'enc_dim',
  encDepth: 'enc_depth',
  encHeads: 'enc_heads',
  encMlpRatio: 'enc_mlp_ratio',
  windowSize: 'window_size',
  globalAttnIndexes: 'global_attn_indexes',
  encLnEps: 'enc_ln_eps',
  promptDim: 'prompt_dim',
  maskInChans: 'mask_in_chans',
  decDepth: 'dec_depth',
  decHeads: 'dec_heads',
  decMlpDim: 'dec_mlp_dim',
  attnDownsample: 'attn_downsample',
  decLnEps: 'dec_ln_eps',
  numClasses: 'num_classes',
  iouHeadDepth: 'iou_head_depth',
  iouHeadHidden: 'iou_head_hidden',
  cnnWidth: 'cnn_width',
  cnnFcOut: 'cnn_fc_out',
  bnEps: 'bn_eps',
  bnMomentum: 'bn_momentum',
  pixelMean: 'pixel_mean',
  pixelStd: 'pixel_std',
};

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export class SamLstConfig implements SamLstConfigFields {
  readonly imgSize!: number;
  readonly patchSize!: number;
  readonly inChans!: number;
  readonly encDim!: number;
  readonly encDepth!: number;
  readonly encHeads!: number;
  readonly encMlpRatio!: number;
  readonly windowSize!: number;
  readonly globalAttnIndexes!: readonly number[];
  readonly encLnEps!: number;
  readonly promptDim!: number;
  readonly maskInChans!: number;
  readonly decDepth!: number;
  readonly decHeads!: number;
  readonly decMlpDim!: number;
  readonly attnDownsample!: number;
  readonly decLnEps!: number;
  readonly numClasses!: number;
  readonly iouHeadDepth!: number;
  readonly iouHeadHidden!: number;
  readonly cnnWidth!: number;
  readonly cnnFcOut!: number;
  readonly bnEps!: number;
  readonly bnMomentum!: number;
  readonly pixelMean!: readonly number[];
  readonly pixelStd!: readonly number[];

  /** Any field left out takes the oracle's default (the ViT-B / 512 / 8-class configuration). */
  constructor(fields: Partial<SamLstConfigFields> = {}) {
    checkFields(fields);
    Object.assign(this, DEFAULTS, fields);
    this.globalAttnIndexes = Object.freeze([...this.globalAttnIndexes]);
    this.pixelMean = Object.freeze([...this.pixelMean]);
    this.pixelStd = Object.freeze([...this.pixelStd]);
    validate(this);
    Object.freeze(this);
  }

  /**
   * Patch grid side T = imgSize / patchSize. (The full model runs only with patchSize 16, the
   * ResNet's output stride, as the oracle asserts; other patch sizes build and load, e.g. for the
   * small checkpoint fixtures, and their SAM parts run.)
   */
  get grid(): number {
    return this.imgSize / this.patchSize;
  }

  get numMaskTokens(): number {
    return this.numClasses + 1;
  }

  /** The paper configuration: SAM ViT-B/16, input 512, 8 organ classes. */
  static vitB(imgSize = 512, numClasses = 8): SamLstConfig {
    return new SamLstConfig({ imgSize, numClasses });
  }

  /** The oracle's `Config.tiny()` (the tiny_case fixture). */
  static tiny(): SamLstConfig {
    return new SamLstConfig({
      imgSize: 96,
      patchSize: 16,
      encDim: 32,
      encDepth: 4,
      encHeads: 2,
      windowSize: 4,
      globalAttnIndexes: [1, 3],
      promptDim: 32,
      maskInChans: 8,
      decDepth: 2,
      decHeads: 2,
      decMlpDim: 64,
      numClasses: 8,
      iouHeadHidden: 32,
      cnnWidth: 8,
      cnnFcOut: 10,
    });
  }

  /**
   * From the oracle's `Config.to_dict()` (snake_case keys; derived `grid` / `num_mask_tokens` are
   * checked against the fields). Missing keys take the defaults; unknown keys are an error.
   */
  static fromJson(obj: Readonly<Record<string, unknown>>): SamLstConfig {
    const byOracle = new Map(Object.entries(ORACLE_KEYS).map(([f, o]) => [o, f as keyof SamLstConfigFields]));
    const fields: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) {
      if (k === 'grid' || k === 'num_mask_tokens') continue;
      const f = byOracle.get(k) ?? (k in DEFAULTS ? (k as keyof SamLstConfigFields) : undefined);
      if (!f) throw new ConfigError(`config: unknown key '${k}'`);
      const isList = Array.isArray(DEFAULTS[f]);
      if (isList ? !Array.isArray(v) || v.some((e) => typeof e !== 'number') : typeof v !== 'number')
        throw new ConfigError(
          `config: '${k}' must be ${isList ? 'a list of numbers' : 'a number'}, got ${JSON.stringify(v)}`,
        );
      fields[f] = v;
    }
    const cfg = new SamLstConfig(fields as Partial<SamLstConfigFields>);
    if (obj.grid !== undefined && obj.grid !== cfg.grid)
      throw new ConfigError(`config: grid ${String(obj.grid)} != img_size / patch_size = ${cfg.grid}`);
    if (obj.num_mask_tokens !== undefined && obj.num_mask_tokens !== cfg.numMaskTokens)
      throw new ConfigError(
        `config: num_mask_tokens ${String(obj.num_mask_tokens)} != num_classes + 1 = ${cfg.numMaskTokens}`,
      );
    return cfg;
  }

  /** The oracle's `to_dict()` form. */
  toJson(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [f, o] of Object.entries(ORACLE_KEYS)) {
      const v = this[f as keyof SamLstConfigFields];
      out[o] = Array.isArray(v) ? [...(v as number[])] : v;
    }
    out.grid = this.grid;
    out.num_mask_tokens = this.numMaskTokens;
    return out;
  }

  /** A copy with some fields changed. */
  with(fields: Partial<SamLstConfigFields>): SamLstConfig {
    return new SamLstConfig({ ...this, ...fields });
  }
}

/**
 * The constructor's argument: an object whose keys are known fields (camelCase; a snake_case key or
 * a typo names the field meant) with numbers, or arrays of numbers for the list fields.
 */
function checkFields(fields: unknown): void {
  if (fields === null || typeof fields !== 'object' || Array.isArray(fields) || ArrayBuffer.isView(fields))
    throw new ConfigError(
      `config: fields must be an object of SamLstConfig fields, got ${describeValue(fields)}`,
    );
  const known = Object.keys(DEFAULTS);
  const norm = (k: string) => k.toLowerCase().replace(/_/g, '');
  for (const [k, v] of Object.entries(fields)) {
    if (!Object.hasOwn(DEFAULTS, k)) {
      const meant = known.find(
        (f) => norm(f) === norm(k) || ORACLE_KEYS[f as keyof SamLstConfigFields] === k,
      );
      const hint = !meant
        ? ''
        : k.includes('_')
          ? ` (did you mean '${meant}'? snake_case keys are for SamLstConfig.fromJson)`
          : ` (did you mean '${meant}'?)`;
      throw new ConfigError(`config: unknown field '${k}'${hint}; known fields: ${known.join(', ')}`);
    }
    if (v === undefined) continue;
    const isList = Array.isArray(DEFAULTS[k as keyof SamLstConfigFields]);
    if (isList ? !Array.isArray(v) || v.some((e) => typeof e !== 'number') : typeof v !== 'number')
      throw new ConfigError(
        `config: ${k} must be ${isList ? 'an array of numbers' : 'a number'}, got ${describeValue(v)}`,
      );
  }
}

function validate(c: SamLstConfigFields): void {
  const fail = (m: string): never => {
    throw new ConfigError(`config: ${m}`);
  };
  const posInt: (keyof SamLstConfigFields)[] = [
    'imgSize',
    'patchSize',
    'inChans',
    'encDim',
    'encDepth',
    'encHeads',
    'promptDim',
    'maskInChans',
    'decDepth',
    'decHeads',
    'decMlpDim',
    'attnDownsample',
    'numClasses',
    'iouHeadDepth',
    'iouHeadHidden',
    'cnnWidth',
    'cnnFcOut',
  ];
  for (const k of posInt) {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v < 1) fail(`${k} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(c.windowSize) || c.windowSize < 0)
    fail(`windowSize must be an integer >= 0, got ${c.windowSize}`);
  for (const k of ['encLnEps', 'decLnEps', 'bnEps', 'bnMomentum', 'encMlpRatio'] as const)
    if (!(Number.isFinite(c[k]) && c[k] >= 0)) fail(`${k} must be a finite number >= 0, got ${c[k]}`);
  if (c.imgSize % c.patchSize !== 0)
    fail(`imgSize ${c.imgSize} is not a multiple of patchSize ${c.patchSize}`);
  if (4 * c.cnnWidth !== c.promptDim)
    fail(`ResNet layer3 width 4 * cnnWidth = ${4 * c.cnnWidth} must equal promptDim ${c.promptDim}`);
  if (c.encDim % c.encHeads !== 0) fail(`encHeads ${c.encHeads} must divide encDim ${c.encDim}`);
  if (!Number.isInteger(c.encDim * c.encMlpRatio))
    fail(`encDim * encMlpRatio = ${c.encDim * c.encMlpRatio} is not an integer`);
  if (c.promptDim % c.attnDownsample !== 0 || (c.promptDim / c.attnDownsample) % c.decHeads !== 0)
    fail(
      `decHeads ${c.decHeads} must divide the cross-attention dim promptDim / attnDownsample = ${c.promptDim / c.attnDownsample}`,
    );
  if (c.promptDim % c.decHeads !== 0) fail(`decHeads ${c.decHeads} must divide promptDim ${c.promptDim}`);
  if (c.promptDim % 8 !== 0) fail(`promptDim ${c.promptDim} must be a multiple of 8 (output upscaling)`);
  if (c.maskInChans % 4 !== 0) fail(`maskInChans ${c.maskInChans} must be a multiple of 4`);
  for (const i of c.globalAttnIndexes)
    if (!Number.isInteger(i) || i < 0 || i >= c.encDepth)
      fail(`global attention index ${i} is outside blocks 0..${c.encDepth - 1}`);
  if (c.pixelMean.length !== c.inChans || c.pixelStd.length !== c.inChans)
    fail(`pixelMean / pixelStd need ${c.inChans} values (inChans)`);
  if (c.pixelStd.some((s) => !(s !== 0 && Number.isFinite(s))))
    fail('pixelStd values must be finite and non-zero');
}
