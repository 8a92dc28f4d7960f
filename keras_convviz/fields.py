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

from .graph import POINTWISE, walk

__all__ = ["ReceptiveField", "receptive_fields", "layer_geometry", "declare_pointwise", "is_gate_merge",
           "RESAMPLING"]

# Layers that act on each position alone: their geometry is the identity.
# graph.POINTWISE covers the element-wise ones; these also mix channels.
PER_POSITION = set(POINTWISE) | {"Dense", "EinsumDense", "LayerNormalization", "GroupNormalization",
                                 "UnitNormalization", "LayerScale", "Softmax", "PReLU", "ThresholdedReLU",
                                 "Reshape", "Permute", "Flatten", "StochasticDepth"}
# Layers that resample a map to another size (a conservative cover, see ``receptive_fields``).
RESAMPLING = ("UpSampling2D", "Resizing")


def declare_pointwise(*layer_classes) -> None:
    """Declare custom layer classes per-position (each output position depends on the same
    input position only), so the receptive fields and box filters treat them as identities."""
    for cls in layer_classes:
        PER_POSITION.add(cls if isinstance(cls, str) else cls.__name__)


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
    After an ``UpSampling2D``/``Resizing`` layer the field is a conservative
    cover (``aligned`` False; ``stride``/``padding`` may be fractional).
    ``local`` is False when the values also depend on pixels outside the
    field: a squeeze-excite gate (a per-channel gate pooled over the whole
    map, broadcast over space) is a spatial identity for the field, but it
    makes this layer and every later one depend on the whole image.
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
    local: bool = True

    def window(self, y, x, clip_to=None):
        """Input window ``(y0, y1, x0, x1)`` (end exclusive) seen by unit ``(y, x)``.

        With ``clip_to=(H, W)`` the window is clipped to the image.
        """
        y0 = math.floor(y * self.stride[0] - self.padding[0])
        x0 = math.floor(x * self.stride[1] - self.padding[1])
        y1 = math.ceil(y * self.stride[0] - self.padding[0] + self.size[0])
        x1 = math.ceil(x * self.stride[1] - self.padding[1] + self.size[1])
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
    # Per-position layers and merges keep the geometry (BatchNormalization,
    # activations, Dropout, Dense on maps, Add, a squeeze-excite Multiply).
    same = all(len(sh) == 3 and sh[:2] == step.output_shape[:2] for sh in step.input_shapes)
    if (same or is_gate_merge(step)) and (kind == "merge" or step.type_name in PER_POSITION):
        return (1, 1), (1, 1), (0, 0), (1, 1)
    if same and len(step.output_shape) == 3 and step.output_shape[:2] != (1, 1):
        raise ValueError(
            f"layer {step.name!r} ({step.type_name}) keeps the spatial size but keras-convviz does not "
            f"know its geometry; if each output position depends on the same input position only, "
            f"declare it with keras_convviz.fields.declare_pointwise({step.type_name}), otherwise "
            f"pick a layer before it."
        )
    # A global pooling with keepdims=True: one window over the whole map.
    if step.output_shape[:2] == (1, 1) and len(step.input_shapes[0]) == 3:
        hw = tuple(step.input_shapes[0][:2])
        return hw, hw, (0, 0), (1, 1)
    return None


def is_gate_merge(step) -> bool:
    """A merge of a map with per-channel gates: ``(1, 1, C)`` inputs broadcast over a larger map
    (squeeze-excite, Hu et al. 2018, arXiv:1709.01507)."""
    out = tuple(step.output_shape[:2])
    if step.kind != "merge" or len(step.output_shape) != 3 or out == (1, 1):
        return False
    sizes = [tuple(sh[:2]) if len(sh) == 3 else None for sh in step.input_shapes]
    return all(s in (out, (1, 1)) for s in sizes) and (1, 1) in sizes and out in sizes


def receptive_fields(model):
    """Per spatial layer, in model order: its geometry and effective receptive field.

    Returns an ``OrderedDict`` ``{layer_name: ReceptiveField}`` with the
    definitions of google-research/receptive_field: ``size`` is the effective
    receptive field, ``stride`` the effective stride (jump) and ``padding`` the
    effective padding, each in input pixels as ``(height, width)``. Layers are
    named as inside nested models. Every spatial layer is listed, also the
    ``(1, 1)`` maps of squeeze-excite gates; a layer whose geometry is unknown
    raises a ``ValueError`` naming it.
    """
    graph = walk(model)
    rf = {tid: _Field((1, 1), (1, 1), (0, 0)) for tid in graph.input_ids}
    for tid, shape in zip(graph.input_ids, graph.input_shapes):
        _check_static(shape, model)
    result = OrderedDict()
    for step in graph.steps:
        fields = [rf.get(t) for t in step.input_ids]
        if any(f is None for f in fields):
            raise ValueError(f"layer {step.name!r} ({step.type_name}) has an input that does not come from "
                             f"the model's inputs; keras-convviz cannot place its receptive field.")
        if not step.is_spatial:  # a vector: each unit sees the union of its inputs' whole maps
            field = _whole(step, fields)
        elif step.type_name in RESAMPLING:
            field, geom = _resampled(step, fields[0]), ((2, 2), _ratio(step), (0, 0), (1, 1))
        elif all(len(sh) != 3 for sh in step.input_shapes):
            field, geom = _from_vector(step, fields), ((1, 1), (1, 1), (0, 0), (1, 1))
        else:
            geom = layer_geometry(step)
            if geom is None:
                raise ValueError(
                    f"cannot derive the receptive field through layer {step.name!r} ({step.type_name}): it "
                    f"changes the spatial size {step.input_shapes[0][:2]} -> {step.output_shape[:2]} in a "
                    f"way keras-convviz does not model; pick a layer before it.")
            field = _through(step, fields, geom)
        for oid in step.output_ids:
            rf[oid] = field
        if step.is_spatial:
            result[step.name] = _record(step, geom, field)
    return result


@dataclasses.dataclass(frozen=True)
class _Field:
    """One tensor's field: size, jump, pad per dim; ``local``; ``note`` carried to later layers."""

    size: tuple
    jump: tuple
    pad: tuple
    local: bool = True
    aligned: bool = True
    note: str = ""
    cover: str = ""  # set after a resampling layer: every later field is a cover


def _through(step, fields, geom):
    """The field after a geometric layer (conv, pool, padding, identity, merge)."""
    k, s, p, _ = geom
    gate = is_gate_merge(step)
    maps = [f for f, sh in zip(fields, step.input_shapes) if not (gate and tuple(sh[:2]) == (1, 1))]
    (r, j, q), aligned = _merge([(f.size, f.jump, f.pad) for f in maps])
    note = "" if aligned else (
        "merge of branches with different receptive fields: size and padding "
        "cover every branch" + ("; strides differ" if len({f.jump for f in maps}) > 1 else ""))
    if gate:
        note = "squeeze-excite: a per-channel gate from the whole map, a spatial identity for the field"
    cover = next((f.cover for f in fields if f.cover), "")
    return _Field(tuple(_num(rr + (kk - 1) * jj) for rr, kk, jj in zip(r, k, j)),
                  tuple(_num(jj * ss) for jj, ss in zip(j, s)),
                  tuple(_num(qq + pp * jj) for qq, pp, jj in zip(q, p, j)),
                  local=all(f.local for f in fields) and not gate, aligned=aligned and not cover,
                  note=note, cover=cover)


def _whole(step, fields):
    """A vector's field: every input map's units joined (global pooling, Flatten, Dense)."""
    joined = []
    for f, sh in zip(fields, step.input_shapes):
        hw = tuple(sh[:2]) if len(sh) == 3 else (1, 1)
        joined.append((tuple(_num(r + (n - 1) * j) for r, n, j in zip(f.size, hw, f.jump)),
                       tuple(_num(j * n) for j, n in zip(f.jump, hw)), f.pad))
    (size, jump, pad), _ = _merge(joined)
    return _Field(size, jump, pad, all(f.local for f in fields), cover=next((f.cover for f in fields if f.cover), ""))


def _from_vector(step, fields):
    """A ``(1, 1)`` map made from vectors (the Reshape of a pooled squeeze-excite gate)."""
    if tuple(step.output_shape[:2]) != (1, 1):
        raise ValueError(
            f"layer {step.name!r} ({step.type_name}) builds a {step.output_shape[:2]} map from a non-spatial "
            f"tensor, so its units have no position in the image; pick a layer before it.")
    return _whole(step, fields)


def _ratio(step):
    return tuple(_num(n / m) for n, m in zip(step.input_shapes[0][:2], step.output_shape[:2]))


def _resampled(step, f):
    """A conservative cover through resampling by ``t = in / out`` per dim.

    Output unit ``i`` reads input units within one of ``c = (i + 1/2) t - 1/2``
    (nearest or bilinear, any corner convention), so its field starts at most
    ``(3/2 - t/2) J`` before ``i t J - P`` and spans ``R + 2 J``.
    """
    t = _ratio(step)
    cover = f"conservative cover after resampling layer {step.name!r} ({step.type_name})"
    return _Field(tuple(_num(r + 2 * j) for r, j in zip(f.size, f.jump)),
                  tuple(_num(j * tt) for j, tt in zip(f.jump, t)),
                  tuple(_num(q + (1.5 - 0.5 * tt) * j) for q, j, tt in zip(f.pad, f.jump, t)),
                  f.local, aligned=False, cover=cover)


def _num(v):
    """An int where the value is whole, else a float (fields after resampling)."""
    v = float(v)
    return int(round(v)) if abs(v - round(v)) < 1e-9 else round(v, 6)


def _record(step, geom, field):
    k, s, p, d = geom
    note = "; ".join(n for n in (field.note, field.cover) if n)
    return ReceptiveField(name=step.name, layer_type=step.type_name, output_shape=step.output_shape,
                          kernel=k, layer_stride=s, layer_padding=p, dilation=d, size=field.size,
                          stride=field.jump, padding=field.pad, aligned=field.aligned, note=note,
                          local=field.local)


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
