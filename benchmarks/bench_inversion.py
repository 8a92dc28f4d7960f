"""Inversion error per block of the demo model, class-model probabilities, step times.

Representation inversion (Mahendran & Vedaldi 2015) of demo images from every
block end with the library defaults (300 steps), reported as the normalized
feature error ||Phi(x) - Phi0||^2 / ||Phi0||^2 (median and worst over the
images); target < 0.05 at the first conv block. Class models (Simonyan et al.
2014) of the four demo classes with the pre-softmax logit and with the log
probability, over several seeds: the probability the model gives each image
for its class; target >= 0.9.
"""

from __future__ import annotations

import time

import numpy as np

from common import row

LAYERS = ("block1_conv2", "block1_pool", "block2_conv2", "block2_pool", "block3_conv2")
FIRST_BLOCK = ("block1_conv2", "block1_pool")


def inversion_rows(model, quick=False):
    from keras_convviz import demo, invert

    n = 4 if quick else 16
    images, _, _ = demo.shapes(n, seed=2024)
    out = []
    for layer in LAYERS:
        start = time.perf_counter()
        result = invert(model, images, layer, steps=300, value_range=(0, 1))
        seconds = time.perf_counter() - start
        err = result.errors
        target = "< 0.05" if layer in FIRST_BLOCK else "-"
        ok = bool(np.all(err < 0.05)) if layer in FIRST_BLOCK else None
        out.append(row(f"inversion error, demo {layer}, {n} images, 300 steps",
                       f"median {np.median(err):.4f}, max {err.max():.4f}", target, ok,
                       f"{seconds / 300 * 1e3:.0f} ms/step for the batch"))
    return out


def class_model_rows(model, quick=False):
    from keras_convviz import class_model, demo

    seeds = range(2 if quick else 5)
    out = []
    for score in ("logit", "log_probability"):
        probs, seconds = [], []
        for seed in seeds:
            start = time.perf_counter()
            r = class_model(model, [0, 1, 2, 3], steps=100, value_range=(0, 1), score=score, seed=seed)
            seconds.append(time.perf_counter() - start)
            probs.append(r.probabilities[np.arange(4), np.arange(4)])
        probs = np.array(probs)
        worst = probs.min(axis=0)
        hits = (probs >= 0.9).sum(axis=0)
        figure = ", ".join(f"{name} {w:.2f} ({h}/{len(probs)})"
                           for name, w, h in zip(demo.CLASS_NAMES, worst, hits))
        out.append(row(f"class model p(class), demo, score={score}, 100 steps, worst of {len(probs)} seeds",
                       figure, ">= 0.9", bool(np.all(worst >= 0.9)),
                       f"{np.median(seconds) / 100 * 1e3:.0f} ms/step for 4 images"))
    return out


def rows(quick=False):
    from keras_convviz import demo

    model = demo.load_model()
    return inversion_rows(model, quick) + class_model_rows(model, quick)
