import { Gpu } from '../src/gpu/device.js';
import { createNodeDevice, installDawnPolling, dawnPollingStats } from '../src/platform/node.js';
import { runGemm } from '../src/kernels/gemm.js';
import { Tensor } from '../src/tensor/tensor.js';
const node = await createNodeDevice();
const gpu = new Gpu({ device: node.device, adapterInfo: node.info });
(globalThis as unknown as { keep: unknown }).keep = node;
const M = 1024, N = 3072, K = 768;
const a = Tensor.zeros(gpu, [M * K]), b = Tensor.zeros(gpu, [N * K]), c = Tensor.empty(gpu, [M * N]);
runGemm({ a, b, c, M, N, K, transB: true }); await gpu.sync();
async function run(label: string) {
  const s0 = dawnPollingStats();
  const t0 = performance.now();
  for (let i = 0; i < 10; i++) { runGemm({ a, b, c, M, N, K, transB: true }); await gpu.sync(); }
  const ms = (performance.now() - t0) / 10;
  const s1 = dawnPollingStats();
  console.log(`${label}: ${ms.toFixed(1)} ms/gemm, ${(2 * M * N * K / ms / 1e6).toFixed(1)} GFLOP/s; ticks immediate ${s1.immediate - s0.immediate}, deferred ${s1.deferred - s0.deferred}`);
}
for (let r = 0; r < 2; r++) {
  installDawnPolling('spin'); await run('spin  ');
  installDawnPolling('polite'); await run('polite');
}
const t0 = performance.now();
for (let i = 0; i < 200; i++) { const x = Tensor.fromData(gpu, [1, 2, 3], [3]); await x.read(); x.dispose(); }
console.log(`200 tiny round trips: ${((performance.now() - t0) / 200).toFixed(2)} ms each (polite)`);
installDawnPolling('spin');
const t1 = performance.now();
for (let i = 0; i < 200; i++) { const x = Tensor.fromData(gpu, [1, 2, 3], [3]); await x.read(); x.dispose(); }
console.log(`200 tiny round trips: ${((performance.now() - t1) / 200).toFixed(2)} ms each (spin)`);
process.exit(0);
