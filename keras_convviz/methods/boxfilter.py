"""Receptive-field box-filter maps: how a crop spreads through a CNN's geometry.

A 0/1 mask of a crop goes through a single-channel *averaging box filter* for
every spatial layer, with that layer's own kernel, stride, dilation and true
padding as the model walk reads them (``graph.layer_geometry``): each output
value is the fraction of the layer's inputs (its kernel taps) that come from
the crop, with zero padding counted as zeros. Layers that keep the geometry
(1x1 stride-1 convs, BatchNorm, activations) are identities; ZeroPadding and
Cropping pad or crop the mask; merges average their branches (Concatenate
weights them by channel count; vector branches such as squeeze-excite carry
no map and are left out). Pools are box filters over their window too (the
question is which inputs a unit sees, not which one wins a max), with TF
'same' padding counted as zeros as for convolutions; a dilated layer averages
its k x k taps, not the dilated window. Because every step is linear:

* ``fraction`` = A m, with A the chain of box filters and m the crop mask;
* ``ratio`` = A m / A 1 = inside / (inside + outside), the seed's complement
  trick: running the complement 1 - m gives A 1 - A m, so the ratio is the
  share of the non-padding inputs that come from the crop.

``mode="backward"`` fixes the crop on ``layer``'s feature map and runs the
transposed filters (A^T, computed as the exact adjoint by autodiff) down to
the input. The filters are sums of non-negative terms, so the support of a
map (its non-zero set) is exact: no cancellation, no approximate convolution.

Everything is compiled once per model / layer / mode / input size and reused
for any number of crops, which are batched through the same call.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

import numpy as np

from ..fields import layer_geometry
from ..graph import walk

__all__ = ["box_filter", "BoxMaps", "BoxFilterResult", "pictures", "scale_crop", "check_crop"]

# Step kinds shown as panels (besides the chosen layer); identities such as
# BatchNorm / ReLU / 1x1 convs repeat the map before or after them.
_SHOWN_KINDS = ("conv", "maxpool", "avgpool", "merge")


@dataclasses.dataclass
class BoxMaps:
    """The maps of one layer: ``fraction`` and ``ratio``, float32 in [0, 1].

    2-D ``(h, w)`` for one crop, ``(N, h, w)`` for a batch of ``N`` crops.
    """

    fraction: np.ndarray
    ratio: np.ndarray

    @property
    def shape(self):
        return self.fraction.shape


class BoxFilterResult(OrderedDict):
    """``{layer_name: BoxMaps}`` in the order computed.

    ``.mode``, ``.layer`` (the chosen layer), ``.crop``, ``.input_name`` (the
    input map's key) and ``.panels`` (the layers drawn by default).
    """

    mode = "forward"
    layer = None
    crop = None
    input_name = None
    panels = ()


# ------------------------------------------------------------------- crops
def check_crop(crop, hw, where):
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


def scale_crop(crop, from_hw, to_hw):
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


# ------------------------------------------------------------------- the plan
@dataclasses.dataclass
class _Op:
    """One step of the single-channel chain."""

    name: str
    kind: str  # identity | box | merge | concat
    inputs: tuple  # tensor ids
    outputs: tuple
    in_hw: tuple = ()
    out_hw: tuple = ()
    kernel: tuple = (1, 1)  # taps (undilated)
    stride: tuple = (1, 1)
    dilation: tuple = (1, 1)
    pads: tuple = ((0, 0), (0, 0))  # (before, after) per dim; negative = crop
    weights: tuple = ()  # merges: per-branch weights
    axis: int = 0  # spatial concat: 1 (rows) or 2 (cols)
    shown: bool = False
    listed: bool = True  # in the result (ZeroPadding is folded into the next layer)


def _shapes_for(graph, hw):
    """Per step ``(input_shapes, output_shape)`` for input size ``hw`` (None: static)."""
    if hw is None or tuple(hw) == tuple(graph.input_shape[:2]):
        return {s.name: (s.input_shapes, s.output_shape) for s in graph.steps}
    import keras
    from keras import tree

    kt0 = graph.model.inputs[0] if hasattr(graph.model, "inputs") else None
    dtype = kt0.dtype if kt0 is not None else "float32"
    channels = graph.input_shape[2]
    values = {graph.input_ids[0]: keras.KerasTensor((None, hw[0], hw[1], channels), dtype=dtype)}
    canon = graph.aliases.canon

    class _Lookup(dict):
        def __getitem__(self, tid):
            return values[canon(tid)]

        def get(self, tid, default=None):
            return values.get(canon(tid), default)

    shapes = {}
    for step in graph.steps:
        if any(canon(t) not in values for t in step.input_ids):
            continue
        try:
            args, kwargs = step.node.arguments.fill_in(_Lookup())
            kwargs.pop("training", None)
            outs = tree.flatten(step.layer.compute_output_spec(*args, **kwargs))
        except Exception:
            shapes[step.name] = None  # cannot be computed at this size
            continue
        ins = tuple(tuple(t.shape[1:]) for t in tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor))
        shapes[step.name] = (ins, tuple(outs[0].shape[1:]))
        for oid, value in zip(step.output_ids, outs):
            values[oid] = value
    return shapes


def _plan(graph, layer, hw):
    """The ops needed for ``layer``, their geometry, and the output map ids."""
    target = graph.spatial_step(layer)
    shapes = _shapes_for(graph, hw)
    in_id = graph.input_ids[0]
    have = {in_id: tuple(hw)}  # tensor id -> (h, w) of its single-channel map
    ops = []
    for i in graph.ancestors([target.name]):
        step = graph.steps[i]
        sh = shapes.get(step.name)
        if sh is None:
            raise ValueError(
                f"cannot compute the shape of layer {step.name!r} ({step.type_name}) at input "
                f"size {hw[0]}x{hw[1]}; pick an input size the model accepts."
            )
        ins, out = sh
        step = dataclasses.replace(step, input_shapes=ins, output_shape=out)
        if len(out) != 3:
            continue  # a vector branch (e.g. squeeze-excite): it carries no map
        branches = [t for t in step.input_ids if t in have]
        if not branches:
            continue  # fed only by non-spatial tensors or another model input
        shown = step.name == target.name
        if step.kind == "merge":
            if type(step.layer).__name__ == "Concatenate":
                axis = int(step.layer.axis) % 4
                if axis in (1, 2):
                    if len(branches) != len(step.input_ids):
                        raise ValueError(f"spatial Concatenate {step.name!r} joins inputs without maps")
                    ops.append(_Op(step.name, "concat", tuple(branches), step.output_ids,
                                   out_hw=out[:2], axis=axis, shown=True))
                    have.update({o: tuple(out[:2]) for o in step.output_ids})
                    continue
                chans = [ins[step.input_ids.index(t)][-1] for t in branches]
                total = float(sum(chans))
                weights = tuple(c / total for c in chans)
            else:
                weights = tuple(1.0 / len(branches) for _ in branches)
            ops.append(_Op(step.name, "merge", tuple(branches), step.output_ids, out_hw=out[:2],
                           weights=weights, shown=True))
            have.update({o: tuple(out[:2]) for o in step.output_ids})
            continue
        geom = layer_geometry(step)
        if geom is None:
            raise ValueError(
                f"layer {step.name!r} ({step.type_name}) changes the spatial size "
                f"{ins[0][:2]} -> {out[:2]} in a way the box filter does not model "
                f"(only convolutions, pooling, padding, cropping and merges)."
            )
        k_eff, s, p, d = geom
        n = have[branches[0]]
        m = tuple(out[:2])
        taps = tuple((ke - 1) // dd + 1 for ke, dd in zip(k_eff, d))
        pads = tuple((pp, (mm - 1) * ss + ke - nn - pp) for pp, mm, ss, ke, nn in zip(p, m, s, k_eff, n))
        identity = taps == (1, 1) and s == (1, 1) and pads == ((0, 0), (0, 0))
        kind = "identity" if identity else "box"
        shown = shown or step.kind in _SHOWN_KINDS or (step.kind == "other" and not identity)
        ops.append(_Op(step.name, kind, (branches[0],), step.output_ids, in_hw=n, out_hw=m,
                       kernel=taps, stride=s, dilation=d, pads=pads, shown=shown,
                       listed=step.kind != "zeropad" or step.name == target.name))
        have.update({o: m for o in step.output_ids})
    if target.output_ids[0] not in have:
        raise ValueError(f"layer {target.name!r} does not depend on the model's first input")
    return ops, target


# ------------------------------------------------------------------- TF ops
# Maps travel as (1, h, w, N): the crops of a batch are the channels, which
# is what TF's pooling kernels vectorize over (a single-channel NHWC pool is
# many times slower per crop).
def _pad_or_crop(tf, x, axis, before, after):
    if before < 0 or after < 0:
        n = x.shape[axis]
        start, stop = max(-before, 0), n - max(-after, 0)
        x = x[:, start:stop] if axis == 1 else x[:, :, start:stop]
        before, after = max(before, 0), max(after, 0)
    if before or after:
        paddings = [[0, 0], [0, 0], [0, 0], [0, 0]]
        paddings[axis] = [before, after]
        x = tf.pad(x, paddings)
    return x


def _box(tf, x, op):
    """Average of each window's taps (zero padding counts), output ``op.out_hw``."""
    for axis in (1, 2):
        before, after = op.pads[axis - 1]
        x = _pad_or_crop(tf, x, axis, before, after)
    k, s, d, m = op.kernel, op.stride, op.dilation, op.out_hw
    if d == (1, 1):
        return tf.nn.avg_pool2d(x, ksize=list(k), strides=list(s), padding="VALID")
    # dilated: the stride-1 dilated average, then every s-th output
    y = tf.nn.pool(x, window_shape=list(k), pooling_type="AVG", padding="VALID", dilations=list(d))
    if s != (1, 1):
        y = y[:, ::s[0], ::s[1]]
    return y[:, :m[0], :m[1]]


def _run_ops(tf, ops, in_id, x, distinct=False):
    """Run the chain; ``distinct``: identities get their own tensor (for per-layer gradients)."""
    values = {in_id: x}
    for op in ops:
        if op.kind == "identity":
            y = tf.identity(values[op.inputs[0]]) if distinct else values[op.inputs[0]]
        elif op.kind == "box":
            y = _box(tf, values[op.inputs[0]], op)
        elif op.kind == "merge":
            y = tf.add_n([w * values[t] for w, t in zip(op.weights, op.inputs)]) if len(op.inputs) > 1 \
                else values[op.inputs[0]]
            y = tf.broadcast_to(y, tf.concat([[1], list(op.out_hw), tf.shape(y)[3:]], 0))
        else:  # spatial concat
            y = tf.concat([values[t] for t in op.inputs], axis=op.axis)
        for o in op.outputs:
            values[o] = y
    return values


def _to_channels(tf, masks):
    return tf.transpose(masks, [1, 2, 0])[None]  # (N, h, w) -> (1, h, w, N)


def _from_channels(tf, maps):
    return tf.transpose(maps[0], [2, 0, 1])  # (1, h, w, N) -> (N, h, w)


def _compiled(graph, layer, mode, hw):
    key = ("box_filter", mode, graph.step(layer).name, tuple(hw))
    entry = graph.cache.get(key)
    if entry is not None:
        return entry
    import tensorflow as tf

    ops, target = _plan(graph, layer, hw)
    in_id = graph.input_ids[0]
    t_op = next(op for op in ops if target.output_ids[0] in op.outputs)
    t_hw = tuple(t_op.out_hw)
    shown = {op.name for op in ops if op.shown}
    INPUT = None  # the key of the model input's map

    if mode == "forward":
        # identity layers carry their input's map: compute and return each map once
        key_of = {in_id: INPUT}
        alias, computed = {}, []
        for op in ops:
            k = key_of[op.inputs[0]] if op.kind == "identity" else op.name
            if op.kind != "identity" and op.listed:
                computed.append(op)
            alias[op.name] = k
            key_of.update({o: k for o in op.outputs})

        @tf.function(input_signature=[tf.TensorSpec((None,) + tuple(hw), tf.float32)],
                     reduce_retracing=True, autograph=False)
        def fn(mask):
            values = _run_ops(tf, ops, in_id, _to_channels(tf, mask))
            return [mask] + [_from_channels(tf, values[op.outputs[0]]) for op in computed]

        order = [INPUT] + [op.name for op in ops if op.listed]
        keys = [INPUT] + [op.name for op in computed]
        field_hw = tuple(hw)
    else:
        # the map of a layer is d <A x, mask> / d (its output); a layer whose output
        # feeds only an identity layer has that layer's map
        uses = {}
        for op in ops:
            for t in op.inputs:
                uses[t] = uses.get(t, 0) + 1
        producer = {o: op.name for op in ops for o in op.outputs}
        producer[in_id] = INPUT
        alias = {op.name: op.name for op in ops}
        alias[INPUT] = INPUT
        for op in reversed(ops):
            if op.kind == "identity" and uses[op.inputs[0]] == 1:
                alias[producer[op.inputs[0]]] = alias[op.name]
        by_name = {op.name: op for op in ops}
        listed = {op.name for op in ops if op.listed} | {INPUT}
        sources = [n for n in [op.name for op in reversed(ops)] + [INPUT]
                   if alias[n] == n and n != t_op.name and n in listed]

        @tf.function(input_signature=[tf.TensorSpec((None,) + t_hw, tf.float32)],
                     reduce_retracing=True, autograph=False)
        def fn(mask):
            n = tf.shape(mask)[0]
            x = tf.ones(tf.concat([[1], list(hw), [n]], 0), tf.float32)
            with tf.GradientTape() as tape:
                tape.watch(x)
                values = _run_ops(tf, ops, in_id, x, distinct=True)
                y = values[target.output_ids[0]]
                score = tf.reduce_sum(y * _to_channels(tf, mask))
            tensors = [x if n is INPUT else values[by_name[n].outputs[0]] for n in sources]
            grads = tape.gradient(score, tensors, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return [mask] + [_from_channels(tf, g) for g in grads]

        order = [t_op.name] + [op.name for op in reversed(ops) if op is not t_op and op.listed] + [INPUT]
        keys = [t_op.name] + sources
        field_hw = t_hw
    entry = {"fn": fn, "order": order, "alias": alias, "keys": keys, "shown": shown,
             "field_hw": field_hw, "ones": None, "target": target.name}
    graph.cache[key] = entry
    return entry


def _input_name(graph):
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
        raise ValueError(f"input_shape must be (H, W) or (H, W, C), got {input_shape!r}") from None
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"input_shape must be (H, W) or (H, W, C), got {input_shape!r}")
    return hw


# ------------------------------------------------------------------- the call
def box_filter(model, layer, crop, mode="forward", input_shape=None, batch_size=256):
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

    Returns:
        :class:`BoxFilterResult`, an ordered ``{layer_name: BoxMaps}`` over
        every spatial layer on the way (layers that keep the geometry, such as
        BatchNorm or 1x1 convolutions, share their neighbour's maps;
        ZeroPadding layers are folded into the next layer's padding); the
        input map is keyed by the model's input layer name, and ``.panels``
        names the layers worth drawing (input, convolutions, pools, merges,
        ``layer``). ``fraction`` is
        the share of each unit's inputs (kernel taps, zero padding counted)
        that come from the crop (forward), or the transposed filter's weight
        of the crop at each position (backward). ``ratio`` is inside /
        (inside + outside) with the complement of the crop; 0 where no input
        is seen at all. 2-D maps for one crop, ``(N, h, w)`` for a list.

    Raises:
        ValueError: unknown or non-spatial layer, a crop outside the image or
            the feature map, or a layer the box filter cannot model.
    """
    if mode not in ("forward", "backward"):
        raise ValueError(f"mode must be 'forward' or 'backward', got {mode!r}")
    graph = walk(model)
    hw = _resolve_hw(graph, input_shape)
    entry = _compiled(graph, layer, mode, hw)
    field_hw = entry["field_hw"]
    where = "the input" if mode == "forward" else f"the feature map of {entry['target']!r}"
    crops, single = _crops(crop)
    crops = [check_crop(c, field_hw, where) for c in crops]
    fn = entry["fn"]

    if entry["ones"] is None:  # A 1 (forward) or A^T 1 (backward): the ratio's denominator
        entry["ones"] = [np.asarray(t) for t in fn(np.ones((1,) + field_hw, np.float32))]
    ones = entry["ones"]

    masks = _masks(crops, field_hw)
    outs = None
    step = max(int(batch_size), 1)
    for start in range(0, len(masks), step):
        part = [np.asarray(t) for t in fn(masks[start:start + step])]
        outs = part if outs is None else [np.concatenate([a, b]) for a, b in zip(outs, part)]

    maps = {k: _maps(frac, one, single) for k, frac, one in zip(entry["keys"], outs, ones)}
    result = BoxFilterResult()
    result.mode, result.layer, result.crop = mode, entry["target"], crop
    result.input_name = _input_name(graph)
    for name in entry["order"]:
        result[result.input_name if name is None else name] = maps[entry["alias"].get(name, name)]
    result.panels = [n for n in result
                     if n == result.input_name or n in entry["shown"]]
    return result


def _maps(frac, ones, single):
    frac = np.clip(np.asarray(frac, np.float32), 0.0, 1.0)
    ones = np.asarray(ones, np.float32)
    # ratio = inside / (inside + outside) = A m / A 1; 0 where nothing is seen
    ratio = np.divide(frac, ones, out=np.zeros_like(frac), where=np.broadcast_to(ones > 0, frac.shape))
    np.minimum(ratio, 1.0, out=ratio)
    if single:
        return BoxMaps(frac[0], ratio[0])
    return BoxMaps(frac, ratio)


# ------------------------------------------------------------------- pictures
def pictures(result, image=None, overlay=False, index=0, columns=None, min_panel=192,
             all_layers=False):
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
    from PIL import Image, ImageDraw

    from .. import render
    from ..media import resize

    names = list(result) if all_layers else list(result.panels)
    input_hw = tuple(result[result.input_name].shape[-2:])
    # panels at the input size, enlarged by a whole factor so titles fit small inputs
    zoom = max(1, int(np.ceil(min_panel / max(min(input_hw), 1))))
    panel_hw = (input_hw[0] * zoom, input_hw[1] * zoom)
    if image is not None:
        image = resize(np.asarray(image), panel_hw)
    if overlay and image is None:
        raise ValueError("overlay needs the input image")
    crops, single = _crops(result.crop)
    crop = crops[0 if single else index]
    boxed = result.input_name if result.mode == "forward" else result.layer
    outputs = []
    for field in ("fraction", "ratio"):
        panels, titles = [], []
        for name in names:
            m = getattr(result[name], field)
            m = np.asarray(m if single else m[index], np.float32)
            top = float(m.max())
            scaled = m / top if top > 0 else m
            if overlay:
                weight = render.upsample(scaled, panel_hw)
                panel = np.clip(image.astype(np.float32) * np.clip(weight, 0, 1)[..., None] + 0.5, 0, 255)
                panel = panel.astype(np.uint8)
            else:
                panel = render.colormap(scaled)
                panel = np.asarray(Image.fromarray(panel).resize((panel_hw[1], panel_hw[0]), Image.NEAREST))
            if name == boxed:
                panel = _outline(panel, crop, m.shape, Image, ImageDraw)
            panels.append(panel)
            titles.append(f"{name} {m.shape[0]}x{m.shape[1]} max {top:.2g}")
        outputs.append(render.grid(panels, titles=titles, columns=columns))
    return tuple(outputs)


def _outline(panel, crop, map_hw, Image, ImageDraw):
    x, y, w, h = crop
    sy, sx = panel.shape[0] / map_hw[0], panel.shape[1] / map_hw[1]
    img = Image.fromarray(np.ascontiguousarray(panel))
    box = [x * sx, y * sy, (x + w) * sx - 1, (y + h) * sy - 1]
    ImageDraw.Draw(img).rectangle(box, outline=(0, 200, 255), width=max(1, panel.shape[0] // 112))
    return np.asarray(img)
