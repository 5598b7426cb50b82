/** HostTensor: shape + typed data on the CPU; what loaders, datasets and tests exchange. */
import { fmt, numel, type Shape } from '../util/shape.js';

export type DType = 'f32' | 'i32';

export interface HostTensor {
  shape: number[];
  dtype: DType;
  data: Float32Array | Int32Array;
}

export function hostTensor(data: Float32Array | Int32Array, shape: Shape): HostTensor {
  if (data.length !== numel(shape))
    throw new Error(`hostTensor: ${data.length} values do not fill shape ${fmt(shape)}`);
  return { shape: [...shape], dtype: data instanceof Int32Array ? 'i32' : 'f32', data };
}
