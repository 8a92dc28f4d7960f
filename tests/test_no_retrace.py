"""Repeated logs trace nothing new (issue 28: a tf.data pipeline made at every top-k log leaked its functions)."""

from __future__ import annotations

import numpy as np

from fixtures import benchmark_module


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


def test_later_logs_of_every_method_trace_nothing(monkeypatch, tmp_path, demo_model):
    """Issue 28's diagnosis (benchmarks/trace_callback.py --all) for all 22 methods: from the third log on,
    no method makes a new function graph (a leak of one graph per log is what the top-k fix removed)."""
    import warnings

    from keras_convviz import ConvVizCallback, demo
    from keras_convviz.callbacks import METHODS
    from keras_convviz.loggers import requested_methods

    soak = benchmark_module("soak_callback")  # every logged method at the soak's cheap sizes (--cheap --all)
    cheap_all = requested_methods(dict(soak.CHEAP, **soak.ADDED))  # aliases ("integrated") as one name
    assert set(cheap_all) == set(METHODS)  # a method added to the registry is added to the soak too
    probe = np.asarray(demo.shapes(1, seed=3)[0], np.float32)
    heldout = np.asarray(demo.shapes(4, seed=4)[0], np.float32)
    cb = ConvVizCallback(str(tmp_path), probe, methods=cheap_all, every_n_epochs=None, every_n_batches=1, maps=1,
                         heldout=heldout)
    cb.set_model(demo_model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # blank-map warnings of the untrained-looking CAM layers
        cb.on_train_begin()
        try:
            made = _count_new_graphs(monkeypatch, lambda: [cb.log(step) for step in (1, 2)], times=1)
        finally:
            cb.on_train_end()
    assert not cb.failed, cb.failed
    assert made == [], made
