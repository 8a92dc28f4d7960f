"""The one drawing of a method's map, shared by the CLI, notebooks and the dashboard.

A method's record (``registry.Method.drawing``) names how its maps are
normalized; :func:`normalize_map` applies it to one map and says which values
the two ends of the colour scale stand for, so the CLI's colour bar and the
dashboard's card say the same thing for the same map:

* ``stretched`` (saliency, SmoothGrad): ``|m|`` (summed over channels) scaled by
  its 99th percentile and clipped (Smilkov et al. 2017's display);
* ``cam`` (the CAM family): divided by the maximum (non-negative, coarse maps);
* ``range`` (RISE): min-max, because every value carries the same offset;
* ``signed`` (integrated gradients, LRP, the occlusion activation drop): summed
  over channels, diverging and symmetric about 0 at the 99th percentile of
  ``|m|`` (white = 0, red raises the score, blue lowers it);
* ``probability`` (occlusion's p(target)): as is, on 0 to 1;
* ``projection`` (guided backprop, deconv): an input-space signal drawn as an
  image, mid-grey = 0 and +-max ``|m|`` white / black (Zeiler & Fergus).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import render
from .panel import Scale

__all__ = ["Drawn", "drawing_of", "normalize_map", "map_picture", "map_overlay", "map_scale", "PALETTES"]

PALETTES = {"stretched": "inferno", "cam": "inferno", "range": "inferno", "signed": "diverging",
            "projection": "grey", "probability": "inferno"}
_ENCODING = {"stretched": "|value| / its 99th percentile, per image", "cam": "value / its maximum, per image",
             "range": "min-max per image", "signed": "symmetric per image at the 99th percentile of |value|: "
                                                    "white = 0, red > 0, blue < 0",
             "projection": "per image: 0 mid-grey, +-max |value| white / black",
             "probability": "as is, 0 to 1"}


@dataclasses.dataclass(frozen=True)
class Drawn:
    """One normalized map: ``unit`` in [0, 1] for the palette (signed: 0.5 = 0), ``strength`` in [0, 1] for
    overlays, and the values ``low`` / ``high`` the ends of the palette stand for."""

    drawing: str
    unit: np.ndarray
    strength: np.ndarray
    low: float
    high: float

    @property
    def palette(self) -> str:
        return PALETTES[self.drawing]

    @property
    def encoding(self) -> str:
        return _ENCODING[self.drawing]


def drawing_of(method) -> str:
    """The drawing of a method name or alias (``"stretched"`` for a name the registry does not know)."""
    from ..registry import lookup

    try:
        drawing = lookup(method).drawing
    except ValueError:
        return "stretched"
    return drawing if drawing in PALETTES else "stretched"


def _percentile_top(values):
    top = float(np.percentile(values, 99)) if values.size else 0.0
    return top if top > 0 else float(values.max(initial=0.0))


def normalize_map(drawing, m) -> Drawn:
    """``m`` (H, W) or (H, W, C) normalized as ``drawing`` says (see the module docstring)."""
    m = np.nan_to_num(np.asarray(m, np.float64))
    if drawing == "projection":
        top = float(np.abs(m).max(initial=0.0))
        strength = np.abs(m).max(axis=-1) if m.ndim == 3 else np.abs(m)
        return Drawn(drawing, 0.5 + 0.5 * m / (top or 1.0), strength / (top or 1.0), -top, top)
    if drawing == "signed":
        m = m.sum(axis=-1) if m.ndim == 3 else m
        top = _percentile_top(np.abs(m))
        unit = np.clip(m / (top or 1.0), -1, 1)
        return Drawn(drawing, 0.5 + 0.5 * unit, np.abs(unit), -top, top)
    m = np.abs(m).sum(axis=-1) if m.ndim == 3 else m
    if drawing == "probability":
        return Drawn(drawing, np.clip(m, 0, 1), np.clip(m, 0, 1), 0.0, 1.0)
    if drawing == "cam":
        top = float(m.max(initial=0.0))
        unit = np.clip(m / top, 0, 1) if top > 0 else np.zeros_like(m)
        return Drawn(drawing, unit, unit, 0.0, top)
    if drawing == "range":
        unit = render.normalize(m)
        low, high = (float(m.min()), float(m.max())) if m.size else (0.0, 0.0)
        return Drawn(drawing, unit, unit, low, high)
    m = np.abs(m)
    top = _percentile_top(m)
    unit = np.clip(m / top, 0, 1) if top > 0 else np.zeros_like(m)
    return Drawn("stretched", unit, unit, 0.0, top)


def map_picture(drawn: Drawn, size=None, original=None, order=None) -> np.ndarray:
    """RGB uint8 picture of a normalized map (resized to ``size``); a projection is drawn from ``original``
    (the map itself, channels reordered by ``order`` so a BGR model's projection shows in RGB)."""
    if drawn.drawing == "projection" and original is not None:
        m = np.asarray(original)
        if order is not None and m.ndim == 3 and m.shape[-1] == 3:
            m = m[..., order]
        picture = render.projection_image(m)
        return _resize_rgb(picture, size)
    unit = drawn.unit if drawn.unit.ndim == 2 else drawn.unit.mean(axis=-1)
    if size is not None:
        unit = render.upsample(unit, size)
    return render.colormap(unit, drawn.palette)


def _resize_rgb(picture, size):
    if size is None or picture.shape[:2] == tuple(size):
        return picture
    from PIL import Image

    return np.asarray(Image.fromarray(picture).resize((size[1], size[0]), Image.BILINEAR))


def map_overlay(rgb, drawn: Drawn, alpha=0.5) -> np.ndarray:
    """The map blended over ``rgb``: the palette picture for signed maps, the strength in inferno otherwise."""
    rgb = render.as_rgb(np.asarray(rgb))
    if drawn.drawing == "signed":
        heat = render.colormap(render.upsample(drawn.unit, rgb.shape[:2]), "diverging").astype(np.float64)
        out = (1 - alpha) * rgb.astype(np.float64) + alpha * heat
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return render.overlay(rgb, drawn.strength, alpha=alpha, normalized=True)


_MEANING = {"stretched": "|attribution|", "cam": "class activation", "range": "mean score under the masks",
            "signed": "red raises the score, blue lowers", "projection": "signed input-space signal",
            "probability": "probability"}


def map_scale(drawn: Drawn, meaning=None) -> Scale:
    """The colour bar of a normalized map: its palette, the values at both ends and what they mean."""
    meaning = _MEANING[drawn.drawing] if meaning is None else meaning
    low = f"{drawn.low:.3g}"
    high = f"{drawn.high:.3g}"
    if drawn.drawing == "stretched":
        high += " (p99)"
    elif drawn.drawing == "signed":
        low, high = f"{drawn.low:.3g}", f"+{drawn.high:.3g} (p99 of |value|)"
    return Scale(drawn.palette, low, high, meaning)
