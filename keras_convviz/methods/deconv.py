"""Zeiler–Fergus deconvnet projections (Zeiler & Fergus 2014).

Keep the chosen activations of one layer, zero the rest and go down to the
input: unpool with the max-pool switches, rectify on the way down (ReLU and
ReLU6, fused or standalone), filter with the transposed kernels (Conv2D,
DepthwiseConv2D, SeparableConv2D), scale through inference BatchNorm, undo
ZeroPadding/Cropping, split through Add/Concatenate; biases play no part.

All of that is the input gradient of the kept activations with every ReLU's
backward replaced by ``g -> relu(g)`` (``probe.run(rule="deconv")``). The seed
of the backward pass is the kept activations themselves (the deconvnet's
input), so a projection is ``d/dx sum(stop_gradient(a * keep) * a)``.

Speed: the joint projection is one compiled forward + backward pass
(selection included). A single activation depends only on the input pixels
in its receptive field, so ``deconv_units`` runs each unit on a crop of the
image around that window (a *canvas*), many canvases in one batch. The
canvas is placed on the effective-stride grid and sized so that every layer
keeps the full image's SAME padding and pool alignment: every value inside the
unit's cone, its max-pool switches included, is then exactly the full-image
value, and so is the projection.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np
import tensorflow as tf

from .. import render
from ..fields import receptive_fields
from ..graph import walk
from ..checks import count
from ..probe import compiled, run
from ..request import as_batch

__all__ = [
    "deconv",
    "deconv_units",
    "projections",
    "cumulative",
    "Projections",
    "selection_boxes",
    "peak",
    "display_order",
    "layer_grid",
    "gif_frames",
]

DEFAULT_BATCH = 16


# ---------------------------------------------------------------- arguments
def _maps_count(spec, channels):
    """``(M, explicit_indices_or_None)`` for a count, a fraction or a list of maps."""
    if isinstance(spec, (list, tuple, np.ndarray)):
        try:
            idx = np.asarray(spec).reshape(-1)
        except Exception:  # ragged or odd objects
            idx = np.asarray([], np.int64)
        if idx.size == 0:
            raise ValueError("maps=[] selects nothing; give at least one map index.")
        if not (np.issubdtype(idx.dtype, np.integer) and not np.issubdtype(idx.dtype, np.bool_)):
            raise ValueError(f"explicit maps must be integer map indices, got {list(spec)!r}")
        bad = idx[(idx < 0) | (idx >= channels)]
        if bad.size:
            raise ValueError(f"map index {int(bad[0])} is out of range; the layer has maps 0..{channels - 1}.")
        if len(set(idx.tolist())) != idx.size:
            raise ValueError(f"maps lists map indices more than once: {idx.tolist()}")
        return int(idx.size), idx.astype(np.int32)
    return count(spec, channels, "maps"), None


def _check_bool(value, what):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{what} must be True or False, got {value!r}")
    return bool(value)


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return int(batch_size)


def _layer(graph, layer):
    if len(graph.input_ids) != 1:
        raise ValueError(
            f"model {graph.model.name!r} has {len(graph.input_ids)} inputs; deconv "
            f"projects into a single image input."
        )
    step = graph.spatial_step(layer)
    h, w, c = step.output_shape
    if h is None or w is None or c is None:
        raise ValueError(f"layer {step.name!r} has no static output shape {step.output_shape}.")
    return step


# ---------------------------------------------------------------- compiled passes
def _first_trace_only(fn):
    """Each cached function traces once per model/layer by design; TensorFlow's
    "frequent retracing" heuristic counts them together (same source code), so
    silence it for these functions."""
    if hasattr(fn, "_omit_frequent_tracing_warning"):
        fn._omit_frequent_tracing_warning = True
    return fn


def _x_spec(shape):
    return tf.TensorSpec((None,) + tuple(shape), tf.float32)


_SEL_SPEC = [tf.TensorSpec((None,), tf.int32), tf.TensorSpec((), tf.int32), tf.TensorSpec((), tf.int32)]


def _joint_fn(graph, name, hw, channels, explicit):
    """Forward, pick the top maps and activations, and project them jointly."""
    spec = _x_spec(graph.input_shape)

    @tf.function(input_signature=[spec] + _SEL_SPEC)
    def joint(x, chosen, m, k):
        with tf.GradientTape() as tape:
            tape.watch(x)
            a = run(graph, x, [name], rule="deconv")[name]
            maps, pos, vals, keep = _select(a, hw, channels, m, k, explicit, chosen)
            seed = tf.stop_gradient(a * keep)
            target = tf.reduce_sum(a * seed)
        return tape.gradient(target, x), maps, pos, vals

    return _first_trace_only(joint)


def _select_fn(graph, name, hw, channels, explicit):
    """Forward only: the selected maps, their top positions and values."""
    spec = _x_spec(graph.input_shape)

    @tf.function(input_signature=[spec] + _SEL_SPEC)
    def select(x, chosen, m, k):
        a = run(graph, x, [name])[name]
        maps, pos, vals, _ = _select(a, hw, channels, m, k, explicit, chosen, want_mask=False)
        return maps, pos, vals

    return _first_trace_only(select)


def _select(a, hw, channels, m, k, explicit, chosen, want_mask=True):
    """Top ``m`` maps by max activation (or ``chosen``), top ``k`` positions in each."""
    n = tf.shape(a)[0]
    flat = tf.reshape(a, (n, hw, channels))
    by_map = tf.transpose(flat, (0, 2, 1))  # (N, C, HW)
    if explicit:
        maps = tf.tile(chosen[None, :], (n, 1))
    else:
        maps = tf.math.top_k(tf.reduce_max(by_map, axis=2), m).indices  # sorted, ties: lower index
    per_map = tf.gather(by_map, maps, batch_dims=1)  # (N, M, HW)
    vals, pos = tf.math.top_k(per_map, k)  # (N, M, K)
    if not want_mask:
        return maps, pos, vals, None
    b = tf.broadcast_to(tf.range(n)[:, None, None], tf.shape(pos))
    c = tf.broadcast_to(maps[:, :, None], tf.shape(pos))
    index = tf.reshape(tf.stack([b, pos, c], -1), (-1, 3))
    keep = tf.scatter_nd(index, tf.ones(tf.shape(index)[:1], a.dtype), (n, hw, channels))
    keep = tf.minimum(keep, 1.0)
    return maps, pos, vals, tf.reshape(keep, tf.shape(a))


def _masked_fn(graph, name, in_shape, out_shape):
    """Project ``a * mask`` for a batch of (possibly cropped) inputs."""

    @tf.function(input_signature=[_x_spec(in_shape), _x_spec(out_shape)])
    def masked(x, mask):
        with tf.GradientTape() as tape:
            tape.watch(x)
            a = run(graph, x, [name], rule="deconv")[name]
            seed = tf.stop_gradient(a * mask)
            target = tf.reduce_sum(a * seed)
        return tape.gradient(target, x), tf.reduce_sum(seed, axis=(1, 2, 3))

    return _first_trace_only(masked)


def _layer_shape_for(graph, name, in_shape):
    """Static output shape of ``name`` for inputs of spatial size ``in_shape`` (or None)."""
    key = ("deconv.shape", name, tuple(in_shape))
    if key not in graph.cache:
        try:
            fn = tf.function(lambda x: run(graph, x, [name])[name])
            spec = fn.get_concrete_function(_x_spec(in_shape)).structured_outputs
            graph.cache[key] = tuple(int(d) for d in spec.shape[1:])
        except Exception:  # a layer that only works at the model's own size
            graph.cache[key] = None
    return graph.cache[key]


def _run_masked(graph, name, x, masks, batch):
    """``_masked_fn`` over ``x``/``masks`` in chunks of ``batch``; numpy out."""
    in_shape = tuple(x.shape[1:])
    out_shape = tuple(masks.shape[1:])
    fn = compiled(graph, ("deconv.masked", name, in_shape), lambda: _masked_fn(graph, name, in_shape, out_shape))
    out = np.zeros(x.shape, np.float32)
    for start in range(0, x.shape[0], batch):
        g, _ = fn(tf.constant(x[start:start + batch]), tf.constant(masks[start:start + batch]))
        out[start:start + batch] = g.numpy()
    return out


# ---------------------------------------------------------------- results
@dataclasses.dataclass
class Projections:
    """Deconv projections of one layer with what was projected.

    ``images``: ``(N, H, W, C)`` (joint) or ``(N, M, H, W, C)`` (separate), in
    model-input space. ``maps``: ``(N, M)`` map indices, strongest first.
    ``positions``: ``(N, M, K, 2)`` ``(y, x)`` of the kept activations of each
    map, strongest first; ``values``: ``(N, M, K)`` their activations.
    """

    layer: str
    images: np.ndarray
    maps: np.ndarray
    positions: np.ndarray
    values: np.ndarray
    joint: bool


def projections(model, inputs, layer, maps=1, activations=1, joint=True, batch_size=DEFAULT_BATCH):
    """Like :func:`deconv` but returns a :class:`Projections` with the selection."""
    graph = walk(model)
    step = _layer(graph, layer)
    name = step.name
    h, w, channels = step.output_shape
    hw = h * w
    m, chosen = _maps_count(maps, channels)
    k = count(activations, hw, "activations")
    joint = _check_bool(joint, "joint")
    batch = _check_batch_size(batch_size)
    x = as_batch(graph, inputs)
    explicit = chosen is not None
    chosen_t = tf.constant(chosen if explicit else np.zeros((0,), np.int32))
    n = x.shape[0]

    counts = (tf.constant(m, tf.int32), tf.constant(k, tf.int32))
    if joint:
        fn = compiled(graph, ("deconv.joint", name, explicit),
                      lambda: _joint_fn(graph, name, hw, channels, explicit))
        parts = [fn(tf.constant(x[s:s + batch]), chosen_t, *counts) for s in range(0, n, batch)]
        images = np.concatenate([p[0].numpy() for p in parts])
        sel = [np.concatenate([p[i].numpy() for p in parts]) for i in (1, 2, 3)]
    else:
        fn = compiled(graph, ("deconv.select", name, explicit),
                      lambda: _select_fn(graph, name, hw, channels, explicit))
        parts = [fn(tf.constant(x[s:s + batch]), chosen_t, *counts) for s in range(0, n, batch)]
        sel = [np.concatenate([p[i].numpy() for p in parts]) for i in range(3)]
        sel_maps, sel_pos = sel[0], sel[1]
        if k == 1:
            units = np.stack([
                np.repeat(np.arange(n), m),
                sel_pos[:, :, 0].reshape(-1) // w,
                sel_pos[:, :, 0].reshape(-1) % w,
                sel_maps.reshape(-1),
            ], 1)
            images = _units(graph, step, x, units, batch).reshape((n, m) + x.shape[1:])
        else:
            images = np.zeros((n, m) + x.shape[1:], np.float32)
            for i in range(n):
                masks = np.zeros((m, hw, channels), np.float32)
                for j in range(m):
                    masks[j, sel_pos[i, j], sel_maps[i, j]] = 1.0
                images[i] = _run_masked(graph, name, np.repeat(x[i:i + 1], m, 0),
                                        masks.reshape((m, h, w, channels)), batch)
    maps_, pos, vals = sel
    positions = np.stack([pos // w, pos % w], -1).astype(np.int64)
    return Projections(name, images, maps_.astype(np.int64), positions, vals.astype(np.float32), joint)


def deconv(model, inputs, layer, maps=1, activations=1, joint=True, batch_size=DEFAULT_BATCH):
    """Zeiler–Fergus deconvnet projections of one layer's strongest activations.

    Args:
      model: a Keras CNN (Sequential, Functional, nested).
      inputs: a preprocessed batch ``(N, H, W, C)``.
      layer: name of a spatial layer.
      maps: the feature maps to project, ranked per image by their max
        activation: an int count, a float fraction in (0, 1] of the layer's
        maps, or an explicit list of map indices (kept in the given order).
      activations: the strongest activations kept in each selected map, as a
        count or a fraction of its positions; all others are zeroed.
      joint: project all selected maps together, ``(N, H, W, C)``; with
        ``False`` one projection per map, ``(N, M, H, W, C)``.
      batch_size: how many full-image backward passes run at once (memory).

    Returns a numpy array in model-input space. Values outside (0, 1],
    counts of 0 or above the layer's size raise ``ValueError``.
    """
    return projections(model, inputs, layer, maps, activations, joint, batch_size).images


def cumulative(model, inputs, layer, maps=1, activations=1, batch_size=DEFAULT_BATCH):
    """Joint projections of the top 1, 2, ..., M maps: ``(N, M, H, W, C)`` and the selection.

    Frame ``j`` projects the ``j + 1`` strongest maps together (the GIF mode).
    """
    graph = walk(model)
    step = _layer(graph, layer)
    name = step.name
    h, w, channels = step.output_shape
    m, chosen = _maps_count(maps, channels)
    k = count(activations, h * w, "activations")
    batch = _check_batch_size(batch_size)
    x = as_batch(graph, inputs)
    explicit = chosen is not None
    fn = compiled(graph, ("deconv.select", name, explicit),
                  lambda: _select_fn(graph, name, h * w, channels, explicit))
    chosen_t = tf.constant(chosen if explicit else np.zeros((0,), np.int32))
    sel_maps, sel_pos, sel_vals = (t.numpy() for t in fn(tf.constant(x), chosen_t, m, k))
    n = x.shape[0]
    frames = np.zeros((n, m) + x.shape[1:], np.float32)
    for i in range(n):
        masks = np.zeros((m, h * w, channels), np.float32)
        for j in range(m):
            masks[j:, sel_pos[i, j], sel_maps[i, j]] = 1.0
        frames[i] = _run_masked(graph, name, np.repeat(x[i:i + 1], m, 0), masks.reshape((m, h, w, channels)), batch)
    positions = np.stack([sel_pos // w, sel_pos % w], -1).astype(np.int64)
    return Projections(name, frames, sel_maps.astype(np.int64), positions, sel_vals, False)


# ---------------------------------------------------------------- single units
def _canvas_geometry(graph, name):
    """Per spatial dim ``(size, stride)`` of the crop for single units, or None.

    ``stride`` is the layer's effective stride J: canvases start on multiples
    of J. ``size`` is at least RF + J - 1 (so a J-aligned crop covers any
    unit's window) and congruent to the image size modulo J (so every layer
    keeps the full image's SAME padding).
    """
    key = ("deconv.canvas", name)
    if key in graph.cache:
        return graph.cache[key]
    result = None
    try:
        fields = receptive_fields(graph.model)
        rf = fields[name]
        ok = _strides_consistent(graph, fields, name)
    except (ValueError, KeyError):
        ok = False
    if ok:
        dims = []
        for d in range(2):
            n, size, jump = graph.input_shape[d], rf.size[d], rf.stride[d]
            base = size + jump - 1
            nc = n if base >= n else base + (n - base) % jump
            dims.append((nc, jump))
        result = tuple(dims)
        if tuple(d[0] for d in dims) != tuple(graph.input_shape[:2]):
            in_shape = (dims[0][0], dims[1][0]) + tuple(graph.input_shape[2:])
            if _layer_shape_for(graph, name, in_shape) is None:
                result = None
    if result is None:
        result = tuple((graph.input_shape[d], 1) for d in range(2))
    graph.cache[key] = result
    return result


def _strides_consistent(graph, fields, name):
    """Every path from the input to ``name`` has the same total stride (crops stay aligned)."""
    for index in graph.ancestors([name]):
        info = fields.get(graph.steps[index].name)
        if info is not None and "strides differ" in info.note:
            return False
    return True


def _units(graph, step, x, units, batch):
    """Projections ``(U, H, W, C)`` of single activations ``(image, y, x, channel)``."""
    name = step.name
    geometry = _canvas_geometry(graph, name)
    height, width = graph.input_shape[:2]
    (ch, jy), (cw, jx) = geometry
    fields = receptive_fields(graph.model) if (ch, cw) != (height, width) else None
    u = units.shape[0]
    if fields is None:
        origins = np.zeros((u, 2), np.int64)
    else:
        rf = fields[name]
        y0 = np.maximum(units[:, 1] * rf.stride[0] - rf.padding[0], 0)
        x0 = np.maximum(units[:, 2] * rf.stride[1] - rf.padding[1], 0)
        origins = np.stack([np.minimum(y0 // jy * jy, height - ch), np.minimum(x0 // jx * jx, width - cw)], 1)
    in_shape = (ch, cw) + tuple(graph.input_shape[2:])
    out_shape = _layer_shape_for(graph, name, in_shape) if fields is not None else step.output_shape
    # memory: about ``batch`` full images' worth of canvases at once
    chunk = max(1, int(batch * (height * width) // (ch * cw)))
    out = np.zeros((u,) + x.shape[1:], np.float32)
    for start in range(0, u, chunk):
        rows = units[start:start + chunk]
        org = origins[start:start + chunk]
        canvases = np.stack([x[r[0], o[0]:o[0] + ch, o[1]:o[1] + cw] for r, o in zip(rows, org)])
        masks = np.zeros((len(rows),) + tuple(out_shape), np.float32)
        masks[np.arange(len(rows)), rows[:, 1] - org[:, 0] // jy, rows[:, 2] - org[:, 1] // jx, rows[:, 3]] = 1.0
        grads = _run_masked(graph, name, canvases, masks, len(rows))
        for i, (o, g) in enumerate(zip(org, grads)):
            out[start + i, o[0]:o[0] + ch, o[1]:o[1] + cw] = g
    return out


def deconv_units(model, inputs, layer, units, batch_size=DEFAULT_BATCH):
    """Deconv projections of single activations, each on its receptive-field window.

    Args:
      model, inputs, layer: as for :func:`deconv`.
      units: rows ``(image_index, y, x, channel)``, an int array ``(U, 4)``
        (one row is fine): which activation of ``layer`` to project, for
        which image of ``inputs``.
      batch_size: memory bound, in full images (many small crops run at once).

    Returns ``(U, H, W, C)``: for each unit the projection of its activation
    alone (seeded with the activation's value), zero outside its receptive
    field. Equal to the full-image projection, computed on a crop.
    """
    graph = walk(model)
    step = _layer(graph, layer)
    batch = _check_batch_size(batch_size)
    x = as_batch(graph, inputs)
    rows = np.asarray(units)
    if rows.ndim == 1 and rows.size == 4:
        rows = rows[None]
    if rows.ndim != 2 or rows.shape[1] != 4 or rows.shape[0] == 0:
        raise ValueError(f"units must be rows (image_index, y, x, channel), shape (U, 4); got shape {rows.shape}")
    if not np.issubdtype(rows.dtype, np.integer):
        if not np.all(np.isfinite(rows)) or not np.all(rows == np.round(rows)):
            raise ValueError("units must hold integer (image_index, y, x, channel) rows")
        rows = rows.astype(np.int64)
    rows = rows.astype(np.int64)
    limits = (x.shape[0],) + tuple(step.output_shape)
    for col, (what, top) in enumerate(zip(("image_index", "y", "x", "channel"), limits)):
        bad = rows[(rows[:, col] < 0) | (rows[:, col] >= top)]
        if bad.size:
            raise ValueError(
                f"unit {tuple(int(v) for v in bad[0])}: {what} must be in 0..{top - 1} "
                f"(layer {step.name!r} is {'x'.join(map(str, step.output_shape))}, {x.shape[0]} images)"
            )
    return _units(graph, step, x, rows, batch)


# ---------------------------------------------------------------- pictures
def peak(projection):
    """``(y, x)`` of the strongest pixel of a projection ``(H, W, C)`` (sum of |p| over channels)."""
    energy = np.abs(np.asarray(projection, np.float64)).sum(-1)
    return tuple(int(v) for v in np.unravel_index(np.argmax(energy), energy.shape))


def selection_boxes(model, result, index=0):
    """Per selected map: the input box ``(y0, y1, x0, x1)`` covering its kept activations' fields."""
    graph = walk(model)
    rf = receptive_fields(model)[result.layer]
    hw = graph.input_shape[:2]
    boxes = []
    for pos in result.positions[index]:
        wins = np.array([rf.window(int(y), int(x), clip_to=hw) for y, x in pos])
        boxes.append((wins[:, 0].min(), wins[:, 1].max(), wins[:, 2].min(), wins[:, 3].max()))
    return boxes


def display_order(preprocess, channels=3):
    """Channel permutation that shows model-input channels as RGB (BGR models flip).

    Found by preprocessing pure red, green and blue: the input channel that
    moves most for each is where that colour lives.
    """
    if channels != 3 or preprocess is None:
        return None
    base = np.asarray(preprocess(np.zeros((1, 1, 1, 3), np.float32)), np.float64).reshape(-1)
    order = []
    for c in range(3):
        probe = np.zeros((1, 1, 1, 3), np.float32)
        probe[..., c] = 200.0
        moved = np.abs(np.asarray(preprocess(probe), np.float64).reshape(-1) - base)
        order.append(int(np.argmax(moved)))
    return order if sorted(order) == [0, 1, 2] else None


def projection_rgb(p, order=None):
    """A projection ``(H, W, C)`` as RGB uint8 (Zeiler–Fergus contrast normalization)."""
    from ..render import projection_image

    p = np.asarray(p)
    if order is not None:
        p = p[..., order]
    return projection_image(p)


def layer_grid(rgb, results, model, order=None, cell=72):
    """The Zeiler–Fergus layer grid for one image: one row per layer, one column per map.

    ``rgb`` is the input image (uint8 ``(H, W, 3)`` at the model's size),
    ``results`` a list of separate :class:`Projections` (image 0 is drawn).
    Each cell shows the map's projection cropped to the receptive field of
    its kept activations beside the same patch of the input.
    """
    from ..render import label

    rows = []
    for res in results:
        boxes = selection_boxes(model, res, 0)
        cells = []
        for j, (y0, y1, x0, x1) in enumerate(boxes):
            proj = projection_rgb(res.images[0, j, y0:y1, x0:x1], order)
            patch = np.asarray(rgb)[y0:y1, x0:x1]
            gap = np.full((cell, 2, 3), 255, np.uint8)
            pair = np.concatenate([render.fit_square(proj, cell), gap, render.fit_square(patch, cell)], 1)
            cells.append(label(pair, f"map {int(res.maps[0, j])}", height=14, size=11))
        row = _hstack(cells, pad=6)
        rows.append(label(row, f"{res.layer}  (top {len(boxes)} maps)", height=18, size=13))
    return _vstack(rows, pad=8)


def _hstack(images, pad=4, background=255):
    h = max(i.shape[0] for i in images)
    w = sum(i.shape[1] for i in images) + pad * (len(images) - 1)
    out = np.full((h, w, 3), background, np.uint8)
    x = 0
    for img in images:
        out[:img.shape[0], x:x + img.shape[1]] = img
        x += img.shape[1] + pad
    return out


def _vstack(images, pad=4, background=255):
    w = max(i.shape[1] for i in images)
    h = sum(i.shape[0] for i in images) + pad * (len(images) - 1)
    out = np.full((h, w, 3), background, np.uint8)
    y = 0
    for img in images:
        out[y:y + img.shape[0], :img.shape[1]] = img
        y += img.shape[0] + pad
    return out


def gif_frames(rgb, frames, layer, order=None, scale=None):
    """GIF frames: input beside the joint projection of the top 1..M maps, labelled.

    ``frames`` is ``(M, H, W, C)`` from :func:`cumulative` for one image.
    """
    from ..render import label

    rgb = np.asarray(rgb)
    size = scale or max(rgb.shape[0], 128)
    out = []
    total = len(frames)
    for j, p in enumerate(frames):
        pair = _hstack([render.fit_square(rgb, size), render.fit_square(projection_rgb(p, order), size)], pad=2)
        out.append(label(pair, f"{layer}: {j + 1}/{total} maps", height=16, size=12))
    return out
