"""The correspondence table of Zeiler & Fergus 2014 (arXiv:1311.2901, table 1), drawn with PIL.

Per part: the normalized Delta (mean share of feature signs that differ
between two images' changes) and the same for random boxes of its size
(mean +- standard deviation), with the images and their boxes above.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .. import render
from .plots import series_colour, table

__all__ = ["figure"]


def figure(result, images=None, cell=140) -> np.ndarray:
    """The table 1 figure of a :class:`~keras_convviz.methods.correspondence.Correspondence`, RGB uint8.

    ``images``: displayable RGB uint8 model-input pictures ``(N, H, W, 3)``;
    each part's boxes are outlined in its colour.
    """
    rows = [(name, f"{d:.4f}", f"{m:.4f} +- {s:.4f}", f"{int(result.delta[p])}")
            for p, (name, d, m, s) in enumerate(result.rows())]
    tab = table(["part", "Delta / (N(N-1)D)", f"random ({result.random.shape[1]} boxes)", "Delta (sum of Hamming)"],
                rows, title=f"layer {result.layer}: sign consistency of feature changes (lower = more consistent), "
                            f"D = {result.features}")
    parts = [tab]
    if images is not None:
        shown = []
        for i, im in enumerate(np.asarray(images)):
            pic = render.as_rgb(im)
            sy = sx = cell / pic.shape[0]
            pic = np.asarray(Image.fromarray(pic).resize((max(1, round(pic.shape[1] * sx)), cell), Image.BILINEAR))
            for p in range(result.parts.shape[1]):
                x, y, w, h = result.parts[i, p]
                pic = render.outline(pic, (x * sx, y * sy, (x + w) * sx, (y + h) * sy), colour=series_colour(p), width=2)
            shown.append(pic)
        strip = render.grid(shown, columns=len(shown))
        width = max(strip.shape[1], tab.shape[1])
        parts = [_pad(strip, width), _pad(tab, width)]
    return np.concatenate(parts, axis=0)


def _pad(img, width):
    return np.concatenate([img, np.full((img.shape[0], width - img.shape[1], 3), 255, np.uint8)], axis=1)
