"""Zeiler–Fergus deconvnet projections (Zeiler & Fergus 2014, arXiv:1311.2901).

Keep the chosen activations of one layer, zero the rest and go down to the
input: unpool with the max-pool switches, rectify on the way down (ReLU and
ReLU6, fused or standalone), filter with the transposed kernels (Conv2D,
DepthwiseConv2D, SeparableConv2D), scale through inference BatchNorm, undo
ZeroPadding/Cropping, split through Add/Concatenate; biases play no part.

All of that is the input gradient of the kept activations with every ReLU's
backward replaced by ``g -> relu(g)`` (``probe.run(rule="deconv")``), seeded
with the kept activations themselves (the deconvnet's input): see
``methods.canvas.projection``, which takes it with the engine's fast exact
input-gradient rule.

Speed: the joint projection is one compiled forward + backward pass
(selection included). A single activation depends only on the input pixels
in its receptive field, so ``deconv_units`` (and separate projections of one
activation per map) run each unit on a crop of the image around that window
(``methods.canvas``), with results equal to the full-image projection.

Pictures of projections (layer grids, GIF frames) are in ``figures.deconv``.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from ..inline import Inline
from ..checks import check_bool, count, indices
from ..fields import receptive_fields
from ..graph import Step, walk
from ..probe import compiled, fast_conv_gradients, input_spec, run
from ..request import Request, prepare
from .canvas import first_trace_only, masked_projections, projection, unit_projections

__all__ = ["deconv", "deconv_units", "projections", "cumulative", "Projections", "Selection", "selection",
           "layer_step", "maps_count", "selection_boxes", "peak"]

DEFAULT_BATCH = 16


# ---------------------------------------------------------------- arguments
def maps_count(spec, channels) -> tuple:
    """``(M, explicit map indices or None)`` for a count, a fraction or a list of maps."""
    if isinstance(spec, (list, tuple, np.ndarray)):
        chosen = indices(spec, channels, "map index", unique=True)
        return int(chosen.size), chosen.astype(np.int32)
    return count(spec, channels, "maps"), None


def layer_step(graph, layer) -> Step:
    """The spatial step ``layer`` of a single-input model, with a static output shape."""
    if len(graph.input_ids) != 1:
        raise ValueError(
            f"model {graph.model.name!r} has {len(graph.input_ids)} inputs; deconv "
            f"projects into a single image input."
        )
    step = graph.spatial_step(layer)
    if any(d is None for d in step.output_shape):
        raise ValueError(f"layer {step.name!r} has no static output shape {step.output_shape}.")
    return step


@dataclasses.dataclass(frozen=True)
class Selection:
    """What a projection keeps of ``step``'s output: ``maps`` feature maps (the
    ``chosen`` indices, or the strongest by max activation) and the
    ``activations`` strongest positions in each."""

    step: Step
    maps: int
    activations: int
    chosen: Optional[np.ndarray] = None

    @property
    def explicit(self) -> bool:
        return self.chosen is not None

    def fn_args(self):
        """The selection as the compiled functions' trailing arguments ``(chosen, m, k)``."""
        chosen = self.chosen if self.explicit else np.zeros((0,), np.int32)
        return tf.constant(chosen), tf.constant(self.maps, tf.int32), tf.constant(self.activations, tf.int32)


def selection(graph, layer, maps=1, activations=1) -> Selection:
    """Check ``layer`` and the ``maps``/``activations`` specs against its size."""
    step = layer_step(graph, layer)
    h, w, channels = step.output_shape
    m, chosen = maps_count(maps, channels)
    return Selection(step, m, count(activations, h * w, "activations"), chosen)


# ---------------------------------------------------------------- compiled passes
_SELECTION_SPEC = [tf.TensorSpec((None,), tf.int32), tf.TensorSpec((), tf.int32), tf.TensorSpec((), tf.int32)]


def _joint_fn(graph, step, explicit):
    """Forward, pick the top maps and activations, and project them jointly."""
    name = step.name

    @tf.function(input_signature=[input_spec(graph)] + _SELECTION_SPEC, autograph=False)
    def joint(x, chosen, m, k):
        with fast_conv_gradients():
            a = run(graph, x, [name], rule="deconv")[name]
        maps, pos, vals, keep = _select(a, step.output_shape, m, k, explicit, chosen)
        return projection(a, keep, x), maps, pos, vals

    return first_trace_only(joint)


def _select_fn(graph, step, explicit):
    """Forward only: the selected maps, their top positions and values."""
    name = step.name

    @tf.function(input_signature=[input_spec(graph)] + _SELECTION_SPEC, autograph=False)
    def select(x, chosen, m, k):
        a = run(graph, x, [name])[name]
        return _select(a, step.output_shape, m, k, explicit, chosen, want_mask=False)[:3]

    return first_trace_only(select)


def _select(a, shape, m, k, explicit, chosen, want_mask=True):
    """Top ``m`` maps by max activation (or ``chosen``), top ``k`` positions in each."""
    n, hw, channels = tf.shape(a)[0], shape[0] * shape[1], shape[2]
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


def _batched(fn, request, sel):
    """``fn(x, *selection)`` over the request's slices; every output concatenated, numpy."""
    parts = [fn(tf.constant(request.x[a:b]), *sel.fn_args()) for a, b in request.slices()]
    return [np.concatenate([p[i].numpy() for p in parts]) for i in range(len(parts[0]))]


def _selected(request, sel):
    """``(maps, flat positions, values)`` of the selection for every image."""
    graph = request.graph
    fn = compiled(graph, ("deconv.select", sel.step.name, sel.explicit),
                  lambda: _select_fn(graph, sel.step, sel.explicit))
    return _batched(fn, request, sel)


# ---------------------------------------------------------------- results
@dataclasses.dataclass(frozen=True)
class Projections(Inline):
    """Deconv projections of one layer with what was projected (Zeiler & Fergus 2014).

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


def _result(sel, images, maps, pos, vals, joint) -> Projections:
    w = sel.step.output_shape[1]
    positions = np.stack([pos // w, pos % w], -1).astype(np.int64)
    return Projections(sel.step.name, images, maps.astype(np.int64), positions, vals.astype(np.float32), joint)


def _each_map(request: Request, sel: Selection, maps, pos, cumulative=False):
    """One projection per selected map of each image, ``(N, M, H, W, C)``: map ``j``
    alone, or with ``cumulative`` the maps ``0..j`` together."""
    x, m = request.x, sel.maps
    h, w, channels = sel.step.output_shape
    out = np.zeros((request.n, m) + x.shape[1:], np.float32)
    for i in range(request.n):
        masks = np.zeros((m, h * w, channels), np.float32)
        for j in range(m):
            masks[j:(None if cumulative else j + 1), pos[i, j], maps[i, j]] = 1.0
        out[i] = masked_projections(request.graph, sel.step.name, np.repeat(x[i:i + 1], m, 0),
                                    masks.reshape((m, h, w, channels)), request.batch_size)
    return out


def _separate(request: Request, sel: Selection, maps, pos):
    """Per-map projections; single activations run on their receptive-field crops."""
    if sel.activations > 1:
        return _each_map(request, sel, maps, pos)
    x, w = request.x, sel.step.output_shape[1]
    units = np.stack([np.repeat(np.arange(request.n), sel.maps), pos[:, :, 0].reshape(-1) // w,
                      pos[:, :, 0].reshape(-1) % w, maps.reshape(-1)], 1)
    images = unit_projections(request.graph, sel.step, x, units, request.batch_size)
    return images.reshape((request.n, sel.maps) + x.shape[1:])


def projections(model, inputs, layer, maps=1, activations=1, joint=True, batch_size=DEFAULT_BATCH) -> Projections:
    """Like :func:`deconv` but returns a :class:`Projections` with the selection."""
    request = prepare(model, inputs, scores=False, batch_size=batch_size)
    graph = request.graph
    sel = selection(graph, layer, maps, activations)
    if check_bool(joint, "joint"):
        fn = compiled(graph, ("deconv.joint", sel.step.name, sel.explicit),
                      lambda: _joint_fn(graph, sel.step, sel.explicit))
        images, *picked = _batched(fn, request, sel)
        return _result(sel, images, *picked, joint=True)
    picked = _selected(request, sel)
    return _result(sel, _separate(request, sel, *picked[:2]), *picked, joint=False)


def deconv(model, inputs, layer, maps=1, activations=1, joint=True, batch_size=DEFAULT_BATCH) -> np.ndarray:
    """Zeiler–Fergus deconvnet projections of one layer's strongest activations
    (Zeiler & Fergus 2014, arXiv:1311.2901).

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

    Returns a numpy array in model-input space: the projection, or, where it
    would underflow float32 (deep untrained networks such as MobileNet at
    ``conv_pw_13``), the projection times a positive power of two per image
    (per projection when separate; ``probe.RESCALE_EXPONENT``). Values
    outside (0, 1], counts of 0 or above the layer's size raise ``ValueError``.
    """
    return projections(model, inputs, layer, maps, activations, joint, batch_size).images


def cumulative(model, inputs, layer, maps=1, activations=1, batch_size=DEFAULT_BATCH) -> Projections:
    """Joint projections of the top 1, 2, ..., M maps: ``(N, M, H, W, C)`` and the selection.

    Frame ``j`` projects the ``j + 1`` strongest maps together (the GIF mode).
    """
    request = prepare(model, inputs, scores=False, batch_size=batch_size)
    sel = selection(request.graph, layer, maps, activations)
    maps_, pos, vals = _selected(request, sel)
    return _result(sel, _each_map(request, sel, maps_, pos, cumulative=True), maps_, pos, vals, joint=False)


# ---------------------------------------------------------------- single units
def _unit_rows(units, images, step):
    """Validated int64 rows ``(image_index, y, x, channel)``, shape ``(U, 4)``."""
    rows = np.asarray(units)
    if rows.ndim == 1 and rows.size == 4:
        rows = rows[None]
    if rows.ndim != 2 or rows.shape[1] != 4 or rows.shape[0] == 0:
        raise ValueError(f"units must be rows (image_index, y, x, channel), shape (U, 4); got shape {rows.shape}")
    if not np.issubdtype(rows.dtype, np.integer):
        if not np.all(np.isfinite(rows)) or not np.all(rows == np.round(rows)):
            raise ValueError("units must hold integer (image_index, y, x, channel) rows")
    rows = rows.astype(np.int64)
    limits = (images,) + tuple(step.output_shape)
    for col, (what, top) in enumerate(zip(("image_index", "y", "x", "channel"), limits)):
        bad = rows[(rows[:, col] < 0) | (rows[:, col] >= top)]
        if bad.size:
            raise ValueError(
                f"unit {tuple(int(v) for v in bad[0])}: {what} must be in 0..{top - 1} "
                f"(layer {step.name!r} is {'x'.join(map(str, step.output_shape))}, {images} images)"
            )
    return rows


def deconv_units(model, inputs, layer, units, batch_size=DEFAULT_BATCH, progress=False) -> np.ndarray:
    """Deconv projections of single activations, each on its receptive-field window
    (Zeiler & Fergus 2014, arXiv:1311.2901).

    Args:
      model, inputs, layer: as for :func:`deconv`.
      units: rows ``(image_index, y, x, channel)``, an int array ``(U, 4)``
        (one row is fine): which activation of ``layer`` to project, for
        which image of ``inputs``.
      batch_size: memory bound, in full images (many small crops run at once).
      progress: a bar over the units (``keras_convviz.progress``; quiet by default).

    Returns ``(U, H, W, C)``: for each unit the projection of its activation
    alone (seeded with the activation's value), zero outside its receptive
    field. Equal to the full-image projection, computed on a crop.
    """
    request = prepare(model, inputs, scores=False, batch_size=batch_size)
    step = layer_step(request.graph, layer)
    rows = _unit_rows(units, request.n, step)
    return unit_projections(request.graph, step, request.x, rows, request.batch_size, progress)


# ---------------------------------------------------------------- where projections are
def peak(projection) -> tuple:
    """``(y, x)`` of the strongest pixel of a projection ``(H, W, C)`` (sum of |p| over channels)."""
    energy = np.abs(np.asarray(projection, np.float64)).sum(-1)
    return tuple(int(v) for v in np.unravel_index(np.argmax(energy), energy.shape))


def selection_boxes(model, result: Projections, index=0) -> list:
    """Per selected map: the input box ``(y0, y1, x0, x1)`` covering its kept activations' fields."""
    graph = walk(model)
    rf = receptive_fields(graph)[result.layer]
    hw = graph.input_shape[:2]
    boxes = []
    for pos in result.positions[index]:
        wins = np.array([rf.window(int(y), int(x), clip_to=hw) for y, x in pos])
        boxes.append((wins[:, 0].min(), wins[:, 1].max(), wins[:, 2].min(), wins[:, 3].max()))
    return boxes
