/** The differentiable op set. */
export * from './conv.js';
export * from './elementwise.js';
export * from './attention.js';
export * from './gate.js';
export * from './linear.js';
export * from './loss.js';
export * from './norm.js';
export * from './reduce.js';
export * from './reshape.js';
export * from './spatial.js';
