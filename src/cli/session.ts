/**
 * What every CLI does around its work: open a Dawn device, load the model from a checkpoint, and
 * release everything whatever happens; and run `main` when the file is executed directly.
 */
import { pathToFileURL } from 'node:url';
import {
  loadModelFromCheckpoint,
  type LoadedModel,
  type LoadModelOptions,
  type ModelCheckpoint,
} from '../app/load_model.js';
import { Gpu } from '../gpu/device.js';
import { createNodeDevice, releaseDawn, type NodeDevice } from '../platform/node.js';

/**
 * Opens a device (`backend` or the default), loads `ck` and runs `body`; returns its exit code.
 * No device or a model that cannot be built: message, exit code 2. An unexpected error: its stack,
 * exit code 1. The model, the Gpu, the device and Dawn are released in every case.
 */
export async function withLoadedModel(
  name: string,
  backend: string | undefined,
  ck: ModelCheckpoint,
  opts: LoadModelOptions,
  body: (gpu: Gpu, loaded: LoadedModel) => Promise<number>,
): Promise<number> {
  let node: NodeDevice | null = null;
  let gpu: Gpu | null = null;
  try {
    try {
      node = await createNodeDevice(backend ? { backend } : {});
    } catch (e) {
      console.error(`${name}: no WebGPU device: ${(e as Error).message}`);
      return 2;
    }
    gpu = new Gpu({ device: node.device, adapterInfo: node.info, owned: false });
    let loaded: LoadedModel;
    try {
      loaded = await loadModelFromCheckpoint(gpu, ck, opts);
    } catch (e) {
      console.error(`${name}: ${(e as Error).message}`);
      return 2;
    }
    try {
      return await body(gpu, loaded);
    } finally {
      loaded.model.dispose();
    }
  } catch (e) {
    console.error(`${name}: ${(e as Error).stack ?? String(e)}`);
    return 1;
  } finally {
    gpu?.destroy();
    node?.close();
    releaseDawn();
  }
}

/** Runs `main(argv)` as the process's work when `moduleUrl` is the script node was started with. */
export function runIfScript(moduleUrl: string, main: (argv: readonly string[]) => Promise<number>): void {
  if (moduleUrl !== pathToFileURL(process.argv[1] ?? '').href) return;
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
