/**
 * The browser demo: a slice (phantom case, or PNG / NIfTI files the user picks or drops), a model
 * (random weights or a checkpoint the user picks), inference with the predicted organs over the
 * slice and an organ legend (with Dice when labels are known), and training steps with a live
 * loss curve. All on the engine's own WebGPU device (`createEngine()`).
 *
 * `document.body.dataset.state`: 'init' -> 'ready' <-> 'busy'; 'unsupported' when the browser has
 * no usable WebGPU (the banner says why). `window.samlstDemo` exposes counters for tests.
 */
import {
  AdapterLimitsError,
  argmaxClasses,
  configForCheckpoint,
  createEngine,
  createSamLst,
  DeviceLostError,
  GpuError,
  prepareSlice,
  readCheckpoint,
  samLstConfig,
  SamLstTrainer,
  segment,
  type ConfigSpec,
  type Engine,
  type GreySlice,
  type ModelInput,
  type SamLST,
} from '../src/index.js';
import {
  bestSlice,
  checkPair,
  looksLikeLabel,
  phantom,
  readImageFile,
  readLabelFile,
  sliceOf,
  type LabelStack,
  type Stack,
} from './input.js';
import { drawLegend, drawLoss, drawSlice } from './view.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const inputEl = (id: string) => $<HTMLInputElement>(id);

const app = {
  engine: null as Engine | null,
  model: null as SamLST | null,
  trainer: null as SamLstTrainer | null,
  source: 'phantom' as 'phantom' | 'file',
  stack: null as Stack | null,
  labels: null as LabelStack | null,
  z: 0,
  input: null as ModelInput | null,
  pred: null as Int32Array | null,
  losses: [] as number[],
  segmentations: 0,
  stop: false,
};

declare global {
  interface Window {
    samlstDemo: typeof app;
  }
}
window.samlstDemo = app;

// ------------------------------------------------------------------ messages and state

function status(text: string, error = false): void {
  const el = $('status');
  el.textContent = text;
  el.className = error ? 'error' : '';
}

function banner(text: string): void {
  const el = $('banner');
  el.textContent = text;
  el.hidden = false;
}

function setBusy(busy: boolean): void {
  document.body.dataset.state = busy ? 'busy' : 'ready';
  for (const id of ['segment', 'train', 'random', 'ckpt-file', 'image-file', 'label-file', 'config'])
    ($(id) as HTMLButtonElement).disabled = busy;
  $<HTMLButtonElement>('stop').disabled = !busy;
  if (!busy) $<HTMLButtonElement>('train').disabled = !app.input?.lowResLabels;
}

/** Runs a user action with the controls disabled; errors go to the status line. */
async function act(what: string, fn: () => Promise<void>): Promise<void> {
  if (document.body.dataset.state !== 'ready') return;
  setBusy(true);
  try {
    await fn();
  } catch (e) {
    const err = e as Error;
    if (err instanceof DeviceLostError) {
      banner(`The GPU device was lost (${err.message}). Reload the page to start again.`);
      document.body.dataset.state = 'unsupported';
      return;
    }
    status(`${what} failed: ${err.message}`, true);
    console.warn(err);
  } finally {
    if (document.body.dataset.state === 'busy') setBusy(false);
  }
}

// ------------------------------------------------------------------ model

function describeModel(m: SamLST, how: string): string {
  const c = m.cfg;
  const params = m.namedParameters().reduce((n, [, t]) => n + t.size, 0);
  return `${how}: ${c.imgSize} px, ViT width ${c.encDim} x ${c.encDepth}, ${c.numClasses} organs, ${(params / 1e6).toFixed(2)} M parameters`;
}

function setModel(m: SamLST, how: string): void {
  app.trainer?.dispose();
  app.trainer = null;
  app.model?.dispose();
  app.model = m;
  app.losses = [];
  $('model-info').textContent = describeModel(m, how);
  drawLoss($('loss'), app.losses);
  $('loss-text').textContent = '';
  refreshInput();
}

function selectedConfig(): ConfigSpec {
  const v = $<HTMLSelectElement>('config').value;
  return v === 'auto' ? 'tiny' : (v as ConfigSpec);
}

// ------------------------------------------------------------------ slice

function currentSlice(): GreySlice {
  const S = app.model!.cfg.imgSize;
  if (app.source === 'phantom' || !app.stack)
    return phantom(Number(inputEl('phantom-seed').value) >>> 0, Number(inputEl('phantom-t').value), S);
  return sliceOf(app.stack, app.labels, app.z);
}

/** Re-prepares the model input for the current slice (resized to the model) and redraws. */
function refreshInput(): void {
  if (!app.engine || !app.model) return;
  app.input?.image.dispose();
  app.input?.lowResLabels?.dispose();
  app.input = prepareSlice(app.engine, app.model, currentSlice());
  app.pred = null;
  redraw();
  $<HTMLButtonElement>('train').disabled = document.body.dataset.state !== 'ready' || !app.input.lowResLabels;
  $('train-info').textContent = app.input.lowResLabels
    ? ''
    : 'training needs labels: pick or drop a label file for this image';
}

function redraw(): void {
  if (!app.input || !app.model) return;
  drawSlice($('slice'), {
    image: app.input.hostImage,
    size: app.model.cfg.imgSize,
    pred: app.pred,
    truth: app.input.label,
    showPred: inputEl('show-pred').checked,
    showTruth: inputEl('show-truth').checked,
    opacity: Number(inputEl('opacity').value),
  });
  drawLegend($('legend'), app.pred, app.input.label);
}

/** Splits dropped files into an image and a label map by name (see looksLikeLabel). */
function roles(files: readonly File[]): { image: File | null; label: File | null } {
  const label = files.find((f) => looksLikeLabel(f.name)) ?? null;
  const image = files.find((f) => f !== label) ?? null;
  return image || app.stack ? { image, label } : { image: label, label: null };
}

async function loadFiles(imageFile: File | null, labelFile: File | null): Promise<void> {
  const bytes = async (f: File) => new Uint8Array(await f.arrayBuffer());
  const stack = imageFile ? readImageFile(await bytes(imageFile), imageFile.name) : app.stack;
  if (!stack) throw new Error('pick an image file first');
  let labels = imageFile ? null : app.labels;
  if (labelFile) {
    labels = readLabelFile(await bytes(labelFile), labelFile.name);
    checkPair(stack, labels);
  }
  app.stack = stack;
  app.labels = labels;
  app.source = 'file';
  const fileRadio = document.querySelector<HTMLInputElement>('input[name=source][value=file]')!;
  fileRadio.disabled = false;
  fileRadio.checked = true;
  app.z = bestSlice(stack, labels);
  const zInput = inputEl('slice-z');
  zInput.max = String(stack.d - 1);
  zInput.value = String(app.z);
  $('slice-row').hidden = stack.d <= 1;
  $('slice-z-text').textContent = `${app.z + 1} / ${stack.d}`;
  refreshInput();
  status(
    `${stack.name}: ${stack.d > 1 ? `${stack.d} slices of ` : ''}${stack.h}x${stack.w} (${stack.note})` +
      (labels ? `, labels from ${labels.name}` : ', no labels') +
      `; shown at the model's ${app.model!.cfg.imgSize} px`,
  );
}

// ------------------------------------------------------------------ actions

async function segmentNow(): Promise<void> {
  const { engine, model, input } = app;
  if (!engine || !model || !input) return;
  const t0 = performance.now();
  const out = segment(model, input.image);
  try {
    const logits = await out.masks.readFloat();
    app.pred = argmaxClasses(logits, out.masks.shape);
  } finally {
    for (const t of [out.masks, out.lowResLogits, out.iouPred]) t.dispose();
  }
  app.segmentations++;
  redraw();
  status(`segmented in ${(performance.now() - t0).toFixed(0)} ms`);
}

async function trainNow(): Promise<void> {
  const { model, input } = app;
  if (!model || !input) return;
  if (!input.lowResLabels) throw new Error('training needs labels for this slice');
  const steps = Math.max(1, Math.floor(Number(inputEl('steps').value)));
  const lr = Number(inputEl('lr').value);
  if (!(lr >= 0)) throw new Error(`learning rate ${inputEl('lr').value} is not a number >= 0`);
  app.trainer ??= new SamLstTrainer(model, { lr });
  app.stop = false;
  const t0 = performance.now();
  for (let k = 0; k < steps && !app.stop; k++) {
    const loss = await app.trainer.trainStep(input.image, input.lowResLabels, lr);
    if (!Number.isFinite(loss))
      throw new Error(`the loss became ${loss} at step ${app.trainer.step}; lower the lr`);
    app.losses.push(loss);
    drawLoss($('loss'), app.losses);
    const per = (performance.now() - t0) / (k + 1);
    $('loss-text').textContent =
      `step ${app.trainer.step}: loss ${loss.toFixed(4)} (${per.toFixed(0)} ms per step)`;
    status(`training: step ${k + 1} of ${steps}`);
  }
  await segmentNow();
}

async function modelFromCheckpoint(file: File): Promise<void> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const ck = readCheckpoint(bytes, file.name);
  const choice = $<HTMLSelectElement>('config').value;
  const config = choice === 'auto' ? configForCheckpoint(ck) : samLstConfig(choice as ConfigSpec);
  const m = createSamLst(app.engine!, { checkpoint: ck, config });
  setModel(m, `${file.name}${ck.notes.length ? ` (${ck.notes.join('; ')})` : ''}`);
}

// ------------------------------------------------------------------ start

async function start(): Promise<void> {
  if (!('gpu' in navigator) || !navigator.gpu) {
    banner(
      'This browser has no WebGPU, so the demo cannot run.\n' +
        'Use a browser with WebGPU enabled (Chrome or Edge 113+, Safari 26+, Firefox 141+ on Windows), and open ' +
        'the page over https or from localhost (WebGPU needs a secure context).',
    );
    $('adapter').textContent = 'no WebGPU';
    document.body.dataset.state = 'unsupported';
    return;
  }
  try {
    app.engine = await createEngine();
  } catch (e) {
    const err = e as Error;
    if (err instanceof AdapterLimitsError)
      banner(
        `Your GPU adapter's limits are too small for this engine:\n${err.problems.join('\n')}\n` +
          'Try another browser or GPU (a compatibility-mode or software adapter may report lower limits).',
      );
    else if (err instanceof GpuError) banner(`WebGPU is not usable here: ${err.message}`);
    else throw err;
    $('adapter').textContent = 'WebGPU not usable';
    document.body.dataset.state = 'unsupported';
    return;
  }
  const p = app.engine.gpu.profile;
  $('adapter').textContent =
    `WebGPU adapter: ${p.description || 'unnamed'} (${p.kind === 'cpu' ? 'software' : 'hardware'}` +
    `${p.subgroups ? `, subgroups ${p.subgroupMinSize}-${p.subgroupMaxSize} lanes` : ''})` +
    (p.kind === 'cpu' ? ' — a software adapter is slow; the tiny configuration is the one to try' : '');

  setModel(createSamLst(app.engine, { config: selectedConfig(), seed: 0 }), 'random weights');
  drawLoss($('loss'), app.losses);

  $('segment').addEventListener('click', () => void act('segmentation', segmentNow));
  $('train').addEventListener('click', () => void act('training', trainNow));
  $('stop').addEventListener('click', () => (app.stop = true));
  $('random').addEventListener(
    'click',
    () =>
      void act('random weights', async () => {
        setModel(createSamLst(app.engine!, { config: selectedConfig(), seed: 0 }), 'random weights');
        status('model with random weights');
      }),
  );
  $('ckpt-file').addEventListener('change', (ev) => {
    const f = (ev.target as HTMLInputElement).files?.[0];
    if (f) void act(`loading ${f.name}`, () => modelFromCheckpoint(f));
  });
  $('image-file').addEventListener('change', (ev) => {
    const f = (ev.target as HTMLInputElement).files?.[0];
    if (f) void act(`reading ${f.name}`, () => loadFiles(f, null));
  });
  $('label-file').addEventListener('change', (ev) => {
    const f = (ev.target as HTMLInputElement).files?.[0];
    if (f) void act(`reading ${f.name}`, () => loadFiles(null, f));
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    const r = roles([...(ev.dataTransfer?.files ?? [])]);
    if (r.image || r.label) void act('reading dropped files', () => loadFiles(r.image, r.label));
  });
  for (const id of ['phantom-seed', 'phantom-t'])
    $(id).addEventListener('change', () => {
      if (document.body.dataset.state !== 'ready') return;
      app.source = 'phantom';
      document.querySelector<HTMLInputElement>('input[name=source][value=phantom]')!.checked = true;
      refreshInput();
    });
  for (const r of document.querySelectorAll<HTMLInputElement>('input[name=source]'))
    r.addEventListener('change', () => {
      if (document.body.dataset.state !== 'ready') return;
      app.source = r.value === 'file' && app.stack ? 'file' : 'phantom';
      refreshInput();
    });
  inputEl('slice-z').addEventListener('input', () => {
    if (!app.stack || document.body.dataset.state !== 'ready') return;
    app.z = Number(inputEl('slice-z').value);
    $('slice-z-text').textContent = `${app.z + 1} / ${app.stack.d}`;
    refreshInput();
  });
  for (const id of ['show-pred', 'show-truth', 'opacity']) $(id).addEventListener('input', redraw);

  setBusy(false);
  status('ready: press Segment (random weights give random masks; train a few steps or pick a checkpoint)');
}

start().catch((e: unknown) => {
  status(`the demo failed to start: ${(e as Error).message}`, true);
  console.error(e);
  document.body.dataset.state = 'unsupported';
});
