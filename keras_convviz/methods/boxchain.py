"""The box filter's single-channel chain, compiled: the engine under ``methods.boxfilter``.

``build_chain`` reads the geometry of every step that ``layer`` needs (kernel
taps, stride, dilation, true padding from ``fields.layer_geometry``; shapes at
any input size from ``Graph.shapes_at``), turns it into a chain of averaging
box filters, merges and concatenations over one-channel maps, and compiles
it once: forward (A m, every layer's map of an input mask) or backward (A^T m,
by autodiff: the exact adjoint) from a mask on ``layer``'s feature map.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import tensorflow as tf

import keras

from ..fields import RESAMPLING, is_gate_merge, layer_geometry

__all__ = ["build_chain", "Chain", "INPUT"]

# Step kinds shown as panels (besides the chosen layer); identities such as
# BatchNorm / ReLU / 1x1 convs repeat the map before or after them.
_SHOWN_KINDS = ("conv", "maxpool", "avgpool", "merge")
INPUT = None  # the key of the model input's map (the caller names it)


# ------------------------------------------------------------------- the plan
@dataclasses.dataclass(frozen=True)
class _Op:
    """The chain's op for one walked step (layer call)."""

    name: str
    kind: str  # identity | box | merge | concat
    inputs: tuple  # tensor ids
    outputs: tuple
    out_hw: tuple
    kernel: tuple = (1, 1)  # taps (undilated)
    stride: tuple = (1, 1)
    dilation: tuple = (1, 1)
    pads: tuple = ((0, 0), (0, 0))  # (before, after) per dim; negative = crop
    weights: tuple = ()  # merges: per-branch weights
    axis: int = 0  # spatial concat: 1 (rows) or 2 (cols)
    method: str = ""  # resize: the layer's interpolation (the mask is resampled as the map is)
    shown: bool = False
    listed: bool = True  # in the result (ZeroPadding is folded into the next layer)


def _plan(graph, layer, hw):
    """The ops needed for ``layer`` in order, and its step."""
    target = graph.spatial_step(layer)
    shapes = graph.shapes_at(hw)
    have = {graph.input_ids[0]: tuple(hw)}  # tensor id -> (h, w) of its single-channel map
    ops = []
    for i in graph.ancestors([target.name]):
        step = graph.steps[i]
        if shapes.get(step.name) is None:
            raise ValueError(
                f"cannot compute the shape of layer {step.name!r} ({step.type_name}) at input "
                f"size {hw[0]}x{hw[1]}; pick an input size the model accepts."
            )
        ins, out = shapes[step.name]
        step = dataclasses.replace(step, input_shapes=ins, output_shape=out)
        branches = [t for t in step.input_ids if t in have]
        if len(out) != 3 or not branches:
            continue  # a vector branch (e.g. squeeze-excite) or one fed by no map
        if step.kind == "merge":
            if is_gate_merge(step):  # squeeze-excite: the (1, 1) gates carry no map
                branches = [t for t in branches if have[t] != (1, 1)]
            op = _merge_op(step, branches)
        elif step.type_name in RESAMPLING:
            op = _Op(step.name, "resize", (branches[0],), step.output_ids, tuple(out[:2]), shown=True,
                     method=str(getattr(step.layer, "interpolation", "bilinear")))
        else:
            op = _box_op(step, branches[0], have[branches[0]], step.name == target.name)
        ops.append(op)
        have.update({o: op.out_hw for o in step.output_ids})
    if target.output_ids[0] not in have:
        raise ValueError(f"layer {target.name!r} does not depend on the model's first input")
    return ops, target


def _merge_op(step, branches):
    """Add & co. average their branches; Concatenate weights them by channel count."""
    out_hw = tuple(step.output_shape[:2])
    if step.type_name == "Concatenate":
        axis = int(step.layer.axis) % 4
        if axis in (1, 2):
            if len(branches) != len(step.input_ids):
                raise ValueError(f"spatial Concatenate {step.name!r} joins inputs without maps")
            return _Op(step.name, "concat", tuple(branches), step.output_ids, out_hw, axis=axis, shown=True)
        chans = [step.input_shapes[step.input_ids.index(t)][-1] for t in branches]
        weights = tuple(c / float(sum(chans)) for c in chans)
    else:
        weights = tuple(1.0 / len(branches) for _ in branches)
    return _Op(step.name, "merge", tuple(branches), step.output_ids, out_hw, weights=weights, shown=True)


def _box_op(step, branch, in_hw, is_target):
    """A box filter with the layer's taps, stride, dilation and true (before, after) padding."""
    geom = layer_geometry(step)
    if geom is None:
        raise ValueError(
            f"layer {step.name!r} ({step.type_name}) changes the spatial size "
            f"{step.input_shapes[0][:2]} -> {step.output_shape[:2]} in a way the box filter does not "
            f"model (only convolutions, pooling, padding, cropping and merges)."
        )
    k_eff, s, p, d = geom
    out_hw = tuple(step.output_shape[:2])
    taps = tuple((ke - 1) // dd + 1 for ke, dd in zip(k_eff, d))
    pads = tuple((pp, (mm - 1) * ss + ke - nn - pp) for pp, mm, ss, ke, nn in zip(p, out_hw, s, k_eff, in_hw))
    identity = taps == (1, 1) and s == (1, 1) and pads == ((0, 0), (0, 0))
    shown = is_target or step.kind in _SHOWN_KINDS or (step.kind == "other" and not identity)
    return _Op(step.name, "identity" if identity else "box", (branch,), step.output_ids, out_hw,
               kernel=taps, stride=s, dilation=d, pads=pads, shown=shown,
               listed=step.kind != "zeropad" or is_target)


# ------------------------------------------------------------------- TF ops
# Maps travel as (1, h, w, N): the crops of a batch are the channels, which
# is what TF's pooling kernels vectorize over (a single-channel NHWC pool is
# many times slower per crop).
def _pad_or_crop(x, axis, before, after):
    if before < 0 or after < 0:
        start, stop = max(-before, 0), x.shape[axis] - max(-after, 0)
        x = x[:, start:stop] if axis == 1 else x[:, :, start:stop]
        before, after = max(before, 0), max(after, 0)
    if before or after:
        paddings = [[0, 0], [0, 0], [0, 0], [0, 0]]
        paddings[axis] = [before, after]
        x = tf.pad(x, paddings)
    return x


def _box(x, op):
    """Average of each window's taps (zero padding counts), output ``op.out_hw``."""
    for axis in (1, 2):
        x = _pad_or_crop(x, axis, *op.pads[axis - 1])
    k, s, d, m = op.kernel, op.stride, op.dilation, op.out_hw
    if d == (1, 1):
        return tf.nn.avg_pool2d(x, ksize=list(k), strides=list(s), padding="VALID")
    # dilated: the stride-1 dilated average, then every s-th output
    y = tf.nn.pool(x, window_shape=list(k), pooling_type="AVG", padding="VALID", dilations=list(d))
    if s != (1, 1):
        y = y[:, ::s[0], ::s[1]]
    return y[:, :m[0], :m[1]]


def _run_ops(ops, in_id, x, distinct=False):
    """Run the chain; ``distinct``: identities get their own tensor (for per-layer gradients)."""
    values = {in_id: x}
    for op in ops:
        if op.kind == "identity":
            y = tf.identity(values[op.inputs[0]]) if distinct else values[op.inputs[0]]
        elif op.kind == "box":
            y = _box(values[op.inputs[0]], op)
        elif op.kind == "merge":
            y = tf.add_n([w * values[t] for w, t in zip(op.weights, op.inputs)]) if len(op.inputs) > 1 \
                else values[op.inputs[0]]
            y = tf.broadcast_to(y, tf.concat([[1], list(op.out_hw), tf.shape(y)[3:]], 0))
        elif op.kind == "resize":  # the layer's own resampling, applied to the mask
            y = keras.ops.image.resize(values[op.inputs[0]], op.out_hw, interpolation=op.method)
        else:  # spatial concat
            y = tf.concat([values[t] for t in op.inputs], axis=op.axis)
        values.update({o: y for o in op.outputs})
    return values


def _to_channels(masks):
    return tf.transpose(masks, [1, 2, 0])[None]  # (N, h, w) -> (1, h, w, N)


def _from_channels(maps):
    return tf.transpose(maps[0], [2, 0, 1])  # (1, h, w, N) -> (N, h, w)


def _mask_fn(hw, body):
    """``body`` compiled once for masks ``(N, *hw)`` with any ``N``."""
    return tf.function(body, input_signature=[tf.TensorSpec((None,) + tuple(hw), tf.float32)],
                       reduce_retracing=True, autograph=False)


# ------------------------------------------------------------------- compiled
@dataclasses.dataclass(frozen=True)
class Chain:
    """``fn(masks) -> [one map per key]`` for one model / layer / mode / input size."""

    fn: object  # a tf.function
    keys: list  # the layer each output of fn is the map of (INPUT: the input)
    order: list  # every layer of the result, in order
    alias: dict  # layer -> the key whose map it shares
    shown: set  # layers drawn by default
    field_hw: tuple  # the size of the map that holds the crop
    ones: list  # fn(1) = A 1 (forward) or A^T 1 (backward): the ratio's denominator
    target: str


def _forward(ops, in_id, hw, target):
    """A m for every layer; an identity carries its input's map (computed and returned once).

    ``target`` is unused: forward and backward builders share one signature.
    """
    key_of, alias, computed = {in_id: INPUT}, {}, []
    for op in ops:
        key = key_of[op.inputs[0]] if op.kind == "identity" else op.name
        if op.kind != "identity" and op.listed:
            computed.append(op)
        alias[op.name] = key
        key_of.update({o: key for o in op.outputs})

    def fn(mask):
        values = _run_ops(ops, in_id, _to_channels(mask))
        return [mask] + [_from_channels(values[op.outputs[0]]) for op in computed]

    order = [INPUT] + [op.name for op in ops if op.listed]
    return _mask_fn(hw, fn), [INPUT] + [op.name for op in computed], order, alias, tuple(hw)


def _backward(ops, in_id, hw, target):
    """A^T m: a layer's map is d <A x, m> / d (its output); a layer whose output feeds
    only an identity layer has that layer's map."""
    t_op = next(op for op in ops if target.output_ids[0] in op.outputs)
    uses = collections.Counter(t for op in ops for t in op.inputs)
    producer = {o: op.name for op in ops for o in op.outputs}
    producer[in_id] = INPUT
    alias = {op.name: op.name for op in ops}
    alias[INPUT] = INPUT
    for op in reversed(ops):
        if op.kind == "identity" and uses[op.inputs[0]] == 1:
            alias[producer[op.inputs[0]]] = alias[op.name]
    listed = {op.name for op in ops if op.listed} | {INPUT}
    sources = [n for n in [op.name for op in reversed(ops)] + [INPUT]
               if alias[n] == n and n != t_op.name and n in listed]
    outputs = {op.name: op.outputs[0] for op in ops}

    def fn(mask):
        x = tf.ones(tf.concat([[1], list(hw), [tf.shape(mask)[0]]], 0), tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)
            values = _run_ops(ops, in_id, x, distinct=True)
            score = tf.reduce_sum(values[target.output_ids[0]] * _to_channels(mask))
        tensors = [x if n is INPUT else values[outputs[n]] for n in sources]
        grads = tape.gradient(score, tensors, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return [mask] + [_from_channels(g) for g in grads]

    order = [t_op.name] + [op.name for op in reversed(ops) if op is not t_op and op.listed] + [INPUT]
    return _mask_fn(t_op.out_hw, fn), [t_op.name] + sources, order, alias, tuple(t_op.out_hw)


def build_chain(graph, layer, mode, hw) -> Chain:
    """The compiled chain of ``layer`` for ``mode`` at input size ``hw``, with its ``ones``."""
    ops, target = _plan(graph, layer, hw)
    build = _forward if mode == "forward" else _backward
    fn, keys, order, alias, field_hw = build(ops, graph.input_ids[0], hw, target)
    ones = [np.asarray(t) for t in fn(np.ones((1,) + field_hw, np.float32))]  # the ratio's denominator
    return Chain(fn, keys, order, alias, {op.name for op in ops if op.shown}, field_hw, ones, target.name)
