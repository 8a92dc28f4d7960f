"""The occlusion panel of Zeiler & Fergus 2014 (arXiv:1311.2901, fig. 7).

One row per image: the input, the target-probability map, the most probable
class at each occluder position (one colour per class, with a legend of
class names) and the strongest feature map's activity, drawn from an
:class:`~keras_convviz.methods.occlusion.Occlusion` result.
"""

from __future__ import annotations

import colorsys
import functools

import numpy as np
from PIL import Image, ImageDraw

from .. import render
from ..labels import class_label

__all__ = ["figure", "activation_drop_picture"]


def figure(image, result, index=0, class_names=None, cell=160, placement=None, region=None) -> np.ndarray:
    """The fig. 7 panel for image ``index``: image, probability map, top-class map
    with a legend of class names, and activation map, as one RGB uint8 array.

    ``image`` is the displayable RGB uint8 picture ``(H, W, 3)`` of that input.
    With ``placement`` (a :class:`keras_convviz.fit.Placement`), ``image`` is the
    photo (``fit.photo_view``) and every map is cut back to the photo's region;
    panels are ``cell`` high at the photo's aspect ratio. ``region`` (a
    model-input box ``(x, y, w, h)``, the explained ``select.region_score``
    box) is outlined on every panel.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = render.to_uint8(image)
    name = functools.partial(class_label, names=class_names)  # "Egyptian cat (285)", or "class 281"
    tgt = int(result.target[index])
    prob = result.probability[index]
    panels = [
        image,
        render.colormap(np.clip(prob, 0, 1)),
        _class_map(result.top_class[index]),
        activation_drop_picture(result.base_activation[index] - result.activation[index]),
    ]
    if placement is not None:  # the maps cut back to the photo's region, at its aspect ratio
        panels = [image] + _on_photo(result, index, placement, image.shape[:2])
    size = (cell, max(1, round(cell * image.shape[1] / image.shape[0])))
    titles = [
        f"input: {name(tgt)} p={result.base_probability[index]:.2f}",
        f"p(class {tgt}) {prob.min():.2f}..{prob.max():.2f}",
        "most probable class",
        f"drop of {result.layer} map {int(result.map_index[index])}",
    ]
    # the occluder grid is coarse: nearest-neighbour keeps one square per position
    if placement is None:
        size = (cell, cell)
    big = [np.asarray(Image.fromarray(render.as_rgb(p)).resize(size[::-1], Image.NEAREST)) for p in panels]
    if region is not None:
        big = [render.outline(p, _region_corners(region, placement, size, image.shape[:2])) for p in big]
    canvas = render.grid(big, titles=titles, columns=4)
    shown = sorted(set(int(k) for k in np.unique(result.top_class[index])))
    return np.concatenate([canvas, _legend(shown, name, canvas.shape[1], 4 + 2 * (size[1] + 4))], axis=0)


def _on_photo(result, index, placement, shape) -> list:
    """Probability, top-class and activation panels cut to the photo's region (``fit.map_to_photo``)."""
    from ..fit import map_to_photo

    side = max(shape)
    prob = map_to_photo(result.upsampled("probability")[index], placement, side)
    act = map_to_photo(result.upsampled("activation")[index], placement, side)
    # each input pixel takes the class of the occluder centred nearest to it (the grid does not
    # tile the input evenly: stretching it would shift every square off its occluder)
    (h, w), (ph, pw) = result.image_size, result.patch
    rows = np.abs(np.arange(h)[:, None] - (np.asarray(result.origins_y) + (ph - 1) / 2)).argmin(1)
    cols = np.abs(np.arange(w)[:, None] - (np.asarray(result.origins_x) + (pw - 1) / 2)).argmin(1)
    top = map_to_photo(result.top_class[index][np.ix_(rows, cols)], placement, side, resample="nearest")
    drop = float(result.base_activation[index]) - act
    return [render.colormap(np.clip(prob, 0, 1)), _class_map(top), activation_drop_picture(drop)]


def activation_drop_picture(drop) -> np.ndarray:
    """The strongest map's activation drop (positive where occluding lowers it), diverging about 0 as every
    signed map (``figures.maps``; the dashboard's occlusion card draws it the same way)."""
    from .maps import map_picture, normalize_map

    return map_picture(normalize_map("signed", drop))


def _region_corners(region, placement, size, input_hw):
    """The model-input box ``region`` on a panel of ``size``: through the photo with a placement,
    else scaled from the model input ``input_hw``."""
    if placement is not None:
        from ..fit import box_on_view

        return box_on_view(region, placement, size)
    x, y, w, h = region
    sy, sx = size[0] / input_hw[0], size[1] / input_hw[1]
    return x * sx, y * sy, (x + w) * sx, (y + h) * sy


def _legend(classes, name, width, x0, line_h=14):
    """A colour swatch and the name of each class in the top-class map, under its panel."""
    legend = Image.new("RGB", (width, 6 + line_h * len(classes)), (255, 255, 255))
    draw = ImageDraw.Draw(legend)
    font = render.font(11)
    for r, k in enumerate(classes):
        y = 3 + r * line_h
        draw.rectangle([x0, y + 1, x0 + 10, y + 11], fill=tuple(int(v) for v in _palette(k)))
        draw.text((x0 + 15, y), name(k), fill=(20, 20, 20), font=font)
    return np.asarray(legend)


def _palette(k):
    """A distinct colour per class index (golden-ratio hues, stable across images)."""
    hue = (k * 0.61803398875) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.65, 0.95)
    return np.array([r * 255, g * 255, b * 255], np.uint8)


def _class_map(classes):
    classes = np.asarray(classes)
    out = np.zeros(classes.shape + (3,), np.uint8)
    for k in np.unique(classes):
        out[classes == k] = _palette(int(k))
    return out
