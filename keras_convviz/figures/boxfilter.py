"""Box-filter panels: the seed tool's ``conv_maps`` / ``conv_maps_ratio`` grids.

Draws a :class:`~keras_convviz.methods.boxfilter.BoxFilterResult`: one panel
per layer, each map scaled by its own maximum, the crop outlined where it was
placed (the receptive-field view of Zeiler & Fergus 2014, arXiv:1311.2901).
"""

from __future__ import annotations

import numpy as np

from .. import render
from ..fit import MAX_DISPLAY_SIDE, box_on_view, map_to_photo, photo_view, place
from ..media import resize
from .gradients import enlarge

__all__ = ["pictures"]


def pictures(result, image=None, overlay=False, index=0, columns=None, min_panel=192,
             all_layers=False, placement=None, max_side=MAX_DISPLAY_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """``(conv_maps, conv_maps_ratio)``: RGB uint8 grids as the seed draws them.

    One panel per layer of ``result.panels`` (every layer with
    ``all_layers``), titled with the layer name, size and maximum; panels have
    the input size, enlarged by a whole factor to at least ``min_panel``
    pixels. Each map is scaled by its own maximum, so small fractions in deep
    layers stay visible. With ``overlay`` a panel is ``image`` weighted by the
    upsampled map, otherwise an inferno heatmap. The crop is outlined on the
    input panel (forward) or on the chosen layer's panel (backward).
    ``index`` picks one crop of a batch.

    With ``placement`` (the photo's ``fit.Placement``), ``image`` is the
    original photo and every panel is drawn on it: the maps cut back to the
    photo's region (``fit.map_to_photo``, no letterbox margin), at the photo's
    resolution capped at ``max_side``, the crop outlined in photo coordinates.
    """
    names = list(result.maps) if all_layers else list(result.panels)
    input_hw = tuple(result.maps[result.input_name].shape[-2:])
    if overlay and image is None:
        raise ValueError("overlay needs the input image")
    if placement is None:  # the image is the model input itself: an identity placement
        placement = place(input_hw, input_hw, "stretch")
        image = None if image is None else resize(np.asarray(image), input_hw)
    shown = None if image is None else photo_view(image, placement, max_side)
    single = result.crop.ndim == 1
    crop = tuple(int(v) for v in (result.crop if single else result.crop[index]))
    boxed = result.input_name if result.mode == "forward" else result.layer
    outputs = []
    for field in ("fraction", "ratio"):
        panels, titles = [], []
        for name in names:
            m = getattr(result.maps[name], field)
            m = np.asarray(m if single else m[index], np.float32)
            top = float(m.max())
            panel = _panel(m / top if top > 0 else m, placement, shown if overlay else None, max_side)
            if name == boxed:  # the crop, in this map's units, where it lies on the photo
                sy, sx = input_hw[0] / m.shape[0], input_hw[1] / m.shape[1]
                box = (crop[0] * sx, crop[1] * sy, crop[2] * sx, crop[3] * sy)
                panel = render.outline(panel, box_on_view(box, placement, panel.shape[:2]))
            panels.append(enlarge(panel, min_panel))
            titles.append(f"{name} {m.shape[0]}x{m.shape[1]} max {top:.2g}")
        outputs.append(render.grid(panels, titles=titles, columns=columns))
    return tuple(outputs)


def _panel(scaled, placement, shown=None, max_side=MAX_DISPLAY_SIDE):
    """The photo ``shown`` weighted by the map drawn on it, or the map as an inferno heatmap (nearest)."""
    if shown is not None:
        weight = map_to_photo(scaled, placement, max_side=max(shown.shape[:2]))
        panel = np.clip(shown.astype(np.float32) * np.clip(weight, 0, 1)[..., None] + 0.5, 0, 255)
        return panel.astype(np.uint8)
    return render.colormap(map_to_photo(scaled, placement, max_side=max_side, resample="nearest"))
