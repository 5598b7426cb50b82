/** The differentiable op set. Importing this module wires the autograd tape to the kernels. */
import { setGradHelpers } from '../autograd/tape.js';
import { Tensor } from '../tensor/tensor.js';
import { addInPlace, fill } from './elementwise.js';

setGradHelpers(addInPlace, (like) => fill(Tensor.empty(like.gpu, like.shape), 1));

export * from './elementwise.js';
export * from './gate.js';
export * from './loss.js';
export * from './norm.js';
export * from './reduce.js';
export * from './reshape.js';
export * from './spatial.js';
