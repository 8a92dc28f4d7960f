"""Figures of feature visualization on EfficientNet-Lite0 (issue 24), from bench_featurevis_real's cache.

* docs/featurevis_lite0.png: class models of the first ``--classes`` of
  ``bench_featurevis_real.CLASSES`` (seed 0, ``--steps`` steps), one row per
  parameterization of ours (fourier = the default recipe, maco at lr 0.05,
  decorrelated, pixel = Simonyan's method) and per peer (tf-keras-vis,
  Lucid); each cell titled with Lite0's probability of its class.
* docs/featurevis_lite0_channels.png: channels 0-3 of three depths of Lite0,
  ``featurevis``'s default (Fourier, read from the benchmark's channel run)
  against MaCo, same options otherwise.

Images are cached in ``--cache`` (the benchmark's), so rows it made are not
remade here.
"""

from __future__ import annotations

import argparse
import functools
import os

import numpy as np

import bench_featurevis_real as bench

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
ROWS = (("fourier (ours)", "ours"), ("maco", "maco"), ("decorrelated", "decorrelated"), ("pixel", "pixel"),
        ("tf-keras-vis", "tf-keras-vis"), ("lucid", "lucid"))
for _param in ("decorrelated", "pixel"):  # our other parameterizations, with the same recipe
    bench.MAKERS.setdefault(_param, functools.partial(bench.ours, param=_param))


def class_figure(lite0, low, high, classes, steps, cache):
    from keras_convviz.figures.featurevis import comparison
    from keras_convviz.media import save_png
    from keras_convviz.methods.optimize import rgb_images

    rows, titles = [], []
    for _, method in ROWS:
        images = bench.class_images(method, lite0, 0, steps, low, high, classes, cache)
        p = lite0.model.predict(images, verbose=0)[np.arange(len(classes)), classes]
        rows.append(list(rgb_images(images, lite0.deprocess)))
        titles.append([f"{bench.CLASSES[c]} {v:.2f}" for c, v in zip(classes, p)])
    path = save_png(os.path.join(DOCS, "featurevis_lite0.png"), comparison(rows, [r[0] for r in ROWS], titles))
    print(f"wrote {path}")


def channel_figure(lite0, low, high, steps, cache, units=4):
    from keras_convviz import featurevis
    from keras_convviz.figures.featurevis import comparison
    from keras_convviz.media import save_png
    from keras_convviz.methods.featurevis import channel

    rows, titles, names = [], [], []
    for param in ("fourier", "maco"):
        row, row_titles = [], []
        for layer in bench.LAYERS:
            path = os.path.join(cache, f"channels_{param}_{layer}_n{steps}.npy")
            if os.path.exists(path):
                images = np.load(path)[:units]
            else:
                images = featurevis(lite0.model, channel(layer, list(range(units))), param=param, steps=steps,
                                    value_range=(low, high)).images
                np.save(path, images)
            row += list(np.asarray(lite0.deprocess(np.clip(images, low, high).copy())))
            row_titles += [f"{layer.split('_')[0]}:{k}" for k in range(units)]
        rows.append(row)
        titles.append(row_titles)
        names.append(param)
    path = save_png(os.path.join(DOCS, "featurevis_lite0_channels.png"), comparison(rows, names, titles))
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--channel-steps", type=int, default=256)
    parser.add_argument("--cache", default="/tmp/convviz_featurevis_real")
    parser.add_argument("--parts", default="classes,channels")
    args = parser.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    lite0, low, high = bench.lite()
    if "classes" in args.parts:
        class_figure(lite0, low, high, list(bench.CLASSES)[:args.classes], args.steps, args.cache)
    if "channels" in args.parts:
        channel_figure(lite0, low, high, args.channel_steps, args.cache)


if __name__ == "__main__":
    main()
