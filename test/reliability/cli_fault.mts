/**
 * The training CLI (src/cli/train.ts `main`) with a device fault, for faults_cli.test.ts:
 *   SAMLST_TEST_FAULT=destroy:N   device.destroy() of the Dawn device at the N-th dispatch
 *   SAMLST_TEST_FAULT=inject:N    Gpu.injectFault device-lost at the N-th dispatch
 * then the arguments go to main() exactly as `npm run train -- ...` passes them, and its return
 * value becomes the exit code.
 */
import { main } from '../../src/cli/train.js';
import { Gpu } from '../../src/gpu/device.js';

const [mode, n] = (process.env.SAMLST_TEST_FAULT ?? '').split(':');
const at = Number(n);
if ((mode !== 'destroy' && mode !== 'inject') || !(at >= 1))
  throw new Error(
    `SAMLST_TEST_FAULT: expected destroy:N or inject:N, got '${process.env.SAMLST_TEST_FAULT}'`,
  );
const dispatch = Gpu.prototype.dispatch;
let calls = 0;
Gpu.prototype.dispatch = function (this: Gpu, ...args: Parameters<Gpu['dispatch']>) {
  if (++calls === at) {
    if (mode === 'destroy') this.device.destroy();
    else this.injectFault({ kind: 'device-lost', on: 'dispatch' });
  }
  return dispatch.apply(this, args);
};
process.exitCode = await main(process.argv.slice(2));
