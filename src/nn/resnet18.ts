/**
 * ResNet18 side network of SAM-LST (spec §4) with torchvision's state_dict names: conv1, bn1,
 * layer1..layer4 (BasicBlocks conv1/bn1/conv2/bn2 + downsample.0/.1), fc. The width is
 * configurable (64 = torchvision; channels w, w, 2w, 4w, 8w). `forward` runs conv1, bn1, ReLU,
 * maxpool, layer1..layer3 only (output stride 16, 4w channels); layer4 and fc exist for key parity
 * and never receive gradients. Initialisation follows the oracle (PyTorch's default layer inits).
 */
import { add, relu } from '../ops/elementwise.js';
import { maxPool2d } from '../ops/spatial.js';
import type { Gpu } from '../gpu/device.js';
import type { Tensor } from '../tensor/tensor.js';
import { fmt, ShapeError } from '../util/shape.js';
import { tap, type Capture } from './capture.js';
import { BatchNorm2d, Conv2d, Layer, Linear, ModuleList, type InitRng } from './layers.js';

export interface ResNetOptions {
  /** Base width (torchvision: 64). */
  width: number;
  /** fc outputs (torchvision: 1000). */
  fcOut: number;
  inChans?: number;
  bnEps?: number;
  bnMomentum?: number;
}

export class BasicBlock extends Layer {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly downsample: ModuleList<Conv2d | BatchNorm2d> | null;

  constructor(
    gpu: Gpu,
    cin: number,
    cout: number,
    stride: number,
    rng: InitRng,
    bn: { eps: number; momentum: number },
  ) {
    super(gpu);
    this.conv1 = this.child('conv1', new Conv2d(gpu, cin, cout, 3, rng, { stride, padding: 1, bias: false }));
    this.bn1 = this.child('bn1', new BatchNorm2d(gpu, cout, bn));
    this.conv2 = this.child('conv2', new Conv2d(gpu, cout, cout, 3, rng, { padding: 1, bias: false }));
    this.bn2 = this.child('bn2', new BatchNorm2d(gpu, cout, bn));
    this.downsample =
      stride !== 1 || cin !== cout
        ? this.child(
            'downsample',
            new ModuleList<Conv2d | BatchNorm2d>(gpu, [
              new Conv2d(gpu, cin, cout, 1, rng, { stride, bias: false }),
              new BatchNorm2d(gpu, cout, bn),
            ]),
          )
        : null;
  }

  forward(x: Tensor): Tensor {
    const c1 = this.conv1.forward(x);
    const b1 = this.bn1.forward(c1);
    const r1 = relu(b1);
    const c2 = this.conv2.forward(r1);
    const b2 = this.bn2.forward(c2);
    let idt = x;
    if (this.downsample) {
      const d0 = (this.downsample.at(0) as Conv2d).forward(x);
      idt = (this.downsample.at(1) as BatchNorm2d).forward(d0);
      d0.dispose();
    }
    const s = add(b2, idt);
    const y = relu(s);
    for (const t of [c1, b1, r1, c2, b2, s]) t.dispose();
    if (idt !== x) idt.dispose();
    return y;
  }
}

export class ResNet18 extends Layer {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly layer1: ModuleList<BasicBlock>;
  readonly layer2: ModuleList<BasicBlock>;
  readonly layer3: ModuleList<BasicBlock>;
  readonly layer4: ModuleList<BasicBlock>;
  readonly fc: Linear;
  readonly inChans: number;

  constructor(gpu: Gpu, opts: ResNetOptions, rng: InitRng) {
    super(gpu);
    const w = opts.width;
    this.inChans = opts.inChans ?? 3;
    const bn = { eps: opts.bnEps ?? 1e-5, momentum: opts.bnMomentum ?? 0.1 };
    this.conv1 = this.child(
      'conv1',
      new Conv2d(gpu, this.inChans, w, 7, rng, { stride: 2, padding: 3, bias: false }),
    );
    this.bn1 = this.child('bn1', new BatchNorm2d(gpu, w, bn));
    const chans = [w, w, 2 * w, 4 * w, 8 * w];
    const layer = (li: number) =>
      new ModuleList(gpu, [
        new BasicBlock(gpu, chans[li - 1]!, chans[li]!, li === 1 ? 1 : 2, rng, bn),
        new BasicBlock(gpu, chans[li]!, chans[li]!, 1, rng, bn),
      ]);
    this.layer1 = this.child('layer1', layer(1));
    this.layer2 = this.child('layer2', layer(2));
    this.layer3 = this.child('layer3', layer(3));
    this.layer4 = this.child('layer4', layer(4));
    this.fc = this.child('fc', new Linear(gpu, 8 * w, opts.fcOut, rng));
  }

  /** Output channels of `forward` (layer3). */
  get outChannels(): number {
    return this.layer3.at(1).conv2.weight.shape[0]!;
  }

  /** x (B, inChans, H, W) -> layer3 features (B, 4w, H/16, W/16) (conv1..layer3; layer4/fc unused). */
  forward(x: Tensor, cap?: Capture): Tensor {
    if (x.shape.length !== 4 || x.shape[1] !== this.inChans)
      throw new ShapeError(`ResNet18: input must be (B, ${this.inChans}, H, W), got ${fmt(x.shape)}`);
    const c1 = tap(cap, 'cnn.conv1', this.conv1.forward(x));
    const b1 = tap(cap, 'cnn.bn1', this.bn1.forward(c1));
    const r = relu(b1);
    let h = tap(cap, 'cnn.stem', maxPool2d(r, { kernel: 3, stride: 2, padding: 1 }));
    for (const t of [c1, b1, r]) t.dispose();
    for (const [i, layer] of [this.layer1, this.layer2, this.layer3].entries()) {
      let y = h;
      for (const blk of layer.items) {
        const next = blk!.forward(y);
        if (y !== h) y.dispose();
        y = next;
      }
      if (y !== h) h.dispose();
      h = tap(cap, `cnn.layer${i + 1}`, y);
    }
    return h;
  }
}
