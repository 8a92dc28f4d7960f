"""Faithfulness of every method on the demo model: one table.

200 demo images (``demo.shapes(200, seed=123)``), each method explaining the
image's true class through the public API:

* pointing game: the map's maximum on the shape's bounding box (no tolerance);
* deletion AUC (lower is better): pixels replaced by black in the map's
  order, the true class's softmax probability integrated over the fraction
  removed (32 steps of 128 pixels);
* insertion AUC (higher is better): pixels inserted into a blurred copy;
* randomization (Adebayo et al.): mean Spearman rank correlation with the
  original map after re-initializing the top (logit) layer, and after
  re-initializing every layer (50 of the images); lower means the map
  depends on the learned weights.

Deconv (class-agnostic: the joint top-1 projection of ``block3_conv2``) and
occlusion (drop of the true class's probability under a 16x16 grey patch,
stride 4; each pixel gets the mean drop of the patches covering it) join when their modules exist.

    python benchmarks/bench_faithfulness.py [--quick]   # prints the markdown table
"""

from __future__ import annotations

import importlib.util
import sys
import time

import numpy as np

from common import row

N_IMAGES, N_RANDOMIZATION, SEED, STEPS = 200, 50, 123, 32


def _methods():
    """``{name: fn(model, x, targets) -> maps}``; optional methods only when present."""
    import keras_convviz as kc

    methods = {
        "saliency": lambda m, x, t: kc.saliency(m, x, t),
        "smoothgrad": lambda m, x, t: kc.smoothgrad(m, x, t, samples=25, noise=0.15, seed=0),
        "guided backprop": lambda m, x, t: kc.guided_backprop(m, x, t),
        "integrated gradients": lambda m, x, t: kc.integrated_gradients(m, x, t, steps=50),
        "grad-cam": lambda m, x, t: kc.gradcam(m, x, t),
    }
    if importlib.util.find_spec("keras_convviz.methods.deconv") is not None:
        methods["deconv (top-1 map, block3_conv2)"] = (
            lambda m, x, t: kc.deconv(m, x, "block3_conv2", maps=1, activations=1))
    if importlib.util.find_spec("keras_convviz.methods.occlusion") is not None:
        def occlusion(m, x, t):
            # each pixel: the mean probability drop of the occluders that cover it
            res = kc.occlusion(m, x, list(t), patch=16, stride=4, fill=0.5)
            drop = np.asarray(res.base_probability)[:, None, None] - np.asarray(res.probability)
            total = np.zeros(x.shape[:3])
            cover = np.zeros(x.shape[1:3])
            (ph, pw) = res.patch
            for i, oy in enumerate(res.origins_y):
                for j, ox in enumerate(res.origins_x):
                    total[:, oy:oy + ph, ox:ox + pw] += drop[:, i, j, None, None]
                    cover[oy:oy + ph, ox:ox + pw] += 1
            return total / np.maximum(cover, 1)

        methods["occlusion (16 px, stride 4)"] = occlusion
    return methods


def table(quick=False):
    """``[(method, pointing, deletion, insertion, rho_top, rho_all, seconds)]``."""
    from keras_convviz import demo, metrics

    n = 40 if quick else N_IMAGES
    n_rand = 10 if quick else N_RANDOMIZATION
    steps = 16 if quick else STEPS
    model = demo.load_model()
    images, labels, boxes = demo.shapes(n, seed=SEED)
    layers = metrics.randomization_layers(model)
    stages = [[layers[0]], layers[1:]]  # the logit layer; then every other layer too
    results = []
    for name, fn in _methods().items():
        start = time.perf_counter()
        maps = fn(model, images, labels)
        pointing = metrics.pointing_game(maps, boxes).mean()
        deletion = metrics.deletion_auc(model, images, maps, labels, steps=steps, baseline=0.0).mean()
        insertion = metrics.insertion_auc(model, images, maps, labels, steps=steps, baseline="blur").mean()
        rand = metrics.randomization(model, lambda m, x, t: fn(m, x, np.asarray(t)), images[:n_rand],
                                     labels[:n_rand], layers=stages)
        rho = list(rand.mean().values())
        results.append((name, pointing, deletion, insertion, rho[0], rho[1], time.perf_counter() - start))
        print(f"  {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return results, n, n_rand


def markdown(results, n, n_rand):
    lines = [f"| method | pointing game | deletion AUC (lower better) | insertion AUC (higher better) | "
             f"randomization rho: top layer / all layers ({n_rand} images) |",
             "| --- | --- | --- | --- | --- |"]
    for name, pointing, deletion, insertion, rho_top, rho_all, _ in results:
        lines.append(f"| {name} | {pointing:.3f} | {deletion:.3f} | {insertion:.3f} | "
                     f"{rho_top:.2f} / {rho_all:.2f} |")
    return "\n".join(lines)


def rows(quick=False):
    results, n, n_rand = table(quick)
    print(markdown(results, n, n_rand), file=sys.stderr)
    out = []
    for name, pointing, deletion, insertion, rho_top, rho_all, seconds in results:
        target = ">= 0.9" if name in ("grad-cam", "smoothgrad") else ""
        ok = pointing >= 0.9 if target else None
        out.append(row(f"faithfulness {name}, {n} demo images", f"pointing {pointing:.3f}", target, ok,
                       f"del {deletion:.3f} ins {insertion:.3f} rho {rho_top:.2f}/{rho_all:.2f} "
                       f"({seconds:.0f} s)"))
    return out


if __name__ == "__main__":
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    results, n, n_rand = table(quick="--quick" in sys.argv)
    print(markdown(results, n, n_rand))
