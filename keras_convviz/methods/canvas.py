"""The compiled deconvnet passes below ``methods.deconv`` (Zeiler & Fergus 2014, arXiv:1311.2901).

``projection`` is the deconvnet pass itself: with every ReLU's backward set
to ``g -> relu(g)`` (``probe.run(rule="deconv")``), the projection of the kept
activations ``a * keep`` is ``d/dx sum(stop_gradient(a * keep) * a)``, taken
with ``probe.input_gradient`` on a forward traced under
``probe.fast_conv_gradients`` (the exact fast rule for stride-1 convs).

``masked_projections`` projects given masks of a layer's activations, and
``unit_projections`` projects single activations, each on a crop of the
image around its receptive field (a *canvas*), many canvases in one batch.
The canvas is placed on the effective-stride grid and sized so that every
layer keeps the full image's SAME padding and pool alignment: every value
inside the unit's cone, its max-pool switches included, is then exactly the
full-image value, and so is the projection.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..fields import receptive_fields
from ..probe import compiled, fast_conv_gradients, input_gradient, input_spec, run
from ..request import chunks

__all__ = ["projection", "first_trace_only", "masked_projections", "canvas_geometry", "unit_projections"]


def first_trace_only(fn):
    """Each cached function traces once per model/layer by design; TensorFlow's
    "frequent retracing" heuristic counts them together (same source code), so
    silence it for these functions."""
    if hasattr(fn, "_omit_frequent_tracing_warning"):
        fn._omit_frequent_tracing_warning = True
    return fn


def projection(a, keep, x):
    """The deconvnet pass from ``a * keep`` down to ``x`` (traced TF code)."""
    return input_gradient(tf.reduce_sum(a * tf.stop_gradient(a * keep)), x)


def _masked_fn(graph, name, hw, out_shape):
    """Project ``a * mask`` for a batch of (possibly cropped) inputs of spatial size ``hw``."""

    @tf.function(input_signature=[input_spec(graph, hw), tf.TensorSpec((None,) + out_shape, tf.float32)],
                 autograph=False)
    def masked(x, mask):
        with fast_conv_gradients():
            a = run(graph, x, [name], rule="deconv")[name]
        return projection(a, mask, x)

    return first_trace_only(masked)


def masked_projections(graph, name, x, masks, batch) -> np.ndarray:
    """Projections of ``activations(x) * masks`` of layer ``name``, at most ``batch`` at once."""
    hw, out_shape = tuple(x.shape[1:3]), tuple(masks.shape[1:])
    fn = compiled(graph, ("deconv.masked", name, tuple(x.shape[1:])),
                  lambda: _masked_fn(graph, name, hw, out_shape))
    return np.concatenate([fn(tf.constant(x[a:b]), tf.constant(masks[a:b])).numpy()
                           for a, b in chunks(x.shape[0], batch)])


def _output_shape_at(graph, name, hw):
    """``name``'s output shape for inputs of spatial size ``hw`` (None where it cannot run)."""
    shapes = graph.shapes_at(hw).get(name)
    return None if shapes is None else shapes[1]


def canvas_geometry(graph, name) -> tuple:
    """Per spatial dim ``(size, stride)`` of the crop for single units of ``name``.

    ``stride`` is the layer's effective stride J: canvases start on multiples
    of J. ``size`` is at least RF + J - 1 (so a J-aligned crop covers any
    unit's window) and congruent to the image size modulo J (so every layer
    keeps the full image's SAME padding). The full image (stride 1) where no
    such crop is safe.
    """
    key = ("deconv.canvas", name)
    if key in graph.cache:
        return graph.cache[key]
    result = tuple((graph.input_shape[d], 1) for d in range(2))
    try:
        fields = receptive_fields(graph)
        rf = fields[name]
        ok = _strides_consistent(graph, fields, name)
    except (ValueError, KeyError):
        ok = False
    if ok:
        dims = []
        for d in range(2):
            n, size, jump = graph.input_shape[d], rf.size[d], rf.stride[d]
            base = size + jump - 1
            dims.append((n if base >= n else base + (n - base) % jump, jump))
        hw = tuple(d[0] for d in dims)
        if hw == tuple(graph.input_shape[:2]) or _output_shape_at(graph, name, hw) is not None:
            result = tuple(dims)
    graph.cache[key] = result
    return result


def _strides_consistent(graph, fields, name):
    """Every path from the input to ``name`` has the same total stride (crops stay aligned),
    and no value depends on pixels outside its field (squeeze-excite gates, resampling)."""
    for index in graph.ancestors([name]):
        info = fields.get(graph.steps[index].name)
        if info is not None and ("strides differ" in info.note or not info.local or "resampling" in info.note):
            return False
    return True


def _origins(graph, name, units, canvas):
    """Top-left corner of each unit's canvas: J-aligned, inside the image."""
    (ch, jy), (cw, jx) = canvas
    height, width = graph.input_shape[:2]
    if (ch, cw) == (height, width):
        return np.zeros((units.shape[0], 2), np.int64)
    rf = receptive_fields(graph)[name]
    y0 = np.maximum(units[:, 1] * rf.stride[0] - rf.padding[0], 0)
    x0 = np.maximum(units[:, 2] * rf.stride[1] - rf.padding[1], 0)
    return np.stack([np.minimum(y0 // jy * jy, height - ch), np.minimum(x0 // jx * jx, width - cw)], 1)


def unit_projections(graph, step, x, units, batch, progress=False) -> np.ndarray:
    """Projections ``(U, H, W, C)`` of single activations ``(image, y, x, channel)`` of ``step``.

    ``progress``: a bar over the units (:mod:`keras_convviz.progress`)."""
    from ..progress import tracker

    name = step.name
    height, width = graph.input_shape[:2]
    canvas = canvas_geometry(graph, name)
    (ch, jy), (cw, jx) = canvas
    origins = _origins(graph, name, units, canvas)
    out_shape = step.output_shape if (ch, cw) == (height, width) else _output_shape_at(graph, name, (ch, cw))
    # memory: about ``batch`` full images' worth of canvases at once
    chunk = max(1, int(batch * (height * width) // (ch * cw)))
    out = np.zeros((units.shape[0],) + x.shape[1:], np.float32)
    bar = tracker(progress, units.shape[0], "projection")
    for start in range(0, units.shape[0], chunk):
        bar.update(start)
        rows = units[start:start + chunk]
        org = origins[start:start + chunk]
        canvases = np.stack([x[r[0], o[0]:o[0] + ch, o[1]:o[1] + cw] for r, o in zip(rows, org)])
        masks = np.zeros((len(rows),) + tuple(out_shape), np.float32)
        masks[np.arange(len(rows)), rows[:, 1] - org[:, 0] // jy, rows[:, 2] - org[:, 1] // jx, rows[:, 3]] = 1.0
        grads = masked_projections(graph, name, canvases, masks, len(rows))
        for i, (o, g) in enumerate(zip(org, grads)):
            out[start + i, o[0]:o[0] + ch, o[1]:o[1] + cw] = g
    bar.update(units.shape[0])
    bar.close()
    return out
