"""Pictures of deconvnet projections (Zeiler & Fergus 2014, arXiv:1311.2901).

The input beside a joint projection, one panel per map, the fig. 2-style
layer grid (projection beside the receptive-field patch of the input, one row
per layer) and GIF frames adding maps one at a time. Projections are drawn
with Zeiler–Fergus contrast normalization (``render.projection_image``).
"""

from __future__ import annotations

import numpy as np

from .. import render
from ..methods.deconv import Projections, selection_boxes

__all__ = ["display_order", "projection_rgb", "hstack", "vstack", "joint_picture", "separate_picture",
           "layer_grid", "gif_frames"]


def display_order(preprocess, channels=3):
    """Channel permutation that shows model-input channels as RGB (BGR models flip).

    Found by preprocessing pure red, green and blue: the input channel that
    moves most for each is where that colour lives.
    """
    if channels != 3 or preprocess is None:
        return None
    base = np.asarray(preprocess(np.zeros((1, 1, 1, 3), np.float32)), np.float64).reshape(-1)
    order = []
    for c in range(3):
        pure = np.zeros((1, 1, 1, 3), np.float32)
        pure[..., c] = 200.0
        moved = np.abs(np.asarray(preprocess(pure), np.float64).reshape(-1) - base)
        order.append(int(np.argmax(moved)))
    return order if sorted(order) == [0, 1, 2] else None


def projection_rgb(p, order=None) -> np.ndarray:
    """A projection ``(H, W, C)`` as RGB uint8 (Zeiler–Fergus contrast normalization)."""
    p = np.asarray(p)
    if order is not None:
        p = p[..., order]
    return render.projection_image(p)


def _stack(images, axis, pad, background):
    """RGB images side by side (``axis=1``) or one above the other (``axis=0``), top-left aligned."""
    size = [max(i.shape[0] for i in images), max(i.shape[1] for i in images)]
    size[axis] = sum(i.shape[axis] for i in images) + pad * (len(images) - 1)
    out = np.full((size[0], size[1], 3), background, np.uint8)
    at = 0
    for img in images:
        where = [slice(0, img.shape[0]), slice(0, img.shape[1])]
        where[axis] = slice(at, at + img.shape[axis])
        out[tuple(where)] = img
        at += img.shape[axis] + pad
    return out


def hstack(images, pad=4, background=255) -> np.ndarray:
    """RGB images side by side, ``pad`` pixels apart."""
    return _stack(images, 1, pad, background)


def vstack(images, pad=4, background=255) -> np.ndarray:
    """RGB images one above the other, ``pad`` pixels apart."""
    return _stack(images, 0, pad, background)


def _beside(rgb, picture, size):
    return hstack([render.fit_square(rgb, size), render.fit_square(picture, size)], pad=2)


def joint_picture(rgb, result: Projections, order=None, index=0) -> np.ndarray:
    """The input beside the joint projection of image ``index`` of a joint :class:`Projections`."""
    rgb = np.asarray(rgb)
    pair = _beside(rgb, projection_rgb(result.images[index], order), max(rgb.shape[0], 160))
    return render.label(pair, f"{result.layer}: top {result.maps.shape[1]} maps together")


def separate_picture(result: Projections, order=None, index=0) -> np.ndarray:
    """One titled panel per map of image ``index`` of a separate :class:`Projections`."""
    cells = [projection_rgb(p, order) for p in result.images[index]]
    titles = [f"map {int(c)}" for c in result.maps[index]]
    return render.label(render.grid(cells, titles=titles), f"{result.layer}: {len(cells)} maps, one per projection")


def layer_grid(rgb, results, model, order=None, cell=72) -> np.ndarray:
    """The Zeiler–Fergus layer grid for one image: one row per layer, one column per map.

    ``rgb`` is the input image (uint8 ``(H, W, 3)`` at the model's size),
    ``results`` a list of separate :class:`Projections` (image 0 is drawn).
    Each cell shows the map's projection cropped to the receptive field of
    its kept activations beside the same patch of the input.
    """
    rows = []
    for res in results:
        boxes = selection_boxes(model, res, 0)
        cells = []
        for j, (y0, y1, x0, x1) in enumerate(boxes):
            proj = projection_rgb(res.images[0, j, y0:y1, x0:x1], order)
            patch = np.asarray(rgb)[y0:y1, x0:x1]
            gap = np.full((cell, 2, 3), 255, np.uint8)
            pair = np.concatenate([render.fit_square(proj, cell), gap, render.fit_square(patch, cell)], 1)
            cells.append(render.label(pair, f"map {int(res.maps[0, j])}", height=14, size=11))
        row = hstack(cells, pad=6)
        rows.append(render.label(row, f"{res.layer}  (top {len(boxes)} maps)", height=18, size=13))
    return vstack(rows, pad=8)


def gif_frames(rgb, frames, layer, order=None, scale=None) -> list:
    """GIF frames: input beside the joint projection of the top 1..M maps, labelled.

    ``frames`` is ``(M, H, W, C)`` from :func:`keras_convviz.methods.deconv.cumulative`
    for one image.
    """
    rgb = np.asarray(rgb)
    size = scale or max(rgb.shape[0], 128)
    total = len(frames)
    return [render.label(_beside(rgb, projection_rgb(p, order), size), f"{layer}: {j + 1}/{total} maps",
                         height=16, size=12)
            for j, p in enumerate(frames)]
