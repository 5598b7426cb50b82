/**
 * Embedding example: an app that owns its WebGPU device hands it to the engine, feeds its own
 * GPUBuffer in as the model input, runs SAM-LST inference, and draws the predicted organ mask over
 * the slice with its own render pipeline reading the engine's output buffer — no CPU readback.
 *
 * Query parameters: ?checkpoint=<url of a tiny SAM-LST .pth/.safetensors> (default: the test
 * fixture /test/fixtures/tiny_sam_lst.pth; random weights when it cannot be fetched).
 */
import {
  createEngine,
  createSamLst,
  segment,
  SYNAPSE_ORGANS,
  ORGAN_COLORS,
  type Engine,
} from '../../src/index.js';
import { ALPHA, SCALE, SIZE, overlayWgsl, sceneInput } from './scene.js';

const status = document.getElementById('status')!;
const say = (text: string, error = false) => {
  status.textContent = text;
  status.className = error ? 'error' : '';
};

async function main(): Promise<void> {
  // ---- the app's own device and canvas
  if (!navigator.gpu) throw new Error('this browser has no WebGPU (navigator.gpu is undefined)');
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter');
  const device = await adapter.requestDevice({ label: 'embedding app' });
  const canvas = document.getElementById('view') as HTMLCanvasElement;
  canvas.width = canvas.height = SIZE * SCALE;
  const context = canvas.getContext('webgpu')!;
  const format = navigator.gpu.getPreferredCanvasFormat();
  context.configure({ device, format, alphaMode: 'opaque' });

  // ---- the app's own input buffer, wrapped as an engine tensor (no copy)
  const input = sceneInput();
  const imageBuffer = device.createBuffer({
    label: 'app image',
    size: input.byteLength,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
  });
  device.queue.writeBuffer(imageBuffer, 0, input);

  // ---- the engine on the app's device
  const engine: Engine = await createEngine({ device, adapterInfo: adapter.info });
  const url = new URLSearchParams(location.search).get('checkpoint') ?? '/test/fixtures/tiny_sam_lst.pth';
  let checkpoint: ArrayBuffer | undefined;
  try {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    checkpoint = await r.arrayBuffer();
  } catch (e) {
    console.warn(`checkpoint ${url} not loaded (${(e as Error).message}); using random weights`);
  }
  const model = createSamLst(engine, { config: 'tiny', checkpoint, checkpointName: url });
  const image = engine.fromBuffer(imageBuffer, [1, 3, SIZE, SIZE]);
  const t0 = performance.now();
  const out = segment(model, image);
  out.lowResLogits.dispose();
  out.iouPred.dispose();
  const masks = out.masks; // (1, 9, SIZE, SIZE) logits in an engine GPUBuffer
  engine.flush(); // submit the inference before the app's commands that read masks.buffer

  // ---- the app's render pipeline, reading masks.buffer directly
  const classes = masks.shape[1]!;
  const module = device.createShaderModule({ label: 'overlay', code: overlayWgsl(classes) });
  const pipeline = device.createRenderPipeline({
    label: 'overlay',
    layout: 'auto',
    vertex: { module, entryPoint: 'vs' },
    fragment: { module, entryPoint: 'fs', targets: [{ format }] },
    primitive: { topology: 'triangle-list' },
  });
  const viewBuf = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  const view = new ArrayBuffer(16);
  new Uint32Array(view, 0, 3).set([SIZE, classes, SCALE]);
  new Float32Array(view, 12, 1)[0] = ALPHA;
  device.queue.writeBuffer(viewBuf, 0, view);
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: imageBuffer } },
      { binding: 1, resource: { buffer: masks.buffer, size: masks.bytes } },
      { binding: 2, resource: { buffer: viewBuf } },
    ],
  });
  const draw = () => {
    const enc = device.createCommandEncoder({ label: 'overlay' });
    const pass = enc.beginRenderPass({
      colorAttachments: [
        {
          view: context.getCurrentTexture().createView(),
          loadOp: 'clear',
          storeOp: 'store',
          clearValue: [0, 0, 0, 1],
        },
      ],
    });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.draw(3);
    pass.end();
    device.queue.submit([enc.finish()]);
  };
  draw();
  await device.queue.onSubmittedWorkDone();
  await engine.sync(); // surfaces any engine error; reads nothing back
  const ms = performance.now() - t0;

  const legend = document.getElementById('legend')!;
  legend.innerHTML = SYNAPSE_ORGANS.slice(1)
    .map(
      (n, i) =>
        `<span><i style="background: rgb(${ORGAN_COLORS[i + 1]!.join(',')})"></i>${n.replace('_', ' ')}</span>`,
    )
    .join('');
  say(
    `SAM-LST (tiny, ${checkpoint ? 'fixture weights' : 'random weights'}) on ${engine.gpu.profile.description || 'this adapter'}: ` +
      `inference + overlay in ${ms.toFixed(0)} ms`,
  );
  // For the browser test (and the curious): the app's objects.
  Object.assign(window, { samlstEmbed: { device, engine, model, masks, image, imageBuffer, draw } });
  document.body.dataset.state = 'done';
}

main().catch((e: unknown) => {
  say(`error: ${(e as Error).message}`, true);
  console.warn((e as Error).stack);
  console.error(e);
  document.body.dataset.state = 'error';
});
