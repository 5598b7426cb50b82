"""Write the checkpoint-reader fixtures into ../fixtures/pth (or --out DIR).

Small PyTorch checkpoints in the flavours the TypeScript reader (src/io/pth.ts, zip.ts,
pickle.ts) must accept or reject, the expected values of every tensor, and the oracle's
SAM-checkpoint adaptation (adapt_sam_state_dict) on a small official-shaped dict.

  legacy.pth                 _use_new_zipfile_serialization=False (pre-1.6 format): dtypes,
                             views (transpose, narrow with offset, step-2 slice, expand with
                             stride 0), 0-d int64 and float tensors, an empty tensor
  dtypes_zip.pth             the same dict, zip format (pickle protocol 2)
  dtypes_zip_p4.pth          the same dict, zip format, pickle protocol 4 (FRAME, STACK_GLOBAL,
                             MEMOIZE, SHORT_BINUNICODE)
  dtypes_deflate.pth         dtypes_zip.pth re-zipped with DEFLATE entries and the folder 'archive/'
  dataparallel.pth           nn.DataParallel state_dict of a micro SAM-LST (img 8, patch 4, one
                             global block): 'module.' prefix and the 'sam_encoder.' alias of
                             sam.image_encoder (shared storages)
  resnet_small.pth           the micro SAM-LST's side network alone (torchvision resnet18 names)
  wrapped_state_dict.pth     {'epoch': 3, 'state_dict': <DataParallel Conv+BN state_dict>, 'best': 0.5}
  wrapped_model_opt.pth      {'model': <small dict>, 'optimizer': AdamW state_dict, 'iter': 7}
  official_small.pth         official-SAM-named state_dict of a small SAM (img 32, patch 4 ->
                             grid 8, dim 8, depth 4, global blocks (1, 3), 4 mask tokens)
  adapt_fresh_g4.pth, adapt_expected_g4.pth
                             oracle adapt_sam_state_dict(official_small, cfg(grid 4), fresh): the
                             fresh (random init) dict and the full result; computed in float64
                             from the float32 inputs, rounded to float32 ("f64-rounded truth")
  adapt_resized.pth          the resized tensors (pos_embed, global rel_pos) of the same
                             adaptation to grid 5 (non-integer ratio) and 11 (up), keys 'g<T>/...'
  -- must be rejected --
  truncated_tiny_sam_lst.pth first 65536 bytes of ../tiny_sam_lst.pth (no central directory)
  legacy_truncated.pth       legacy.pth without its last 10 bytes (storage data cut short)
  corrupt_pkl.pth            dtypes_zip.pth with data.pkl's first BINPERSID opcode replaced by
                             0xff (CRC recomputed): the pickle VM must name the opcode + offset
  corrupt_crc.pth            dtypes_zip.pth with one byte of data.pkl flipped in place (stale CRC)
  int64_overflow.pth         an int64 tensor holding 2**40 (does not fit in int32)
  malicious_os_system.pth    zip whose data.pkl is a hand-assembled pickle GLOBAL 'os system' +
                             REDUCE (never executed here: the bytes are written, not loaded)
  malicious_eval_p4.pth      zip whose data.pkl uses STACK_GLOBAL 'builtins' 'eval'
  expected.json              CPython pickles of a rich value in protocols 0-5 ('pickles'), and
                             for every accepted file and for ../tiny_sam_lst.pth: per tensor
                             shape, torch dtype, engine dtype (f32/i32), the first 16 hex digits of
                             the sha256 of the engine array (little-endian float32 / int32,
                             row-major), and the full values of small tensors; for rejected files the
                             expected error fragment; adaptation configs.

The torch version used: Debian bookworm python3-torch 1.13.1 (reports 1.13.0a0).
Run with Debian's interpreter:  /usr/bin/python3 make_pth_variants.py
(it installs python3-torch via apt-get when torch is missing and it runs as root).
The zip-format files are byte-identical across runs; legacy.pth and legacy_truncated.pth are not
(the legacy format names storages by memory address), their values are.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import zipfile

try:
    import torch
except ImportError:  # pragma: no cover - bootstrap on a fresh machine
    if os.geteuid() == 0 and os.path.exists("/usr/bin/apt-get"):
        subprocess.check_call(["apt-get", "update"])
        subprocess.check_call(["apt-get", "install", "-y", "python3-torch"])
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
    sys.exit("torch missing: apt-get install -y python3-torch, then run with /usr/bin/python3")

import numpy as np  # noqa: E402
import torch.nn as nn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sam_lst_ref as R  # noqa: E402

SEED = 20240612
FULL_VALUES_MAX = 64  # tensors with at most this many elements get their full value list

ENGINE_DTYPE = {
    torch.float32: "f32", torch.float16: "f32", torch.bfloat16: "f32", torch.float64: "f32",
    torch.int64: "i32", torch.int32: "i32", torch.int16: "i32", torch.int8: "i32",
    torch.uint8: "i32", torch.bool: "i32",
}


def engine_array(t: torch.Tensor) -> np.ndarray:
    """What the TS reader must return: row-major float32 for floats, int32 for integers."""
    t = t.detach().contiguous()
    if t.is_floating_point():
        return t.to(torch.float32).numpy().astype("<f4", copy=False)
    return t.to(torch.int64).numpy().astype("<i4")


def describe(t: torch.Tensor, values: bool) -> dict:
    a = engine_array(t)
    e = {
        "shape": list(t.shape),
        "torch_dtype": str(t.dtype).replace("torch.", ""),
        "dtype": ENGINE_DTYPE[t.dtype],
        "sha256_16": hashlib.sha256(a.tobytes()).hexdigest()[:16],
    }
    if values and a.size <= FULL_VALUES_MAX:
        e["values"] = [v.item() for v in a.reshape(-1)]
    return e


def compact_json(obj, indent: int = 0) -> str:
    """JSON with one line per tensor entry (dicts nest, anything without dicts inside is inline)."""
    if isinstance(obj, dict) and any(isinstance(v, dict) for v in obj.values()):
        pad = " " * (indent + 1)
        items = [f"{pad}{json.dumps(k)}: {compact_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    return json.dumps(obj)


def describe_dict(sd, values: bool = False) -> dict:
    return {k: describe(v, values) for k, v in sd.items()}


# ----------------------------------------------------------------------------
# the dtype / view dict
# ----------------------------------------------------------------------------
def dtype_dict(g: torch.Generator) -> dict:
    base = (torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.5 - 1.0)
    big = torch.randn(5, 6, generator=g)
    col = torch.randn(3, 1, generator=g)
    return {
        "base": base,
        "base_t": base.t(),                            # shares base's storage, strides (1, 4)
        "narrow": big[1:4, 2:5],                       # storage offset 8, strides (6, 1)
        "step2": big[:, ::2],                          # strides (6, 2)
        "expanded": col.expand(3, 4),                  # strides (1, 0)
        "scalar_f32": torch.tensor(3.5),
        "nbt": torch.tensor(7, dtype=torch.int64),     # like BatchNorm num_batches_tracked
        "i64": torch.tensor([-3, 2 ** 31 - 1, -2 ** 31, 0], dtype=torch.int64),
        "f16": (torch.randn(2, 3, generator=g) * 4).half(),
        "f16_special": torch.tensor([65504.0, -2.0 ** -24, 2.0 ** -14, 0.0, -0.0, 1.5], dtype=torch.float16),
        "bf16": (torch.randn(4, generator=g) * 100).bfloat16(),
        "f64": torch.randn(2, 2, generator=g, dtype=torch.float64),
        "i32": torch.tensor([[1, -2], [3, -4]], dtype=torch.int32),
        "i16": torch.tensor([-300, 300], dtype=torch.int16),
        "i8": torch.tensor([-7, 7], dtype=torch.int8),
        "u8": torch.tensor([0, 200, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 3),
        "f16_t": (torch.randn(3, 2, generator=g)).half().t(),  # non-contiguous half
    }


# ----------------------------------------------------------------------------
# micro SAM-LST (for DataParallel / wrapper files)
# ----------------------------------------------------------------------------
def micro_cfg() -> R.Config:
    return R.Config(
        img_size=8, patch_size=4, enc_dim=8, enc_depth=1, enc_heads=2, window_size=1,
        global_attn_indexes=(0,), prompt_dim=8, mask_in_chans=4, dec_depth=1, dec_heads=2,
        dec_mlp_dim=16, num_classes=2, iou_head_hidden=8, cnn_width=2, cnn_fc_out=3,
    )


def randomize(module: nn.Module, g: torch.Generator):
    with torch.no_grad():
        for _, p in module.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g))
        for n, b in module.named_buffers():
            if n.endswith("num_batches_tracked"):
                b.fill_(int(torch.randint(0, 1000, (1,), generator=g)))
            elif b.is_floating_point():
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)


class LstLike(nn.Module):
    """SAM-LST's module tree: sam, CNN_encoder and the alias sam_encoder = sam.image_encoder
    (built from the oracle's parts so that the micro config may use patch 4)."""

    def __init__(self, cfg: R.Config):
        super().__init__()
        self.sam = R.Sam(cfg)
        self.CNN_encoder = R.ResNet18Side(cfg)
        self.sam_encoder = self.sam.image_encoder


# ----------------------------------------------------------------------------
# small official SAM for the adaptation check
# ----------------------------------------------------------------------------
def small_sam_cfg(img_size: int, num_classes: int) -> R.Config:
    return R.Config(
        img_size=img_size, patch_size=4, enc_dim=8, enc_depth=4, enc_heads=2, window_size=2,
        global_attn_indexes=(1, 3), prompt_dim=8, mask_in_chans=4, dec_depth=1, dec_heads=2,
        dec_mlp_dim=16, num_classes=num_classes, iou_head_hidden=8, cnn_width=2, cnn_fc_out=3,
    )


# ----------------------------------------------------------------------------
# zip helpers (for re-zipping / corrupting)
# ----------------------------------------------------------------------------
def zip_entries(path: str):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def write_zip(path: str, entries, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in entries:
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = compression
            z.writestr(zi, data)


def first_opcode_offset(pkl: bytes, opname: str) -> int:
    import pickletools
    for op, _arg, pos in pickletools.genops(pkl):
        if op.name == opname:
            return pos
    raise RuntimeError(f"no {opname} in pickle")


def pickle_cases() -> list:
    """CPython's own pickler output (protocols 0-5) for a value that exercises the opcodes a
    checkpoint can contain, with the value in the JSON form the TS test converts to
    (bigints {"int": str}, bytes {"bytes": hex}, tuples {"tuple": [...]}, dicts {"dict": [[k, v]...]})."""
    import pickle
    from collections import OrderedDict

    shared = [1, 2]
    obj = OrderedDict([
        ("ints", [0, 1, -1, 255, 256, 65535, 65536, -2 ** 31, 2 ** 31 - 1, 2 ** 31, 2 ** 53 - 1,
                  2 ** 53, -2 ** 63, 2 ** 70, -(2 ** 70)]),
        ("floats", [0.5, -1.25e-300, 3.0, 1e300, -0.0]),
        ("strs", ["", "abc", "\u00e9", "\u20ac \u2211", "line\nbreak", "back\\slash", "quo'te",
                  "\U0001f600", "x" * 300]),
        ("bytes", [b"\x00\xffab", bytes(range(256)) * 2]),
        ("tuples", ((), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4))),
        ("consts", [None, True, False]),
        ("nested", {"a": {"b": [1, {"c": (2,)}]}}),
        (7, "int key"),
        ((1, "x"), "tuple key"),
        ("shared", [shared, shared]),
    ])

    def js(v):
        if v is None or isinstance(v, (bool, str, float)):
            return v
        if isinstance(v, int):
            return v if abs(v) <= 2 ** 53 - 1 else {"int": str(v)}
        if isinstance(v, bytes):
            return {"bytes": v.hex()}
        if isinstance(v, tuple):
            return {"tuple": [js(x) for x in v]}
        if isinstance(v, list):
            return [js(x) for x in v]
        if isinstance(v, dict):
            return {"dict": [[js(k), js(x)] for k, x in v.items()]}
        raise TypeError(type(v))

    return [{"protocol": p, "hex": pickle.dumps(obj, protocol=p).hex(), "value": js(obj)} for p in range(6)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "fixtures", "pth"))
    out = os.path.abspath(ap.parse_args().out)
    os.makedirs(out, exist_ok=True)
    P = lambda n: os.path.join(out, n)  # noqa: E731
    g = torch.Generator().manual_seed(SEED)
    expected: dict = {
        "what": "expected contents of the checkpoint-reader fixtures; generated by "
                "test/oracle/make_pth_variants.py",
        "torch": torch.__version__,
        "conventions": "dtype is what the reader returns (f32 for all float storages, i32 for all "
                       "integer/bool storages); sha256_16 = first 16 hex digits of the sha256 of "
                       "that array as little-endian bytes, row-major; 'values' (small files only) for tensors with <= %d elements" % FULL_VALUES_MAX,
        "files": {},
        "errors": {},
    }
    files = expected["files"]

    # ---- dtypes / views: legacy, zip p2, zip p4, deflate --------------------
    dd = dtype_dict(g)
    torch.save(dd, P("legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save(dd, P("dtypes_zip.pth"))
    torch.save(dd, P("dtypes_zip_p4.pth"), pickle_protocol=4)
    ents = zip_entries(P("dtypes_zip.pth"))
    write_zip(P("dtypes_deflate.pth"),
              [("archive/" + n.split("/", 1)[1], d) for n, d in ents], zipfile.ZIP_DEFLATED)
    for n in ("legacy.pth", "dtypes_zip.pth", "dtypes_zip_p4.pth", "dtypes_deflate.pth"):
        back = torch.load(P(n))
        assert all(torch.equal(back[k], v) for k, v in dd.items()), n
        files[n] = {"format": "legacy" if n.startswith("legacy") else "zip", "tensors": describe_dict(dd, True)}
    files["dtypes_deflate.pth"]["zip_folder"] = "archive"
    files["dtypes_deflate.pth"]["note"] = "DEFLATE entries"
    files["dtypes_zip.pth"]["zip_folder"] = "dtypes_zip"

    # ---- DataParallel micro SAM-LST with the sam_encoder alias ---------------
    mcfg = micro_cfg()
    micro = LstLike(mcfg)
    randomize(micro, g)
    with torch.no_grad():
        micro.sam.alpha.fill_(-0.25)
    dp = nn.DataParallel(micro)
    dp_sd = dp.state_dict()
    assert any(k.startswith("module.sam_encoder.") for k in dp_sd)
    torch.save(dp_sd, P("dataparallel.pth"))
    micro_sd = {k: v for k, v in micro.state_dict().items() if not k.startswith("sam_encoder.")}
    files["dataparallel.pth"] = {
        "format": "zip",
        "raw_keys": list(dp_sd.keys()),
        "tensors": describe_dict(micro_sd),  # after remapping: the model's own keys
        "note": "tensors = expected map after strip 'module.' + skip 'sam_encoder.'",
    }

    resnet_sd = micro.CNN_encoder.state_dict()  # torchvision resnet18 key names
    torch.save(resnet_sd, P("resnet_small.pth"))
    files["resnet_small.pth"] = {"format": "zip", "tensors": describe_dict(resnet_sd)}

    # ---- wrapped checkpoints ------------------------------------------------
    small = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
    randomize(small, g)
    small_sd = small.state_dict()
    torch.save({"epoch": 3, "state_dict": nn.DataParallel(small).state_dict(), "best": 0.5},
               P("wrapped_state_dict.pth"))
    files["wrapped_state_dict.pth"] = {"format": "zip", "wrapper_key": "state_dict",
                                       "tensors": {"module." + k: v for k, v in describe_dict(small_sd, True).items()}}
    lin = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    randomize(lin, g)
    opt = torch.optim.AdamW(lin.parameters(), lr=1e-3)
    lin(torch.randn(4, 3, generator=g)).square().sum().backward()
    opt.step()
    lin_sd = lin.state_dict()
    torch.save({"model": lin_sd, "optimizer": opt.state_dict(), "iter": 7}, P("wrapped_model_opt.pth"))
    files["wrapped_model_opt.pth"] = {"format": "zip", "wrapper_key": "model", "tensors": describe_dict(lin_sd, True)}

    # ---- the main fixture: every tensor's hash --------------------------------
    tiny = torch.load(os.path.join(HERE, "..", "fixtures", "tiny_sam_lst.pth"))
    files["../tiny_sam_lst.pth"] = {"format": "zip", "zip_folder": "tiny_sam_lst",
                                    "tensors": describe_dict(tiny)}

    # ---- SAM checkpoint adaptation (oracle) ---------------------------------
    off_cfg = small_sam_cfg(32, 3)  # grid 8, 4 mask tokens like the official checkpoint
    off_sam = R.Sam(off_cfg)
    randomize(off_sam, g)
    official = {k: v for k, v in off_sam.state_dict().items() if k != "alpha"}  # no gate in SAM
    torch.save(official, P("official_small.pth"))
    files["official_small.pth"] = {"format": "zip", "tensors": describe_dict(official)}
    adapt = {}
    resized = {}
    for grid in (4, 5, 11):
        cfg = small_sam_cfg(4 * grid, 8)
        fresh_model = R.Sam(cfg)
        randomize(fresh_model, g)
        fresh = fresh_model.state_dict()
        ref64 = R.adapt_sam_state_dict({k: v.double() for k, v in official.items()}, cfg,
                                       {k: v.double() for k, v in fresh.items()})
        ref32 = R.adapt_sam_state_dict(official, cfg, fresh)
        exp = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in ref64.items()}
        maxabs = max(float((ref32[k].double() - exp[k].double()).abs().max())
                     for k in exp if exp[k].is_floating_point() and exp[k].numel())
        # SAM-LST's own rule picks the global rel-pos keys by substring ('2','5','8','11');
        # the oracle uses cfg.global_attn_indexes. Record where the two differ for this config.
        rel = [k for k in fresh if "rel_pos" in k]
        substring = sorted(k for k in rel if any(s in k for s in ("2", "5", "8", "11")))
        index = sorted(f"image_encoder.blocks.{i}.attn.rel_pos_{a}"
                       for i in cfg.global_attn_indexes for a in "hw")
        case = {
            "img_size": cfg.img_size, "patch_size": cfg.patch_size, "grid": cfg.grid,
            "global_attn_indexes": list(cfg.global_attn_indexes),
            "f32_maxabs": maxabs,
            "substring_rule_keys": substring, "index_rule_keys": index,
        }
        if grid == 4:   # full oracle output (with its fresh init) for this case
            torch.save(fresh, P("adapt_fresh_g4.pth"))
            torch.save(exp, P("adapt_expected_g4.pth"))
            case["fresh"] = "adapt_fresh_g4.pth"
            case["expected"] = "adapt_expected_g4.pth"
        else:           # the resized tensors only (everything else is copied as in g4)
            for k in ["image_encoder.pos_embed"] + index:
                resized[f"g{grid}/{k}"] = exp[k]
            case["expected"] = "adapt_resized.pth"
            case["expected_prefix"] = f"g{grid}/"
        adapt[f"g{grid}"] = case
    torch.save(resized, P("adapt_resized.pth"))
    vitb = R.Config.vit_b()
    vitb_rel = [f"image_encoder.blocks.{i}.attn.rel_pos_{a}" for i in range(vitb.enc_depth) for a in "hw"]
    vitb_sub = sorted(k for k in vitb_rel if any(s in k for s in ("2", "5", "8", "11")))
    vitb_idx = sorted(f"image_encoder.blocks.{i}.attn.rel_pos_{a}" for i in vitb.global_attn_indexes for a in "hw")
    assert vitb_sub == vitb_idx, "for ViT-B the substring and index rules agree"
    expected["adapt"] = {"official": "official_small.pth", "official_grid": off_cfg.grid, "cases": adapt,
                         "dropped": list(R.DROPPED_SAM_KEYS)}

    # ---- rejected files -------------------------------------------------------
    errors = expected["errors"]
    with open(os.path.join(HERE, "..", "fixtures", "tiny_sam_lst.pth"), "rb") as f:
        tiny_bytes = f.read()
    with open(P("truncated_tiny_sam_lst.pth"), "wb") as f:
        f.write(tiny_bytes[:65536])
    errors["truncated_tiny_sam_lst.pth"] = "end-of-central-directory"

    with open(P("legacy.pth"), "rb") as f:
        legacy = f.read()
    with open(P("legacy_truncated.pth"), "wb") as f:
        f.write(legacy[:-10])
    errors["legacy_truncated.pth"] = "runs past the end of the file"

    ents = zip_entries(P("dtypes_zip.pth"))
    pkl_name, pkl = ents[0]
    assert pkl_name.endswith("/data.pkl")
    pos = first_opcode_offset(pkl, "BINPERSID")
    bad = pkl[:pos] + b"\xff" + pkl[pos + 1:]
    write_zip(P("corrupt_pkl.pth"), [(pkl_name, bad)] + ents[1:])
    errors["corrupt_pkl.pth"] = f"unknown opcode 0xff at offset {pos}"

    raw = bytearray(open(P("dtypes_zip.pth"), "rb").read())
    i = raw.find(b"\x80\x02")  # data.pkl content start (PROTO 2)
    assert 30 < i < 200, i
    raw[i + 40] ^= 0x01
    with open(P("corrupt_crc.pth"), "wb") as f:
        f.write(bytes(raw))
    errors["corrupt_crc.pth"] = "CRC-32 mismatch"

    torch.save({"ok": torch.tensor([1], dtype=torch.int64),
                "too_big": torch.tensor([5, 2 ** 40], dtype=torch.int64)}, P("int64_overflow.pth"))
    errors["int64_overflow.pth"] = "too_big"

    # hand-assembled malicious pickles (written, never loaded)
    evil = (b"\x80\x02" + b"cos\nsystem\n" + b"X\x0a\x00\x00\x00echo pwned" + b"\x85" + b"R" + b".")
    write_zip(P("malicious_os_system.pth"),
              [("malicious_os_system/data.pkl", evil), ("malicious_os_system/version", b"3\n")])
    errors["malicious_os_system.pth"] = "os.system"
    evil4 = (b"\x80\x04" + b"\x8c\x08builtins" + b"\x94" + b"\x8c\x04eval" + b"\x94" + b"\x93"
             + b"\x8c\x011" + b"\x85" + b"R" + b".")
    write_zip(P("malicious_eval_p4.pth"),
              [("archive/data.pkl", evil4), ("archive/version", b"3\n")])
    errors["malicious_eval_p4.pth"] = "builtins.eval"

    expected["pickles"] = pickle_cases()

    with open(P("expected.json"), "w") as f:
        f.write(compact_json(expected) + "\n")
    sizes = {n: os.path.getsize(P(n)) for n in sorted(os.listdir(out))}
    for n, s in sizes.items():
        print(f"{s:>9}  {n}")
    print(f"{sum(sizes.values()):>9}  total")


if __name__ == "__main__":
    main()
