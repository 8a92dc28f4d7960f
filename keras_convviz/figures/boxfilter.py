"""Box-filter panels: the seed tool's ``conv_maps`` / ``conv_maps_ratio`` grids.

Draws a :class:`~keras_convviz.methods.boxfilter.BoxFilterResult`: one panel
per layer, each map scaled by its own maximum, the crop outlined where it was
placed (the receptive-field view of Zeiler & Fergus 2014, arXiv:1311.2901).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .. import render
from ..media import resize

__all__ = ["pictures"]


def pictures(result, image=None, overlay=False, index=0, columns=None, min_panel=192,
             all_layers=False) -> tuple[np.ndarray, np.ndarray]:
    """``(conv_maps, conv_maps_ratio)``: RGB uint8 grids as the seed draws them.

    One panel per layer of ``result.panels`` (every layer with
    ``all_layers``), titled with the layer name, size and maximum; panels have
    the input size, enlarged by a whole factor to at least ``min_panel``
    pixels. Each map is scaled by its own maximum, so small fractions in deep
    layers stay visible. With ``overlay`` a panel is ``image`` weighted by the
    upsampled map, otherwise an inferno heatmap. The crop is outlined on the
    input panel (forward) or on the chosen layer's panel (backward).
    ``index`` picks one crop of a batch.
    """
    names = list(result.maps) if all_layers else list(result.panels)
    input_hw = tuple(result.maps[result.input_name].shape[-2:])
    # panels at the input size, enlarged by a whole factor so titles fit small inputs
    zoom = max(1, int(np.ceil(min_panel / max(min(input_hw), 1))))
    panel_hw = (input_hw[0] * zoom, input_hw[1] * zoom)
    if image is not None:
        image = resize(np.asarray(image), panel_hw)
    if overlay and image is None:
        raise ValueError("overlay needs the input image")
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
            panel = _panel(m / top if top > 0 else m, panel_hw, image if overlay else None)
            panels.append(_outline(panel, crop, m.shape) if name == boxed else panel)
            titles.append(f"{name} {m.shape[0]}x{m.shape[1]} max {top:.2g}")
        outputs.append(render.grid(panels, titles=titles, columns=columns))
    return tuple(outputs)


def _panel(scaled, panel_hw, image=None):
    """``image`` weighted by the upsampled map, or the map as an inferno heatmap (nearest zoom)."""
    if image is not None:
        weight = render.upsample(scaled, panel_hw)
        panel = np.clip(image.astype(np.float32) * np.clip(weight, 0, 1)[..., None] + 0.5, 0, 255)
        return panel.astype(np.uint8)
    panel = render.colormap(scaled)
    return np.asarray(Image.fromarray(panel).resize((panel_hw[1], panel_hw[0]), Image.NEAREST))


def _outline(panel, crop, map_hw):
    """The crop ``(x, y, w, h)`` in map units, outlined on a panel of any size."""
    x, y, w, h = crop
    sy, sx = panel.shape[0] / map_hw[0], panel.shape[1] / map_hw[1]
    img = Image.fromarray(np.ascontiguousarray(panel))
    box = [x * sx, y * sy, (x + w) * sx - 1, (y + h) * sy - 1]
    ImageDraw.Draw(img).rectangle(box, outline=(0, 200, 255), width=max(1, panel.shape[0] // 112))
    return np.asarray(img)
