"""The end-to-end, resumable top-k pipeline (Zeiler & Fergus 2014, arXiv:1311.2901, fig. 2).

    python -m keras_convviz.beam --input 'photos/**/*.jpg' --model demo --layer block3_conv2 \\
        --output out/ --runner DirectRunner --direct_num_workers=2 --direct_running_mode=multi_processing

The input (file patterns of images, or of TFRecords of ``tf.train.Example`` with
an encoded ``image`` / ``image/encoded`` feature) is cut into shards: runs of
``--shard-size`` image files, or one TFRecord file each. Each shard's table is
written atomically to ``OUTPUT/partial-<run fingerprint>/``; a re-run skips the
shards whose table is there, so after a partial failure only the unfinished
shards are computed. The launcher then merges the partial tables with the same
rule and writes ``topk_<layer>.json`` and the fig. 2 grid ``topk_<layer>.png``.

Image ids: an image file's index in the sorted, de-duplicated file list; a
record's ``methods.topk.record_id(file index, record index)``.

Only shard lists travel through the pipeline: workers read, decode and batch
the images themselves (``ReadShard``). On one machine,
``--direct_running_mode=multi_threading`` is the fast local mode (no worker
start-up, the launcher's model is shared); ``multi_processing`` pays a worker
start-up per run (spawn, TF import, model load and trace: ~10-15 s here) and
gains nothing on cores that one TF process already uses (see the README).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import tempfile

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from .transforms import TopActivations, TopKCombineFn, load_preset

__all__ = ["main", "run", "list_inputs", "shards"]


def list_inputs(patterns) -> list:
    """Every file matching the patterns (any Beam filesystem), sorted, each once."""
    found = set()
    for pattern in patterns:
        matched = [m.path for r in FileSystems.match([pattern]) for m in r.metadata_list]
        if not matched:
            raise ValueError(f"--input {pattern!r} matches no file")
        found.update(matched)
    return sorted(found)


def shards(files, tfrecord, shard_size) -> list:
    """``[(shard name, [(file index, path), ...]), ...]``: a name that changes when the shard's files do."""
    indexed = list(enumerate(files))
    groups = [[f] for f in indexed] if tfrecord else [indexed[i:i + shard_size]
                                                      for i in range(0, len(indexed), shard_size)]
    named = []
    for number, group in enumerate(groups):
        digest = hashlib.sha256(json.dumps(group).encode()).hexdigest()[:10]
        named.append((f"shard-{number:05d}-{digest}", group))
    return named


def _decode(data, suffix=".img"):
    """Encoded image bytes -> RGB uint8, through the one reading gate ``media.read_image``."""
    from .. import media

    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        tmp.write(data)
        tmp.flush()
        return media.read_image(tmp.name)


def _example_image(record):
    import tensorflow as tf

    features = tf.train.Example.FromString(record).features.feature
    for key in ("image", "image/encoded"):
        if key in features:
            return _decode(features[key].bytes_list.value[0])
    raise ValueError(f"a TFRecord holds no 'image' or 'image/encoded' feature (it has {sorted(features)})")


def read_record(path, index, tfrecord):
    """RGB uint8 of image file ``path`` or of record ``index`` of TFRecord ``path``."""
    if not tfrecord:
        from .. import media

        if "://" not in path:
            return media.read_image(path)
        with FileSystems.open(path) as f:
            return _decode(f.read(), os.path.splitext(path)[1])
    import tensorflow as tf

    record = next(iter(tf.data.TFRecordDataset(path).skip(index).take(1)))
    return _example_image(record.numpy())


class ReadShard(beam.DoFn):
    """``(shard name, files)`` -> ``(shard name, (image ids (B,), model inputs (B, H, W, C)))``.

    Reads and decodes on the worker, ``batch_size`` images a batch (the last
    of a shard may be smaller), so the mining step gets whole batches and Beam
    handles one element per batch, not per image. A reader thread decodes the
    next batch while the model mines this one (decoding and TF both release the
    GIL). Unreadable images are skipped.
    """

    def __init__(self, model_uri, weights, tfrecord, batch_size=32):
        self.model_uri, self.weights, self.tfrecord = model_uri, weights, tfrecord
        self.batch_size = int(batch_size)

    def setup(self):
        self._preset = load_preset(self.model_uri, self.weights)

    def process(self, shard):
        from concurrent.futures import ThreadPoolExecutor

        name, group = shard
        batches = self._batches(group)
        with ThreadPoolExecutor(1, thread_name_prefix="convviz-read") as reader:
            pending = reader.submit(next, batches, None)
            while (batch := pending.result()) is not None:
                pending = reader.submit(next, batches, None)
                yield name, batch

    def _batches(self, group):
        from ..methods.topk import record_id

        ids, images = [], []
        for file_index, path in group:
            for image_id, image in self._images(file_index, path, record_id):
                ids.append(image_id)
                images.append(self._preset.prepare([image])[0])  # one at a time: each at its own fit
                if len(ids) == self.batch_size:
                    yield np.asarray(ids, np.int64), np.stack(images)
                    ids, images = [], []
        if ids:
            yield np.asarray(ids, np.int64), np.stack(images)

    def _images(self, file_index, path, record_id):
        if not self.tfrecord:
            try:
                yield file_index, read_record(path, 0, False)
            except ValueError as err:
                logging.warning("convviz: skipping %s: %s", path, str(err).splitlines()[0])
                beam.metrics.Metrics.counter("convviz", "skipped").inc()
            return
        import tensorflow as tf

        for index, record in enumerate(tf.data.TFRecordDataset(path)):
            yield record_id(file_index, index), _example_image(record.numpy())


def _write_atomic(path, data):
    """Write bytes via a temporary name and a rename (local or any Beam filesystem)."""
    if "://" not in path:
        from .. import media

        return media.atomic_write(path, data)
    tmp = f"{path}.tmp-{os.urandom(6).hex()}"
    with FileSystems.create(tmp) as f:
        f.write(data)
    FileSystems.rename([tmp], [path])
    return path


def _save_partial(path, table):
    buf = io.BytesIO()
    if table is None:
        np.savez(buf, empty=np.asarray(True))
    else:
        np.savez(buf, values=table.values, ids=table.image_ids, positions=table.positions,
                 count=np.asarray(table.count))
    _write_atomic(path, buf.getvalue())


def _load_partial(path):
    """A partial table as a ``TopKCombineFn`` accumulator ``(table or None, count)``."""
    with FileSystems.open(path) as f:
        data = np.load(io.BytesIO(f.read()))
    if "empty" in data:
        return None, 0
    return (data["values"], data["ids"], data["positions"]), int(data["count"])


def _fingerprint(args, layer):
    key = json.dumps([str(args.model), str(args.weights), layer, args.k, args.tfrecord, args.shard_size])
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _mine(args, beam_args, layer, partial_dir, todo):
    """Run the Beam pipeline over the shards in ``todo``; each writes its partial table."""
    options = PipelineOptions(beam_args)
    with beam.Pipeline(options=options) as p:
        _ = (p
             | "Shards" >> beam.Create(todo)
             | "Spread" >> beam.Reshuffle()
             | "Read" >> beam.ParDo(ReadShard(args.model, args.weights, args.tfrecord, args.batch_size))
             | "TopActivations" >> TopActivations(args.model, layer, args.k, args.batch_size, args.weights,
                                                  keyed=True, batched=True)
             | "Save" >> beam.MapTuple(lambda name, table: _save_partial(
                 FileSystems.join(partial_dir, name + ".npz"), table)))


def run(args, beam_args) -> dict:
    """Mine (resuming), merge, write the JSON table and the grid; a summary dict."""
    preset = load_preset(args.model, args.weights)
    from ..graph import walk

    graph = walk(preset.model)
    layer = graph.spatial_step(args.layer).name if args.layer else preset.default_layers[-1]
    files = list_inputs(args.input)
    plan = shards(files, args.tfrecord, args.shard_size)
    partial_dir = FileSystems.join(args.output, f"partial-{_fingerprint(args, layer)}")
    path_of = {name: FileSystems.join(partial_dir, name + ".npz") for name, _ in plan}
    todo = [s for s in plan if not FileSystems.exists(path_of[s[0]])]
    if todo:
        _mine(args, beam_args, layer, partial_dir, todo)
        for name, _ in todo:  # a finished pipeline left no table for a shard without readable images
            if not FileSystems.exists(path_of[name]):
                _save_partial(path_of[name], None)
    combine = TopKCombineFn(layer, args.k)
    result = combine.extract_output(combine.merge_accumulators(_load_partial(path_of[n]) for n, _ in plan))
    if result is None or result.count < args.k:
        raise ValueError(f"--k {args.k} but only {0 if result is None else result.count} images could be read")
    written = _write_outputs(args, preset, result, files)
    return {"layer": layer, "images": result.count, "shards": len(plan),
            "computed": [name for name, _ in todo], "result": result, "written": written}


def _source(files, tfrecord, image_id):
    from ..methods.topk import RECORD_BITS

    if not tfrecord:
        return files[image_id], 0
    return files[image_id >> RECORD_BITS], image_id & ((1 << RECORD_BITS) - 1)


def _write_outputs(args, preset, result, files):
    from .. import media
    from ..commands import slug
    from ..figures.topk import figure

    def image(i):
        path, index = _source(files, args.tfrecord, i)
        return preset.prepare([read_record(path, index, args.tfrecord)])[0]

    grid, chosen = figure(preset.model, result, image, maps=min(args.maps, result.values.shape[0]),
                          deprocess=preset.deprocess, preprocess=preset.preprocess, cell=args.cell)
    maps = {str(c): [dict(zip(("value", "image_id", "image", "record", "y", "x"),
                              (float(result.values[c, r]), int(result.image_ids[c, r]),
                               *_source(files, args.tfrecord, int(result.image_ids[c, r])),
                               int(result.positions[c, r, 0]), int(result.positions[c, r, 1]))))
                     for r in range(result.k)] for c in range(result.values.shape[0])}
    table = {"layer": result.layer, "k": result.k, "images": result.count, "files": len(files),
             "maps": maps, "drawn_maps": [int(c) for c in chosen]}
    name = FileSystems.join(args.output, f"topk_{slug(result.layer)}")
    _write_atomic(name + ".json", json.dumps(table, indent=1).encode())
    _write_atomic(name + ".png", media.png_bytes(grid))
    return [name + ".json", name + ".png"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m keras_convviz.beam", description=__doc__.split("\n\n")[0],
                                epilog="Other options go to Beam (PipelineOptions): --runner, "
                                       "--direct_num_workers, --project, --region, --temp_location, ...")
    p.add_argument("--input", action="append", required=True, help="file pattern (repeatable; gs:// etc. too)")
    p.add_argument("--tfrecord", action="store_true", help="the inputs are TFRecords of tf.train.Example")
    p.add_argument("--model", default="demo", help="demo, vgg16, mobilenet or a .keras/.h5 file")
    p.add_argument("--weights", default="imagenet", help="imagenet (the demo's own), none or a weights file")
    p.add_argument("--layer", default=None, help="spatial layer (default: the model's last block end)")
    p.add_argument("--output", required=True, help="output folder (partials, JSON table, grid)")
    for flag, default, text in (("--k", 9, "activations kept per map"), ("--batch-size", 32, "images per pass"),
                                ("--shard-size", 256, "image files per resumable shard"),
                                ("--maps", 16, "maps drawn in the grid"), ("--cell", 64, "pixels per patch")):
        p.add_argument(flag, type=_positive, default=default, help=f"{text} (default: %(default)s)")
    return p


def _positive(text):
    from ..commands import positive_int_arg

    return positive_int_arg(text)


def main(argv=None) -> int:
    import sys

    args, beam_args = parser().parse_known_args(argv)
    try:
        summary = run(args, beam_args)
    except ValueError as err:
        print(f"python -m keras_convviz.beam: error: {err}", file=sys.stderr)
        return 2
    print(f"{summary['images']} images through {summary['layer']}: {len(summary['computed'])} of "
          f"{summary['shards']} shards computed, the others resumed from their partial tables")
    for path in summary["written"]:
        print(f"wrote {path}")
    return 0
