"""Throughput of keras_convviz.beam against in-process top_activations and
model.predict, side by side in one process, interleaved, on the demo model.

    python benchmarks/bench_beam.py --small 500 --large 2500 --rounds 2 --layer block3_conv2

Inputs: ``--large`` demo images written as PNGs to a temporary folder (the first
``--small`` of them also as a folder of their own), and the same images decoded
and preprocessed into one ``.npy`` file. Every path mines the same images.

Rows (each run at both sizes, in rotating order, ``--rounds`` times):

- ``model.predict`` and ``top_activations`` on the preprocessed array;
- ``top_activations`` with decoding: read and prepare the PNGs, then mine, one process;
- ``beam records``: the public per-record ``TopActivations`` PTransform; the
  records ``(image_id, image)`` are read on the workers from the ``.npy`` file
  (a ``Create`` of 256-image spans), so no image passes through the pipeline graph;
- ``beam files``: the end-to-end pipeline (``keras_convviz.beam.pipeline.run``:
  PNG folder -> shards -> decode on the workers -> batched maxima -> combine ->
  partial tables, JSON table and grid);

each Beam row on DirectRunner ``in_memory``, ``multi_threading`` (2 threads) and
``multi_processing`` with 1 and 2 worker processes.

Steady state: images/s = (large - small) / (t_large - t_small) from the median
times; start-up = t_small - small / rate (for multi_processing: spawning the
workers, importing TF, loading and tracing the model in each, and Beam's gRPC
shutdown). Every Beam table is checked equal to the in-process one.

``--create N`` adds the pattern not to use: ``beam.Create`` of N preprocessed
float records (48 KB each): Create pickles and bz2-compresses them into the
pipeline graph, twice, which dominates the run.
"""

import argparse
import glob
import json
import os
import shutil
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from keras_convviz import demo, media  # noqa: E402
from keras_convviz.beam import TopActivations, load_preset  # noqa: E402
from keras_convviz.beam.pipeline import parser as pipeline_parser  # noqa: E402
from keras_convviz.beam.pipeline import run as run_pipeline  # noqa: E402
from keras_convviz.methods.topk import top_activations  # noqa: E402

RUNNERS = {"in_memory": [], "multi_threading x2": ["--direct_num_workers=2", "--direct_running_mode=multi_threading"],
           "multi_processing x1": ["--direct_num_workers=1", "--direct_running_mode=multi_processing"],
           "multi_processing x2": ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]}
SPAN = 256


def write_inputs(folder, large, small):
    """``large`` demo PNGs in ``folder/large``, the first ``small`` linked into ``folder/small``."""
    for size in ("large", "small"):
        os.makedirs(os.path.join(folder, size))
    for start in range(0, large, 500):
        images = demo.shapes(min(500, large - start), seed=1000 + start)[0]
        for i, image in enumerate(images):
            name = f"im{start + i:06d}.png"
            media.save_png(os.path.join(folder, "large", name), (image * 255).astype(np.uint8))
            if start + i < small:
                os.link(os.path.join(folder, "large", name), os.path.join(folder, "small", name))


def decode(files, preset):
    return np.stack([preset.prepare([media.read_image(f)])[0] for f in files])


def _rows(span, path):
    """``(image_id, image)`` records of ``span`` from the .npy file (runs on the workers)."""
    import numpy as np

    images = np.load(path, mmap_mode="r")
    for i in range(*span):
        yield i, np.array(images[i])


def _save(table, path):
    """The table to ``path`` (.npz), from whichever worker process holds it."""
    import numpy as np

    np.savez(path, values=table.values, ids=table.image_ids, positions=table.positions, count=table.count)


def _load(path, layer):
    from keras_convviz.methods.topk import TopActivations as Table

    with np.load(path) as data:
        return Table(layer=layer, values=data["values"], image_ids=data["ids"], positions=data["positions"],
                     count=int(data["count"]))


def beam_records(path, n, layer, batch, options):
    spans = [(a, min(a + SPAN, n)) for a in range(0, n, SPAN)]
    out = tempfile.mktemp(suffix=".npz", prefix="bench-beam-")
    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"] + options)) as p:
        _ = (p | beam.Create(spans) | beam.FlatMap(_rows, path)
             | TopActivations("demo", layer, 9, batch_size=batch) | beam.Map(_save, out))
    table = _load(out, layer)
    os.remove(out)
    return table


def beam_create(images, layer, batch):
    out = tempfile.mktemp(suffix=".npz", prefix="bench-beam-")
    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as p:
        _ = (p | beam.Create(list(enumerate(images)))
             | TopActivations("demo", layer, 9, batch_size=batch) | beam.Map(_save, out))
    table = _load(out, layer)
    os.remove(out)
    return table


def beam_files(folder, layer, batch, options):
    out = tempfile.mkdtemp(prefix="bench-beam-out-")
    try:
        args, beam_args = pipeline_parser().parse_known_args(
            ["--input", os.path.join(folder, "*.png"), "--output", out, "--model", "demo", "--layer", layer,
             "--batch-size", str(batch), "--maps", "4", "--cell", "32", "--runner", "DirectRunner"] + options)
        return run_pipeline(args, beam_args)["result"]
    finally:
        shutil.rmtree(out)


def _same(got, want):
    return got.count == want.count and all(np.array_equal(a, b) for a, b in (
        (got.values, want.values), (got.image_ids, want.image_ids), (got.positions, want.positions)))


def plan(args, folder, preset, arrays, files):
    """``{row: {size: fn}}``: every fn mines ``size`` images and returns its table or None."""
    def predict(n):
        preset.model.predict(arrays[n], batch_size=args.batch, verbose=0)  # no table to check

    rows = {"model.predict": {n: (lambda n=n: predict(n)) for n in arrays},
            "top_activations (array)": {n: (lambda n=n: top_activations(preset.model, arrays[n], args.layer, k=9,
                                                                         batch_size=args.batch)) for n in arrays},
            "top_activations (decode PNGs)": {n: (lambda n=n: top_activations(
                preset.model, decode(files[n], preset), args.layer, k=9, batch_size=args.batch)) for n in arrays}}
    for runner, options in RUNNERS.items():
        rows[f"beam records {runner}"] = {n: (lambda n=n, o=options: beam_records(
            os.path.join(folder, "images.npy"), n, args.layer, args.batch, o)) for n in arrays}
        rows[f"beam files {runner}"] = {n: (lambda n=n, o=options: beam_files(
            os.path.join(folder, "large" if n == args.large else "small"), args.layer, args.batch, o))
            for n in arrays}
    return {name: fns for name, fns in rows.items() if not args.rows or any(r in name for r in args.rows)}


def measure(rows, rounds, reference):
    """Median seconds per (row, size), rows in rotating order each round; tables checked."""
    times = {(name, n): [] for name, fns in rows.items() for n in fns}
    names = list(rows)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            for n, fn in rows[name].items():
                start = time.perf_counter()
                table = fn()
                times[name, n].append(time.perf_counter() - start)
                if table is not None and not _same(table, reference[n]):
                    raise AssertionError(f"{name} at {n} images differs from in-process top_activations")
                print(f"  round {r + 1} {name:34s} {n:6d} images {times[name, n][-1]:7.2f} s", flush=True)
    return {key: statistics.median(values) for key, values in times.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=500)
    ap.add_argument("--large", type=int, default=2500)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--layer", default="block3_conv2")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--create", type=int, default=128, help="images for the Create(float records) row (0: skip)")
    ap.add_argument("--rows", action="append", help="only rows whose name contains this (repeatable)")
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="bench-beam-")
    try:
        write_inputs(folder, args.large, args.small)
        preset = load_preset("demo")
        files = {n: sorted(glob.glob(os.path.join(folder, "large", "*.png")))[:n] for n in (args.small, args.large)}
        arrays = {n: decode(files[n], preset) for n in (args.small, args.large)}
        np.save(os.path.join(folder, "images.npy"), arrays[args.large])
        reference = {n: top_activations(preset.model, arrays[n], args.layer, k=9, batch_size=args.batch)
                     for n in arrays}
        preset.model.predict(arrays[args.small][:64], verbose=0)
        beam_records(os.path.join(folder, "images.npy"), 64, args.layer, args.batch, [])  # trace in this process
        rows = plan(args, folder, preset, arrays, files)
        medians = measure(rows, args.rounds, reference)
        report(args, rows, medians, arrays[args.small][:args.create] if args.create else None)
    finally:
        shutil.rmtree(folder)


def report(args, rows, medians, create_images):
    span = args.large - args.small
    result = {}
    print(f"\n{'path':36s} {'images/s':>9s} {'start-up s':>11s}   (steady state from {args.small} -> "
          f"{args.large} images, median of {args.rounds}; {os.cpu_count()} cores)")
    for name in rows:
        extra = medians[name, args.large] - medians[name, args.small]
        seconds = {str(n): round(medians[name, n], 2) for n in (args.small, args.large)}
        if extra <= 0:  # start-up noise larger than the extra work: use larger --large
            result[name] = {"images_per_s": None, "startup_s": None, "seconds": seconds}
            print(f"{name:36s} {'noise':>9s} {'':11s} {seconds}")
            continue
        rate = span / extra
        startup = medians[name, args.small] - args.small / rate
        result[name] = {"images_per_s": round(rate, 1), "startup_s": round(startup, 2), "seconds": seconds}
        print(f"{name:36s} {rate:9.1f} {startup:11.2f}")
    for kind in ("records", "files"):
        one, two = (result.get(f"beam {kind} multi_processing x{w}") for w in (1, 2))
        if one and two and one["images_per_s"] and two["images_per_s"]:
            result[f"scaling {kind} 1 -> 2 processes"] = round(two["images_per_s"] / one["images_per_s"], 2)
            print(f"per-worker scaling ({kind}) 1 -> 2 worker processes: x{result[f'scaling {kind} 1 -> 2 processes']}")
    if create_images is not None:
        start = time.perf_counter()
        table = beam_create(create_images, args.layer, args.batch)
        seconds = time.perf_counter() - start
        want = top_activations(load_preset("demo").model, create_images, args.layer, k=9, batch_size=args.batch)
        assert _same(table, want), "Create(float records) differs from in-process top_activations"
        result["beam Create(float records) in_memory"] = {"images": len(create_images), "seconds": round(seconds, 2),
                                                          "images_per_s": round(len(create_images) / seconds, 1)}
        print(f"beam Create({len(create_images)} float records) in_memory: {seconds:.1f} s, "
              f"{len(create_images) / seconds:.1f} images/s all in (the records are pickled into the graph)")
    print(json.dumps({"small": args.small, "large": args.large, "rounds": args.rounds, "layer": args.layer,
                      "batch": args.batch, "rows": result}))


if __name__ == "__main__":
    main()
