"""The first-layer filter sheet of Zeiler & Fergus 2014 (arXiv:1311.2901, fig. 6).

The kernels of a :class:`~keras_convviz.methods.filters.Filters` result
enlarged on one sheet (each filter normalized on its own, 0 at mid-grey),
dead filters framed blue, high-frequency ones red, with the scale range and
a plot of every filter's high-frequency share and relative norm.
"""

from __future__ import annotations

import numpy as np

from .. import render
from ..methods.filters import NOISE_SHARE
from .plots import legend, line_plot

__all__ = ["figure"]


def figure(result, width=None) -> np.ndarray:
    """The fig. 6 sheet with its title, scale line and per-filter plot, RGB uint8."""
    sheet = result.grid
    width = max(width or 0, sheet.shape[1], 720)
    f = len(result.norm)
    lines = [
        result.summary(),
        f"each filter normalized alone: mid-grey = 0, white / black = +/- its max |weight| "
        f"({result.scale.min():.3g} .. {result.scale.max():.3g})",
        "frames: blue = dead, red = high-frequency (aliasing)",
    ]
    text = np.concatenate([_text_line(t, width) for t in lines], axis=0)
    pad = np.full((sheet.shape[0], width - sheet.shape[1], 3), 255, np.uint8)
    plot = line_plot(np.arange(f), [result.high_frequency, result.norm / max(result.norm.max(), 1e-30),
                                    np.full(f, NOISE_SHARE)],
                     title="per filter", xlabel="filter index", ylabel="share / norm", size=(width, 190),
                     ylim=(0.0, 1.0))
    key = legend(["high-frequency share", "norm / max norm", "white-noise share"], width)
    return np.concatenate([text, np.concatenate([sheet, pad], axis=1), plot, key], axis=0)


def _text_line(text, width):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, 16), (255, 255, 255))
    ImageDraw.Draw(img).text((4, 2), text, fill=(15, 15, 15), font=render.font(11))
    return np.asarray(img)
