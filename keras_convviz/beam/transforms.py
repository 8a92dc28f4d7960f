"""The Beam pieces of dataset-scale top-k (Zeiler & Fergus 2014, arXiv:1311.2901, fig. 2).

- :class:`ImageMaxima`: a ``DoFn`` that batches ``(key, (image_id, image))``
  records within a bundle (or takes ready batches, ``batched=True``) and emits
  per-image, per-map maxima per batch.
- :class:`TopKCombineFn`: the associative, commutative merge of those
  candidates into a ``(C, k)`` table; ties go to the smaller image id.
- :class:`TopActivations`: the two as one ``PTransform``.

The reduction and the merge rule are ``methods.topk``'s own, so Beam and
``top_activations`` cannot drift apart. Both run as compiled functions, one
per worker process (the merge's eager ops cost ~7 ms a call, as much as the
forward pass of a 32-image batch of the demo model).

Throughput (``benchmarks/bench_beam.py``): elements should be file paths,
shard lists or records read on the workers. Records handed to ``beam.Create``
are pickled and bz2-compressed into the pipeline graph (twice, ~2 MB/s), so a
``Create`` of preprocessed float images costs more than mining them.
"""

from __future__ import annotations

import os
import tempfile
import threading

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

__all__ = ["TopActivations", "TopKCombineFn", "ImageMaxima", "load_preset", "local_copy"]

_PRESETS = {}
_CACHE_LOCK = threading.Lock()


def local_copy(uri) -> str:
    """A local path for ``uri``: itself when local, else a copy in a temporary
    folder (``gs://``, ``s3://`` ... through Beam's ``FileSystems``)."""
    if "://" not in str(uri):
        return str(uri)
    from apache_beam.io.filesystems import FileSystems

    target = os.path.join(tempfile.mkdtemp(prefix="convviz-"), os.path.basename(str(uri)))
    with FileSystems.open(str(uri)) as src, open(target, "wb") as dst:
        dst.write(src.read())
    return target


def load_preset(model_uri, weights="imagenet"):
    """The preset for ``model_uri`` (``demo``, ``vgg16``, ``mobilenet`` or a
    .keras/.h5 file, also remote), loaded once per worker process."""
    with _CACHE_LOCK:
        key = (str(model_uri), str(weights))
        if key not in _PRESETS:
            from ..presets import NAMES, load

            uri = model_uri if str(model_uri).lower() in NAMES else local_copy(model_uri)
            _PRESETS[key] = load(uri, weights=weights)
        return _PRESETS[key]


def _maxima_fn(model, layer):
    """The compiled ``images (B, H, W, C) -> (maxima (B, C), positions (B, C, 2))``."""
    import tensorflow as tf

    from ..graph import walk
    from ..methods.topk import per_image_maxima
    from ..probe import compiled, run

    graph = walk(model)
    name = graph.spatial_step(layer).name

    def build():
        @tf.function(input_signature=[tf.TensorSpec((None,) + tuple(graph.input_shape), tf.float32)])
        def maxima(x):
            return per_image_maxima(run(graph, x, [name])[name])

        return maxima

    return compiled(graph, ("beam-maxima", name), build)


class ImageMaxima(beam.DoFn):
    """``(key, (image_id, image))`` -> ``(key, (maxima (B, C), ids (B,), positions (B, C, 2)))``.

    Images are batched within a bundle, ``batch_size`` at a time (the last
    batch of a bundle may be smaller); a batch may mix keys, and each key gets
    its own rows. With ``batched=True`` the records are ready batches
    ``(key, (image_ids (B,), images (B, H, W, C)))`` (e.g. read and decoded by
    the pipeline's ``ReadShard``), mined as they come.
    """

    def __init__(self, model_uri, layer, batch_size=32, weights="imagenet", batched=False):
        self.model_uri, self.layer, self.weights = str(model_uri), str(layer), str(weights)
        self.batch_size, self.batched = int(batch_size), bool(batched)
        self._buffer = []
        self._images = beam.metrics.Metrics.counter("convviz", "images")

    def setup(self):
        self._maxima = _maxima_fn(load_preset(self.model_uri, self.weights).model, self.layer)

    def start_bundle(self):
        self._buffer = []

    def process(self, element):
        key, (image_id, image) = element
        if self.batched:
            ids = np.asarray(image_id, np.int64).reshape(-1)
            if not len(ids):  # an empty batch: nothing to mine (and oneDNN's conv fails on one)
                return
            values, pos = (t.numpy() for t in self._maxima(np.asarray(image, np.float32)))
            self._images.inc(len(ids))
            yield key, (values, ids, pos)
            return
        self._buffer.append((key, int(image_id), np.asarray(image, np.float32)))
        if len(self._buffer) >= self.batch_size:
            yield from self._flush()

    def finish_bundle(self):
        for out in self._flush():
            yield WindowedValue(out, MIN_TIMESTAMP, [GlobalWindow()])

    def _flush(self):
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        values, pos = (t.numpy() for t in self._maxima(np.stack([b[2] for b in batch])))
        keys = [b[0] for b in batch]
        ids = np.asarray([b[1] for b in batch], np.int64)
        for key in dict.fromkeys(keys):
            rows = np.asarray([i for i, k in enumerate(keys) if k == key])
            self._images.inc(len(rows))
            yield key, (values[rows], ids[rows], pos[rows])


_MERGES = {}


def _merge_fn(k, with_candidates):
    """The compiled ``methods.topk.merge_tables`` for ``k``, one per process:
    ``(table, table)`` or, ``with_candidates``, ``(table, maxima, ids, positions)``."""
    key = (int(k), bool(with_candidates))
    with _CACHE_LOCK:
        if key not in _MERGES:
            import tensorflow as tf

            from ..methods.topk import as_candidates, merge_tables

            table = (tf.TensorSpec((None, None), tf.float32), tf.TensorSpec((None, None), tf.int64),
                     tf.TensorSpec((None, None, 2), tf.int64))
            if with_candidates:
                _MERGES[key] = tf.function(lambda t, v, i, p: merge_tables(t, as_candidates(v, i, p), key[0]),
                                           input_signature=[table, table[0], tf.TensorSpec((None,), tf.int64),
                                                            table[2]])
            else:
                _MERGES[key] = tf.function(lambda t, c: merge_tables(t, c, key[0]), input_signature=[table, table])
        return _MERGES[key]


def _merge(table, candidates, k):
    """``methods.topk.merge_tables`` on numpy tables, compiled."""
    return tuple(t.numpy() for t in _merge_fn(k, False)(table, candidates))


class TopKCombineFn(beam.CombineFn):
    """Merges per-image maxima into the ``k`` best per map: ``(table, images)``
    accumulators, output a :class:`~keras_convviz.methods.topk.TopActivations`.

    Associative and commutative: the order ``(value desc, image id asc)`` is
    total for distinct ids, so any bundling and merge order gives one table.
    """

    def __init__(self, layer, k):
        self.layer, self.k = str(layer), int(k)

    def create_accumulator(self):
        return None, 0

    def _table(self, channels):
        from ..methods.topk import empty_table

        return tuple(t.numpy() for t in empty_table(channels, self.k))

    def add_input(self, accumulator, candidates):
        table, count = accumulator
        values, ids, pos = candidates
        table = self._table(values.shape[1]) if table is None else table
        merged = _merge_fn(self.k, True)(table, np.asarray(values, np.float32), np.asarray(ids, np.int64),
                                         np.asarray(pos, np.int64))
        return tuple(t.numpy() for t in merged), count + len(ids)

    def merge_accumulators(self, accumulators):
        tables, count = [], 0
        for table, n in accumulators:
            count += n
            if table is not None:
                tables.append(table)
        if not tables:
            return None, count
        merged = tables[0]
        for table in tables[1:]:
            merged = _merge(merged, table, self.k)
        return merged, count

    def extract_output(self, accumulator):
        from ..methods.topk import TopActivations as Table

        table, count = accumulator
        if table is None:
            return None
        values, ids, pos = table
        return Table(layer=self.layer, values=values, image_ids=ids, positions=pos, count=count)


class TopActivations(beam.PTransform):
    """``(image_id, image)`` records -> one ``methods.topk.TopActivations`` table
    (with ``keyed=True``: ``(key, (image_id, image))`` -> ``(key, table)``, one
    table per key, e.g. per shard of the input).

    Args:
      model_uri: ``demo``, ``vgg16``, ``mobilenet`` or a .keras/.h5 file (local
        or any Beam filesystem); loaded once per worker process.
      layer: the spatial layer's name (the model's own name for it).
      k: activations kept per map.
      batch_size: images per forward pass on a worker.
      weights: as ``presets.load`` (``imagenet``, ``none`` or a file).
      keyed: records are ``(key, record)``; one table per key.
      batched: each record is a batch ``(image_ids (B,), images (B, H, W, C))``
        (``batch_size`` is then unused): no per-image element overhead.

    Image ids must be distinct; ties go to the smaller id.
    """

    def __init__(self, model_uri, layer, k=9, batch_size=32, weights="imagenet", keyed=False, batched=False):
        super().__init__()
        from ..checks import positive_int

        self.model_uri, self.layer, self.weights, self.keyed = model_uri, layer, weights, keyed
        self.k, self.batch_size = positive_int(k, "k"), positive_int(batch_size, "batch_size")
        self.batched = bool(batched)

    def expand(self, records):
        if not self.keyed:
            records = records | "Unkeyed" >> beam.Map(lambda record: (None, record))
        candidates = records | "Maxima" >> beam.ParDo(
            ImageMaxima(self.model_uri, self.layer, self.batch_size, self.weights, self.batched))
        tables = candidates | "TopK" >> beam.CombinePerKey(TopKCombineFn(self.layer, self.k))
        return tables if self.keyed else tables | "Table" >> beam.Values()
