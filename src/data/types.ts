/** The shapes every reader and dataset in src/data hands out. */

/** One 2-D training slice: image in [0, 1] (float32, row-major h×w) and Synapse ids 0..8. */
export interface Slice {
  id: string;
  h: number;
  w: number;
  image: Float32Array;
  label: Int32Array;
}

/** One 3-D test volume, (d, h, w) C order: image in [0, 1] and Synapse ids 0..8. */
export interface Volume {
  id: string;
  d: number;
  h: number;
  w: number;
  image: Float32Array;
  label: Int32Array;
}

/** An indexable collection of items loaded on demand. */
export interface Source<T> {
  readonly ids: readonly string[];
  readonly size: number;
  get(i: number): Promise<T>;
}

export type DatasetLayout = 'synapse' | 'nifti' | 'png' | 'phantom';

export interface Dataset {
  layout: DatasetLayout;
  /** Folder (or 'phantom:<seed>') the data came from. */
  root: string;
  /** Training slices (null when the layout has none, e.g. a Synapse folder with only test_vol_h5). */
  train: Source<Slice> | null;
  /** Test volumes (null when absent). */
  test: Source<Volume> | null;
  /** Things the caller should know (fallbacks taken, files skipped); empty when none. */
  notes: string[];
}

/** A dataset file or folder failed validation; the message names it. */
export class DataError extends Error {
  override name = 'DataError';
}
