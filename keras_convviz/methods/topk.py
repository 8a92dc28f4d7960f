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

Under a strategy: a replica handed no image of an uneven last global batch
runs one padding image and drops it (pad and mask); ``numbered_records``
numbers images by file and record so ``AutoShardPolicy.FILE`` works; OFF on
several workers is refused (every worker would mine every image). The
per-image reduction and the merge rule are public so that
:mod:`keras_convviz.beam` mines with the same code.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from ..inline import Inline
from ..checks import positive_int
from ..distributed import worker_count
from ..graph import walk
from ..probe import compiled, run

__all__ = ["top_activations", "TopActivations", "units", "per_image_maxima", "merge_tables", "as_candidates",
           "empty_table", "record_id", "numbered_records", "RECORD_BITS"]


@dataclasses.dataclass(frozen=True)
class TopActivations(Inline):
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


def _array_batches(images, batch_size, model_shape):
    """``(images, ids)`` batches of an in-memory array, without tf.data: a Dataset made at every call
    traces new map/scan functions that TensorFlow keeps for the life of the process (ConvVizCallback's
    top-k grew the process at every log this way, issue 28)."""
    if images.ndim != 4:
        raise ValueError(f"an array of images must be (N, H, W, C), got shape {images.shape}")
    if any(a is not None and a != b for a, b in zip(images.shape[1:], model_shape)):
        raise ValueError(f"dataset images are {tuple(images.shape[1:])} but the model expects "
                         f"{tuple(model_shape)}; resize/preprocess them in the dataset (Dataset.map).")
    x = tf.constant(np.asarray(images, np.float32))
    return [(x[i:i + batch_size], tf.range(i, min(i + batch_size, len(images)), dtype=tf.int64))
            for i in range(0, len(images), batch_size)], len(images)


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
    if rank == 3:
        card = int(dataset.cardinality())
        known = card if card >= 0 else None
    if isinstance(dataset.element_spec, dict) and "image_id" in dataset.element_spec:
        # ids carried by the data (numbered_records): they survive any auto-shard rewrite
        ds = dataset.map(lambda e: (tf.cast(pick(e), tf.float32), tf.cast(e["image_id"], tf.int64)))
        return (ds.batch(batch_size) if rank == 3 else ds).prefetch(tf.data.AUTOTUNE), known
    ds = dataset.map(pick, num_parallel_calls=tf.data.AUTOTUNE)
    ds = (ds.batch(batch_size) if rank == 3 else ds).map(lambda x: tf.cast(x, tf.float32))

    def number(start, x):
        n = tf.cast(tf.shape(x)[0], tf.int64)
        return start + n, (x, start + tf.range(n, dtype=tf.int64))

    ds = ds.scan(tf.constant(0, tf.int64), number)
    return ds.prefetch(tf.data.AUTOTUNE), known


def numbered_records(files, parse, reader=None) -> tf.data.Dataset:
    """``{"image": parse(record), "image_id": record_id(file, record)}`` over the
    records of ``files`` (in the given order), for ``top_activations``.

    Ids are numbered per file and record, inside a ``flat_map`` over the file
    list, so they survive ``AutoShardPolicy.FILE`` (the scan that numbers plain
    datasets hides the file source from the auto-shard rewrite). ``reader``:
    a file -> records dataset (default ``tf.data.TFRecordDataset``).
    """
    files = [str(f) for f in files]
    if not files:
        raise ValueError("numbered_records needs at least one file")
    reader = reader or tf.data.TFRecordDataset

    def records(file_index, path):
        return reader(path).enumerate().map(
            lambda r, rec: {"image": parse(rec), "image_id": file_index * (1 << RECORD_BITS) + r})

    indices = tf.constant(np.arange(len(files), dtype=np.int64))
    return tf.data.Dataset.from_tensor_slices((indices, tf.constant(files))).flat_map(records)


def _check_sharding(dataset, strategy):
    """``AutoShardPolicy.OFF`` on several workers hands every worker every image."""
    if not isinstance(dataset, tf.data.Dataset) or worker_count(strategy) < 2:
        return
    policy = dataset.options().experimental_distribute.auto_shard_policy
    if policy == tf.data.experimental.AutoShardPolicy.OFF:
        raise ValueError(
            f"the dataset's auto_shard_policy is OFF, so each of the {worker_count(strategy)} workers would "
            f"mine every image and count it once per worker; set "
            f"options.experimental_distribute.auto_shard_policy = AutoShardPolicy.DATA (or FILE with "
            f"numbered_records) and apply it with dataset.with_options(options).")


# ---------------------------------------------------------------- the compiled functions
def per_image_maxima(acts) -> tuple:
    """Per image and map: maximum ``(B, C)`` and its ``(y, x)`` ``(B, C, 2)`` (first on ties).

    The one per-image reduction of top-k mining, in process and in
    :mod:`keras_convviz.beam`.
    """
    shape = tf.shape(acts)
    w = shape[2]
    flat = tf.reshape(acts, [shape[0], -1, shape[3]])
    values = tf.reduce_max(flat, axis=1)
    arg = tf.argmax(flat, axis=1, output_type=tf.int32)
    pos = tf.stack([arg // w, arg % w], axis=-1)
    return values, tf.cast(pos, tf.int64)


def merge_tables(table, candidates, k) -> tuple:
    """The one merge rule: the ``k`` best of a table ``(values, ids, positions)``
    ``(C, k)``, ``(C, k)``, ``(C, k, 2)`` and candidates of the same layout with any
    width ``(C, m)``, by value descending, ties to the smaller image id.

    The order is total (for distinct ids), so merging is associative and
    commutative: any split of the images into batches, replicas, workers or Beam
    bundles, merged in any order, gives the same table.
    """
    cand_vals, cand_ids, cand_pos = (tf.concat([a, b], axis=1) for a, b in zip(table, candidates))
    # id order first, then a stable top-k: equal values keep the smaller id
    order = tf.argsort(cand_ids, axis=1, stable=True)
    cand_vals = tf.gather(cand_vals, order, batch_dims=1)
    cand_ids = tf.gather(cand_ids, order, batch_dims=1)
    cand_pos = tf.gather(cand_pos, order, batch_dims=1)
    new_vals, idx = tf.math.top_k(cand_vals, k=k, sorted=True)
    return (new_vals, tf.gather(cand_ids, idx, batch_dims=1), tf.gather(cand_pos, idx, batch_dims=1))


def as_candidates(values, ids, pos) -> tuple:
    """Per-image maxima ``(B, C)``, ids ``(B,)``, positions ``(B, C, 2)`` -> the
    ``(C, B)`` candidate layout of :func:`merge_tables`."""
    channels = tf.shape(values)[1]
    return (tf.transpose(values), tf.broadcast_to(ids[None, :], [channels, tf.shape(ids)[0]]),
            tf.transpose(pos, [1, 0, 2]))


def _merge(state, values, ids, pos, k):
    """Merge per-image candidates into the running table."""
    return merge_tables(state, as_candidates(values, ids, pos), k)


def empty_table(channels, k) -> tuple:
    """The running table before any image: values -inf, ids and positions -1."""
    return (tf.fill([channels, k], tf.constant(-np.inf, tf.float32)),
            tf.fill([channels, k], tf.constant(-1, tf.int64)),
            tf.fill([channels, k, 2], tf.constant(-1, tf.int64)))


def record_id(file_index, record_index) -> int:
    """The image id of record ``record_index`` of file ``file_index``: ordered like
    the files then the records, so ties go to the earlier file and record."""
    return (int(file_index) << RECORD_BITS) | int(record_index)


RECORD_BITS = 32


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
        values, pos = per_image_maxima(run(graph, x, [layer])[layer])
        return _merge(state, values, ids, pos, k), tf.shape(ids)[0]

    return merge_batch


def _distributed_fn(graph, layer, k, strategy):
    """Compiled ``((images, ids), table) -> (table, images merged)`` under ``strategy``."""

    def replica(x, ids):
        # pad and mask: a replica handed no image of an uneven last global batch
        # runs one zero image and drops it (oneDNN's conv fails on empty batches)
        n = tf.shape(x)[0]
        padded = tf.concat([x, tf.zeros(tf.concat([[tf.maximum(1 - n, 0)], tf.shape(x)[1:]], 0), x.dtype)], 0)
        values, pos = per_image_maxima(run(graph, padded, [layer])[layer])
        return values[:n], ids, pos[:n]

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


def _stream(batches, merge_batch, state, callback, expected=None):
    """Merge every batch into the table; ``(table, images seen)``.

    ``expected``: the model's ``(H, W, C)``; a batch of another size (a
    dataset that declared ``None`` dimensions) is a ``ValueError``.
    """
    seen = 0
    for batch in batches:
        images = batch[0] if isinstance(batch, tuple) else None
        if expected is not None and isinstance(images, tf.Tensor) and not tf.TensorShape(
                (None,) + tuple(expected)).is_compatible_with(images.shape):
            raise ValueError(f"dataset images are {tuple(images.shape[1:])} but the model expects "
                             f"{tuple(expected)}; resize/preprocess them in the dataset (Dataset.map).")
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
    if strategy is not None:
        _check_sharding(dataset, strategy)
    if isinstance(dataset, np.ndarray) and strategy is None:  # no tf.data: see _array_batches
        ds, known = _array_batches(dataset, batch_size, graph.input_shape)
    else:
        ds, known = _as_dataset(dataset, batch_size, graph.input_shape)
    _check_images(known, k)
    if strategy is None:
        merge_batch = compiled(graph, ("topk", layer, k), lambda: _local_fn(graph, layer, channels, k))
    else:
        merge_batch = compiled(graph, ("topk-distributed", layer, k, id(strategy)),
                               lambda: _distributed_fn(graph, layer, k, strategy))
        ds = strategy.experimental_distribute_dataset(ds)
    state, seen = _stream(ds, merge_batch, empty_table(channels, k), callback, graph.input_shape)
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
