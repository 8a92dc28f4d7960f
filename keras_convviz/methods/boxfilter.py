"""Receptive-field box-filter maps: how a crop spreads through a CNN's geometry.

The seed tool's (``viz.py``) picture of which units a crop reaches, made exact
with the receptive-field arithmetic of Zeiler & Fergus 2014 (arXiv:1311.2901,
the image patch each unit sees) as google-research/receptive_field defines
it (kernel, stride, padding per layer, composed along the network).

A 0/1 mask of a crop goes through a single-channel *averaging box filter* for
every spatial layer, with that layer's own kernel, stride, dilation and true
padding (``fields.layer_geometry``): each output value is the fraction of the
layer's inputs (its kernel taps) that come from the crop, zero padding
counted as zeros. Layers that keep the geometry (1x1 stride-1 convs,
BatchNorm, activations) are identities; ZeroPadding and Cropping pad or crop
the mask; merges average their branches (Concatenate weights them by channel
count; vector branches such as squeeze-excite carry no map and are left
out). Pools are box filters over their window too (the question is which
inputs a unit sees, not which one wins a max); a dilated layer averages its
k x k taps, not the dilated window. Because every step is linear:

* ``fraction`` = A m, with A the chain of box filters and m the crop mask;
* ``ratio`` = A m / A 1 = inside / (inside + outside), the seed's complement
  trick: the share of the non-padding inputs that come from the crop.

``mode="backward"`` fixes the crop on ``layer``'s feature map and runs the
transposed filters (A^T, the exact adjoint by autodiff) down to the input.
The filters are sums of non-negative terms, so a map's support is exact.
The chain is built and compiled once per model / layer / mode / input size
(``methods.boxchain``) and reused for any number of crops, batched through
the same call.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..inline import Inline
from ..checks import positive_int
from ..graph import walk
from ..probe import compiled
from ..progress import tracker
from ..request import chunks
from .boxchain import INPUT, build_chain

__all__ = ["box_filter", "BoxMaps", "BoxFilterResult", "scale_crop", "check_crop", "default_layer"]


@dataclasses.dataclass(frozen=True)
class BoxMaps:
    """The maps of one layer: ``fraction`` and ``ratio``, float32 in [0, 1].

    2-D ``(h, w)`` for one crop, ``(N, h, w)`` for a batch of ``N`` crops.
    """

    fraction: np.ndarray
    ratio: np.ndarray

    @property
    def shape(self) -> tuple:
        return self.fraction.shape


@dataclasses.dataclass(frozen=True)
class BoxFilterResult(Inline):
    """The box-filter maps of every spatial layer on the way, in the order computed.

    ``maps`` is ``{layer_name: BoxMaps}``, the input map keyed by
    ``input_name``; layers that keep the geometry share their neighbour's
    ``BoxMaps`` object. ``panels`` names the layers drawn by default (input,
    convolutions, pools, merges, ``layer``). ``crop`` holds the checked
    crop(s): ``(4,)`` ints for one crop, ``(N, 4)`` for a batch.
    """

    mode: str  # "forward" | "backward"
    layer: str  # the chosen layer
    crop: np.ndarray  # (x, y, w, h) in input pixels (forward) or layer units (backward)
    input_shape: tuple  # the model input's (H, W)
    input_name: str
    maps: dict[str, BoxMaps]
    panels: list[str]


# ------------------------------------------------------------------- crops
def check_crop(crop, hw, where) -> tuple:
    """``crop = (x, y, w, h)`` as ints, or a ValueError if it leaves ``hw = (H, W)``."""
    try:
        values = [float(v) for v in crop]
    except (TypeError, ValueError):
        values = []
    if len(values) != 4 or not all(v.is_integer() for v in values):
        raise ValueError(f"crop must be four integers (x, y, w, h), got {crop!r}")
    x, y, w, h = (int(v) for v in values)
    H, W = hw
    if w < 1 or h < 1:
        raise ValueError(f"crop {x},{y},{w},{h} is empty: width and height must be >= 1")
    if x < 0 or y < 0 or x + w > W or y + h > H:
        raise ValueError(
            f"crop {x},{y},{w},{h} (x,y,w,h) is outside {where} of {H}x{W} (HxW): "
            f"need 0 <= x, x+w <= {W}, 0 <= y, y+h <= {H}"
        )
    return x, y, w, h


def scale_crop(crop, from_hw, to_hw) -> tuple:
    """Scale a crop from an image of ``from_hw`` to one of ``to_hw`` (as the image is resized).

    The scaled crop covers every target pixel the original crop overlaps and is
    at least one pixel wide and high.
    """
    x, y, w, h = check_crop(crop, from_hw, "the image")
    sy, sx = to_hw[0] / from_hw[0], to_hw[1] / from_hw[1]
    x0, y0 = int(np.floor(x * sx + 1e-9)), int(np.floor(y * sy + 1e-9))
    x1, y1 = int(np.ceil((x + w) * sx - 1e-9)), int(np.ceil((y + h) * sy - 1e-9))
    x0, y0 = min(max(x0, 0), to_hw[1] - 1), min(max(y0, 0), to_hw[0] - 1)
    x1, y1 = min(max(x1, x0 + 1), to_hw[1]), min(max(y1, y0 + 1), to_hw[0])
    return x0, y0, x1 - x0, y1 - y0


def _crops(crop):
    """``(crops (N, 4) list, single)``: one crop or a batch of crops."""
    arr = np.asarray(crop, dtype=object)
    if arr.ndim == 1:
        return [tuple(crop)], True
    if arr.ndim == 2 and arr.shape[1] == 4 and arr.shape[0] >= 1:
        return [tuple(c) for c in crop], False
    raise ValueError(f"crop must be (x, y, w, h) or a list of such crops, got {crop!r}")


def _masks(crops, hw):
    masks = np.zeros((len(crops),) + tuple(hw), np.float32)
    for i, (x, y, w, h) in enumerate(crops):
        masks[i, y:y + h, x:x + w] = 1.0
    return masks


# ------------------------------------------------------------------- the call
def default_layer(model) -> str:
    """The default layer: the last block's last convolution (``Graph.block_ends``), as deconv's.

    Not the model's last convolution: after global pooling that is a ``(1, 1)``
    classifier conv (MobileNet's ``conv_preds``) whose maps show nothing of
    the crop's geometry.
    """
    graph = walk(model)
    ends = graph.block_ends() or [s.name for s in graph.conv_steps()]
    if not ends:
        raise ValueError(f"model {graph.model.name!r} has no convolution; name the layer (--layer)")
    return ends[-1]


def _input_name(graph):
    # Keras 3 has no public accessor for the InputLayer behind a model input
    # (Sequential hides it from .layers and KerasTensor.name is the tensor's
    # own name), so the input map takes its name from the tensor's history.
    try:
        return graph.model.inputs[0]._keras_history[0].name
    except Exception:  # pragma: no cover - a model without input history
        return "input"


def _resolve_hw(graph, input_shape):
    static = tuple(graph.input_shape[:2])
    if input_shape is None:
        if None in static:
            raise ValueError(
                f"model {graph.model.name!r} has no static input height/width {graph.input_shape}; "
                f"pass input_shape=(H, W)."
            )
        return static
    try:
        hw = tuple(int(v) for v in tuple(input_shape)[:2])
    except (TypeError, ValueError):
        hw = ()
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"input_shape must be (H, W) or (H, W, C), got {input_shape!r}")
    return hw


def box_filter(model, layer, crop, mode="forward", input_shape=None, batch_size=256,
               progress=False) -> BoxFilterResult:
    """Receptive-field box-filter maps of a crop, per layer (seed viz.py semantics).

    Args:
        model: a Keras Sequential/Functional CNN (nested models are walked into).
            Only its geometry is used: untrained weights give the same maps.
        layer: name of a spatial layer: the last layer (forward) or the layer
            whose feature map holds the crop (backward).
        crop: ``(x, y, w, h)``, in input pixels (forward) or in ``layer``'s
            feature-map units (backward); or a list of crops, computed in one
            batched call.
        mode: ``"forward"``: from the input up to and including ``layer``;
            ``"backward"``: from ``layer`` down to the input (input map last).
        input_shape: ``(H, W)`` or ``(H, W, C)``; needed when the model's input
            size is not static, otherwise it may override it.
        batch_size: crops per compiled call.
        progress: a bar over many crops (``keras_convviz.progress``; quiet by default).

    Returns:
        :class:`BoxFilterResult`: ``.maps`` is an ordered ``{layer_name:
        BoxMaps}`` over every spatial layer on the way (layers that keep the
        geometry, such as BatchNorm or 1x1 convolutions, share their
        neighbour's maps; ZeroPadding layers are folded into the next layer's
        padding), the input map keyed by ``.input_name``. ``fraction`` is the
        share of each unit's inputs (kernel taps, zero padding counted) that
        come from the crop (forward), or the transposed filter's weight of the
        crop at each position (backward). ``ratio`` is inside / (inside +
        outside) with the complement of the crop; 0 where no input is seen at
        all. 2-D maps for one crop, ``(N, h, w)`` for a list.

    Raises:
        ValueError: unknown or non-spatial layer, a crop outside the image or
            the feature map, or a layer the box filter cannot model.
    """
    if mode not in ("forward", "backward"):
        raise ValueError(f"mode must be 'forward' or 'backward', got {mode!r}")
    batch_size = positive_int(batch_size, "batch_size")
    graph = walk(model)
    hw = _resolve_hw(graph, input_shape)
    chain = compiled(graph, ("box_filter", mode, graph.step(layer).name, hw),
                     lambda: build_chain(graph, layer, mode, hw))
    where = "the input" if mode == "forward" else f"the feature map of {chain.target!r}"
    crops, single = _crops(crop)
    crops = np.asarray([check_crop(c, chain.field_hw, where) for c in crops], np.int64)
    masks = _masks(crops, chain.field_hw)
    bar, parts = tracker(progress, len(masks), "crop"), []
    for a, b in chunks(len(masks), batch_size):
        parts.append([np.asarray(t) for t in chain.fn(masks[a:b])])
        bar.update(b)
    bar.close()
    by_key = {k: _maps(np.concatenate(frac), one, single)
              for k, frac, one in zip(chain.keys, zip(*parts), chain.ones)}
    input_name = _input_name(graph)
    maps = {input_name if n is INPUT else n: by_key[chain.alias.get(n, n)] for n in chain.order}
    return BoxFilterResult(mode=mode, layer=chain.target, crop=crops[0] if single else crops, input_shape=hw,
                           input_name=input_name, maps=maps,
                           panels=[n for n in maps if n == input_name or n in chain.shown])


def _maps(frac, ones, single):
    frac = np.clip(np.asarray(frac, np.float32), 0.0, 1.0)
    ones = np.asarray(ones, np.float32)
    # ratio = inside / (inside + outside) = A m / A 1; 0 where nothing is seen
    ratio = np.divide(frac, ones, out=np.zeros_like(frac), where=np.broadcast_to(ones > 0, frac.shape))
    np.minimum(ratio, 1.0, out=ratio)
    if single:
        return BoxMaps(frac[0], ratio[0])
    return BoxMaps(frac, ratio)
