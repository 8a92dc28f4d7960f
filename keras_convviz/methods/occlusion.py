"""Occlusion sensitivity (Zeiler & Fergus 2014, fig. 7).

A square of ``fill`` slides over the image on a regular grid; for every
position we record the softmax probability of the target class, the most
probable class, and the total activation, in a chosen layer, of the feature
map that is strongest in the unoccluded image.

Every occluded forward pass is batched under ``batch_size`` and runs through
one compiled function that builds the occluded inputs in the graph (no copies
of the image on the host) and returns probabilities, top class and map sums
from a single forward pass.

For models whose first layers form a plain chain of convolutions, poolings
and pointwise layers (VGG-style networks, the demo model), those layers are
computed *incrementally*: an occluder only changes the activations inside its
own growing footprint, so each layer is recomputed on that window only and
spliced into the activations of the unoccluded image (Krypton-style
incremental inference, Nakandala et al. 2019). The result is the same as the
full forward pass up to float rounding; ``incremental=False`` forces the
plain path.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np
import tensorflow as tf

from ..checks import resolve_targets
from ..graph import Values, walk
from ..probe import call_layer, compiled, run
from ..request import as_batch
from ..select import score_step

__all__ = ["occlusion", "Occlusion", "grid_origins", "figure"]


@dataclasses.dataclass
class Occlusion:
    """Occlusion maps, one value per occluder position, each ``(N, gh, gw)``.

    ``probability``: softmax probability of the target class; ``top_class``:
    the most probable class; ``activation``: summed activation in ``layer`` of
    map ``map_index[n]``, the map with the largest activation in the
    unoccluded image ``n``. ``base_*`` hold the unoccluded values. Cell
    ``(i, j)`` is the occluder with top-left corner ``(origins_y[i],
    origins_x[j])``; :meth:`window` gives its pixels.
    """

    probability: np.ndarray
    top_class: np.ndarray
    activation: np.ndarray
    target: np.ndarray
    layer: str
    map_index: np.ndarray
    base_probability: np.ndarray
    base_class: np.ndarray
    base_activation: np.ndarray
    patch: tuple
    stride: tuple
    origins_y: np.ndarray
    origins_x: np.ndarray
    image_size: tuple
    fill: np.ndarray

    @property
    def grid_shape(self):
        return self.probability.shape[1:]

    def window(self, i, j):
        """Pixels ``(y0, y1, x0, x1)`` (end exclusive, clipped) covered by cell ``(i, j)``."""
        y0, x0 = int(self.origins_y[i]), int(self.origins_x[j])
        return (y0, min(y0 + self.patch[0], self.image_size[0]),
                x0, min(x0 + self.patch[1], self.image_size[1]))

    def upsampled(self, name="probability"):
        """A map as ``(N, H, W)``: each pixel takes the mean over the occluders covering it."""
        m = np.asarray(getattr(self, name), np.float64)
        n = m.shape[0]
        h, w = self.image_size
        total = np.zeros((n, h, w))
        hits = np.zeros((h, w))
        for i, y0 in enumerate(self.origins_y):
            for j, x0 in enumerate(self.origins_x):
                y1, x1 = y0 + self.patch[0], x0 + self.patch[1]
                total[:, y0:y1, x0:x1] += m[:, i, j, None, None]
                hits[y0:y1, x0:x1] += 1
        return total / np.maximum(hits, 1)


# ---------------------------------------------------------------- arguments
def _pair(value, what):
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, numbers.Integral):
        pair = (int(value), int(value))
    else:
        try:
            pair = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            pair = ()
        if len(pair) != 2 or any(float(a) != float(b) for a, b in zip(pair, value)):
            raise ValueError(f"{what} must be an int or a pair of ints (height, width), got {value!r}")
    return pair


def grid_origins(size, patch, stride):
    """Top-left corners along one axis: ``0, stride, ...`` until a patch reaches the edge.

    The last occluder may hang over the edge (it is clipped), so the grid
    always covers the whole image: ``1 + ceil((size - patch) / stride)`` cells.
    """
    count = 1 + max(0, math.ceil((size - patch) / stride))
    return np.arange(count, dtype=np.int64) * stride


def _check_geometry(patch, stride, image_size):
    patch = _pair(patch, "patch")
    stride = _pair(stride, "stride")
    if min(stride) <= 0:
        raise ValueError(f"stride must be >= 1, got {stride if stride[0] != stride[1] else stride[0]}; "
                         f"use stride = patch for non-overlapping occluders or smaller to overlap them.")
    if min(patch) <= 0:
        raise ValueError(f"patch must be >= 1 pixel, got {patch if patch[0] != patch[1] else patch[0]}.")
    h, w = image_size
    if patch[0] > h or patch[1] > w:
        raise ValueError(f"patch {patch[0]}x{patch[1]} is larger than the {h}x{w} image; "
                         f"use a patch of at most {min(h, w)} pixels.")
    return patch, stride


def _fill_values(fill, x):
    """Per-image fill colour ``(N, C)`` in model-input space."""
    n, c = x.shape[0], x.shape[-1]
    if fill is None or (isinstance(fill, str) and fill == "mean"):
        return x.reshape(n, -1, c).mean(axis=1).astype(np.float32)  # the mean pixel of each image
    arr = np.asarray(fill, np.float32)
    if arr.ndim == 0:
        arr = np.full((n, c), float(arr), np.float32)
    elif arr.shape == (c,):
        arr = np.broadcast_to(arr, (n, c)).copy()
    elif arr.shape != (n, c):
        raise ValueError(f"fill must be None (the mean pixel), a number, {c} channel values or "
                         f"an (N, {c}) array; got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError("fill contains NaN or Inf")
    return arr


def _default_layer(graph):
    ends = graph.block_ends()
    if not ends:
        spatial = [s.name for s in graph.steps if s.is_spatial]
        if not spatial:
            raise ValueError(f"model {graph.model.name!r} has no spatial layer for the activation map.")
        return spatial[-1]
    return ends[-1]


def _probabilities(logits, kind):
    """Class probabilities from the class scores, as the model's head defines them."""
    if logits.shape[-1] == 1:
        p = tf.sigmoid(logits)
        return tf.concat([1.0 - p, p], axis=-1)
    if kind == "sigmoid":
        return tf.sigmoid(logits)
    return tf.nn.softmax(logits, axis=-1)


# ---------------------------------------------------------------- the plain path
def _occluded(x, fill, img, oy, ox, patch):
    """Gather images ``img`` and paint the ``patch`` at ``(oy, ox)`` with their fill (traceable)."""
    h, w = x.shape[1], x.shape[2]
    xs = tf.gather(x, img)
    rows = tf.range(h, dtype=tf.int32)[None, :]
    cols = tf.range(w, dtype=tf.int32)[None, :]
    in_rows = (rows >= oy[:, None]) & (rows < oy[:, None] + patch[0])
    in_cols = (cols >= ox[:, None]) & (cols < ox[:, None] + patch[1])
    mask = in_rows[:, :, None, None] & in_cols[:, None, :, None]
    return tf.where(mask, tf.gather(fill, img)[:, None, None, :], xs)


def _heads(graph, logits, act, kind):
    probs = _probabilities(logits, kind)
    return probs, tf.argmax(probs, axis=-1, output_type=tf.int32), tf.reduce_sum(act, axis=[1, 2])


def _plain_fn(graph, layer, score, kind, patch):
    h, w, c = graph.input_shape
    specs = [
        tf.TensorSpec((None, h, w, c), tf.float32),
        tf.TensorSpec((None, c), tf.float32),
        tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((None,), tf.int32),
    ]

    @tf.function(input_signature=specs, reduce_retracing=True)
    def step(x, fill, img, oy, ox):
        xo = _occluded(x, fill, img, oy, ox, patch)
        out = run(graph, xo, [layer], linear=[score])
        probs, top, sums = _heads(graph, out[score], out[layer], kind)
        return probs, top, sums, tf.reduce_max(out[layer], axis=[1, 2])

    return step


# ---------------------------------------------------------------- the incremental path
# Pointwise layers: same shape in and out, each output pixel depends on the
# same input pixel only; they run unchanged on a window.
_POINTWISE = ("BatchNormalization", "ReLU", "Activation", "Dropout", "SpatialDropout2D",
              "GaussianNoise", "GaussianDropout", "AlphaDropout", "LeakyReLU", "ELU",
              "Rescaling", "Normalization", "Identity")
_STOP_FRACTION = 0.5  # recompute a layer fully once the window covers this much of it


def _affected(a0, a1, n_out, k, s, p):
    """Output interval whose windows overlap input rows ``[a0, a1)`` (per position arrays)."""
    o0 = np.maximum(0, -((-(a0 + p - k + 1)) // s))  # ceil
    o1 = np.minimum(n_out, (a1 - 1 + p) // s + 1)
    return o0, o1


@dataclasses.dataclass
class _Geo:
    """One windowed layer of the chain, both axes."""

    step: object
    op: str  # conv | depthwise | maxpool | avgpool | pad
    k: tuple
    s: tuple
    p: tuple
    m: tuple  # output window size
    starts: tuple  # (gh,) and (gw,) output window starts
    in_size: tuple  # input window size
    pad_hi: tuple
    pad_value: float
    input_name: str  # step producing this layer's input (None: the model input)


class _Engine:
    """The chain of windowed layers at the start of a model and its compiled functions."""

    def __init__(self, graph, chain, geos, end_name, layer, patch, origins):
        self.graph, self.chain, self.geos = graph, chain, geos
        self.end_name = end_name
        self.layer = layer
        self.patch = patch
        self.origins = origins
        self.layer_in_chain = any(st.name == layer for st, _ in chain)
        self._prepare = self._occlude = None

    # which full maps the unoccluded pass keeps
    def _cached_names(self):
        names = [g.input_name for g in self.geos if g.input_name is not None]
        names.append(self.end_name)
        if self.layer_in_chain:
            names.append(self.layer)
        return list(dict.fromkeys(names))

    def prepare_fn(self, score, kind):
        if self._prepare is not None:
            return self._prepare
        graph = self.graph
        h, w, c = graph.input_shape
        names = self._cached_names()
        geos = self.geos
        layer = self.layer

        @tf.function(input_signature=[tf.TensorSpec((None, h, w, c), tf.float32)], reduce_retracing=True)
        def prepare(x):
            out = run(graph, x, names + [layer], linear=[score])
            cache = [x]
            for g in geos:
                src = x if g.input_name is None else out[g.input_name]
                cache.append(tf.pad(src, [[0, 0], [g.p[0], g.pad_hi[0]], [g.p[1], g.pad_hi[1]], [0, 0]],
                                    constant_values=g.pad_value))
            cache.append(out[self.end_name])
            cache.append(out[layer] if self.layer_in_chain else tf.zeros([tf.shape(x)[0], 1, 1, 1]))
            probs, top, sums = _heads(graph, out[score], out[layer], kind)
            return tuple(cache), probs, top, sums, tf.reduce_max(out[layer], axis=[1, 2])

        self._prepare = prepare
        return prepare

    def occlude_fn(self, score, kind):
        if self._occlude is not None:
            return self._occlude
        graph, geos, chain = self.graph, self.geos, self.chain
        h, w, c = graph.input_shape
        ph, pw = self.patch
        oys, oxs = (tf.constant(o.astype(np.int32)) for o in self.origins)
        w0y = tf.constant(np.minimum(self.origins[0], h - ph).astype(np.int32))
        w0x = tf.constant(np.minimum(self.origins[1], w - pw).astype(np.int32))
        geo_of = {id(g.step): g for g in geos}
        starts = {id(g.step): tuple(tf.constant(s.astype(np.int32)) for s in g.starts) for g in geos}
        specs = [tf.TensorSpec((None, h, w, c), tf.float32)]
        specs += [tf.TensorSpec((None,) + tuple(g.step.input_shapes[0][i] + g.p[i] + g.pad_hi[i]
                                                for i in range(2)) + (g.step.input_shapes[0][2],), tf.float32)
                  for g in geos]
        end_step = graph.step(self.end_name)
        specs.append(tf.TensorSpec((None,) + tuple(end_step.output_shape), tf.float32))
        lshape = graph.step(self.layer).output_shape if self.layer_in_chain else (1, 1, 1)
        specs.append(tf.TensorSpec((None,) + tuple(lshape), tf.float32))
        layer = self.layer
        suffix = [graph.steps[i] for i in graph.ancestors([score] + ([] if self.layer_in_chain else [layer]))]
        chain_ids = {id(st) for st, _ in chain}
        suffix = [st for st in suffix if id(st) not in chain_ids]

        @tf.function(input_signature=[tuple(specs), tf.TensorSpec((None, c), tf.float32)] +
                     [tf.TensorSpec((None,), tf.int32)] * 4, reduce_retracing=True)
        def occlude(cache, fill, img, iy, ix, maps):
            # the occluder window on the input: image pixels, painted where the patch is
            ry, rx = tf.gather(w0y, iy), tf.gather(w0x, ix)
            oy, ox = tf.gather(oys, iy), tf.gather(oxs, ix)
            win = _crop(cache[0], img, ry, rx, ph, pw)
            rows = ry[:, None] + tf.range(ph)[None, :]
            cols = rx[:, None] + tf.range(pw)[None, :]
            inside = ((rows >= oy[:, None]) & (rows < oy[:, None] + ph))[:, :, None, None] & \
                     ((cols >= ox[:, None]) & (cols < ox[:, None] + pw))[:, None, :, None]
            win = tf.where(inside, tf.gather(fill, img)[:, None, None, :], win)
            r0y, r0x = ry, rx  # where the recomputed window sits in the current tensor
            layer_win = None
            gi = 1
            for st, what in chain:
                if what == "geo":
                    g = geo_of[id(st)]
                    sy, sx = (tf.gather(s, i) for s, i in zip(starts[id(st)], (iy, ix)))
                    # input rows of the output window, in unpadded coordinates
                    iy0, ix0 = sy * g.s[0] - g.p[0], sx * g.s[1] - g.p[1]
                    base = _crop(cache[gi], img, iy0 + g.p[0], ix0 + g.p[1], g.in_size[0], g.in_size[1])
                    win = _paste(base, win, iy0 - r0y, ix0 - r0x)
                    win = _apply(g, win)
                    r0y, r0x = sy, sx
                    gi += 1
                else:
                    win = call_layer(st, (win,), {})
                if st.name == layer:
                    layer_win = (win, r0y, r0x)
            # the full tensor at the end of the chain, then the rest of the model
            full = _paste(tf.gather(cache[-2], img), win, -r0y, -r0x)
            values = Values(graph.aliases)
            dict.__setitem__(values, end_step.output_ids[0], full)
            found = {}
            for st in suffix:
                args, kwargs = st.node.arguments.fill_in(values)
                if st.name == score:
                    found[score] = call_layer(st, args, kwargs, linear=True)
                    continue
                y = call_layer(st, args, kwargs)
                ys = y if isinstance(y, (list, tuple)) else [y]
                for oid, v in zip(st.output_ids, ys):
                    dict.__setitem__(values, oid, v)
                found.setdefault(st.name, ys[0])
            probs = _probabilities(found[score], kind)
            top = tf.argmax(probs, axis=-1, output_type=tf.int32)
            if layer_win is None:
                act = tf.gather(found[layer], maps, axis=3, batch_dims=1)
            else:
                lw, ly, lx = layer_win
                one = tf.gather(lw, maps, axis=3, batch_dims=1)[..., None]
                ref = tf.gather(tf.gather(cache[-1], img), maps, axis=3, batch_dims=1)[..., None]
                act = _paste(ref, one, -ly, -lx)[..., 0]
            return probs, top, tf.reduce_sum(act, axis=[1, 2])

        self._occlude = occlude
        return occlude


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


def _apply(g, x):
    """Run a windowed layer with VALID padding (its padding is in the cached input)."""
    import keras

    layer = g.step.layer
    if g.op == "pad":
        return x
    if g.op in ("maxpool", "avgpool"):
        pool = tf.nn.max_pool2d if g.op == "maxpool" else tf.nn.avg_pool2d
        return pool(x, ksize=layer.pool_size, strides=layer.strides, padding="VALID")
    if g.op == "conv":
        y = keras.ops.conv(x, layer.kernel, strides=layer.strides, padding="valid",
                           dilation_rate=layer.dilation_rate)
    else:
        y = keras.ops.depthwise_conv(x, layer.kernel, strides=layer.strides, padding="valid",
                                     dilation_rate=layer.dilation_rate)
    if layer.use_bias:
        y = y + layer.bias
    if layer.activation is not None:
        y = layer.activation(y)
    return y


def _geo_op(step):
    name, layer = step.type_name, step.layer
    if name == "Conv2D" and getattr(layer, "groups", 1) == 1:
        return "conv"
    if name == "DepthwiseConv2D":
        return "depthwise"
    if name == "MaxPooling2D":
        return "maxpool"
    if name == "AveragePooling2D" and layer.padding == "valid":
        return "avgpool"
    if name == "ZeroPadding2D":
        return "pad"
    return None


def engine(graph, layer, score, patch, origins):
    """The incremental engine for this model and occluder grid, or None when it cannot help."""
    from ..fields import layer_geometry

    key = ("occlusion-engine", layer, score, patch, tuple(map(tuple, origins)))
    if key in graph.cache:
        return graph.cache[key]
    result = None
    if len(graph.input_ids) == 1:
        result = _build_engine(graph, layer, score, patch, origins, layer_geometry)
    graph.cache[key] = result
    return result


def _build_engine(graph, layer, score, patch, origins, layer_geometry):
    consumers = {}
    for st in graph.steps:
        for tid in st.input_ids:
            consumers.setdefault(tid, []).append(st)
    h, w, _ = graph.input_shape
    cur = graph.input_ids[0]
    cur_name = None
    # affected interval per position and the recomputed window, per axis
    aff = [(origins[0], np.minimum(origins[0] + patch[0], h)), (origins[1], np.minimum(origins[1] + patch[1], w))]
    chain, geos = [], []
    while True:
        users = consumers.get(cur, [])
        if len(users) != 1:
            break
        st = users[0]
        if len(st.input_ids) != 1 or st.name == score or not st.is_spatial:
            break
        if st.type_name in _POINTWISE and tuple(st.output_shape) == tuple(st.input_shapes[0]):
            chain.append((st, "point"))
        else:
            op = _geo_op(st)
            if op is None:
                break
            try:
                k, s, p, _ = layer_geometry(st)
            except ValueError:
                break
            n_in, n_out = st.input_shapes[0][:2], st.output_shape[:2]
            new_aff, m, starts, pad_hi, in_size = [], [], [], [], []
            for ax in range(2):
                o0, o1 = _affected(aff[ax][0], aff[ax][1], n_out[ax], k[ax], s[ax], p[ax])
                size = int(max(1, (o1 - o0).max()))
                start = np.minimum(o0, n_out[ax] - size)
                need = (size - 1) * s[ax] + k[ax]
                end = (start * s[ax] - p[ax] + need).max()
                new_aff.append((o0, o1)), m.append(size), starts.append(start)
                in_size.append(need), pad_hi.append(int(max(0, end - n_in[ax])))
            if m[0] * m[1] >= _STOP_FRACTION * n_out[0] * n_out[1]:
                break
            geos.append(_Geo(st, op, k, s, p, tuple(m), tuple(starts), tuple(in_size), tuple(pad_hi),
                             -np.inf if op == "maxpool" else 0.0, cur_name))
            chain.append((st, "geo"))
            aff = new_aff
        cur, cur_name = st.output_ids[0], st.name
    if not geos:
        return None
    return _Engine(graph, chain, geos, cur_name, layer, patch, origins)


# ---------------------------------------------------------------- the driver
def occlusion(model, inputs, target, patch, stride, fill=None, layer=None, batch_size=32,
              output=None, incremental=True):
    """Occlusion sensitivity maps for a batch of model inputs.

    Args:
      model: a Keras classifier (Sequential or Functional, nested allowed).
      inputs: preprocessed model inputs ``(N, H, W, C)``.
      target: class index, a list of one per image, or ``None`` for the
        class the model predicts on the unoccluded image.
      patch: occluder side in pixels (int, or ``(height, width)``).
      stride: step between occluder positions (int or pair, >= 1). The grid
        starts at the top-left corner and always reaches the bottom/right
        edge; the last occluder may hang over it (``grid_origins``).
      fill: occluder colour in model-input space: ``None`` for the mean
        pixel of each image, a number, ``C`` channel values or ``(N, C)``.
      layer: spatial layer for the activation map (default: the last conv
        layer of the last block).
      batch_size: occluded images per forward pass (bounds memory).
      output: which output of a multi-output model.
      incremental: recompute the leading conv/pool chain only inside each
        occluder's footprint when the model allows it (same numbers up to
        float rounding, several times fewer FLOPs on VGG-style models).

    Returns an :class:`Occlusion`.
    """
    graph = walk(model)
    x = as_batch(graph, inputs)
    n, h, w, c = x.shape
    patch, stride = _check_geometry(patch, stride, (h, w))
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    batch_size = int(batch_size)
    layer = _default_layer(graph) if layer is None else graph.spatial_step(layer).name
    score = score_step(graph, output)
    kind, classes = score.activation, int(score.output_shape[-1])
    fixed = None if target is None else resolve_targets(target, n, classes)  # fail before any work
    fills = _fill_values(fill, x)
    oys, oxs = grid_origins(h, patch[0], stride[0]), grid_origins(w, patch[1], stride[1])
    gh, gw = len(oys), len(oxs)
    positions = gh * gw

    eng = engine(graph, layer, score.name, patch, (oys, oxs)) if incremental else None
    if eng is None:
        plain = compiled(graph, ("occlusion", layer, score.name, patch),
                         lambda: _plain_fn(graph, layer, score.name, kind, patch))
    else:
        prepare, occlude = eng.prepare_fn(score.name, kind), eng.occlude_fn(score.name, kind)

    prob = np.empty((n, positions), np.float32)
    top = np.empty((n, positions), np.int64)
    act = np.empty((n, positions), np.float32)
    base_probs = np.empty((n, classes if classes > 1 else 2), np.float32)
    base_class = np.empty((n,), np.int64)
    base_sums, maps = None, np.empty((n,), np.int64)
    all_iy = np.repeat(np.arange(gh, dtype=np.int32), gw)
    all_ix = np.tile(np.arange(gw, dtype=np.int32), gh)
    chunk = max(1, batch_size // positions)  # images whose occluders fill about one batch
    for s0 in range(0, n, chunk):
        s1 = min(s0 + chunk, n)
        local = np.arange(s1 - s0, dtype=np.int32)
        # the unoccluded images: predicted class, strongest map, reference values
        if eng is None:
            xt, ft = tf.constant(x[s0:s1]), tf.constant(fills[s0:s1])
            p, t, a, m = plain(xt, ft, local, np.full_like(local, h), np.full_like(local, w))
        else:
            cache, p, t, a, m = prepare(tf.constant(x[s0:s1]))
            ft = tf.constant(fills[s0:s1])
        base_probs[s0:s1], base_class[s0:s1] = p.numpy(), t.numpy()
        a = a.numpy()
        base_sums = np.empty((n, a.shape[1]), np.float32) if base_sums is None else base_sums
        base_sums[s0:s1] = a
        maps[s0:s1] = np.argmax(m.numpy(), axis=1)  # first index on ties, as numpy
        targets = base_class[s0:s1] if fixed is None else fixed[s0:s1]
        # every occluder position of these images, in even batches under batch_size
        img = np.repeat(local, positions)
        pos = np.tile(np.arange(positions, dtype=np.int32), len(local))
        total = len(img)
        per = math.ceil(total / math.ceil(total / batch_size))
        for s in range(0, total, per):
            bi, bp = img[s:s + per], pos[s:s + per]
            iy, ix = all_iy[bp], all_ix[bp]
            if eng is None:
                p, t, a, _ = plain(xt, ft, bi, oys[iy].astype(np.int32), oxs[ix].astype(np.int32))
                a = a.numpy()[np.arange(len(bi)), maps[s0 + bi]]
            else:
                p, t, a = occlude(cache, ft, bi, iy, ix, maps[s0 + bi].astype(np.int32))
                a = a.numpy()
            prob[s0 + bi, bp] = p.numpy()[np.arange(len(bi)), targets[bi]]
            top[s0 + bi, bp] = t.numpy()
            act[s0 + bi, bp] = a

    targets = base_class.copy() if fixed is None else fixed
    rows = np.arange(n)
    return Occlusion(
        probability=prob.reshape(n, gh, gw),
        top_class=top.reshape(n, gh, gw),
        activation=act.reshape(n, gh, gw),
        target=targets,
        layer=layer,
        map_index=maps,
        base_probability=base_probs[rows, targets],
        base_class=base_class,
        base_activation=base_sums[rows, maps],
        patch=patch,
        stride=stride,
        origins_y=oys,
        origins_x=oxs,
        image_size=(h, w),
        fill=fills,
    )


# ---------------------------------------------------------------- the fig. 7 panel
def figure(image, result, index=0, class_names=None, cell=160):
    """The fig. 7 panel for image ``index``: image, probability map, top-class map
    with a legend of class names, and activation map, as one RGB uint8 array.

    ``image`` is the displayable RGB uint8 picture ``(H, W, 3)`` of that input.
    """
    from PIL import Image, ImageDraw

    from .. import render

    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = render.to_uint8(image)
    name = (lambda k: class_names[k] if class_names is not None and 0 <= k < len(class_names) else f"class {k}")
    tgt = int(result.target[index])
    prob = result.probability[index]
    panels = [
        image,
        render.colormap(np.clip(prob, 0, 1)),
        _class_map(result.top_class[index]),
        render.heatmap(result.activation[index]),
    ]
    titles = [
        f"input ({name(tgt)} p={result.base_probability[index]:.2f})",
        f"p({name(tgt)}) {prob.min():.2f}..{prob.max():.2f}",
        "most probable class",
        f"{result.layer} map {int(result.map_index[index])}",
    ]
    big = [np.asarray(Image.fromarray(render.as_rgb(p)).resize((cell, cell), Image.NEAREST)) for p in panels]
    # the occluder grid is coarse: nearest-neighbour keeps one square per position
    canvas = render.grid(big, titles=titles, columns=4)
    # legend of the classes that appear in the top-class map
    shown = sorted(set(int(k) for k in np.unique(result.top_class[index])))
    line_h = 14
    legend = Image.new("RGB", (canvas.shape[1], 6 + line_h * len(shown)), (255, 255, 255))
    draw = ImageDraw.Draw(legend)
    font = render.font(11)
    x0 = 4 + 2 * (cell + 4)
    for r, k in enumerate(shown):
        y = 3 + r * line_h
        draw.rectangle([x0, y + 1, x0 + 10, y + 11], fill=tuple(int(v) for v in _palette(k)))
        draw.text((x0 + 15, y), name(k), fill=(20, 20, 20), font=font)
    return np.concatenate([canvas, np.asarray(legend)], axis=0)


def _palette(k):
    """A distinct colour per class index (golden-ratio hues, stable across images)."""
    import colorsys

    hue = (k * 0.61803398875) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.65, 0.95)
    return np.array([r * 255, g * 255, b * 255], np.uint8)


def _class_map(classes):
    classes = np.asarray(classes)
    out = np.zeros(classes.shape + (3,), np.uint8)
    for k in np.unique(classes):
        out[classes == k] = _palette(int(k))
    return out
