/**
 * Host-side data layer (no GPU): readers (.npy/.npz, HDF5, NIfTI, PNG), scipy-exact resampling,
 * SAM-LST augmentation, the synthetic phantom, and `openDataset` over all layouts.
 */
export * from './types.js';
export * from './labels.js';
export * from './resample.js';
export * from './augment.js';
export * from './phantom.js';
export * from './datasets.js';
export { parseNpy, parseNpz, encodeNpy, encodeNpz, NpyError, type NpyArray } from './npy.js';
export {
  parseNifti,
  niftiPairToVolume,
  NiftiError,
  type NiftiVolume,
  type NiftiPairOptions,
} from './nifti.js';
export { decodeGreyPng, decodeMaskPng, encodeGreyPng, PngError, type GreyImage } from './png.js';
export { readH5Datasets, writeH5, checkH5File, H5Error, type H5Array } from './h5.js';
export {
  readSynapseSlice,
  readSynapseVolume,
  resolveSynapseLayout,
  looksLikeSynapse,
  type SynapseLayout,
} from './synapse.js';
