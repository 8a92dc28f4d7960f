"""Throughput of keras_convviz.beam.TopActivations against in-process top_activations
and model.predict, on the demo model (64x64x3), images already preprocessed.

    python benchmarks/bench_beam.py --images 512 --layer block3_conv2

Beam rows: DirectRunner in-memory (1 worker, one process) and multi_processing
with 1 and 2 workers; each includes worker start-up (a TF import and a model load
per worker process), as a real pipeline pays it. Per-worker scaling =
(images/s with 2 workers) / (images/s with 1 worker).
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from keras_convviz import demo  # noqa: E402
from keras_convviz.beam import TopActivations  # noqa: E402
from keras_convviz.methods.topk import top_activations  # noqa: E402
from keras_convviz.presets import load  # noqa: E402


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _beam(images, layer, k, batch, options):
    with beam.Pipeline(options=PipelineOptions(options)) as p:
        _ = (p | beam.Create(list(enumerate(images))) | beam.Reshuffle()
             | TopActivations("demo", layer, k, batch_size=batch) | beam.Map(lambda t: t.count))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--layer", default="block3_conv2")
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    preset = load("demo")
    images = preset.prepare((demo.shapes(args.images, seed=1)[0] * 255).astype(np.uint8))
    top_activations(preset.model, images[:64], args.layer, k=9)  # compile once
    preset.model.predict(images[:64], verbose=0)
    rows = {
        "model.predict": _timed(lambda: preset.model.predict(images, batch_size=args.batch, verbose=0)),
        "top_activations (in process)": _timed(
            lambda: top_activations(preset.model, images, args.layer, k=9, batch_size=args.batch)),
    }
    for name, options in (("beam DirectRunner in-memory", ["--runner=DirectRunner"]),
                          ("beam multi_processing x1", ["--runner=DirectRunner", "--direct_num_workers=1",
                                                        "--direct_running_mode=multi_processing"]),
                          ("beam multi_processing x2", ["--runner=DirectRunner", "--direct_num_workers=2",
                                                        "--direct_running_mode=multi_processing"])):
        rows[name] = _timed(lambda: _beam(images, args.layer, 9, args.batch, options))
    rates = {name: args.images / seconds for name, seconds in rows.items()}
    for name, rate in rates.items():
        print(f"{name:32s} {rate:8.1f} images/s  ({rows[name]:.1f} s for {args.images})")
    scaling = rates["beam multi_processing x2"] / rates["beam multi_processing x1"]
    print(f"per-worker scaling 1 -> 2 workers: x{scaling:.2f}  (cores: {os.cpu_count()})")
    print(json.dumps({"images": args.images, "layer": args.layer, "images_per_s": rates, "scaling_2_workers": scaling}))


if __name__ == "__main__":
    main()
