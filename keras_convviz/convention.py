"""A model file's input convention: which pixel values it expects, and how we know.

A ``.keras``/``.h5`` file carries no preprocessing function. Keras'
recommended pattern puts it inside the model instead: a leading
``Rescaling(1/255)`` (or an adapted ``Normalization``) means the model takes
raw 0..255 pixels. :func:`for_model` decides, in this order:

1. a stated ``input_range`` (``"0,255"``, ``"0,1"`` or ``"-1,1"``) wins;
2. else the model's leading ``Rescaling`` / ``Normalization`` layer (the
   first layer after the input, through a nested model and past the
   augmentation layers that pass pixels through at inference) means raw
   0..255 pixels; a ``Normalization`` whose mean and variance are those of
   0..1 data means x/255;
3. else x/255 is assumed, and the :class:`Convention` says so.

The :class:`Convention` gives the preset its ``preprocess``/``deprocess``,
the neutral pixel that fills letterbox margins and the one line the CLI
prints (``describe``).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

__all__ = ["RANGES", "Convention", "parse_range", "stated", "assumed", "detect", "for_model", "leading_layer",
           "display_for", "value_range_display"]

# the model-input value range of each convention, for 0..255 pixels
RANGES = {"0,255": (0.0, 255.0), "0,1": (0.0, 1.0), "-1,1": (-1.0, 1.0)}
_FORMULA = {"0,255": "0..255 raw pixels", "0,1": "x/255", "-1,1": "x/127.5-1"}
_HINT = "say --input-range if the model expects otherwise"

# Layers that hand pixel values on unchanged at inference (augmentation is off
# outside training, resizing interpolates): a Rescaling after them still leads.
_PASS_THROUGH = ("InputLayer", "Resizing", "CenterCrop", "Identity", "Dropout", "GaussianNoise",
                 "GaussianDropout", "AlphaDropout", "SpatialDropout2D")


@dataclasses.dataclass(frozen=True)
class Convention:
    """How 0..255 RGB pixels become model inputs.

    ``range``: a key of :data:`RANGES`; ``source``: why (``"stated"``,
    ``"Rescaling"``, ``"Normalization"`` or ``"assumed"``); ``mean_pixel``:
    the RGB pixel whose model input is neutral (letterbox margins, occluders).
    """

    range: str
    source: str
    mean_pixel: tuple = (127.5, 127.5, 127.5)
    note: str = ""

    def preprocess(self, x):
        """RGB in [0, 255] -> model inputs in :attr:`range`."""
        lo, hi = RANGES[self.range]
        return np.asarray(x, np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)

    def deprocess(self, x):
        """Model inputs -> RGB uint8 (clipped)."""
        lo, hi = RANGES[self.range]
        pixels = (np.asarray(x, np.float32) - lo) * (255.0 / (hi - lo))
        return np.clip(pixels + 0.5, 0, 255).astype(np.uint8)

    @property
    def stated(self) -> bool:
        """Whether the range was given or read from the model (not assumed)."""
        return self.source != "assumed"

    def describe(self) -> str:
        """One line: the inputs fed and why (the CLI's ``input: ...``)."""
        formula = _FORMULA[self.range]
        if self.source == "assumed":
            return f"{formula} (assumed; {_HINT})"
        if self.source == "stated":
            return f"{formula} (input range {self.range}, as stated{self.note})"
        return f"{formula} (the model's own {self.source} layer{self.note})"


def parse_range(value) -> str:
    """``"0,255"``, ``"0..1"``, ``(-1, 1)`` ... -> a key of :data:`RANGES`; ``ValueError`` naming the choices."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        text = ",".join(f"{float(v):g}" for v in value)
    else:
        text = str(value).strip().replace("..", ",").replace(" ", "")
    if text in RANGES:
        return text
    raise ValueError(f"input range {value!r} is not one of {', '.join(RANGES)}; give the range of the values "
                     f"the model expects (0,255: raw pixels; 0,1: x/255; -1,1: x/127.5-1)")


def stated(value, note="") -> Convention:
    """The convention of a given range (``--input-range``)."""
    return Convention(parse_range(value), "stated", note=note)


def assumed() -> Convention:
    """x/255, said to be an assumption."""
    return Convention("0,1", "assumed")


def leading_layer(model):
    """The first layer that changes the first input's values (nested models flattened), or None.

    Follows the input through layers that pass pixels on at inference
    (``Random*`` augmentation, ``Resizing``, dropout); stops at a branch.
    """
    from .graph import walk

    graph = walk(model)
    tensor = graph.input_ids[0]
    while True:
        users = [s for s in graph.steps if tensor in s.input_ids]
        if len(users) != 1:
            return None
        layer = users[0].layer
        kind = type(layer).__name__
        if not (kind.startswith("Random") or kind in _PASS_THROUGH):
            return layer
        tensor = users[0].output_ids[0]


def _normalization(layer) -> Optional[Convention]:
    """An adapted (or given) ``Normalization``: raw pixels, or x/255 when its statistics are 0..1 data's."""
    import keras

    if getattr(layer, "invert", False) or getattr(layer, "mean", None) is None:
        return None
    mean = np.asarray(keras.ops.convert_to_numpy(layer.mean), np.float64).reshape(-1)
    var = np.asarray(keras.ops.convert_to_numpy(layer.variance), np.float64).reshape(-1)
    if mean.size not in (1, 3):
        mean = np.full(3, float(mean.mean()))
    if mean.min() >= 0 and mean.max() <= 1 and var.max() <= 1:
        # statistics of 0..1 data (ImageNet's mean 0.485, 0.456, 0.406): the model was fed x/255
        return Convention("0,1", "Normalization", _pixel(mean * 255.0), "; its mean is 0..1 data's")
    # its mean is the neutral pixel: normalized, exactly 0
    return Convention("0,255", "Normalization", _pixel(mean))


def _pixel(values):
    """An RGB pixel (3 plain floats in 0..255) from 1 or 3 values."""
    return tuple(float(v) for v in np.resize(np.clip(values, 0, 255), 3))


def detect(model) -> Optional[Convention]:
    """The convention a leading ``Rescaling``/``Normalization`` layer states, or None."""
    layer = leading_layer(model)
    kind = type(layer).__name__ if layer is not None else None
    if kind == "Rescaling":
        return Convention("0,255", "Rescaling")
    if kind == "Normalization":
        return _normalization(layer)
    return None


def for_model(model, input_range=None) -> Convention:
    """The convention for ``model``: ``input_range`` if given, else :func:`detect`, else :func:`assumed`."""
    found = detect(model)
    if input_range is not None:
        chosen = parse_range(input_range)
        differs = found is not None and found.range != chosen
        # said, not silently overridden: the user may know better than the layer
        return stated(chosen, f"; the model's {found.source} layer suggests {found.range}" if differs else "")
    return found if found is not None else assumed()


def value_range_display(x):
    """Model inputs -> RGB uint8 by their values: [0, 1] or [0, 255] as is, else min-max per image."""
    from . import render

    x = np.asarray(x, np.float64)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, -1)
    x = x[..., :3]
    lo, hi = x.min(), x.max()
    if lo >= 0 and hi <= 1:
        return render.to_uint8(x)
    if lo >= 0 and hi <= 255:
        return np.clip(x + 0.5, 0, 255).astype(np.uint8)
    return np.stack([render.to_uint8(render.normalize(im)) for im in x])


def display_for(model, display=None, input_range=None):
    """``(display, deprocess, description)``: how the callback shows ``model``'s inputs, never a silent x/255.

    The given ``display`` wins, then ``input_range``, then the model's own
    leading Rescaling/Normalization layer; failing all, inputs are shown by
    their value range and optimized images min-max stretched (``deprocess``
    None).
    """
    if display is not None:
        return display, display, "the given display function"
    found = stated(input_range) if input_range is not None else detect(model)
    if found is None:
        return value_range_display, None, "shown by value range ([0, 1] or [0, 255] as is, else min-max)"
    return found.deprocess, found.deprocess, found.describe()
