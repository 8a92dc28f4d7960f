"""Every keras.applications family x every method: ok, or the ValueError it raises.

Each family is built with ``weights=None`` at a small input (64 px, or the
family's minimum) and every method runs once on one random image at its
default layer (``Graph.block_ends()[-1]``, Grad-CAM's ``Graph.last_map_before``).
A cell is ``ok``, ``ValueError: <first words>`` (a clear refusal), or
``CRASH <type>`` (anything else: a bug). Run:
``python benchmarks/family_table.py [--markdown] [FAMILY ...]``.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_convviz as kc  # noqa: E402
from fixtures import APPLICATIONS, application  # noqa: E402

SIZE = 64


def _methods(model, x, layer):
    graph = kc.walk(model)
    rf = kc.receptive_fields(model)[layer]
    h, w = graph.input_shape[:2]
    return {
        "receptive_fields": lambda: kc.receptive_fields(model),
        "box_filter": lambda: kc.box_filter(model, layer, (w // 4, h // 4, w // 2, h // 2)),
        "box_backward": lambda: kc.box_filter(model, layer, (0, 0, 1, 1), mode="backward"),
        "capture": lambda: kc.capture(model, x, [layer]),
        "deconv": lambda: kc.deconv(model, x, layer, maps=2),
        "deconv_units": lambda: kc.deconv_units(model, x, layer, [(0, rf.output_shape[0] // 2,
                                                                   rf.output_shape[1] // 2, 0)]),
        "saliency": lambda: kc.saliency(model, x),
        "guided": lambda: kc.guided_backprop(model, x),
        "smoothgrad": lambda: kc.smoothgrad(model, x, samples=2),
        "ig": lambda: kc.integrated_gradients(model, x, steps=2),
        "gradcam": lambda: kc.gradcam(model, x),
        "occlusion": lambda: kc.occlusion(model, x, None, patch=h // 2, stride=h // 2, layer=layer),
        "topk": lambda: kc.top_activations(model, tf.data.Dataset.from_tensor_slices(
            np.concatenate([x, x[:, ::-1]])).batch(2), layer, k=2),
    }


def _cell(fn):
    start = time.perf_counter()
    try:
        out = fn()
    except ValueError as err:  # ours (a clear refusal) or TensorFlow's (a shape crash)
        ours = "keras_convviz" in traceback.extract_tb(err.__traceback__)[-1].filename
        kind = "ValueError" if ours else "CRASH ValueError in TF"
        return f"{kind}: " + " ".join(str(err).split()[:12]), time.perf_counter() - start
    except Exception as err:  # a crash: reported, not hidden
        return f"CRASH {type(err).__name__}: {str(err).splitlines()[0][:100]}", time.perf_counter() - start
    del out
    return "ok", time.perf_counter() - start


def family_row(name):
    model = application(name, SIZE)
    graph = kc.walk(model)
    layer = graph.block_ends()[-1]
    x = np.random.default_rng(0).uniform(-1, 1, (1,) + graph.input_shape).astype(np.float32)
    return layer, {m: _cell(fn) for m, fn in _methods(model, x, layer).items()}


def main(argv):
    markdown = "--markdown" in argv
    names = [a for a in argv if not a.startswith("--")] or list(APPLICATIONS)
    rows = []
    for name in names:
        layer, cells = family_row(name)
        rows.append((name, layer, cells))
        if not markdown:
            print(name, layer, flush=True)
            for m, (cell, secs) in cells.items():
                print(f"  {m:17s} {secs:6.1f}s {cell}", flush=True)
    if markdown:
        methods = list(rows[0][2])
        print("| family (default layer) | " + " | ".join(methods) + " |")
        print("|---" * (len(methods) + 1) + "|")
        for name, layer, cells in rows:
            print(f"| {name} (`{layer}`) | " + " | ".join(c.split(":")[0] for c, _ in cells.values()) + " |")
    return 0 if all(not c.startswith("CRASH") for _, _, cells in rows for c, _ in cells.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
