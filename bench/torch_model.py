"""PyTorch (Debian python3-torch, CPU) side of bench/model.ts: the same SAM-LST work with the
oracle model (test/oracle/sam_lst_ref.py), random weights in the official layout.

Prints one JSON object: encoder forward ms per image at each size, and the cached training step
(side network + decoder forward and backward + AdamW, batch B at 224) in ms. Medians of N runs
after one warm-up. Usage: /usr/bin/python3 bench/torch_model.py [--quick]
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "oracle"))
import sam_lst_ref as R  # noqa: E402

quick = "--quick" in sys.argv
torch.set_num_threads(int(os.environ.get("TORCH_THREADS", os.cpu_count() or 2)))
torch.manual_seed(0)
reps = 2 if quick else 3
out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "encoder_ms": {}}


def median(f, n):
    f()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t0) * 1000)
    ts.sort()
    return ts[len(ts) // 2]


for size in ([224] if quick else [224, 512]):
    cfg = R.Config.vit_b(img_size=size)
    model = R.SamLST(cfg).eval()
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        out["encoder_ms"][str(size)] = median(lambda: model.sam.image_encoder(model.sam.preprocess(x)), reps)
    del model

B = 2 if quick else 24
cfg = R.Config.vit_b(img_size=224)
model = R.SamLST(cfg)
R.set_trainable(model)
model.train()
params = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), weight_decay=0.1)
x = torch.rand(B, 3, 224, 224)
emb = torch.randn(B, 256, 14, 14)
label = torch.randint(0, 9, (B, 56, 56))
sam = model.sam


def step():
    opt.zero_grad()
    feat = model.CNN_encoder(x)
    gate = torch.sigmoid(sam.alpha)
    fused = gate * emb + (1 - gate) * feat
    sparse, dense = sam.prompt_encoder.no_prompt()
    low, _ = sam.mask_decoder(fused, sam.prompt_encoder.dense_pe(), sparse, dense)
    loss, _, _ = R.sam_lst_loss(low, label, cfg.num_mask_tokens)
    loss.backward()
    opt.step()


out["cached_step_ms"] = median(step, reps)
out["cached_step_batch"] = B
print(json.dumps(out))
