"""Occlusion sensitivity (Zeiler & Fergus 2014, arXiv:1311.2901, fig. 7).

A square of ``fill`` slides over the image on a regular grid; for every
position we record the probability of the target class, the most probable
class, and the total activation, in a chosen layer, of the feature map that
is strongest in the unoccluded image.

Every occluded forward pass is batched under ``batch_size`` and runs through
one compiled function that builds the occluded inputs in the graph (no copies
of the image on the host) and returns probabilities, top class and map sums
from a single forward pass.

When the model starts with a plain chain of convolutions and poolings, the
occluded passes recompute that chain only inside each occluder's footprint
(``methods.incremental``, after Krypton: "Incremental and Approximate
Inference for Faster Occlusion-based Deep CNN Explanations", Nakandala et
al. 2019); ``incremental=False`` forces the plain path.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np
import tensorflow as tf

from ..inline import Inline
from ..probe import compiled, input_spec, run
from ..progress import tracker
from ..request import chunks, fill_values, prepare
from ..select import probabilities
from . import incremental as incremental_engine

__all__ = ["occlusion", "Occlusion", "grid_origins"]


@dataclasses.dataclass(frozen=True)
class Occlusion(Inline):
    """Occlusion maps (Zeiler & Fergus 2014, arXiv:1311.2901), one value per occluder position.

    ``probability``, ``top_class`` and ``activation`` are ``(N, gh, gw)``:
    the probability of the target class, the most probable class, and the
    summed activation in ``layer`` of map ``map_index[n]``, the map with the
    largest activation in the unoccluded image ``n``. ``base_*`` hold the
    unoccluded values. Cell ``(i, j)`` is the occluder with top-left corner
    ``(origins_y[i], origins_x[j])``; :meth:`window` gives its pixels.
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
    def grid_shape(self) -> tuple:
        return self.probability.shape[1:]

    def window(self, i, j) -> tuple:
        """Pixels ``(y0, y1, x0, x1)`` (end exclusive, clipped) covered by cell ``(i, j)``."""
        y0, x0 = int(self.origins_y[i]), int(self.origins_x[j])
        return (y0, min(y0 + self.patch[0], self.image_size[0]),
                x0, min(x0 + self.patch[1], self.image_size[1]))

    def upsampled(self, name="probability") -> np.ndarray:
        """A map as ``(N, H, W)``: each pixel takes the mean over the occluders covering it."""
        m = np.asarray(getattr(self, name), np.float64)
        h, w = self.image_size
        total = np.zeros((m.shape[0], h, w))
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
        return (int(value), int(value))
    try:
        pair = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        pair = ()
    if len(pair) != 2 or any(float(a) != float(b) for a, b in zip(pair, value)):
        raise ValueError(f"{what} must be an int or a pair of ints (height, width), got {value!r}")
    return pair


def grid_origins(size, patch, stride) -> np.ndarray:
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


def _default_layer(graph):
    """The last conv layer of the last block (else the last spatial layer)."""
    ends = graph.block_ends()
    if ends:
        return ends[-1]
    spatial = [s.name for s in graph.steps if s.is_map]
    if not spatial:
        raise ValueError(f"model {graph.model.name!r} has no spatial layer for the activation map.")
    return spatial[-1]


# ---------------------------------------------------------------- compiled passes
def _classes(scores, head):
    """Class probabilities and the most probable class (traceable)."""
    probs = probabilities(scores, head)
    return probs, tf.argmax(probs, axis=-1, output_type=tf.int32)


def _map_stats(act):
    """Per feature map of the layer: summed and peak activation (traceable)."""
    return tf.reduce_sum(act, axis=[1, 2]), tf.reduce_max(act, axis=[1, 2])


def _plain_fn(graph, layer, head, patch):
    """Compiled ``(x, fill, img, oy, ox) -> (probs, top, map sums, map maxima)``, full forward passes."""
    c = graph.input_shape[-1]
    ints = [tf.TensorSpec((None,), tf.int32)] * 3

    def build():
        @tf.function(input_signature=[input_spec(graph), tf.TensorSpec((None, c), tf.float32)] + ints,
                     reduce_retracing=True)
        def occluded_pass(x, fill, img, oy, ox):
            xo = incremental_engine.paint(tf.gather(x, img), tf.gather(fill, img), oy, ox, patch)
            out = run(graph, xo, [layer], linear=[head.name])
            return _classes(out[head.name], head) + _map_stats(out[layer])

        return occluded_pass

    return compiled(graph, ("occlusion", layer, head.name, patch), build)


def _incremental_fns(graph, eng, head):
    """Compiled ``prepare`` and ``occlude`` of an incremental engine, with the class heads."""
    c = graph.input_shape[-1]
    ints = [tf.TensorSpec((None,), tf.int32)] * 4

    def build():
        @tf.function(input_signature=[input_spec(graph)], reduce_retracing=True)
        def prepare_pass(x):
            cache, out = eng.prepare(x)
            return (cache,) + _classes(out[head.name], head) + _map_stats(out[eng.layer])

        @tf.function(input_signature=[eng.cache_spec(), tf.TensorSpec((None, c), tf.float32)] + ints,
                     reduce_retracing=True)
        def occluded_pass(cache, fill, img, iy, ix, maps):
            scores, act = eng.occlude(cache, fill, img, iy, ix, maps)
            return _classes(scores, head) + (act,)

        return prepare_pass, occluded_pass

    key = ("occlusion-incremental", eng.layer, eng.score, eng.patch, tuple(map(tuple, eng.origins)))
    return compiled(graph, key, build)


class _PlainPasses:
    """Full forward passes of the occluded images."""

    def __init__(self, graph, layer, head, patch, origins):
        self.fn = _plain_fn(graph, layer, head, patch)
        self.origins = tuple(o.astype(np.int32) for o in origins)
        self.size = graph.input_shape[:2]

    def unoccluded(self, x, fill):
        """``(state, (probs, top, map sums, map maxima))`` of the images themselves."""
        state = (tf.constant(x), tf.constant(fill))
        local = np.arange(len(x), dtype=np.int32)
        # an occluder at (H, W) lies outside the image: nothing is painted
        out = self.fn(*state, local, np.full_like(local, self.size[0]), np.full_like(local, self.size[1]))
        return state, [t.numpy() for t in out]

    def occluded(self, state, img, iy, ix, maps):
        """``(probs, top, activation of map maps[b])`` per occluder ``b``."""
        probs, top, sums, _ = self.fn(*state, img, self.origins[0][iy], self.origins[1][ix])
        return probs.numpy(), top.numpy(), sums.numpy()[np.arange(len(img)), maps]


class _IncrementalPasses:
    """Occluded passes that recompute only the occluders' footprints (``methods.incremental``)."""

    def __init__(self, graph, eng, head):
        self.prepare, self.fn = _incremental_fns(graph, eng, head)

    def unoccluded(self, x, fill):
        cache, *out = self.prepare(tf.constant(x))
        return (cache, tf.constant(fill)), [t.numpy() for t in out]

    def occluded(self, state, img, iy, ix, maps):
        cache, fill = state
        probs, top, act = self.fn(cache, fill, img, iy, ix, maps.astype(np.int32))
        return probs.numpy(), top.numpy(), act.numpy()


def _passes(request, layer, patch, origins, incremental):
    """The incremental passes where the engine applies (and is asked for), else the plain ones."""
    head = request.score
    if incremental:
        eng = incremental_engine.engine(request.graph, layer, head.name, patch, origins)
        if eng is not None:
            return _IncrementalPasses(request.graph, eng, head)
    return _PlainPasses(request.graph, layer, head, patch, origins)


# ---------------------------------------------------------------- the driver
@dataclasses.dataclass
class _Tally:
    """The arrays a sweep fills in: per image and occluder position, and unoccluded."""

    probability: np.ndarray
    top_class: np.ndarray
    activation: np.ndarray
    base_probs: np.ndarray
    base_class: np.ndarray
    base_sums: np.ndarray
    maps: np.ndarray

    @classmethod
    def empty(cls, n, positions, classes, channels):
        return cls(np.empty((n, positions), np.float32), np.empty((n, positions), np.int64),
                   np.empty((n, positions), np.float32), np.empty((n, max(classes, 2)), np.float32),
                   np.empty((n,), np.int64), np.empty((n, channels), np.float32), np.empty((n,), np.int64))


def _sweep(request, passes, fills, grid_shape, tally, progress=False):
    """Every occluder position of every image, a few images at a time."""
    positions = grid_shape[0] * grid_shape[1]
    bar = tracker(progress, request.n * positions, "position")
    per_chunk = max(1, request.batch_size // positions)  # images whose occluders fill about one batch
    for s0 in range(0, request.n, per_chunk):
        s1 = min(s0 + per_chunk, request.n)
        # the unoccluded images: predicted class, strongest map, reference values
        state, (probs, top, sums, maxima) = passes.unoccluded(request.x[s0:s1], fills[s0:s1])
        tally.base_probs[s0:s1], tally.base_class[s0:s1], tally.base_sums[s0:s1] = probs, top, sums
        tally.maps[s0:s1] = np.argmax(maxima, axis=1)  # first index on ties, as numpy
        asked = request.targets[s0:s1]
        targets = np.where(asked < 0, tally.base_class[s0:s1], asked)
        _occlude_images(passes, state, s0, targets, grid_shape, request.batch_size, tally, bar)
    bar.update(request.n * positions)
    bar.close()


def _occlude_images(passes, state, s0, targets, grid_shape, batch_size, tally, bar=None):
    """The occluded passes of images ``s0, s0 + 1, ...`` in even batches under ``batch_size``."""
    positions, gw = grid_shape[0] * grid_shape[1], grid_shape[1]
    img = np.repeat(np.arange(len(targets), dtype=np.int32), positions)
    pos = np.tile(np.arange(positions, dtype=np.int32), len(targets))
    for a, b in chunks(len(img), batch_size):
        if bar is not None:
            bar.update(s0 * positions + a)
        bi, bp = img[a:b], pos[a:b]
        probs, top, act = passes.occluded(state, bi, bp // gw, bp % gw, tally.maps[s0 + bi])
        tally.probability[s0 + bi, bp] = probs[np.arange(len(bi)), targets[bi]]
        tally.top_class[s0 + bi, bp] = top
        tally.activation[s0 + bi, bp] = act


def occlusion(model, inputs, target, patch, stride, fill=None, layer=None, batch_size=32,
              output=None, incremental=True, progress=False) -> Occlusion:
    """Occlusion sensitivity maps (Zeiler & Fergus 2014, arXiv:1311.2901) for a batch of model inputs.

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
        occluder's footprint when the model allows it (Krypton, Nakandala et
        al. 2019: same numbers up to float rounding, several times fewer
        FLOPs on VGG-style models).
      progress: a bar over the occluder positions (``keras_convviz.progress``;
        quiet by default).
    """
    request = prepare(model, inputs, target, output, batch_size)  # fails before any work
    graph, x = request.graph, request.x
    n, h, w, _ = x.shape
    patch, stride = _check_geometry(patch, stride, (h, w))
    layer = _default_layer(graph) if layer is None else graph.spatial_step(layer).name
    fills = fill_values(fill, x, "mean")
    origins = (grid_origins(h, patch[0], stride[0]), grid_origins(w, patch[1], stride[1]))
    grid_shape = (len(origins[0]), len(origins[1]))
    tally = _Tally.empty(n, grid_shape[0] * grid_shape[1], int(request.score.output_shape[-1]),
                         int(graph.step(layer).output_shape[-1]))
    _sweep(request, _passes(request, layer, patch, origins, incremental), fills, grid_shape, tally, progress)
    targets = np.where(request.targets < 0, tally.base_class, request.targets)
    rows = np.arange(n)
    return Occlusion(
        probability=tally.probability.reshape((n,) + grid_shape),
        top_class=tally.top_class.reshape((n,) + grid_shape),
        activation=tally.activation.reshape((n,) + grid_shape),
        target=targets, layer=layer, map_index=tally.maps,
        base_probability=tally.base_probs[rows, targets], base_class=tally.base_class,
        base_activation=tally.base_sums[rows, tally.maps],
        patch=patch, stride=stride, origins_y=origins[0], origins_x=origins[1], image_size=(h, w),
        fill=fills,
    )
