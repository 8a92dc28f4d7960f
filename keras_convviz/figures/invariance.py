"""The invariance panel of Zeiler & Fergus 2014 (arXiv:1311.2901, fig. 5).

One row per transform (vertical translation, scale, rotation): transformed
examples of the first image, the Euclidean feature distance at the early
layer, at the late layer, and the probability of each image's target class,
with axes, units and class names. Drawn with PIL (:mod:`.plots`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .. import render
from ..labels import class_label
from ..methods.invariance import transformed
from .plots import legend, line_plot

__all__ = ["figure", "examples", "examples_sheet"]

_AXIS = {"translate": "vertical translation (px, + = down)", "scale": "scale factor",
         "rotate": "rotation (degrees, counter-clockwise)", "flip": "left-right flip (0 = none, 1 = mirrored)"}
_ROW = {"translate": "translation", "scale": "scale", "rotate": "rotation", "flip": "flip"}


def examples(inputs, result, transform, deprocess, count=4) -> list:
    """``[(value, RGB uint8)]``: image 0 at ``count`` values spread over the transform's range."""
    values = np.asarray(result.values[transform])
    picks = values[np.unique(np.linspace(0, len(values) - 1, count).round().astype(int))]
    copies = transformed(np.asarray(inputs)[:1], transform, picks, result.fill)[0]
    shown = np.asarray(deprocess(copies.copy()))
    return [(float(v), render.as_rgb(im)) for v, im in zip(picks, shown)]


def examples_sheet(inputs, result, deprocess, side=200) -> np.ndarray:
    """Fig. 5's first column for one image: 4 copies per transform with their values, one sheet per row."""
    rows = [_strip(examples(inputs, result, t, deprocess), t, result.units.get(t, ""), (side, side))
            for t in result.transforms]
    return np.concatenate(rows, axis=0)


def _strip(items, transform, unit, size):
    """The examples as a 2 x 2 (or 1 x n) sheet with their values, ``size = (W, H)``."""
    w, h = size
    cols = 2 if len(items) == 4 else len(items)
    rows = int(np.ceil(len(items) / cols))
    side = int(min((w - 8) / cols - 4, (h - 8) / rows - 18))
    img = Image.new("RGB", (w, h), (255, 255, 255))
    draw, font = ImageDraw.Draw(img), render.font(10)
    for k, (value, pic) in enumerate(items):
        r, c = divmod(k, cols)
        x0, y0 = 6 + c * (side + 6), 4 + r * (side + 18)
        img.paste(Image.fromarray(render.fit_square(pic, side)), (x0, y0 + 13))
        text = f"{value:.3g} {unit}".strip() if transform != "flip" else ("mirrored" if value >= 0.5 else "as is")
        draw.text((x0, y0), text, fill=(20, 20, 20), font=font)
    return np.asarray(img)


def figure(result, example_images=None, class_names=None, size=(250, 200)) -> np.ndarray:
    """The fig. 5 panel of an :class:`~keras_convviz.methods.invariance.Invariance` result, RGB uint8.

    ``example_images``: ``{transform: [(value, image)]}`` from :func:`examples`
    (the first column is left out without them). Distances are the raw
    Euclidean distances the paper plots; each title gives the relative
    distance at the far end of the range for comparing layers.
    """
    n = len(result.base_probability)
    layers = list(result.layers)[:1] + list(result.layers)[-1:] if len(result.layers) > 1 else list(result.layers)
    titles = {(t, layer): f"{_ROW.get(t, t)}: {which}{layer}" for t in result.transforms
              for which, layer in zip(("early ", "late ") if len(layers) > 1 else ("",), layers)}
    # every title whole (the plot area starts 52 px in, figures.plots.line_plot), every panel one size
    # (render.grid resizes panels to the first one's)
    width = max([size[0]] + [int(render.font(11).getlength(text)) + 62 for text in titles.values()])
    rows = []
    for t in result.transforms:
        x, unit, axis = result.values[t], result.units.get(t, ""), _AXIS.get(t, t)
        row = []
        if example_images is not None:
            row.append(_strip(example_images[t], t, unit, (width, size[1])))
        for layer in layers:
            peak = float(np.max(result.curve(t, layer, relative=True)))
            row.append(line_plot(x, list(result.curve(t, layer)), title=titles[t, layer], xlabel=axis,
                                 ylabel=f"distance (peak {peak:.2f} |f(x)|)", size=(width, size[1])))
        row.append(line_plot(x, list(result.probability[t]), title=f"{_ROW.get(t, t)}: p(target class)",
                             xlabel=axis, ylabel="probability", size=(width, size[1]), ylim=(0.0, 1.0)))
        rows.append(row)
    canvas = render.grid(rows, pad=4)
    labels = [f"image {i}: {class_label(result.target[i], class_names)} p={result.base_probability[i]:.2f}"
              for i in range(n)]
    return np.concatenate([canvas, legend(labels, canvas.shape[1])], axis=0)
