"""Contact sheets of optimized images: class models, feature-map maximizers and inversions.

The images come from :func:`keras_convviz.methods.classmodel.class_model`
and :func:`keras_convviz.methods.inversion.invert` as RGB ``uint8`` (their
``rgb(deprocess)``); here they are laid out, titled, at a readable size.
"""

from __future__ import annotations

import numpy as np

from ..render import grid

__all__ = ["cell_size", "sheet"]

MIN_SIDE = 128  # small inputs (the demo's 64 pixels) are enlarged so titles fit


def cell_size(image):
    """The ``(H, W)`` of a sheet cell for ``image``: at least ``MIN_SIDE`` high, same aspect."""
    side = max(int(image.shape[0]), MIN_SIDE)
    return side, int(round(side * image.shape[1] / image.shape[0]))


def sheet(pictures, titles) -> np.ndarray:
    """``pictures`` side by side, at most four a row, each titled, sized by the first."""
    pictures = list(pictures)
    return grid(pictures, titles=titles, columns=min(len(pictures), 4), cell=cell_size(np.asarray(pictures[0])))
