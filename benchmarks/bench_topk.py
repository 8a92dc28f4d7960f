"""Top-k mining: throughput against ``model.predict`` on the same dataset, and
peak memory at 10k vs 1k images (demo model, layer block3_conv2, k=9).

Peak memory is the peak resident set size (``ru_maxrss``) of a fresh
subprocess per size, so each figure includes TensorFlow itself; the images
are generated inside the tf.data pipeline, so nothing scales with the
dataset except what the miner keeps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

from common import row

_MEMORY = textwrap.dedent("""
    import json, resource, sys
    import tensorflow as tf
    from keras_convviz import demo
    from keras_convviz.methods.topk import top_activations
    n = int(sys.argv[1])
    model = demo.load_model()
    ds = (tf.data.Dataset.range(n)
          .map(lambda i: tf.random.stateless_uniform((64, 64, 3), seed=tf.stack([i, 7])))
          .batch(64))
    res = top_activations(model, ds, "block3_conv2", k=9)
    assert res.count == n
    print(json.dumps({"n": n, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
""")


def _peak_rss(n):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", _MEMORY, str(n)], capture_output=True, text=True,
                         env=env, check=True, timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])["maxrss_kb"]


def rows(quick=False):
    import tensorflow as tf

    from keras_convviz import demo
    from keras_convviz.methods.topk import top_activations

    model = demo.load_model()
    n = 1024 if quick else 4096
    ds = (tf.data.Dataset.range(n)
          .map(lambda i: tf.random.stateless_uniform((64, 64, 3), seed=tf.stack([i, 7])))
          .batch(64).cache())
    for _ in ds:  # fill the cache: both sides read the same in-memory batches
        pass

    def ours():
        top_activations(model, ds, "block3_conv2", k=9)

    def predict():
        model.predict(ds, verbose=0)

    ours(), predict()  # compile both
    times = {"ours": [], "predict": []}
    for _ in range(1 if quick else 3):
        for name, fn in (("ours", ours), ("predict", predict)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    t_ours, t_pred = min(times["ours"]), min(times["predict"])
    ratio = t_pred / t_ours  # throughput ratio: ours / predict
    out = [row(f"topk demo block3_conv2 k=9, {n} images: throughput vs model.predict",
               f"{ratio:.2f}x ({n / t_ours:.0f} vs {n / t_pred:.0f} images/s)", ">= 0.8x", ratio >= 0.8,
               "best of runs, same cached dataset")]
    small, large = (500, 5000) if quick else (1000, 10000)
    a, b = _peak_rss(small), _peak_rss(large)
    r = b / a
    out.append(row(f"topk peak RSS {large} vs {small} images (demo, fresh processes)",
                   f"{r:.3f}x ({b / 1024:.0f} MiB vs {a / 1024:.0f} MiB)", "<= 1.1x", r <= 1.1))
    return out
