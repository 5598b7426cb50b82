/**
 * Pipeline cache: one GPUShaderModule per WGSL source, one bind-group layout per binding
 * signature, one GPUComputePipeline per (kernel, override constants). `created` counts pipeline
 * creations so tests can assert that steady-state training makes none.
 *
 * Compilation errors surface asynchronously in WebGPU; they are collected from error scopes and
 * the shader's compilation info and thrown by the owner at its next sync point
 * (Gpu.sync / readback), as KernelCompileError naming the kernel.
 */
import { KernelCompileError } from './errors.js';
import type { KernelSpec } from './kernel.js';

/** A scope or compilation-info promise rejects when the device or instance is gone; the device
 * layer reports that loss itself, so here it is not an error of the kernel. */
const ignoreGone = (): void => {};

export interface CachedPipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

export class PipelineCache {
  private readonly modules = new Map<string, GPUShaderModule>();
  private readonly layouts = new Map<string, GPUBindGroupLayout>();
  private readonly pipelines = new Map<string, CachedPipeline>();
  private createdCount = 0;
  private readonly pending: Promise<void>[] = [];
  private readonly errors: KernelCompileError[] = [];

  constructor(private readonly device: GPUDevice) {}

  get created(): number {
    return this.createdCount;
  }

  get size(): number {
    return this.pipelines.size;
  }

  static key(spec: KernelSpec, overrides: Readonly<Record<string, number>>): string {
    const o = Object.keys(overrides)
      .sort()
      .map((k) => `${k}=${overrides[k]}`)
      .join(',');
    return `${spec.name}|${o}`;
  }

  get(spec: KernelSpec, overrides: Readonly<Record<string, number>> = {}): CachedPipeline {
    const merged: Record<string, number> = { ...spec.overrides, ...overrides };
    for (const k of Object.keys(overrides)) {
      if (!(k in spec.overrides)) throw new Error(`kernel '${spec.name}': unknown override constant '${k}'`);
    }
    const key = PipelineCache.key(spec, merged);
    const hit = this.pipelines.get(key);
    if (hit) return hit;

    const device = this.device;
    device.pushErrorScope('validation');
    let module = this.modules.get(spec.file);
    if (!module) {
      module = device.createShaderModule({ code: spec.source, label: spec.file });
      this.modules.set(spec.file, module);
      this.watch(spec, module);
    }
    const layout = this.layoutFor(spec);
    const pipeline = device.createComputePipeline({
      label: key,
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout], label: spec.name }),
      compute: { module, entryPoint: spec.entry, constants: merged },
    });
    this.pending.push(
      device.popErrorScope().then((err) => {
        if (err) {
          this.errors.push(new KernelCompileError(spec.name, err.message));
          this.pipelines.delete(key);
          this.modules.delete(spec.file);
        }
      }, ignoreGone),
    );
    this.createdCount++;
    const entry = { pipeline, layout };
    this.pipelines.set(key, entry);
    // Companions get the caller's override constants that they declare (the rest at defaults).
    for (const c of spec.companions ?? [])
      this.get(c, Object.fromEntries(Object.entries(overrides).filter(([k]) => k in c.overrides)));
    return entry;
  }

  private layoutFor(spec: KernelSpec): GPUBindGroupLayout {
    const sig =
      spec.storage.map(([, a]) => (a === 'read' ? 'r' : 'w')).join('') + (spec.uniformStruct ? 'u' : '');
    let layout = this.layouts.get(sig);
    if (!layout) {
      const entries: GPUBindGroupLayoutEntry[] = spec.storage.map(([, access], i) => ({
        binding: i,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: access === 'read' ? 'read-only-storage' : 'storage' },
      }));
      if (spec.uniformStruct)
        entries.push({
          binding: spec.storage.length,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: 'uniform' },
        });
      layout = this.device.createBindGroupLayout({ entries, label: `layout:${sig}` });
      this.layouts.set(sig, layout);
    }
    return layout;
  }

  private watch(spec: KernelSpec, module: GPUShaderModule): void {
    if (typeof module.getCompilationInfo !== 'function') return;
    this.pending.push(
      module.getCompilationInfo().then((info) => {
        const msgs = info.messages
          .filter((m) => m.type === 'error')
          .map((m) => `${m.lineNum}:${m.linePos}: ${m.message}`);
        if (msgs.length) {
          this.errors.push(new KernelCompileError(spec.name, msgs.join('\n')));
          this.modules.delete(spec.file);
        }
      }, ignoreGone),
    );
  }

  /** Resolves once all compile checks so far have reported; throws the first compile error. */
  async check(): Promise<void> {
    const p = this.pending.splice(0);
    await Promise.all(p);
    const e = this.errors.shift();
    if (e) {
      this.errors.length = 0;
      throw e;
    }
  }
}
