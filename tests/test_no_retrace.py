"""Repeated logs trace nothing new (issue 28: a tf.data pipeline made at every top-k log leaked its functions)."""

from __future__ import annotations

import numpy as np


def _count_new_graphs(monkeypatch, fn, times=3):
    from tensorflow.python.framework import func_graph

    made = []
    real = func_graph.FuncGraph.__init__

    def init(self, *args, **kwargs):
        made.append(args[0] if args else kwargs.get("name"))
        real(self, *args, **kwargs)

    fn()  # the first call traces what it needs
    monkeypatch.setattr(func_graph.FuncGraph, "__init__", init)
    for _ in range(times):
        fn()
    return made


def test_top_activations_of_an_array_traces_once(monkeypatch):
    from keras_convviz import demo
    from keras_convviz.methods.topk import top_activations

    model = demo.build_model()
    held = np.asarray(demo.shapes(5, seed=4)[0], np.float32)
    res = top_activations(model, held, "block2_conv2", k=2, batch_size=2)
    assert sorted(set(np.asarray(res.image_ids).ravel().tolist()) - {-1}) <= list(range(5))
    made = _count_new_graphs(monkeypatch, lambda: top_activations(model, held, "block2_conv2", k=2, batch_size=2))
    assert made == [], made
    again = top_activations(model, held, "block2_conv2", k=2, batch_size=2)
    np.testing.assert_array_equal(np.asarray(again.image_ids), np.asarray(res.image_ids))
