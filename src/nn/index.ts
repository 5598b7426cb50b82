/** The SAM-LST model and its building blocks (module field names = PyTorch state_dict keys). */
export { Module, LoadError, type LoadReport } from './module.js';
export * from './layers.js';
export * from './capture.js';
export * from './config.js';
export * from './resnet18.js';
export * from './sam/image_encoder.js';
export * from './sam/prompt_encoder.js';
export * from './sam/mask_decoder.js';
export * from './sam_lst.js';
