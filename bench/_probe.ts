import { Gpu } from '../src/gpu/device.js';
import { createNodeDevice } from '../src/platform/node.js';
import { runGemm } from '../src/kernels/gemm.js';
import { Tensor } from '../src/tensor/tensor.js';
const node = await createNodeDevice();
const gpu = new Gpu({ device: node.device, adapterInfo: node.info });
(globalThis as unknown as { keep: unknown }).keep = node;
const M = 1024, N = 3072, K = 768;
const a = Tensor.zeros(gpu, [M * K]), b = Tensor.zeros(gpu, [N * K]), c = Tensor.empty(gpu, [M * N]);
runGemm({ a, b, c, M, N, K, transB: true }); await gpu.sync();
console.log('pid', process.pid);
const t0 = performance.now();
for (let i = 0; i < 80; i++) { runGemm({ a, b, c, M, N, K, transB: true }); await gpu.sync(); }
const ms = (performance.now() - t0) / 80;
console.log(`${ms.toFixed(1)} ms/gemm, ${(2 * M * N * K / ms / 1e6).toFixed(1)} GFLOP/s`);
process.exit(0);
