"""Generate test/fixtures/metrics_cases.json: awkward DSC / HD95 cases with the expected values of
metrics_ref.py (MedPy 0.4.0 semantics on scipy), so that test/unit/metrics.test.ts needs no Python.

    cd test/oracle && /usr/bin/python3 make_metrics_fixtures.py

Deterministic (fixed seed, no time stamps): re-running writes a byte-identical file.
Needs numpy + scipy only (Debian: apt-get install -y python3-numpy python3-scipy).

Encodings (all arrays in C order, i.e. the flat index of (z, y, x) is (z*H + y)*W + x):
  * binary mask: "runs" = alternating run lengths starting with a run of zeros
    ([zeros, ones, zeros, ones, ...], the first entry may be 0; they sum to the size);
  * label volume: "rle" = flat [value, length, value, length, ...].
Floats are written with Python's repr (shortest round-trip), so JSON.parse in JS gives the
exact same doubles.

File layout:
  binary[]: {name, shape, a, b, spacing|null,
             dc            = metrics_ref.dc(a, b)   (1.0 when both are empty),
             percase       = [dsc, hd95] of calculate_metric_percase(a, b) (unit spacing),
             hd95          = metrics_ref.hd95(a, b, spacing) or null when a or b is empty,
             n_ab, n_ba    = number of surface voxels of a / b (lengths of the directed sets),
             d_ab, d_ba    = directed surface distances (C order of the source surface), only when
                             both sets are short (<= 64 values), else omitted}
  multi[]:  {name, shape, pred, label (rle), metrics = case_metrics(pred, label, 8) as [[dsc, hd95]*8]}
  aggregate_multi = aggregate(all multi[].metrics): {per_class [[dsc, hd95]*8], mean_dice, mean_hd95}
  aggregate_random: {per_case (12 x 8 x 2 random table), per_class, mean_dice, mean_hd95}
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

import numpy as np
from scipy import ndimage

import metrics_ref as M

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "metrics_cases.json")
SEED = 20240613
MAX_LISTED = 64


def runs(mask: np.ndarray) -> List[int]:
    flat = mask.astype(bool).ravel()
    out: List[int] = []
    cur = False
    n = 0
    for v in flat:
        if bool(v) == cur:
            n += 1
        else:
            out.append(n)
            cur = not cur
            n = 1
    out.append(n)
    return out


def rle(labels: np.ndarray) -> List[int]:
    flat = labels.astype(np.int64).ravel()
    out: List[int] = []
    if flat.size == 0:
        return out
    start = 0
    for i in range(1, flat.size + 1):
        if i == flat.size or flat[i] != flat[start]:
            out += [int(flat[start]), i - start]
            start = i
    return out


def blobs(rng: np.random.Generator, shape, p: float, it: int) -> np.ndarray:
    seeds = rng.random(shape) > p
    if it == 0:
        return seeds
    st = ndimage.generate_binary_structure(len(shape), 1)
    return ndimage.binary_dilation(seeds, structure=st, iterations=it)


def ball(shape, center, radius, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    grids = np.indices(shape).astype(np.float64)
    r2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, center, spacing))
    return r2 <= radius * radius


def binary_case(name: str, a: np.ndarray, b: np.ndarray, spacing=None) -> Dict[str, Any]:
    a = a.astype(bool)
    b = b.astype(bool)
    assert a.shape == b.shape
    case: Dict[str, Any] = {
        "name": name,
        "shape": list(a.shape),
        "a": runs(a),
        "b": runs(b),
        "spacing": None if spacing is None else [float(s) for s in spacing],
        "dc": float(M.dc(a, b)),
        "percase": [float(v) for v in M.calculate_metric_percase(a, b)],
    }
    if a.any() and b.any():
        d_ab = M.surface_distances(a, b, spacing)
        d_ba = M.surface_distances(b, a, spacing)
        case["hd95"] = float(M.hd95(a, b, spacing))
        case["n_ab"] = int(d_ab.size)
        case["n_ba"] = int(d_ba.size)
        if d_ab.size <= MAX_LISTED and d_ba.size <= MAX_LISTED:
            case["d_ab"] = [float(v) for v in d_ab]
            case["d_ba"] = [float(v) for v in d_ba]
    else:
        case["hd95"] = None
        case["n_ab"] = int(M.surface(a).sum()) if a.any() else 0
        case["n_ba"] = int(M.surface(b).sum()) if b.any() else 0
    return case


def box(shape, lo, hi) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[tuple(slice(l, h) for l, h in zip(lo, hi))] = True
    return m


def binary_cases(rng: np.random.Generator) -> List[Dict[str, Any]]:
    cs: List[Dict[str, Any]] = []
    S = (6, 14, 12)
    bx = box(S, (1, 3, 2), (5, 10, 9))
    empty = np.zeros(S, bool)
    cs.append(binary_case("empty_pred", empty, bx))
    cs.append(binary_case("empty_gt", bx, empty))
    cs.append(binary_case("both_empty", empty, empty))
    one = np.zeros(S, bool)
    one[3, 6, 5] = True
    cs.append(binary_case("one_voxel_pred", one, bx))
    cs.append(binary_case("one_voxel_gt", bx, one))
    cs.append(binary_case("one_voxel_both_same", one, one))
    one2 = np.zeros(S, bool)
    one2[0, 13, 0] = True
    cs.append(binary_case("one_voxel_both_apart_border", one, one2))
    corner = np.zeros(S, bool)
    corner[0, 0, 0] = True
    cs.append(binary_case("one_voxel_corner_vs_box", corner, bx))
    far = np.zeros(S, bool)
    far[5, 13, 11] = True
    cs.append(binary_case("one_voxel_opposite_corners", corner, far))
    cs.append(binary_case("identical_box", bx, bx))
    cs.append(binary_case("full_array_vs_box", np.ones(S, bool), bx))
    cs.append(binary_case("full_array_vs_full_array", np.ones(S, bool), np.ones(S, bool)))
    cs.append(binary_case("box_touching_border_vs_shifted", box(S, (0, 0, 0), (4, 9, 12)), box(S, (2, 3, 0), (6, 14, 9))))

    # translations of a box (HD95 <= |t|), of a one-voxel-thick plate (HD95 == k)
    T = (12, 20, 18)
    b0 = box(T, (2, 4, 3), (8, 13, 11))
    for k, ax in ((1, 0), (2, 1), (3, 2), (4, 0)):
        sh = np.roll(b0, k, axis=ax)
        cs.append(binary_case(f"box_shift_{k}_axis{ax}", b0, sh))
    plate = box(T, (3, 2, 2), (4, 18, 16))
    cs.append(binary_case("plate_shift_5_z", plate, np.roll(plate, 5, axis=0)))
    cs.append(binary_case("box_shift_diag_1_2_2", b0, np.roll(np.roll(np.roll(b0, 1, 0), 2, 1), 2, 2)))

    # anisotropic shapes
    cs.append(binary_case("thin_3x17x11_blobs", blobs(rng, (3, 17, 11), 0.9, 1), blobs(rng, (3, 17, 11), 0.9, 1)))
    sl = (1, 32, 40)
    cs.append(binary_case("single_slice_1x32x40", blobs(rng, sl, 0.97, 3), blobs(rng, sl, 0.97, 3)))
    line_a = np.zeros((23, 1, 1), bool)
    line_a[3:15] = True
    line_b = np.zeros((23, 1, 1), bool)
    line_b[9:21] = True
    line_b[0] = True
    cs.append(binary_case("line_23x1x1", line_a, line_b))
    lx_a = np.zeros((1, 1, 30), bool)
    lx_a[0, 0, [2, 3, 4, 10, 11, 29]] = True
    lx_b = np.zeros((1, 1, 30), bool)
    lx_b[0, 0, 5:13] = True
    cs.append(binary_case("line_1x1x30", lx_a, lx_b))
    col = np.zeros((9, 13, 1), bool)
    col[2:7, 3:10] = True
    col2 = np.zeros((9, 13, 1), bool)
    col2[0:5, 6:13] = True
    cs.append(binary_case("sheet_9x13x1", col, col2))
    cs.append(binary_case("tall_40x6x5_blobs", blobs(rng, (40, 6, 5), 0.9, 1), blobs(rng, (40, 6, 5), 0.85, 1)))

    # hollow shapes
    H = (15, 21, 19)
    solid = ball(H, (7, 10, 9), 6.5)
    shell = solid & ~ball(H, (7, 10, 9), 4.2)
    cs.append(binary_case("hollow_sphere_vs_solid", shell, solid))
    hb = box(H, (1, 2, 2), (14, 19, 17)) & ~box(H, (3, 5, 5), (12, 16, 14))
    cs.append(binary_case("hollow_box_vs_shifted_solid", hb, box(H, (2, 3, 1), (13, 20, 18))))
    cs.append(binary_case("hollow_box_vs_hollow_sphere", hb, shell))

    # multiple components
    mc_a = box(H, (0, 0, 0), (3, 4, 4)) | box(H, (6, 8, 8), (9, 13, 12)) | box(H, (12, 17, 15), (15, 21, 19))
    mc_b = box(H, (1, 1, 0), (4, 5, 3)) | box(H, (6, 9, 7), (10, 12, 13)) | ball(H, (12, 3, 15), 2.5)
    cs.append(binary_case("multi_component", mc_a, mc_b))

    # random blobs at several sizes
    for i, (shape, p, it) in enumerate((((8, 24, 24), 0.985, 2), ((16, 40, 36), 0.995, 3), ((20, 48, 48), 0.998, 4),
                                        ((10, 30, 30), 0.9, 1), ((6, 20, 20), 0.7, 0))):
        a = blobs(rng, shape, p, it)
        b = blobs(rng, shape, p, it)
        if not a.any():
            a.ravel()[0] = True
        if not b.any():
            b.ravel()[-1] = True
        cs.append(binary_case(f"random_blobs_{i}_{'x'.join(map(str, shape))}", a, b))
    # prediction = noisy version of the ground truth
    g = ball((18, 40, 40), (9, 20, 21), 11.0)
    noisy = (g ^ (rng.random(g.shape) > 0.985)) & ~ball((18, 40, 40), (4, 30, 30), 5.0)
    cs.append(binary_case("noisy_ball", noisy, g))

    # large offsets
    L = (30, 64, 60)
    cs.append(binary_case("large_offset_small_objects", box(L, (1, 2, 3), (4, 6, 7)), box(L, (25, 55, 50), (29, 62, 58))))
    cs.append(binary_case("large_offset_ball_and_speck",
                          ball(L, (15, 32, 30), 9.0) | box(L, (29, 63, 0), (30, 64, 1)), ball(L, (16, 30, 31), 8.0)))

    # border-touching objects (array edge counts as background for the erosion)
    bt = blobs(rng, (7, 15, 13), 0.8, 1)
    bt[:, 0, :] = True
    bt2 = box((7, 15, 13), (0, 0, 0), (7, 15, 6))
    cs.append(binary_case("border_blobs_vs_half_array", bt, bt2))

    # other ranks (metrics_ref works in any rank; connectivity 1 = 4 neighbours in 2-D)
    two_a = blobs(rng, (25, 31), 0.95, 2)
    two_b = blobs(rng, (25, 31), 0.95, 2)
    cs.append(binary_case("rank2_blobs_25x31", two_a, two_b))
    A1 = np.zeros(10, bool)
    A1[0:4] = True
    B1 = np.zeros(10, bool)
    B1[2:8] = True
    cs.append(binary_case("rank1_worked_example", A1, B1))

    # anisotropic voxel spacing (extension; calculate_metric_percase itself is unit spacing)
    for sp, name in (((2.5, 0.7, 0.7), "synapse_like"), ((1.0, 1.0, 3.0), "x3"), ((0.5, 1.25, 2.0), "mixed")):
        a = blobs(rng, (10, 22, 20), 0.99, 2)
        b = blobs(rng, (10, 22, 20), 0.99, 2)
        cs.append(binary_case(f"spacing_{name}_blobs", a, b, sp))
    cs.append(binary_case("spacing_synapse_like_balls", ball((16, 30, 30), (8, 15, 15), 6.0, (2.0, 0.8, 0.8)),
                          ball((16, 30, 30), (7, 16, 14), 6.5, (2.0, 0.8, 0.8)), (2.0, 0.8, 0.8)))
    cs.append(binary_case("spacing_rank2", two_a, two_b, (0.6, 1.7)))
    return cs


def organ_volume(rng: np.random.Generator, shape, present=range(1, 9)) -> np.ndarray:
    lab = np.zeros(shape, np.int64)
    D, Hh, W = shape
    for c in present:
        cz = rng.uniform(2, D - 2)
        cy = rng.uniform(5, Hh - 5)
        cx = rng.uniform(5, W - 5)
        r = rng.uniform(2.5, 7.0)
        sp = (rng.uniform(1.0, 2.5), 1.0, 1.0)
        lab[ball(shape, (cz, cy, cx), r, sp)] = c
    return lab


def multi_cases(rng: np.random.Generator) -> List[Dict[str, Any]]:
    out = []
    shape = (12, 48, 40)
    st = ndimage.generate_binary_structure(3, 1)

    # case 1: every organ present; prediction perturbs each organ differently, organ 4 missed
    gt = organ_volume(rng, shape)
    pred = np.zeros_like(gt)
    for c in range(1, 9):
        m = gt == c
        if c == 1:
            m = np.roll(m, 2, axis=2)
        elif c == 2:
            m = ndimage.binary_dilation(m, st)
        elif c == 3:
            m = ndimage.binary_erosion(m, st)
        elif c == 4:
            m = np.zeros_like(m)
        elif c == 5:
            m = m ^ (rng.random(shape) > 0.97) & ndimage.binary_dilation(m, st, iterations=2)
        elif c == 6:
            m = np.roll(m, -1, axis=0)
        elif c == 7:
            m = m.copy()
            m[0, 0, 0] = True
        pred[m & (pred == 0)] = c
    out.append(("multi_perturbed", pred, gt))

    # case 2: organ 6 absent in GT but predicted (-> 1, 0); organ 8 absent in both (-> 0, 0)
    gt2 = organ_volume(rng, shape, present=[1, 2, 3, 4, 5, 7])
    pred2 = gt2.copy()
    pred2[5:7, 30:35, 2:6] = 6
    pred2[np.roll(gt2 == 5, 3, axis=1) & (pred2 == 0)] = 5
    pred2[(gt2 == 2)] = 3
    out.append(("multi_absent_organs", pred2, gt2))

    # case 3: a prediction made of random blobs over a small volume
    shape3 = (5, 24, 22)
    gt3 = organ_volume(rng, shape3)
    pred3 = np.where(blobs(rng, shape3, 0.97, 1), rng.integers(0, 9, size=shape3), 0)
    out.append(("multi_random_pred", pred3, gt3))

    cases = []
    for name, p, g in out:
        cases.append({
            "name": name,
            "shape": list(p.shape),
            "pred": rle(p),
            "label": rle(g),
            "metrics": [[float(d), float(h)] for d, h in M.case_metrics(p, g, 8)],
        })
    return cases


def agg(per_case) -> Dict[str, Any]:
    pc, md, mh = M.aggregate(per_case)
    return {"per_class": [[float(d), float(h)] for d, h in pc], "mean_dice": md, "mean_hd95": mh}


def main() -> None:
    rng = np.random.default_rng(SEED)
    binary = binary_cases(rng)
    multi = multi_cases(rng)
    agg_multi = agg([c["metrics"] for c in multi])
    table = rng.random((12, 8, 2)) * np.array([1.0, 80.0])
    table[3, 2] = (0.0, 0.0)
    table[7, 5] = (1.0, 0.0)
    table[:, 1, 1] *= 1e-3
    per_case = [[[float(v) for v in table[i, j]] for j in range(8)] for i in range(12)]
    agg_random = {"per_case": per_case, **agg(per_case)}
    doc = {
        "generator": "test/oracle/make_metrics_fixtures.py (metrics_ref.py; numpy %s, scipy %s)"
        % (np.__version__, __import__("scipy").__version__),
        "encoding": "binary masks: alternating run lengths starting with zeros; labels: [value, length]*; C order",
        "binary": binary,
        "multi": multi,
        "aggregate_multi": agg_multi,
        "aggregate_random": agg_random,
    }
    text = json.dumps(doc, separators=(",", ":"))
    with open(OUT, "w") as f:
        f.write(text + "\n")
    print(f"wrote {OUT}: {len(binary)} binary cases, {len(multi)} multi-organ cases, {len(text)} bytes")
    for c in binary:
        print(f"  {c['name']:40s} shape={c['shape']} dc={c['dc']:.6f} hd95={c['hd95']} n={c['n_ab']},{c['n_ba']}")
    for c in multi:
        print(f"  {c['name']:40s} " + " ".join(f"({d:.3f},{h:.3f})" for d, h in c["metrics"]))


if __name__ == "__main__":
    main()
