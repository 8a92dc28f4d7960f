"""Pictures of deconvnet projections (Zeiler & Fergus 2014, arXiv:1311.2901).

The input beside a joint projection, one panel per map, the fig. 2-style
layer grid (projection beside the receptive-field patch of the input, one row
per layer) and GIF frames adding maps one at a time. Projections are drawn
with Zeiler–Fergus contrast normalization (``render.projection_image``).
Given the photo's ``fit.Placement``, every picture is drawn on the original
photo at its own resolution (``fit.map_to_photo``, capped at 1024 a side),
receptive fields mapped back through the same placement.
"""

from __future__ import annotations

import numpy as np

from .. import render
from ..fit import MAX_DISPLAY_SIDE, map_to_photo, photo_view, place, window_on_view
from ..methods.deconv import Projections, selection_boxes
from .gradients import enlarge

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


def _beside(rgb, picture, minimum=160):
    """The photo beside a picture of it at their own (equal) size, undistorted; small ones enlarged
    by a whole factor to ``minimum`` px. Pictures of different sizes are fitted into squares."""
    if rgb.shape[:2] != picture.shape[:2]:
        size = max(rgb.shape[0], minimum)
        return hstack([render.fit_square(rgb, size), render.fit_square(picture, size)], pad=2)
    return hstack([enlarge(rgb, minimum), enlarge(picture, minimum)], pad=2)


def _drawing(rgb, placement, max_side=MAX_DISPLAY_SIDE):
    """``(view, placement, to_view)``: the picture drawn on and how model-input maps land on it.

    Without a placement ``rgb`` is the model input itself (an identity
    placement); with one, ``rgb`` is the original photo, the view its visible
    part (``fit.photo_view``) and maps are cut back to it (``fit.map_to_photo``).
    """
    rgb = np.asarray(rgb)
    if placement is None:
        return rgb, place(rgb.shape[:2], rgb.shape[:2], "stretch"), np.asarray
    return (photo_view(rgb, placement, max_side), placement,
            lambda m: map_to_photo(m, placement, max_side=max_side))


def joint_picture(rgb, result: Projections, order=None, index=0, placement=None) -> np.ndarray:
    """The input beside the joint projection of image ``index`` of a joint :class:`Projections`.

    With ``placement`` (``fit.Placement``), ``rgb`` is the original photo and
    the projection is drawn over it at its resolution (capped at 1024 a side).
    """
    view, _, to_view = _drawing(rgb, placement)
    pair = _beside(view, projection_rgb(to_view(result.images[index]), order))
    return render.label(pair, f"{result.layer}: top {result.maps.shape[1]} maps together")


def separate_picture(result: Projections, order=None, index=0, placement=None, max_side=448) -> np.ndarray:
    """One titled panel per map of image ``index`` of a separate :class:`Projections`.

    With ``placement`` each panel is the projection cut back to the photo's
    region, with the photo's aspect, at most ``max_side`` px a side.
    """
    cells = [projection_rgb(p if placement is None else map_to_photo(p, placement, max_side=max_side), order)
             for p in result.images[index]]
    titles = [f"map {int(c)}" for c in result.maps[index]]
    return render.label(render.grid(cells, titles=titles), f"{result.layer}: {len(cells)} maps, one per projection")


def layer_grid(rgb, results, model, order=None, cell=72, placement=None) -> np.ndarray:
    """The Zeiler–Fergus layer grid for one image: one row per layer, one column per map.

    ``rgb`` is the input image (uint8 ``(H, W, 3)`` at the model's size), or
    with ``placement`` (a ``fit.Placement``) the original photo: each
    receptive field is then mapped back onto the photo and cut from it at the
    photo's resolution (capped at 1024 a side), never from the letterbox
    margins. ``results`` is a list of separate :class:`Projections` (image 0
    is drawn). Each cell shows the map's projection cropped to the receptive
    field of its kept activations beside the same patch of the photo.
    """
    view, placement, to_view = _drawing(rgb, placement)
    rows = []
    for res in results:
        boxes = selection_boxes(model, res, 0)
        cells = []
        for j, box in enumerate(boxes):
            y0, y1, x0, x1 = window_on_view(box, placement, view.shape[:2])
            proj = projection_rgb(to_view(res.images[0, j])[y0:y1, x0:x1], order)
            patch = view[y0:y1, x0:x1]
            gap = np.full((cell, 2, 3), 255, np.uint8)
            pair = np.concatenate([render.fit_square(proj, cell), gap, render.fit_square(patch, cell)], 1)
            cells.append(render.label(pair, f"map {int(res.maps[0, j])}", height=14, size=11))
        row = hstack(cells, pad=6)
        rows.append(render.label(row, f"{res.layer}  (top {len(boxes)} maps)", height=18, size=13))
    return vstack(rows, pad=8)


def gif_frames(rgb, frames, layer, order=None, scale=None, placement=None) -> list:
    """GIF frames: input beside the joint projection of the top 1..M maps, labelled.

    ``frames`` is ``(M, H, W, C)`` from :func:`keras_convviz.methods.deconv.cumulative`
    for one image. With ``placement``, ``rgb`` is the original photo and each
    frame is drawn over it at its resolution (as :func:`joint_picture`).
    ``scale``: the smallest side drawn (small inputs are enlarged).
    """
    view, _, to_view = _drawing(rgb, placement)
    total = len(frames)
    return [render.label(_beside(view, projection_rgb(to_view(p), order), scale or 128),
                         f"{layer}: {j + 1}/{total} maps", height=16, size=12)
            for j, p in enumerate(frames)]
