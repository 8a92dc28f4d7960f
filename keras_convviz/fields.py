"""Receptive fields: each layer's geometry folded into effective receptive fields.

The definitions are those of google-research/receptive_field: size,
effective stride (jump) and effective padding, each in input pixels as
``(height, width)``. The geometry comes from the model's own layers
(kernel, stride, padding, dilation; TF 'same' padding from the real input
size), never from a hand-written table.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict

from .graph import walk

__all__ = ["ReceptiveField", "receptive_fields", "layer_geometry"]


@dataclasses.dataclass(frozen=True)
class ReceptiveField:
    """Geometry of one spatial layer, all pairs as ``(height, width)``.

    ``kernel``, ``layer_stride`` and ``layer_padding`` are the layer's own
    (effective kernel with dilation; padding is the top/left padding it adds,
    negative for cropping). ``size``, ``stride`` and ``padding`` are the
    effective receptive field in input pixels: unit ``(i, j)`` sees input rows
    ``i * stride[0] - padding[0]`` .. ``+ size[0] - 1``, likewise columns.
    ``aligned`` is False where a merge joins branches whose fields differ;
    ``size``/``padding`` then cover every branch and ``note`` says so.
    """

    name: str
    layer_type: str
    output_shape: tuple
    kernel: tuple
    layer_stride: tuple
    layer_padding: tuple
    dilation: tuple
    size: tuple
    stride: tuple
    padding: tuple
    aligned: bool = True
    note: str = ""

    def window(self, y, x, clip_to=None):
        """Input window ``(y0, y1, x0, x1)`` (end exclusive) seen by unit ``(y, x)``.

        With ``clip_to=(H, W)`` the window is clipped to the image.
        """
        y0 = y * self.stride[0] - self.padding[0]
        x0 = x * self.stride[1] - self.padding[1]
        y1, x1 = y0 + self.size[0], x0 + self.size[1]
        if clip_to is not None:
            y0, x0 = max(y0, 0), max(x0, 0)
            y1, x1 = min(y1, clip_to[0]), min(x1, clip_to[1])
        return y0, y1, x0, x1


def _pair(v):
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _same_padding(n, k, s):
    """TF 'SAME' padding before the first element, for input size ``n``."""
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2


def layer_geometry(step):
    """``(kernel, stride, pad_before, dilation)`` per dim, or None if not geometric.

    ``kernel`` is the effective kernel (dilated); identity layers give 1, 1, 0.
    """
    layer, kind = step.layer, step.kind
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        raise ValueError(
            f"layer {step.name!r} uses data_format='channels_first'; keras-convviz "
            f"supports channels_last (the TensorFlow default)."
        )
    if kind in ("conv", "maxpool", "avgpool"):
        if kind == "conv":
            k, s = _pair(layer.kernel_size), _pair(layer.strides)
            d = _pair(layer.dilation_rate)
        else:
            k, s, d = _pair(layer.pool_size), _pair(layer.strides), (1, 1)
        k = tuple(dd * (kk - 1) + 1 for kk, dd in zip(k, d))
        if layer.padding == "same":
            hw = step.input_shapes[0][:2]
            p = tuple(_same_padding(n, kk, ss) for n, kk, ss in zip(hw, k, s))
        else:
            p = (0, 0)
        return k, s, p, d
    if kind == "zeropad":
        (t, _), (l, _) = layer.padding
        return (1, 1), (1, 1), (int(t), int(l)), (1, 1)
    if kind == "crop":
        (t, _), (l, _) = layer.cropping
        return (1, 1), (1, 1), (-int(t), -int(l)), (1, 1)
    # Anything else is an identity for geometry when it keeps the spatial size
    # (BatchNormalization, activations, Dropout, merges, 1x1 Dense on maps).
    if all(len(sh) == 3 and sh[:2] == step.output_shape[:2] for sh in step.input_shapes):
        return (1, 1), (1, 1), (0, 0), (1, 1)
    # A global pooling with keepdims=True: one window over the whole map.
    if step.output_shape[:2] == (1, 1) and len(step.input_shapes[0]) == 3:
        hw = tuple(step.input_shapes[0][:2])
        return hw, hw, (0, 0), (1, 1)
    return None


def receptive_fields(model):
    """Per spatial layer, in model order: its geometry and effective receptive field.

    Returns an ``OrderedDict`` ``{layer_name: ReceptiveField}`` with the
    definitions of google-research/receptive_field: ``size`` is the effective
    receptive field, ``stride`` the effective stride (jump) and ``padding`` the
    effective padding, each in input pixels as ``(height, width)``. Layers are
    named as inside nested models.
    """
    graph = walk(model)
    rf = {tid: ((1, 1), (1, 1), (0, 0)) for tid in graph.input_ids}  # size, jump, pad
    for tid, shape in zip(graph.input_ids, graph.input_shapes):
        _check_static(shape, model)
    result = OrderedDict()
    for step in graph.steps:
        if not step.is_spatial:
            continue
        branches = [rf.get(t) for t in step.input_ids]
        if any(b is None for b in branches):
            continue  # fed by a non-spatial tensor (e.g. a Reshape of a vector)
        geom = layer_geometry(step)
        if geom is None:
            raise ValueError(
                f"cannot derive the receptive field through layer {step.name!r} "
                f"({step.type_name}): it changes the spatial size {step.input_shapes[0][:2]}"
                f" -> {step.output_shape[:2]} in a way keras-convviz does not model."
            )
        k, s, p, d = geom
        (r, j, q), aligned = _merge(branches)
        size = tuple(rr + (kk - 1) * jj for rr, kk, jj in zip(r, k, j))
        jump = tuple(jj * ss for jj, ss in zip(j, s))
        pad = tuple(qq + pp * jj for qq, pp, jj in zip(q, p, j))
        for oid in step.output_ids:
            rf[oid] = (size, jump, pad)
        note = "" if aligned else (
            "merge of branches with different receptive fields: size and padding "
            "cover every branch" + ("; strides differ" if len({b[1] for b in branches}) > 1 else "")
        )
        result[step.name] = ReceptiveField(
            name=step.name,
            layer_type=step.type_name,
            output_shape=step.output_shape,
            kernel=k,
            layer_stride=s,
            layer_padding=p,
            dilation=d,
            size=size,
            stride=jump,
            padding=pad,
            aligned=aligned,
            note=note,
        )
    return result


def _merge(branches):
    """Union of branch receptive fields; ``aligned`` when they are all equal."""
    if len(set(branches)) == 1:
        return branches[0], True
    size, pad = [], []
    for dim in range(2):
        start = min(-b[2][dim] for b in branches)
        end = max(-b[2][dim] + b[0][dim] - 1 for b in branches)
        size.append(end - start + 1)
        pad.append(-start)
    jump = tuple(max(b[1][dim] for b in branches) for dim in range(2))
    return (tuple(size), jump, tuple(pad)), False


def _check_static(shape, model):
    if len(shape) != 3 or shape[0] is None or shape[1] is None:
        raise ValueError(
            f"model {model.name!r} has input shape {shape} without a static height "
            f"and width; rebuild it with keras.Input(shape=(H, W, C)) or, for "
            f"keras.applications, pass input_shape=(H, W, 3)."
        )
