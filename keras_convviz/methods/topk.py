"""Dataset-wide top-k activations per feature map (Zeiler & Fergus 2014, fig. 2).

``top_activations`` streams a ``tf.data.Dataset`` once. For every image it
takes each feature map's maximum (and where it is), and a compiled step
merges the batch into a running ``(C, k)`` top-k table, so memory does not
grow with the dataset. Image ids travel with the data (``Dataset.scan``), so
the same code runs under any ``tf.distribute.Strategy``: each replica reduces
its share of the batch, ``strategy.gather`` brings the per-image maxima
together, and every worker merges them into the same table.

Ties are broken by dataset order (the earlier image wins), exactly as a
brute-force stable sort would, on one device or many.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np
import tensorflow as tf

from ..fields import receptive_fields
from ..graph import walk
from ..probe import compiled, run

__all__ = ["top_activations", "TopActivations", "figure"]


@dataclasses.dataclass
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
    def k(self):
        return self.values.shape[1]

    def strongest_maps(self, m):
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


# ---------------------------------------------------------------- the compiled steps
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


def _state_specs(channels, k):
    return (tf.TensorSpec((channels, k), tf.float32), tf.TensorSpec((channels, k), tf.int64),
            tf.TensorSpec((channels, k, 2), tf.int64))


def _local_fn(graph, layer, channels, k):
    h, w, c = graph.input_shape

    @tf.function(input_signature=[tf.TensorSpec((None, h, w, c), tf.float32),
                                  tf.TensorSpec((None,), tf.int64), _state_specs(channels, k)],
                 reduce_retracing=True)
    def step(x, ids, state):
        values, pos = _per_image(run(graph, x, [layer])[layer])
        return _merge(state, values, ids, pos, k)

    return step


def _distributed_fn(graph, layer, k, strategy):
    def replica(x, ids):
        values, pos = _per_image(run(graph, x, [layer])[layer])
        return values, ids, pos

    @tf.function
    def step(batch, state):
        x, ids = batch
        per = strategy.run(replica, args=(x, ids))
        values, ids, pos = (strategy.gather(t, axis=0) for t in per)
        return _merge(state, values, ids, pos, k), tf.shape(ids)[0]

    return step


# ---------------------------------------------------------------- the driver
def top_activations(model, dataset, layer, k=9, strategy=None, batch_size=32, callback=None):
    """The ``k`` strongest activations of every feature map of ``layer`` over a dataset.

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
      batch_size: images per step when the dataset is not batched (the
        global batch under a strategy).
      callback: called as ``callback(images_so_far)`` after every batch
        (progress bars).

    Returns a :class:`TopActivations`. Memory stays ``O(C k)`` whatever the
    dataset size.
    """
    graph = walk(model)
    step_ = graph.spatial_step(layer)
    layer = step_.name
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    k, channels = int(k), int(step_.output_shape[-1])
    ds, known = _as_dataset(dataset, int(batch_size), graph.input_shape)
    if known == 0:
        raise ValueError("the dataset is empty; top_activations needs at least one image.")
    if known is not None and known < k:
        raise ValueError(f"k={k} but the dataset has only {known} images; use k <= {known}.")
    state = (tf.fill([channels, k], tf.constant(-np.inf, tf.float32)),
             tf.fill([channels, k], tf.constant(-1, tf.int64)),
             tf.fill([channels, k, 2], tf.constant(-1, tf.int64)))
    count = 0
    if strategy is None:
        step = compiled(graph, ("topk", layer, k), lambda: _local_fn(graph, layer, channels, k))
        for x, ids in ds:
            state = step(x, ids, state)
            count += int(ids.shape[0])
            if callback is not None:
                callback(count)
    else:
        if not isinstance(strategy, tf.distribute.Strategy):
            raise ValueError(f"strategy must be a tf.distribute.Strategy, got {type(strategy).__name__}")
        step = compiled(graph, ("topk-distributed", layer, k, id(strategy)),
                        lambda: _distributed_fn(graph, layer, k, strategy))
        for batch in strategy.experimental_distribute_dataset(ds):
            state, seen = step(batch, state)
            count += int(seen)
            if callback is not None:
                callback(count)
    if count == 0:
        raise ValueError("the dataset is empty; top_activations needs at least one image.")
    if count < k:
        raise ValueError(f"k={k} but the dataset has only {count} images; use k <= {count}.")
    values, ids, pos = (t.numpy() for t in state)
    return TopActivations(layer=layer, values=values, image_ids=ids, positions=pos, count=count)


# ---------------------------------------------------------------- the fig. 2 grid
def units(result, maps):
    """Rows ``(image_id, y, x, channel)`` for the chosen maps, k per map, in rank order."""
    maps = np.asarray(maps, np.int64).reshape(-1)
    rows = []
    for c in maps:
        for r in range(result.k):
            y, x = result.positions[c, r]
            rows.append((result.image_ids[c, r], y, x, c))
    return np.asarray(rows, np.int64).reshape(-1, 4)


def figure(model, result, images, maps=16, deprocess=None, preprocess=None, cell=64, batch_size=16):
    """The fig. 2 grid: per chosen map, its k deconv projections beside the k
    receptive-field patches of the images that caused them.

    Args:
      model: the model the result was mined on.
      result: a :class:`TopActivations`.
      images: model inputs by dataset id: an array ``(N, H, W, C)`` or a
        callable ``id -> (H, W, C)`` (only the winning images are read).
      maps: a count (the maps with the largest top activation) or a list.
      deprocess: model inputs -> RGB uint8 for the patches (default: a
        min-max stretch of each patch).
      preprocess: the preset's preprocess, to show BGR models' projections in RGB.
      cell: side in pixels of each drawn patch.

    Returns ``(rgb uint8 grid, chosen map indices)``.
    """
    from .. import render
    from . import deconv as deconv_module

    graph = walk(model)
    if isinstance(maps, numbers.Integral) and not isinstance(maps, bool):
        if maps < 1:
            raise ValueError(f"maps must be >= 1, got {maps}")
        chosen = result.strongest_maps(int(maps))
    else:
        chosen = np.asarray(maps, np.int64).reshape(-1)
        if chosen.size == 0 or chosen.min() < 0 or chosen.max() >= result.values.shape[0]:
            raise ValueError(f"maps must be indices in 0..{result.values.shape[0] - 1}")
    rows = units(result, chosen)
    ids = np.unique(rows[:, 0])
    fetch = images if callable(images) else (lambda i: np.asarray(images)[i])
    batch = np.stack([np.asarray(fetch(int(i)), np.float32) for i in ids])
    local = rows.copy()
    local[:, 0] = np.searchsorted(ids, rows[:, 0])
    projections = deconv_module.deconv_units(model, batch, result.layer, local, batch_size=batch_size)
    rf = receptive_fields(model)[result.layer]
    hw = graph.input_shape[:2]
    order = deconv_module.display_order(preprocess, graph.input_shape[-1]) if preprocess else None
    shown = deprocess(batch) if deprocess is not None else None
    lines, titles = [], []
    for m, c in enumerate(chosen):
        projs, patches, names = [], [], []
        for r in range(result.k):
            u = m * result.k + r
            y0, y1, x0, x1 = rf.window(int(rows[u, 1]), int(rows[u, 2]), clip_to=hw)
            img = int(local[u, 0])
            projs.append(render.fit_square(deconv_module.projection_rgb(projections[u, y0:y1, x0:x1], order), cell))
            if shown is not None:
                patch = np.asarray(shown[img][y0:y1, x0:x1])
            else:
                patch = render.to_uint8(render.normalize(batch[img, y0:y1, x0:x1]))
                if patch.shape[-1] == 1:
                    patch = np.repeat(patch, 3, -1)
            patches.append(render.fit_square(patch, cell))
            names.append(f"#{int(rows[u, 0])}")
        lines.append(projs + patches)
        titles.append([f"map {int(c)}"] + [""] * (result.k - 1) + names)
    return render.grid(lines, titles=titles, cell=(cell, cell)), chosen


