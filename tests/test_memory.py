"""Repeated logs keep no memory (issue 28: RSS over 1,000 logs of every method).

TensorFlow's eager scalar cache keeps every distinct Python ``int`` or
``float`` converted to a tensor, with a reference to it, about 650 bytes
each, never freed: written as Python numbers, each log's new step and the
invariance logger's new means grew the heap by ~6 KB a log
(``benchmarks/trace_callback.py 150 --methods invariance --from 30``).
"""

from __future__ import annotations

import sys

import numpy as np


def test_summary_writes_leave_tensorflow_scalar_cache_alone(tmp_path):
    from keras_convviz import summary

    step, value = 10**12 + 7, 0.123456789  # fresh objects: only the cache would keep a reference to them
    before = sys.getrefcount(step), sys.getrefcount(value)
    with summary.Writer(str(tmp_path), background=True) as w:
        w.images("saliency", "predictions", "heatmap", [np.zeros((4, 4), np.float32)], step, "heatmap")
        w.scalars("invariance", {"rotation/probability": value}, step)
        w.wait()
    assert (sys.getrefcount(step), sys.getrefcount(value)) == before
