"""The fig. 2 grid of dataset-wide top activations (Zeiler & Fergus 2014, arXiv:1311.2901).

Per chosen feature map: the deconv projections of its k strongest
activations (each on its receptive field) beside the k input patches that
caused them.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import render
from ..checks import indices, positive_int
from ..fields import receptive_fields
from ..fit import MAX_DISPLAY_SIDE, map_to_photo, photo_view, window_on_view
from ..graph import walk
from ..methods.deconv import deconv_units
from ..methods.topk import TopActivations, units
from .deconv import display_order, projection_rgb

__all__ = ["figure", "view_side"]


def _chosen_maps(result, maps):
    """A count (the strongest maps) or a list of map indices -> int64 indices."""
    if isinstance(maps, numbers.Integral) and not isinstance(maps, bool):
        return result.strongest_maps(positive_int(maps, "maps"))
    return indices(maps, result.values.shape[0], "map index")


def _patch(shown, batch, image, window):
    """The input patch under ``window`` as RGB: deprocessed, or min-max stretched."""
    y0, y1, x0, x1 = window
    if shown is not None:
        return np.asarray(shown[image][y0:y1, x0:x1])
    patch = render.to_uint8(render.normalize(batch[image, y0:y1, x0:x1]))
    return np.repeat(patch, 3, -1) if patch.shape[-1] == 1 else patch


def view_side(placement, field, cell) -> int:
    """The longest side of a photo view on which ``field`` (a ``ReceptiveField``) spans at least
    ``cell`` px: the photo's own resolution, no more than the drawn patch needs, at most 1024."""
    y0, y1, x0, x1 = placement.region
    extent = max(y1 - y0, x1 - x0) * max(1.0, cell / max(min(field.size), 1))
    return int(min(MAX_DISPLAY_SIDE, np.ceil(extent)))


def _on_photos(photos, projected, ids, windows, field, order, cell):
    """Projections and patches cut from each image's ORIGINAL photo at the receptive field mapped
    back through that photo's Placement (``fit.window_on_view``); margins never shown."""
    views, projs, patches = {}, [], []
    for p, i, window in zip(projected, ids, windows):
        if int(i) not in views:
            photo, placement = photos(int(i))
            side = view_side(placement, field, cell)
            views[int(i)] = photo_view(photo, placement, side), placement, side
        view, placement, side = views[int(i)]
        y0, y1, x0, x1 = window_on_view(window, placement, view.shape[:2])
        projection = map_to_photo(p, placement, max_side=side)[y0:y1, x0:x1]
        projs.append(render.fit_square(projection_rgb(projection, order), cell))
        patches.append(render.fit_square(view[y0:y1, x0:x1], cell))
    return projs, patches


def figure(model, result: TopActivations, images, maps=16, deprocess=None, preprocess=None, cell=64,
           batch_size=16, progress=False, names=None, photos=None) -> tuple:
    """The fig. 2 grid: per chosen map, its k deconv projections beside the k
    receptive-field patches of the images that caused them.

    Args:
      model: the model the result was mined on.
      result: a :class:`~keras_convviz.methods.topk.TopActivations`.
      images: model inputs by dataset id: an array ``(N, H, W, C)`` or a
        callable ``id -> (H, W, C)`` (only the winning images are read).
      maps: a count (the maps with the largest top activation) or a list.
      deprocess: model inputs -> RGB uint8 for the patches (default: a
        min-max stretch of each patch).
      preprocess: the preset's preprocess, to show BGR models' projections in RGB.
      cell: side in pixels of each drawn patch.
      progress: a bar over the projections (``keras_convviz.progress``).
      names: a short name per dataset id (the CLI's file stems) above each
        patch; default ``#id``.
      photos: optional callable ``id -> (original RGB uint8 photo, its
        fit.Placement)``: patches and projections are then cut from the
        original photo (any size, each with its own placement) at the
        receptive field mapped back onto it, never from the letterbox margins.

    Returns ``(rgb uint8 grid, chosen map indices)``.
    """
    graph = walk(model)
    chosen = _chosen_maps(result, maps)
    rows = units(result, chosen)
    ids = np.unique(rows[:, 0])
    fetch = images if callable(images) else (lambda i: np.asarray(images)[i])
    batch = np.stack([np.asarray(fetch(int(i)), np.float32) for i in ids])
    local = rows.copy()
    local[:, 0] = np.searchsorted(ids, rows[:, 0])  # dataset id -> index in ``batch``
    projected = deconv_units(graph, batch, result.layer, local, batch_size=batch_size, progress=progress)
    rf = receptive_fields(graph)[result.layer]
    windows = [rf.window(int(y), int(x), clip_to=graph.input_shape[:2]) for _, y, x, _ in rows]
    order = display_order(preprocess, graph.input_shape[-1]) if preprocess else None
    if photos is not None:  # cut from each original photo, the field mapped back through its Placement
        projs, patches = _on_photos(photos, projected, rows[:, 0], windows, rf, order, cell)
    else:
        shown = deprocess(batch) if deprocess is not None else None
        projs = [render.fit_square(projection_rgb(p[y0:y1, x0:x1], order), cell)
                 for p, (y0, y1, x0, x1) in zip(projected, windows)]
        patches = [render.fit_square(_patch(shown, batch, int(i), w), cell) for i, w in zip(local[:, 0], windows)]
    k = result.k
    lines = [projs[m * k:(m + 1) * k] + patches[m * k:(m + 1) * k] for m in range(len(chosen))]
    name = (lambda i: f"#{i}") if names is None else (lambda i: str(names[i])[:max(cell // 7, 3)])
    titles = [[f"map {int(c)}"] + [""] * (k - 1) + [name(int(i)) for i in rows[m * k:(m + 1) * k, 0]]
              for m, c in enumerate(chosen)]
    return render.grid(lines, titles=titles, cell=(cell, cell)), chosen
