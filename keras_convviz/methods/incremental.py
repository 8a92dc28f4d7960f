"""Incremental occlusion: recompute only what an occluder changes.

An occluder only changes the activations inside its own footprint, which
grows layer by layer with the kernels and strides. For models whose first
layers form a plain chain of convolutions, poolings, zero paddings and
pointwise layers (VGG-style networks, the demo model), each layer of that
chain is recomputed on the affected window only and spliced into the
activations of the unoccluded image; the rest of the network then runs from
the spliced activations (``probe.run(given=...)``). This is the incremental
inference of Krypton ("Incremental and Approximate Inference for Faster
Occlusion-based Deep CNN Explanations", Nakandala et al. 2019), applied to
the occlusion maps of Zeiler & Fergus 2014 (arXiv:1311.2901, fig. 7). The
result equals the full forward pass up to float rounding.

``engine(graph, layer, score, patch, origins)`` returns an :class:`Engine`
(or None when the model has no such chain); its ``prepare`` and ``occlude``
are traceable and meant to be compiled by the caller
(``methods.occlusion``).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from ..fields import layer_geometry
from ..probe import call_layer, run

__all__ = ["engine", "Engine", "WindowedLayer", "paint", "STOP_FRACTION"]

STOP_FRACTION = 0.5  # recompute a layer fully once the window covers this much of it


@dataclasses.dataclass(frozen=True, eq=False)
class WindowedLayer:
    """One layer of the chain recomputed on a window, all pairs ``(height, width)``.

    ``op`` is conv | depthwise | maxpool | avgpool | zeropad. ``kernel``,
    ``stride`` and ``pad`` (before) are the layer's geometry; ``size`` is the
    output window recomputed for every occluder and ``starts`` its first
    row / column per grid row / column. ``in_size`` is the input window it
    reads, ``pad_after`` the padding the cached input needs past the map's
    end, ``pad_value`` the padding value (``-inf`` for max pooling) and
    ``input_name`` the step whose output feeds it (None: the model input).
    """

    step: object
    op: str
    kernel: tuple
    stride: tuple
    pad: tuple
    size: tuple
    starts: tuple
    in_size: tuple
    pad_after: tuple
    pad_value: float
    input_name: Optional[str]


class Engine:
    """The windowed chain at the start of a model, for one layer, score and occluder grid.

    ``chain`` lists ``(step, WindowedLayer or None)`` in order; None marks a
    pointwise step, which runs unchanged on the window.
    """

    def __init__(self, graph, chain, end_name, layer, score, patch, origins):
        self.graph, self.chain, self.end_name = graph, chain, end_name
        self.layer, self.score, self.patch = layer, score, patch
        self.windowed_layers = [w for _, w in chain if w is not None]
        self.layer_in_chain = any(step.name == layer for step, _ in chain)
        h, w, _ = graph.input_shape
        self.origins = tuple(o.astype(np.int32) for o in origins)
        # the input window of each occluder: its patch, moved inside the image
        self.window_origins = (np.minimum(origins[0], h - patch[0]).astype(np.int32),
                               np.minimum(origins[1], w - patch[1]).astype(np.int32))

    def cached_names(self) -> list:
        """The steps whose full outputs the unoccluded pass keeps."""
        names = [w.input_name for w in self.windowed_layers if w.input_name is not None]
        names.append(self.end_name)
        if self.layer_in_chain:
            names.append(self.layer)
        return list(dict.fromkeys(names))

    def cache_spec(self) -> tuple:
        """The ``tf.TensorSpec`` of each entry of the cache ``prepare`` returns."""
        graph = self.graph
        specs = [tf.TensorSpec((None,) + tuple(graph.input_shape), tf.float32)]
        for w in self.windowed_layers:
            shape = w.step.input_shapes[0]
            padded = tuple(shape[i] + w.pad[i] + w.pad_after[i] for i in range(2))
            specs.append(tf.TensorSpec((None,) + padded + (shape[2],), tf.float32))
        specs.append(tf.TensorSpec((None,) + tuple(graph.step(self.end_name).output_shape), tf.float32))
        layer_shape = graph.step(self.layer).output_shape if self.layer_in_chain else (1, 1, 1)
        specs.append(tf.TensorSpec((None,) + tuple(layer_shape), tf.float32))
        return tuple(specs)

    def prepare(self, x):
        """The unoccluded pass (traceable): ``(cache, outputs)``.

        ``cache`` holds the inputs, each windowed layer's padded input, the
        chain's output and the layer's output (a placeholder when the layer is
        past the chain); ``outputs`` maps the score step to its logits and the
        layer to its activations.
        """
        out = run(self.graph, x, self.cached_names() + [self.layer], linear=[self.score])
        cache = [x]
        for w in self.windowed_layers:
            source = x if w.input_name is None else out[w.input_name]
            paddings = [[0, 0], [w.pad[0], w.pad_after[0]], [w.pad[1], w.pad_after[1]], [0, 0]]
            cache.append(tf.pad(source, paddings, constant_values=w.pad_value))
        cache.append(out[self.end_name])
        cache.append(out[self.layer] if self.layer_in_chain else tf.zeros([tf.shape(x)[0], 1, 1, 1]))
        return tuple(cache), out

    def occlude(self, cache, fill, img, iy, ix, maps):
        """Occluded passes (traceable): ``(scores, activation)``.

        Occluder ``b`` covers image ``img[b]`` at grid cell ``(iy[b], ix[b])``
        with the colour ``fill[img[b]]``; ``scores`` are the pre-activation
        class scores and ``activation`` the summed activation of map
        ``maps[b]`` of the layer.
        """
        win, top, left = self._occluded_input(cache[0], fill, img, iy, ix)
        win, top, left, layer_window = self._through_chain(cache, img, iy, ix, win, top, left)
        full = _paste(tf.gather(cache[-2], img), win, -top, -left)
        wanted = [] if self.layer_in_chain else [self.layer]
        out = run(self.graph, None, wanted, linear=[self.score], given={self.end_name: full})
        if layer_window is None:
            act = tf.gather(out[self.layer], maps, axis=3, batch_dims=1)
        else:
            one = tf.gather(layer_window[0], maps, axis=3, batch_dims=1)[..., None]
            ref = tf.gather(tf.gather(cache[-1], img), maps, axis=3, batch_dims=1)[..., None]
            act = _paste(ref, one, -layer_window[1], -layer_window[2])[..., 0]
        return out[self.score], tf.reduce_sum(act, axis=[1, 2])

    def _occluded_input(self, image, fill, img, iy, ix):
        """The occluder's input window, painted, and its top-left corner in the image."""
        top, left = tf.gather(self.window_origins[0], iy), tf.gather(self.window_origins[1], ix)
        win = _crop(image, img, top, left, self.patch[0], self.patch[1])
        oy, ox = tf.gather(self.origins[0], iy), tf.gather(self.origins[1], ix)
        return paint(win, tf.gather(fill, img), oy, ox, self.patch, top, left), top, left

    def _through_chain(self, cache, img, iy, ix, win, top, left):
        """Run the window down the chain; also the layer's window when it is in the chain."""
        layer_window = None
        padded_inputs = iter(cache[1:])
        for step, windowed in self.chain:
            if windowed is None:
                win = call_layer(step, (win,), {})
            else:
                win, top, left = _recompute(windowed, next(padded_inputs), img, iy, ix, win, top, left)
            if step.name == self.layer:
                layer_window = (win, top, left)
        return win, top, left, layer_window


def _recompute(windowed, padded, img, iy, ix, win, top, left):
    """One windowed layer: its input window (cached map + the changed window), run VALID."""
    w = windowed
    sy, sx = tf.gather(w.starts[0], iy), tf.gather(w.starts[1], ix)
    # input rows of the output window, in unpadded coordinates
    y0, x0 = sy * w.stride[0] - w.pad[0], sx * w.stride[1] - w.pad[1]
    base = _crop(padded, img, y0 + w.pad[0], x0 + w.pad[1], w.in_size[0], w.in_size[1])
    return _apply(w, _paste(base, win, y0 - top, x0 - left)), sy, sx


# ---------------------------------------------------------------- window tensors
def paint(images, colors, oy, ox, patch, top=0, left=0):
    """``images`` ``(B, h, w, C)`` with the occluder at ``(oy, ox)`` painted ``colors`` ``(B, C)``.

    Pixel ``(0, 0)`` of ``images[b]`` is pixel ``(top[b], left[b])`` of the
    full image (traceable).
    """
    rows = tf.reshape(top, [-1, 1]) + tf.range(images.shape[1], dtype=tf.int32)[None, :]
    cols = tf.reshape(left, [-1, 1]) + tf.range(images.shape[2], dtype=tf.int32)[None, :]
    in_rows = (rows >= oy[:, None]) & (rows < oy[:, None] + patch[0])
    in_cols = (cols >= ox[:, None]) & (cols < ox[:, None] + patch[1])
    mask = in_rows[:, :, None, None] & in_cols[:, None, :, None]
    return tf.where(mask, colors[:, None, None, :], images)


def _crop(t, img, y0, x0, hh, ww):
    """``t[img[b], y0[b]:y0[b]+hh, x0[b]:x0[b]+ww]`` for every b (all in range)."""
    rows = y0[:, None] + tf.range(hh)[None, :]
    cols = x0[:, None] + tf.range(ww)[None, :]
    b = tf.shape(img)[0]
    idx = tf.stack([
        tf.broadcast_to(img[:, None, None], [b, hh, ww]),
        tf.broadcast_to(rows[:, :, None], [b, hh, ww]),
        tf.broadcast_to(cols[:, None, :], [b, hh, ww]),
    ], axis=-1)
    return tf.gather_nd(t, idx)


def _paste(base, win, dy, dx):
    """``base`` with ``win`` written at offset ``-(dy, dx)``: base[b, i, j] takes
    ``win[b, i + dy, j + dx]`` where that index lies inside ``win``."""
    hh, ww = base.shape[1], base.shape[2]
    mh, mw = win.shape[1], win.shape[2]
    ri = tf.range(hh)[None, :] + dy[:, None]
    ci = tf.range(ww)[None, :] + dx[:, None]
    rin = (ri >= 0) & (ri < mh)
    cin = (ci >= 0) & (ci < mw)
    picked = tf.gather(win, tf.clip_by_value(ri, 0, mh - 1), axis=1, batch_dims=1)
    picked = tf.gather(picked, tf.clip_by_value(ci, 0, mw - 1), axis=2, batch_dims=1)
    return tf.where(rin[:, :, None, None] & cin[:, None, :, None], picked, base)


def _apply(windowed, x):
    """Run a windowed layer with VALID padding (its padding is in the cached input)."""
    layer = windowed.step.layer
    if windowed.op == "zeropad":
        return x
    if windowed.op in ("maxpool", "avgpool"):
        pool = tf.nn.max_pool2d if windowed.op == "maxpool" else tf.nn.avg_pool2d
        return pool(x, ksize=layer.pool_size, strides=layer.strides, padding="VALID")
    conv = keras.ops.conv if windowed.op == "conv" else keras.ops.depthwise_conv
    y = conv(x, layer.kernel, strides=layer.strides, padding="valid", dilation_rate=layer.dilation_rate)
    if layer.use_bias:
        y = y + layer.bias
    if layer.activation is not None:
        y = layer.activation(y)
    return y


# ---------------------------------------------------------------- building the chain
def _window_op(step) -> Optional[str]:
    """How a step runs on a window: its kind, or None when it cannot.

    Grouped and separable convolutions are left out, and so is SAME average
    pooling: it divides by the in-image count, which a pre-padded window
    would change.
    """
    if step.kind == "conv":
        if step.type_name == "DepthwiseConv2D":
            return "depthwise"
        plain = step.type_name == "Conv2D" and getattr(step.layer, "groups", 1) == 1
        return "conv" if plain else None
    if step.kind == "avgpool":
        return "avgpool" if step.layer.padding == "valid" else None
    return step.kind if step.kind in ("maxpool", "zeropad") else None


def engine(graph, layer, score, patch, origins) -> Optional[Engine]:
    """The incremental engine for this model and occluder grid, or None when it cannot help.

    ``origins`` are the occluders' top-left rows and columns
    (``occlusion.grid_origins``). Cached on the graph.
    """
    key = ("occlusion-engine", layer, score, patch, tuple(map(tuple, origins)))
    if key not in graph.cache:
        graph.cache[key] = _build(graph, layer, score, patch, origins) if len(graph.input_ids) == 1 else None
    return graph.cache[key]


def _affected(a0, a1, n_out, k, s, p):
    """Output interval whose windows overlap input rows ``[a0, a1)`` (per position arrays)."""
    o0 = np.maximum(0, -((-(a0 + p - k + 1)) // s))  # ceil
    o1 = np.minimum(n_out, (a1 - 1 + p) // s + 1)
    return o0, o1


def _windowed(step, op, affected, input_name):
    """``(WindowedLayer, affected output intervals)``, or None once the window is most of the map."""
    try:
        kernel, stride, pad, _ = layer_geometry(step)
    except ValueError:  # channels_first
        return None
    n_in, n_out = step.input_shapes[0][:2], step.output_shape[:2]
    out_affected, size, starts, pad_after, in_size = [], [], [], [], []
    for ax in range(2):
        k, s, p = kernel[ax], stride[ax], pad[ax]
        o0, o1 = _affected(affected[ax][0], affected[ax][1], n_out[ax], k, s, p)
        m = int(max(1, (o1 - o0).max()))
        start = np.minimum(o0, n_out[ax] - m)
        need = (m - 1) * s + k
        end = (start * s - p + need).max()
        out_affected.append((o0, o1))
        size.append(m)
        starts.append(start.astype(np.int32))
        in_size.append(need)
        pad_after.append(int(max(0, end - n_in[ax])))
    if size[0] * size[1] >= STOP_FRACTION * n_out[0] * n_out[1]:
        return None
    pad_value = -np.inf if op == "maxpool" else 0.0
    return WindowedLayer(step, op, kernel, stride, pad, tuple(size), tuple(starts), tuple(in_size),
                         tuple(pad_after), pad_value, input_name), out_affected


def _build(graph, layer, score, patch, origins):
    """Follow the single-consumer chain from the input while its layers run on windows."""
    consumers = {}
    for step in graph.steps:
        for tid in step.input_ids:
            consumers.setdefault(tid, []).append(step)
    h, w, _ = graph.input_shape
    tensor, name = graph.input_ids[0], None
    affected = [(origins[0], np.minimum(origins[0] + patch[0], h)),
                (origins[1], np.minimum(origins[1] + patch[1], w))]
    chain = []
    while len(consumers.get(tensor, [])) == 1:
        step = consumers[tensor][0]
        if len(step.input_ids) != 1 or step.name == score or not step.is_spatial:
            break
        if step.is_pointwise:
            chain.append((step, None))
        else:
            op = _window_op(step)
            found = _windowed(step, op, affected, name) if op is not None else None
            if found is None:
                break
            chain.append((step, found[0]))
            affected = found[1]
        tensor, name = step.output_ids[0], step.name
    if all(w is None for _, w in chain):
        return None
    return Engine(graph, chain, name, layer, score, patch, origins)
