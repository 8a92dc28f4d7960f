"""ConvVizCallback in model.fit: what it logs, configuration errors, run-time failures, strategies."""

import glob
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from tb_plugin import metadata as md


def read_events(logdir):
    """``{tag: [(step, content, n_images)]}`` of every convviz summary under ``logdir``."""
    import tensorflow as tf

    out = {}
    for path in sorted(glob.glob(os.path.join(str(logdir), "**", "*tfevents*"), recursive=True)):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                if v.metadata.plugin_data.plugin_name != md.PLUGIN_NAME:
                    continue
                content = json.loads(v.metadata.plugin_data.content)
                out.setdefault(v.tag, []).append((event.step, content, len(v.tensor.string_val)))
    return out


def all_tags(logdir):
    import tensorflow as tf

    tags = set()
    for path in glob.glob(os.path.join(str(logdir), "**", "*tfevents*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update((os.path.relpath(os.path.dirname(path), str(logdir)), v.tag) for v in event.summary.value)
    return tags


@pytest.fixture(scope="module")
def data():
    from keras_convviz import demo

    x, y, _ = demo.shapes(96, seed=3)
    xv, yv, _ = demo.shapes(32, seed=4)
    return x, y, xv, yv


def compiled_model():
    import keras

    from keras_convviz import demo

    keras.utils.set_random_seed(0)
    model = demo.build_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def tracing_count(model):
    from keras_convviz import walk

    return sum(fn.experimental_get_tracing_count() for fn in walk(model).cache.values()
               if hasattr(fn, "experimental_get_tracing_count"))


@pytest.mark.slow
def test_logs_every_method_with_validation_and_keras_tensorboard(tmp_path, data):
    import keras

    from keras_convviz import ConvVizCallback

    x, y, xv, yv = data
    model = compiled_model()
    cb = ConvVizCallback(
        str(tmp_path), xv[:3],
        methods={"deconv": {}, "saliency": {}, "guided": {}, "gradcam": {}, "boxfilter": {},
                 "occlusion": {"patch": 16, "stride": 8}},
        layers={"deconv": ["block1_conv2", "block3_conv2"]}, maps=3,
    )
    traces = []
    probe = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: traces.append(tracing_count(model)))
    tb = keras.callbacks.TensorBoard(log_dir=str(tmp_path), write_graph=False)
    history = model.fit(x, y, batch_size=32, epochs=3, validation_data=(xv, yv), verbose=0,
                        callbacks=[cb, probe, tb])
    assert len(history.history["val_loss"]) == 3
    assert not cb.failed, cb.failed
    # compiled once: nothing traced again after the first log
    assert traces[0] > 0 and traces[1] == traces[0] == traces[2], traces

    events = read_events(tmp_path)
    # the probe images, once, for overlays
    assert [(s, n) for s, _, n in events[md.INPUT_TAG]] == [(0, 3)]
    assert events[md.INPUT_TAG][0][1]["kind"] == "input"
    deconv = sorted(t for t in events if t.startswith("deconv/"))
    assert len(deconv) == 6  # 3 fixed maps x 2 layers
    for tag in deconv:
        steps = [s for s, _, _ in events[tag]]
        contents = [c for _, c, _ in events[tag]]
        assert steps == [0, 1, 2], (tag, steps)
        assert all(c == contents[0] for c in contents)  # content fixed per tag
        assert contents[0]["kind"] == "projection" and contents[0]["map"] == int(tag[-4:])
        assert all(n == 3 for _, _, n in events[tag])
    assert cb.fixed_maps("block1_conv2") == sorted({c["map"] for t in deconv if "block1" in t
                                                     for _, c, _ in events[t]})
    for tag, kind in (("saliency/predictions/heatmap", "heatmap"), ("guided/predictions/image", "projection"),
                      ("gradcam/block3_conv2/heatmap", "heatmap"),
                      ("occlusion/block3_conv2/probability", "heatmap"),
                      ("occlusion/block3_conv2/activation", "heatmap")):
        assert [s for s, _, _ in events[tag]] == [0, 1, 2], tag
        assert events[tag][0][1]["kind"] == kind and events[tag][0][2] == 3
    # box filters depend only on geometry: logged once
    assert [s for s, _, _ in events["boxfilter/block3_conv2/ratio"]] == [0]
    # keras.callbacks.TensorBoard wrote its own runs next to ours
    runs = {run for run, _ in all_tags(tmp_path)}
    assert {"convviz", "train", "validation"} <= runs
    assert ("validation", "epoch_loss") in all_tags(tmp_path)


def test_configuration_errors_raise_before_training(tmp_path, data):
    import keras

    from keras_convviz import ConvVizCallback, callbacks
    from keras_convviz.loggers.base import MethodLogger

    x, y, xv, _ = data
    model = compiled_model()
    epochs = []
    spy = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: epochs.append(e))
    cases = [
        (dict(methods=["saliency", "nosuch"]), "unknown ConvViz method.*nosuch"),
        (dict(methods=["deconv"], layers=["block3_conv"]), "unknown layer 'block3_conv'.*block3_conv1"),
        (dict(methods=["deconv"], layers=["predictions"]), "not a spatial"),
        (dict(methods=["saliency"], probe=np.zeros((2, 32, 32, 3), np.float32)), "probe_inputs.*64, 64, 3"),
        (dict(methods=["saliency"], probe=np.zeros((64, 64, 3), np.float32)), "probe_inputs.*batch"),
        (dict(methods=["saliency"], targets=7), "target 7"),
        (dict(methods=["topk"]), "topk.*held-out|topk.*not available"),
        (dict(methods=["deconv"], maps=[0, 99]), "maps"),
        (dict(methods=["saliency"], every_n_epochs=0), "every_n_epochs"),
        (dict(methods={"saliency": 3}), "options"),
        (dict(methods={"saliency": {"nosuch": 1}}), "unknown option.*nosuch.*saliency"),
        (dict(methods={"gradcam": {"layer": "block2_conv2"}}), "set by the callback"),
    ]
    for kwargs, pattern in cases:
        probe = kwargs.pop("probe", xv[:2])
        cb = ConvVizCallback(str(tmp_path), probe, **kwargs)
        with pytest.raises(ValueError, match=pattern):
            model.fit(x[:32], y[:32], epochs=1, verbose=0, callbacks=[cb, spy])
    # a method this install lacks is a configuration error too, not a crash mid-training
    class Missing(MethodLogger):
        def load(self):
            from keras_convviz.methods import no_such_function_in_keras_convviz

            return no_such_function_in_keras_convviz

    callbacks.METHODS["missing_for_test"] = Missing
    try:
        cb = ConvVizCallback(str(tmp_path), xv[:2], methods=["missing_for_test"])
        with pytest.raises(ValueError, match="missing_for_test.*not available"):
            model.fit(x[:32], y[:32], epochs=1, verbose=0, callbacks=[cb, spy])
    finally:
        callbacks.METHODS.pop("missing_for_test")
    assert set(callbacks.METHODS) <= set(md.METHOD_ORDER)  # the dashboard orders every method
    assert epochs == []  # no epoch was spent
    assert not glob.glob(os.path.join(str(tmp_path), "**", "*tfevents*"), recursive=True)


@pytest.mark.slow
def test_runtime_failure_warns_once_and_training_continues(tmp_path, data):
    from keras_convviz import ConvVizCallback, callbacks
    from keras_convviz.loggers.base import MethodLogger

    x, y, xv, _ = data
    calls = []

    class Boom(MethodLogger):
        def log(self, step):
            calls.append(step)
            raise RuntimeError("exploded on purpose")

    callbacks.METHODS["boom_for_test"] = Boom
    try:
        model = compiled_model()
        cb = ConvVizCallback(str(tmp_path), xv[:2], methods=["boom_for_test", "saliency"], every_n_batches=1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = model.fit(x[:64], y[:64], batch_size=16, epochs=2, verbose=0, callbacks=[cb])
    finally:
        callbacks.METHODS.pop("boom_for_test")
    assert len(history.history["loss"]) == 2
    ours = [w for w in caught if "ConvVizCallback" in str(w.message)]
    assert len(ours) == 1 and "'boom_for_test'" in str(ours[0].message)
    assert "exploded on purpose" in str(ours[0].message)
    assert calls == [1]
    # every_n_batches: the step is the global batch count
    steps = [s for s, _, _ in read_events(tmp_path)["saliency/predictions/heatmap"]]
    assert steps == list(range(1, 9))


@pytest.mark.slow
def test_every_n_epochs_logs_the_last_epoch_and_classmodel(tmp_path, data):
    from keras_convviz import ConvVizCallback

    x, y, xv, _ = data
    model = compiled_model()
    cb = ConvVizCallback(str(tmp_path), xv[:2], every_n_epochs=2,
                         methods={"classmodel": {"steps": 3, "classes": [0, 2], "value_range": (0, 1)},
                                  "smoothgrad": {"samples": 2}})
    model.fit(x[:32], y[:32], epochs=3, verbose=0, callbacks=[cb])
    events = read_events(tmp_path)
    assert not cb.failed, cb.failed
    assert [s for s, _, _ in events["smoothgrad/predictions/heatmap"]] == [1, 2]
    assert sorted(t for t in events if t.startswith("classmodel/")) == [
        "classmodel/predictions/class0000", "classmodel/predictions/class0002"]
    assert events["classmodel/predictions/class0002"][0][1]["params"]["target"] == 2


@pytest.mark.slow
def test_topk_on_a_heldout_set(tmp_path, data):
    import keras_convviz

    try:
        keras_convviz.top_activations  # noqa: B018
    except (ImportError, AttributeError) as err:
        pytest.skip(f"top_activations is not in this tree yet: {err}")
    from keras_convviz import ConvVizCallback

    x, y, xv, _ = data
    model = compiled_model()
    cb = ConvVizCallback(str(tmp_path), xv[:2], methods={"topk": {"k": 4}}, heldout=xv, maps=2,
                         layers=["block2_conv2"])
    model.fit(x[:32], y[:32], epochs=2, verbose=0, callbacks=[cb])
    assert not cb.failed, cb.failed
    events = read_events(tmp_path)
    tags = sorted(t for t in events if t.startswith("topk/block2_conv2/"))
    # each followed map: its patches and (issue 12, the unit page) the patches' deconv projections
    assert len(tags) == 4 and sorted(t for t in tags if t.endswith("_projections")) == [t + "_projections"
                                                                                       for t in tags[::2]]
    for tag in tags:
        assert [s for s, _, _ in events[tag]] == [0, 1]
        assert events[tag][0][1]["kind"] == "patches" and events[tag][0][2] == 4


MIRRORED = textwrap.dedent("""
    import os, sys, json
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from keras_convviz import ConvVizCallback, demo
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    x, y, _ = demo.shapes(64, seed=0)
    with strategy.scope():
        model = demo.build_model()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    cb = ConvVizCallback(sys.argv[1], x[:2], methods=["deconv", "saliency", "gradcam"], maps=2,
                         layers={"deconv": ["block2_conv2"]})
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=(x[:16], y[:16]), callbacks=[cb])
    print(json.dumps({"failed": cb.failed}))
""")


@pytest.mark.slow
def test_mirrored_strategy_two_logical_cpus(tmp_path):
    out = subprocess.run([sys.executable, "-c", MIRRORED, str(tmp_path)], capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"failed": {}}
    events = read_events(tmp_path)
    assert [s for s, _, _ in events["saliency/predictions/heatmap"]] == [0, 1]
    assert len([t for t in events if t.startswith("deconv/block2_conv2/")]) == 2


@pytest.mark.slow
def test_convviz_demo_command(tmp_path, capsys):
    from keras_convviz.cli import main

    logdir = str(tmp_path / "demo")
    assert main(["demo", "--logdir", logdir, "--epochs", "0"]) == 2
    assert "--epochs must be >= 1" in capsys.readouterr().err
    assert main(["demo", "--logdir", logdir, "--methods", "saliency,nope"]) == 2
    assert "unknown nope" in capsys.readouterr().err
    code = main(["demo", "--logdir", logdir, "--epochs", "2", "--images", "64", "--probes", "2",
                 "--methods", "saliency,deconv,featurevis", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"tensorboard --logdir {logdir} --samples_per_plugin convviz=0" in out
    events = read_events(logdir)
    assert [s for s, _, n in events["saliency/predictions/heatmap"]] == [0, 1]
    assert {t.split("/")[1] for t in events if t.startswith("deconv/")} == {
        "block1_conv2", "block2_conv2", "block3_conv2"}
    # feature visualizations of the top-k layers' followed maps: the same maps as deconv's, so unit pages pair them
    for layer in ("block2_conv2", "block3_conv2"):
        vis = {t.split("/")[2][3:] for t in events if t.startswith(f"featurevis/{layer}/map")}
        assert len(vis) == 6 and vis == {t.split("/")[2][3:] for t in events if t.startswith(f"deconv/{layer}/map")}
    assert not any(t.startswith("featurevis/block1_conv2/") for t in events)
    assert os.path.isdir(os.path.join(logdir, "train"))  # Keras' scalars next to ours
