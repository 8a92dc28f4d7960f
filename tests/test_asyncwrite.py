"""The background summary writer and the callback's warm-up (issue 28)."""

from __future__ import annotations

import glob
import io
import os
import threading
import warnings

import numpy as np
import pytest
from PIL import Image

from tb_plugin import metadata as md


def _records(logdir):
    import tensorflow as tf

    out = []
    for path in sorted(glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True)):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                blobs = [bytes(b) for b in value.tensor.string_val]
                out.append((value.tag, int(event.step), value.metadata.plugin_data.content, blobs,
                            value.tensor.SerializeToString()))
    return out


def _write_all(writer, images):
    for step in range(5):
        writer.images("saliency", "predictions", "heatmap", images, step, "heatmap", labels=["a", "b", "c"])
        writer.images("deconv", "conv", "map0001", [images[0, :, :, 0]], step, "projection", map=1)
        writer.document(md.STEP_TAG, "stepinfo", md.make_step_info([], [], {}, {}), step)
        writer.scalars("invariance", {"mean": step / 2}, step)
        writer.flush()


def test_background_writes_read_back_equal_to_synchronous(tmp_path):
    from keras_convviz import summary

    images = np.random.default_rng(0).integers(0, 255, (3, 9, 7, 3), dtype=np.uint8)
    for name, background in (("sync", False), ("async", True)):
        with summary.Writer(str(tmp_path / name), background=background) as w:
            _write_all(w, images)
    sync, bg = _records(str(tmp_path / "sync")), _records(str(tmp_path / "async"))
    assert len(sync) == 20 and sync == bg  # same tags, steps, contents, PNG bytes, in the same order
    first = [r for r in bg if r[0] == "saliency/predictions/heatmap"][0]
    np.testing.assert_array_equal(np.stack([np.asarray(Image.open(io.BytesIO(b))) for b in first[3]]), images)


def test_close_writes_everything_queued_and_joins_the_thread(tmp_path):
    from keras_convviz import summary

    img = np.zeros((32, 32, 3), np.uint8)
    w = summary.Writer(str(tmp_path), background=True)
    for step in range(200):
        w.images("gradcam", "conv", "heatmap", [img, img], step, "heatmap")
    w.close()
    assert not [t for t in threading.enumerate() if t.name == "convviz-writer"]
    assert sorted(s for tag, s, *_ in _records(str(tmp_path)) if tag == "gradcam/conv/heatmap") == list(range(200))


def test_checks_stay_in_the_caller(tmp_path):
    from keras_convviz import summary

    img = np.zeros((4, 4, 3), np.uint8)
    with summary.Writer(str(tmp_path), background=True) as w:
        w.images("gradcam", "conv", "heatmap", [img], 0, "heatmap", params={"a": 1})
        with pytest.raises(ValueError, match="fixed"):
            w.images("gradcam", "conv", "heatmap", [img], 2, "heatmap", params={"a": 2})
        with pytest.raises(ValueError, match="PNG"):
            w.images("gradcam", "conv", "other", [b"not a png"], 0, "heatmap")
        with pytest.raises(ValueError, match="shape"):
            w.images("gradcam", "conv", "other2", [np.zeros((2, 2, 2, 2))], 0, "heatmap")


def test_caller_may_reuse_its_arrays_after_writing(tmp_path):
    from keras_convviz import summary

    img = np.full((6, 6, 3), 7, np.uint8)
    with summary.Writer(str(tmp_path), background=True) as w:
        w.images("gradcam", "conv", "heatmap", [img], 0, "heatmap")
        img[:] = 200  # the queued write copied it
    (blob,) = [r[3][0] for r in _records(str(tmp_path))]
    assert np.asarray(Image.open(io.BytesIO(blob))).max() == 7


def test_an_error_in_the_thread_is_a_warning_then_raised_at_flush(tmp_path, monkeypatch):
    from keras_convviz import summary

    img = np.zeros((4, 4, 3), np.uint8)
    w = summary.Writer(str(tmp_path), background=True)
    w.flush()  # the first flush waits
    real = summary.write_images
    calls = []

    def flaky(tag, images, step, content, description=""):
        calls.append(step)
        if step == 1:
            raise OSError("disk full (simulated)")
        return real(tag, images, step, content, description)

    monkeypatch.setattr(summary, "write_images", flaky)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3):
            w.images("gradcam", "conv", "heatmap", [img], step, "heatmap")
        w.wait()
    assert calls == [0, 1, 2]  # later jobs still ran
    assert any("background summary write failed" in str(c.message) for c in caught)
    with pytest.raises(OSError, match="disk full"):
        w.flush()
    w.flush()  # raised once
    w.close()
    assert sorted(s for tag, s, *_ in _records(str(tmp_path)) if tag == "gradcam/conv/heatmap") == [0, 2]


def test_callback_joins_its_threads_and_writes_everything(tmp_path):
    import keras

    from keras_convviz import ConvVizCallback, demo

    keras.utils.set_random_seed(0)
    model = demo.build_model()
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y, _ = demo.shapes(16, seed=3)
    cb = ConvVizCallback(str(tmp_path), np.asarray(x[:2], np.float32), every_n_epochs=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(np.asarray(x, np.float32), np.asarray(y), batch_size=8, epochs=2, verbose=0, callbacks=[cb])
    assert not [str(c.message) for c in caught if "ConvViz" in str(c.message) or "background" in str(c.message)]
    assert not cb.failed and not cb.warmup.errors, (cb.failed, cb.warmup.errors)
    assert not [t.name for t in threading.enumerate() if t.name in ("convviz-writer", "convviz-warmup")]
    steps = {}
    for tag, step, *_ in _records(str(tmp_path)):
        steps.setdefault(tag.split("/")[0], set()).add(step)
    for method in ("deconv", "saliency", "gradcam"):
        assert steps[method] == {0, 1}, steps


def test_warmup_failure_is_silent_and_the_real_log_reports_it(tmp_path):
    from keras_convviz.warmup import Warmup

    class Broken:
        layers = []

        def __init__(self, ctx):
            self.ctx = ctx

        def log(self, step):
            raise RuntimeError("broken")

    class Ctx:
        graph = probe = targets = None
        map_spec = 1

    warm = Warmup({"saliency": Broken(Ctx())})
    assert warm.wait(timeout=30)
    assert "saliency" in warm.errors and "dashboard" in warm.errors  # recorded, never raised
