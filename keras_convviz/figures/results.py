"""One framed figure per result: the picture the CLI draws, its title and its colour scale.

:func:`gradient_figure` draws a plain map (saliency, Grad-CAM, guided
backprop, ...) with ``figures.maps``, the CLI's and the dashboard's drawing;
:func:`result_figure` draws a result object with its family's figure code
(``figures.occlusion``, ``figures.optimize``, ``figures.featurevis``,
``figures.deconv``, ``figures.boxfilter``, ``figures.topk``). Each returns
``(picture, default title, Scale or None)``; :mod:`keras_convviz.notebook` frames
them (``figures.panel.titled``).
"""

from __future__ import annotations

import numpy as np

from .. import render
from ..fit import map_to_photo, photo_view, place
from ..labels import class_label
from .panel import Scale

__all__ = ["gradient_figure", "result_figure", "occlusion_frame", "box_filter_frame"]

def _keeps_channels(method) -> bool:
    """Whether a method's maps keep the input's channels, ``(N, H, W, C)`` (its record's ``returns``)."""
    from ..registry import lookup

    try:
        record = lookup(method)
    except ValueError:
        return False
    return record.returns == "channels" or record.name == "deconv"  # deconv's result: projections


def _one_map(m, method, index):
    """Image ``index`` of a batch of maps (a single map is taken as it is)."""
    m = np.asarray(m, np.float64)
    channels = _keeps_channels(method)
    batched = m.ndim == (4 if channels else 3)
    if batched:
        m = m[index]
    if m.ndim not in (2, 3):
        raise ValueError(f"show() takes a map (H, W) or (H, W, C), or a batch of them; got shape {np.shape(m)}")
    return m


def gradient_figure(m, image=None, method="saliency", index=0, placement=None, fit="pad", order=None) -> tuple:
    """A plain map as the CLI draws it: the map, and beside it the map over ``image`` when given.

    ``image`` is RGB uint8: the model input's picture, or the original photo
    (any size) placed by ``placement`` (a ``fit.Placement``; default: the
    ``fit`` policy from the photo to the map's size, as ``Preset.prepare``).
    """
    from .gradients import enlarge
    from .maps import drawing_of, map_overlay, map_picture, map_scale, normalize_map

    method = (method or "saliency").lower().replace("-", "_")
    m = _one_map(m, method, index)
    if image is None:
        rgb = np.zeros(m.shape[:2] + (3,), np.uint8)
    else:
        rgb = render.as_rgb(np.asarray(image))
        if placement is None and rgb.shape[:2] != m.shape[:2]:
            placement = place(rgb.shape[:2], m.shape[:2], fit)
        if placement is not None:
            rgb, m = photo_view(rgb, placement), map_to_photo(m, placement)
    drawn = normalize_map(drawing_of(method), m)
    picture = enlarge(map_picture(drawn, original=m, order=order))
    shown = picture if image is None else _side_by_side(picture, enlarge(map_overlay(rgb, drawn)))
    return shown, f"{method} (image {index})", map_scale(drawn)


def _side_by_side(left, right):
    from .deconv import hstack

    return hstack([left, right])


def _occlusion(result, image, index, class_names, placement):
    from .occlusion import figure

    if image is None:
        image = np.full(tuple(result.image_size) + (3,), 128, np.uint8)
    elif placement is None and np.asarray(image).shape[:2] != tuple(result.image_size):
        placement = place(np.asarray(image).shape[:2], tuple(result.image_size), "pad")
    picture = figure(image, result, index, class_names=class_names, placement=placement)
    return (picture,) + occlusion_frame(result, index, class_names)


def occlusion_frame(result, index=0, class_names=None) -> tuple:
    """``(title, [Scale, Scale])`` of the fig. 7 panel: the target's probability (inferno, 0 to 1) and the
    strongest map's activation drop (diverging about 0, as every signed map): the CLI's and ``show``'s."""
    drop = float(result.base_activation[index]) - np.asarray(result.activation[index], np.float64)
    top = float(np.percentile(np.abs(drop), 99)) if drop.size else 0.0
    title = (f"occlusion: {class_label(result.target[index], class_names)}, p = "
             f"{float(result.base_probability[index]):.3f} unoccluded, {result.patch[0]}px grey square, "
             f"{result.layer}")
    return title, [Scale("inferno", "0", "1", "p(target) with the square there"),
                   Scale("diverging", f"-{top:.3g}", f"+{top:.3g} (p99)", f"drop of map {int(result.map_index[index])}")]


def _optimized(result, deprocess, class_names):
    from .optimize import sheet

    pictures = result.rgb(deprocess)
    if hasattr(result, "labels"):  # FeatureVis
        from .featurevis import unit_grid

        return unit_grid(pictures, result.labels, result.values), f"feature visualization ({result.param})", None
    if hasattr(result, "errors"):  # Inversion
        titles = [f"{result.layer} error {e:.3f}" for e in result.errors]
        return sheet(pictures, titles), f"inversion of {result.layer}", None
    titles = [f"{class_label(t, class_names)} {s:.3g} p={float(np.max(p)):.2f}"
              for t, s, p in zip(result.targets, result.scores, result.probabilities)]
    return sheet(pictures, titles), "class models", None


def _projections(result, image, index, placement, order):
    from .deconv import joint_picture, projection_rgb, separate_picture
    from .gradients import enlarge

    top = float(np.abs(result.images[index]).max())
    scale = Scale("grey", f"-{top:.3g}", f"+{top:.3g}", "deconv projection: mid-grey = 0")
    title = f"deconv of {result.layer}, image {index}"
    if not result.joint:
        return separate_picture(result, order, index, placement), title, scale
    if image is None:
        return render.label(enlarge(projection_rgb(result.images[index], order)), result.layer), title, scale
    image = render.as_rgb(np.asarray(image))
    if placement is None and image.shape[:2] != result.images.shape[1:3]:
        placement = place(image.shape[:2], result.images.shape[1:3], "pad")
    return joint_picture(image, result, order, index, placement), title, scale


def _capture(result, index, per_layer=8, cell=96):
    rows, titles = [], []
    for layer, a in result.activations.items():
        a = np.asarray(a)
        if a.ndim != 4:
            continue
        a = a[index]
        strongest = np.argsort(-a.reshape(-1, a.shape[-1]).max(0), kind="stable")[:per_layer]
        rows.append([render.heatmap(a[..., c]) for c in strongest])
        titles.append([f"{layer}:{int(c)} max {float(a[..., c].max()):.3g}" for c in strongest])
    if not rows:
        raise ValueError("show(): this Capture holds no spatial activations (N, h, w, C) to draw")
    picture = render.grid(rows, titles=titles, cell=(cell, cell))
    return picture, f"activations of image {index}: the strongest maps per layer", \
        Scale("inferno", "min", "max", "each map on its own scale")


def _top_values(result, maps=16, cell=20):
    chosen = result.strongest_maps(maps)
    values = np.asarray(result.values, np.float64)[chosen]
    cells = np.repeat(np.repeat(render.heatmap(values), cell, 0), cell, 1)
    title = (f"{result.layer}: top-{result.k} activations (columns, strongest first) of its {len(chosen)} "
             f"strongest maps (rows) over {result.count} images")
    return cells, title, Scale("inferno", f"{values.min():.3g}", f"{values.max():.3g}", "activation")


def _top_grid(result, model, images, deprocess, preprocess, maps=8):
    from .topk import figure

    picture, chosen = figure(model, result, images, maps=maps, deprocess=deprocess, preprocess=preprocess)
    title = f"{result.layer}: the top-{result.k} activations of maps {', '.join(str(int(c)) for c in chosen)}"
    return picture, title, Scale("grey", "-max", "+max", "projections (left half): mid-grey = 0")


def _box_filter(result, image, index):
    from .boxfilter import pictures

    fraction, _ = pictures(result, image, overlay=image is not None, index=index)
    return (fraction,) + box_filter_frame(result, "fraction")


def box_filter_frame(result, kind="fraction") -> tuple:
    """``(title, Scale)`` of a box-filter figure (``kind``: ``"fraction"`` or ``"ratio"``), for the CLI and ``show``."""
    what = "the fraction of each unit's inputs in the crop" if kind == "fraction" else \
        "inside / (inside + outside) the crop of each unit's weighted inputs"
    title = f"box filter ({result.mode}) to {result.layer}: {what}"
    return title, Scale("inferno", "0", "each panel's max", f"box-filter {kind}")


def result_figure(result, image=None, index=0, class_names=None, placement=None, deprocess=None,
                  preprocess=None, model=None, images=None, order=None) -> tuple:
    """``(picture, title, Scale or None)`` for a result object, with its family's figure code."""
    kind = type(result).__name__
    if kind == "Occlusion":
        return _occlusion(result, image, index, class_names, placement)
    if kind in ("ClassModel", "FeatureVis", "Inversion"):
        return _optimized(result, deprocess, class_names)
    if kind == "Projections":
        return _projections(result, image, index, placement, order)
    if kind == "Capture":
        return _capture(result, index)
    if kind == "TopActivations":
        if model is None or images is None:
            return _top_values(result)
        return _top_grid(result, model, images, deprocess, preprocess)
    if kind == "BoxFilterResult":
        return _box_filter(result, image, index)
    raise TypeError(f"show() draws numpy maps and keras_convviz results (Occlusion, ClassModel, FeatureVis, "
                    f"Inversion, Projections, Capture, TopActivations, BoxFilterResult), not {kind}")
