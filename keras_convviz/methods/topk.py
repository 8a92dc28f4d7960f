"""Dataset-wide top-k activations per feature map (Zeiler & Fergus 2014, arXiv:1311.2901, fig. 2).

``top_activations`` streams a ``tf.data.Dataset`` once. For every image it
takes each feature map's maximum (and where it is), and a compiled function
merges the batch into a running ``(C, k)`` top-k table, so memory does not
grow with the dataset. Image ids travel with the data (``Dataset.scan``), so
the same code runs under any ``tf.distribute.Strategy``: each replica reduces
its share of the batch, ``strategy.gather`` brings the per-image maxima
together, and every worker merges them into the same table.

Ties are broken by dataset order (the earlier image wins), exactly as a
brute-force stable sort would, on one device or many. The fig. 2 grid is
drawn by ``figures.topk.figure``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from ..checks import positive_int
from ..graph import walk
from ..probe import compiled, run

__all__ = ["top_activations", "TopActivations", "units"]


@dataclasses.dataclass(frozen=True)
class TopActivations:
    """The k strongest per-image maxima of every feature map of ``layer``.

    ``values`` ``(C, k)`` descending; ``image_ids`` ``(C, k)`` index of the
    image in dataset order; ``positions`` ``(C, k, 2)`` the ``(y, x)`` of the
    maximum in the feature map; ``count`` the number of images streamed.
    """

    layer: str
    values: np.ndarray
    image_ids: np.ndarray
    positions: np.ndarray
    count: int

    @property
    def k(self) -> int:
        return self.values.shape[1]

    def strongest_maps(self, m) -> np.ndarray:
        """The ``m`` maps whose top activation is largest (descending)."""
        return np.argsort(-self.values[:, 0], kind="stable")[:m]


# ---------------------------------------------------------------- the dataset
def _image_spec(spec):
    """The image component of a dataset element: images, (image, label, ...) or {'image': ...}."""
    if isinstance(spec, tf.TensorSpec):
        return spec, lambda e: e
    if isinstance(spec, (tuple, list)) and spec and isinstance(spec[0], tf.TensorSpec):
        return spec[0], lambda *e: e[0]
    if isinstance(spec, dict):
        for key in ("image", "images", "x", "input"):
            if key in spec and isinstance(spec[key], tf.TensorSpec):
                return spec[key], lambda e, key=key: e[key]
    raise ValueError(
        f"the dataset yields {spec}; top_activations needs a dataset of images or of "
        f"(image, label) pairs."
    )


def _as_dataset(dataset, batch_size, model_shape):
    """A batched dataset of ``(images, ids)`` with ids in dataset order."""
    if isinstance(dataset, np.ndarray):
        if dataset.ndim != 4:
            raise ValueError(f"an array of images must be (N, H, W, C), got shape {dataset.shape}")
        dataset = tf.data.Dataset.from_tensor_slices(dataset.astype(np.float32))
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(f"dataset must be a tf.data.Dataset (or a numpy batch), got {type(dataset).__name__}")
    spec, pick = _image_spec(dataset.element_spec)
    rank = spec.shape.rank
    if rank not in (3, 4):
        raise ValueError(
            f"dataset images have shape {spec.shape}; expected images (H, W, C) or batches (N, H, W, C)."
        )
    hwc = tuple(spec.shape[-3:])
    if any(a is not None and a != b for a, b in zip(hwc, model_shape)):
        raise ValueError(
            f"dataset images are {tuple(hwc)} but the model expects {tuple(model_shape)}; "
            f"resize/preprocess them in the dataset (Dataset.map)."
        )
    known = None
    ds = dataset.map(pick, num_parallel_calls=tf.data.AUTOTUNE)
    if rank == 3:
        card = int(dataset.cardinality())
        known = card if card >= 0 else None
        ds = ds.batch(batch_size)
    ds = ds.map(lambda x: tf.cast(x, tf.float32))

    def number(start, x):
        n = tf.cast(tf.shape(x)[0], tf.int64)
        return start + n, (x, start + tf.range(n, dtype=tf.int64))

    ds = ds.scan(tf.constant(0, tf.int64), number)
    return ds.prefetch(tf.data.AUTOTUNE), known


# ---------------------------------------------------------------- the compiled functions
def _per_image(acts):
    """Per image and map: maximum ``(B, C)`` and its ``(y, x)`` ``(B, C, 2)`` (first on ties)."""
    shape = tf.shape(acts)
    w = shape[2]
    flat = tf.reshape(acts, [shape[0], -1, shape[3]])
    values = tf.reduce_max(flat, axis=1)
    arg = tf.argmax(flat, axis=1, output_type=tf.int32)
    pos = tf.stack([arg // w, arg % w], axis=-1)
    return values, tf.cast(pos, tf.int64)


def _merge(state, values, ids, pos, k):
    """Merge per-image candidates into the running table; ties go to the lower image id."""
    top_vals, top_ids, top_pos = state
    channels = tf.shape(values)[1]
    cand_vals = tf.concat([top_vals, tf.transpose(values)], axis=1)  # (C, k + B)
    cand_ids = tf.concat([top_ids, tf.broadcast_to(ids[None, :], [channels, tf.shape(ids)[0]])], axis=1)
    cand_pos = tf.concat([top_pos, tf.transpose(pos, [1, 0, 2])], axis=1)
    # id order first, then a stable top-k: equal values keep the earlier image, on
    # one device or with replicas/workers delivering images in any order
    order = tf.argsort(cand_ids, axis=1, stable=True)
    cand_vals = tf.gather(cand_vals, order, batch_dims=1)
    cand_ids = tf.gather(cand_ids, order, batch_dims=1)
    cand_pos = tf.gather(cand_pos, order, batch_dims=1)
    new_vals, idx = tf.math.top_k(cand_vals, k=k, sorted=True)
    return (new_vals, tf.gather(cand_ids, idx, batch_dims=1), tf.gather(cand_pos, idx, batch_dims=1))


def _empty_state(channels, k):
    """The running table before any image: values -inf, ids and positions -1."""
    return (tf.fill([channels, k], tf.constant(-np.inf, tf.float32)),
            tf.fill([channels, k], tf.constant(-1, tf.int64)),
            tf.fill([channels, k, 2], tf.constant(-1, tf.int64)))


def _local_fn(graph, layer, channels, k):
    """Compiled ``((images, ids), table) -> (table, images merged)`` on one device."""
    h, w, c = graph.input_shape
    state_spec = (tf.TensorSpec((channels, k), tf.float32), tf.TensorSpec((channels, k), tf.int64),
                  tf.TensorSpec((channels, k, 2), tf.int64))

    @tf.function(input_signature=[(tf.TensorSpec((None, h, w, c), tf.float32), tf.TensorSpec((None,), tf.int64)),
                                  state_spec],
                 reduce_retracing=True)
    def merge_batch(batch, state):
        x, ids = batch
        values, pos = _per_image(run(graph, x, [layer])[layer])
        return _merge(state, values, ids, pos, k), tf.shape(ids)[0]

    return merge_batch


def _distributed_fn(graph, layer, k, strategy):
    """Compiled ``((images, ids), table) -> (table, images merged)`` under ``strategy``."""

    def replica(x, ids):
        values, pos = _per_image(run(graph, x, [layer])[layer])
        return values, ids, pos

    @tf.function
    def merge_batch(batch, state):
        x, ids = batch
        per = strategy.run(replica, args=(x, ids))
        values, ids, pos = (strategy.gather(t, axis=0) for t in per)
        return _merge(state, values, ids, pos, k), tf.shape(ids)[0]

    return merge_batch


# ---------------------------------------------------------------- the driver
def _check_images(images, k):
    """Enough images (``images``: a count, or None when unknown up front) for ``k``."""
    if images == 0:
        raise ValueError("the dataset is empty; top_activations needs at least one image.")
    if images is not None and images < k:
        raise ValueError(f"k={k} but the dataset has only {images} images; use k <= {images}.")


def _stream(batches, merge_batch, state, callback):
    """Merge every batch into the table; ``(table, images seen)``."""
    seen = 0
    for batch in batches:
        state, n = merge_batch(batch, state)
        seen += int(n)
        if callback is not None:
            callback(seen)
    return state, seen


def top_activations(model, dataset, layer, k=9, strategy=None, batch_size=32, callback=None) -> TopActivations:
    """The ``k`` strongest activations of every feature map of ``layer`` over a dataset
    (Zeiler & Fergus 2014, arXiv:1311.2901, fig. 2).

    Args:
      model: a Keras model.
      dataset: a ``tf.data.Dataset`` of preprocessed model inputs, batched or
        not, yielding images or ``(image, label)`` pairs (or a numpy batch).
      layer: a spatial layer name.
      k: how many activations to keep per map (each from a different image:
        an image counts with its per-map maximum).
      strategy: any ``tf.distribute.Strategy`` to mine under (the dataset is
        distributed with ``strategy.experimental_distribute_dataset``; for
        several workers build the model inside ``strategy.scope()``).
      batch_size: images per batch when the dataset is not batched (the
        global batch under a strategy).
      callback: called as ``callback(images_so_far)`` after every batch
        (progress bars).

    Returns a :class:`TopActivations`. Memory stays ``O(C k)`` whatever the
    dataset size.
    """
    graph = walk(model)
    step = graph.spatial_step(layer)
    layer, channels = step.name, int(step.output_shape[-1])
    k, batch_size = positive_int(k, "k"), positive_int(batch_size, "batch_size")
    if strategy is not None and not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(f"strategy must be a tf.distribute.Strategy, got {type(strategy).__name__}")
    ds, known = _as_dataset(dataset, batch_size, graph.input_shape)
    _check_images(known, k)
    if strategy is None:
        merge_batch = compiled(graph, ("topk", layer, k), lambda: _local_fn(graph, layer, channels, k))
    else:
        merge_batch = compiled(graph, ("topk-distributed", layer, k, id(strategy)),
                               lambda: _distributed_fn(graph, layer, k, strategy))
        ds = strategy.experimental_distribute_dataset(ds)
    state, seen = _stream(ds, merge_batch, _empty_state(channels, k), callback)
    _check_images(seen, k)
    values, ids, pos = (t.numpy() for t in state)
    return TopActivations(layer=layer, values=values, image_ids=ids, positions=pos, count=seen)


# ---------------------------------------------------------------- the winning units
def units(result, maps) -> np.ndarray:
    """Rows ``(image_id, y, x, channel)`` for the chosen maps, k per map, in rank order."""
    maps = np.asarray(maps, np.int64).reshape(-1)
    rows = []
    for c in maps:
        for r in range(result.k):
            y, x = result.positions[c, r]
            rows.append((result.image_ids[c, r], y, x, c))
    return np.asarray(rows, np.int64).reshape(-1, 4)
