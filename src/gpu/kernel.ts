/**
 * KernelSpec: the TypeScript face of one WGSL entry point. It names the file, the entry point,
 * the storage bindings in binding order (the uniform block always takes the next binding), the
 * uniform layout and the override constants with their defaults. The contract test checks every
 * spec against the WGSL source with wgsl_reflect, so the two cannot drift apart.
 */
import type { UniformLayout } from './uniforms.js';

export type StorageAccess = 'read' | 'read_write';

export interface KernelSpec {
  /** Unique name, `<file stem>.<entry>`; used in pipeline labels and error messages. */
  readonly name: string;
  /** File stem under kernels/ (without .wgsl). */
  readonly file: string;
  readonly source: string;
  readonly entry: string;
  /** Storage buffers at @binding(0..n-1) of @group(0), in order. */
  readonly storage: readonly (readonly [name: string, access: StorageAccess])[];
  /** Name of the WGSL struct bound as var<uniform> at @binding(n); null when the entry has none. */
  readonly uniformStruct: string | null;
  readonly uniforms: UniformLayout;
  /** Override constants the TS side may set, with the defaults it uses. */
  readonly overrides: Readonly<Record<string, number>>;
  /**
   * Uniform values that change on every call (a learning rate, a step count): they are written
   * into a reused buffer instead of the content-keyed uniform cache, which they would churn.
   */
  readonly volatileUniforms?: boolean;
  /**
   * Entries the host picks between per call from shapes that can follow the data (so the first
   * training step need not meet them all): the pipeline cache makes their pipelines together
   * with this one, with the override constants of the call that they declare (the rest at their
   * defaults), so none appears after the first step. May include itself.
   */
  readonly companions?: readonly KernelSpec[];
}

export function defineKernel(
  spec: Omit<KernelSpec, 'name' | 'overrides' | 'uniformStruct'> & {
    overrides?: Record<string, number>;
    uniformStruct?: string | null;
  },
): KernelSpec {
  return {
    ...spec,
    name: `${spec.file}.${spec.entry}`,
    overrides: spec.overrides ?? {},
    uniformStruct:
      spec.uniformStruct === undefined ? (spec.uniforms.length ? 'Params' : null) : spec.uniformStruct,
  };
}
