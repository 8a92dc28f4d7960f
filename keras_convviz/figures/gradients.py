"""Pictures of attribution maps for the CLI: the map itself and the map over the input.

Each method is normalized as its record says (:mod:`keras_convviz.figures.maps`,
the one drawing shared with notebooks and the dashboard): saliency and
SmoothGrad at their 99th percentile (Smilkov et al. 2017, arXiv:1706.03825),
the CAMs by their maximum, integrated gradients and LRP diverging about 0,
guided backprop as a projection (grey = 0).
"""

from __future__ import annotations

import numpy as np

from ..fit import MAX_DISPLAY_SIDE as MAX_SIDE
from .maps import PALETTES, drawing_of, map_overlay, map_picture, normalize_map

__all__ = ["pictures", "enlarge"]


def pictures(method, rgb, m, order=None) -> tuple:
    """``(map picture, overlay)``, RGB uint8, for one image's map ``m`` over its RGB input ``rgb``.

    ``method`` is a method name or alias (its record's drawing,
    :func:`figures.maps.normalize_map`) or a drawing name; ``order`` the
    channel order that shows a BGR model's projection in RGB.
    """
    drawing = method if method in PALETTES else drawing_of(method)
    drawn = normalize_map(drawing, m)
    return map_picture(drawn, original=m, order=order), map_overlay(rgb, drawn)


def enlarge(image, minimum=192, maximum=MAX_SIDE) -> np.ndarray:
    """Small pictures (the 64x64 demo) enlarged by an integer factor, nearest neighbour.

    The factor never takes a side past ``maximum``: a 1000x1 photo's strip
    stays a strip (it would otherwise grow to 192 x 192000).
    """
    factor = min(-(-minimum // min(image.shape[:2])), maximum // max(image.shape[:2]))
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
