"""Issue 25: user models and training setups that used to give silent wrong answers.

One regression test per class: steps_per_execution, a second fit(), the log
dir deleted during training, deconv underflow in deep untrained networks,
MobileNet's box-filter default layer.
"""

import numpy as np
import pytest


# ---------------------------------------------------------------- deconv underflow
def _deconv_rectifier64(max_value):
    """ReLU6 with the deconvnet backward g -> relu(g), hand-written for the float64 reference."""
    import tensorflow as tf

    @tf.custom_gradient
    def rectify(x):
        def backward(g):
            return tf.nn.relu(g)

        return tf.clip_by_value(x, 0.0, max_value) if max_value else tf.nn.relu(x), backward

    return rectify


def _reference_deconv64(chain, x, layer, keep):
    """The Zeiler-Fergus projection of ``a * keep`` through a chain model, in float64, no rescaling."""
    import keras
    import tensorflow as tf

    x0 = tf.constant(x, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x0)
        h = x0
        for lay in chain.layers:
            if isinstance(lay, keras.layers.InputLayer):
                continue
            if isinstance(lay, keras.layers.ReLU):
                h = _deconv_rectifier64(None if lay.max_value is None else float(lay.max_value))(h)
            else:
                h = lay(h, training=False)
            if lay.name == layer:
                break
        seed = tf.stop_gradient(h * tf.constant(keep, tf.float64))
        score = tf.reduce_sum(h * seed)
    return tape.gradient(score, x0).numpy()


def _keep_mask(result, shape):
    keep = np.zeros((len(result.maps),) + tuple(shape), np.float64)
    for i in range(len(result.maps)):
        for j, c in enumerate(result.maps[i]):
            for y, xx in result.positions[i, j]:
                keep[i, y, xx, c] = 1.0
    return keep


@pytest.mark.slow
def test_deconv_underflow_mobilenet_conv_pw_13_equals_float64_up_to_a_positive_factor():
    """MobileNet(weights=None) at conv_pw_13: was all exact zeros in float32 (the signal underflowed)."""
    import keras

    from keras_convviz.methods.deconv import projections

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNet(weights=None, input_shape=(128, 128, 3))
    x = np.random.default_rng(0).uniform(-1, 1, (2, 128, 128, 3)).astype("float32")
    result = projections(model, x, "conv_pw_13", maps=2, activations=2)
    ours = result.images.astype(np.float64)
    assert (ours != 0).mean() > 0.9, "the projection is mostly exact zeros (float32 underflow)"

    saved = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        model64 = keras.applications.MobileNet(weights=None, input_shape=(128, 128, 3))
    finally:
        keras.config.set_dtype_policy(saved)
    model64.set_weights(model.get_weights())
    keep = _keep_mask(result, model.get_layer("conv_pw_13").output.shape[1:])
    ref = _reference_deconv64(model64, x.astype(np.float64), "conv_pw_13", keep)
    # the test exercises the underflow: unscaled, most of the projection is below float32's normal numbers
    assert (np.abs(ref) < np.finfo(np.float32).tiny).mean() > 0.5
    for i in range(len(x)):
        factor = np.sum(ours[i] * ref[i]) / np.sum(ref[i] * ref[i])
        assert factor > 0
        err = np.abs(ours[i] - factor * ref[i]).max()
        assert err <= 1e-3 * np.abs(ours[i]).max(), (i, err, np.abs(ours[i]).max())


def test_deconv_rescaling_only_at_cuts_of_a_residual_model():
    """Rectifiers inside a residual branch are not cuts (rescaling there would not be one factor)."""
    import keras

    from keras_convviz import walk
    from keras_convviz.probe import cut_steps

    inp = keras.Input((8, 8, 2))
    a = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="a")(inp)
    b = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="b")(a)
    c = keras.layers.Conv2D(3, 3, padding="same", name="c")(b)
    s = keras.layers.Add(name="s")([a, c])
    r = keras.layers.ReLU(name="r")(s)
    d = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="d")(r)
    graph = walk(keras.Model(inp, d))
    order = graph.ancestors(["d"])
    cuts = {graph.steps[i].name for i in cut_steps(graph, order, {}, ["d"])}
    assert {"a", "s", "r", "d"} <= cuts
    assert not {"b", "c"} & cuts
    # an output read at "a" as well: nothing after "a" is a cut any more
    cuts = {graph.steps[i].name for i in cut_steps(graph, graph.ancestors(["a", "d"]), {}, ["a", "d"])}
    assert not {"b", "c", "s", "r", "d"} & cuts


# ---------------------------------------------------------------- the callback
def _data(n=64, seed=3):
    from keras_convviz import demo

    x, y, _ = demo.shapes(n, seed=seed)
    return x, y


def _model(steps_per_execution=1):
    import keras

    from keras_convviz import demo

    keras.utils.set_random_seed(0)
    model = demo.build_model()
    model.compile(optimizer=keras.optimizers.SGD(1e-2), loss="sparse_categorical_crossentropy",
                  steps_per_execution=steps_per_execution)
    return model


def _steps(logdir, tag):
    from test_callback import read_events

    return [s for s, _, _ in read_events(logdir).get(tag, [])]


@pytest.mark.slow
def test_log_dir_deleted_during_training_warns_once_and_logs_again(tmp_path):
    """The run folder removed between epochs: one RuntimeWarning naming it and the fix; later logs are kept."""
    import shutil
    import warnings

    import keras

    from keras_convviz import ConvVizCallback

    x, y = _data()
    model = _model()
    logdir = tmp_path / "logs"
    cb = ConvVizCallback(str(logdir), x[:2], methods=("saliency",), every_n_epochs=1)

    class Remove(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                shutil.rmtree(logdir)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, epochs=5, batch_size=32, verbose=0, callbacks=[cb, Remove()])
    assert len(history.history["loss"]) == 5  # training never stops
    ours = [w for w in caught if "ConvVizCallback" in str(w.message) and issubclass(w.category, RuntimeWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    assert str(logdir) in str(ours[0].message) and "deleted" in str(ours[0].message)
    # the logs after the deletion are there, with the probe images for the dashboard
    assert _steps(logdir, "saliency/predictions/heatmap") == [2, 3, 4]
    from tb_plugin import metadata as md

    assert _steps(logdir, md.INPUT_TAG)


def _fit_steps(tmp_path, name, steps_per_execution, every_n_batches, n=64, epochs=2):
    from keras_convviz import ConvVizCallback

    x, y = _data(n)
    model = _model(steps_per_execution)
    cb = ConvVizCallback(str(tmp_path / name), x[:2], methods=("saliency",), every_n_epochs=None,
                         every_n_batches=every_n_batches, log_at_train_end=False)
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0, callbacks=[cb])
    assert int(model.optimizer.iterations.numpy()) == epochs * -(-n // 8)  # every batch trained
    return _steps(tmp_path / name, "saliency/predictions/heatmap")


@pytest.mark.slow
def test_steps_per_execution_logs_at_the_same_global_batch_steps(tmp_path):
    """compile(steps_per_execution=4) calls on_train_batch_end once per 4 batches: steps must not be hook calls."""
    one = _fit_steps(tmp_path, "spe1", 1, every_n_batches=4)
    four = _fit_steps(tmp_path, "spe4", 4, every_n_batches=4)
    assert one == four == [4, 8, 12, 16]


@pytest.mark.slow
def test_steps_per_execution_not_dividing_every_n_batches_logs_each_multiple_at_the_true_step(tmp_path):
    """9 batches an epoch in chunks of 4 (the last one short): each multiple of 3 is logged once,
    stamped with the global batch count the model had reached (the chunk's end)."""
    assert _fit_steps(tmp_path, "spe1", 1, every_n_batches=3, n=72) == [3, 6, 9, 12, 15, 18]
    assert _fit_steps(tmp_path, "spe4", 4, every_n_batches=3, n=72) == [4, 8, 9, 13, 17, 18]


@pytest.mark.slow
def test_second_fit_follows_the_same_maps_and_continues_steps(tmp_path):
    """A second fit() on the same callback and model keeps the units chosen at the first log,
    even when other maps have become the strongest (here: the followed maps' kernels are zeroed)."""
    from keras_convviz import ConvVizCallback

    x, y = _data()
    model = _model()
    cb = ConvVizCallback(str(tmp_path), x[:2], methods=("deconv",), maps=2, every_n_epochs=None,
                         every_n_batches=4, log_at_train_end=False)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[cb])
    layer, = cb.loggers["deconv"].layers
    first = {tag: [s for s, _, _ in ev] for tag, ev in _read(tmp_path).items() if tag.startswith("deconv/")}
    chosen = list(cb.fixed_maps(layer))
    assert len(first) == 2 and all(steps == [4, 8] for steps in first.values())
    # make the followed maps dead: choosing again would pick others
    conv = model.get_layer(layer)
    weights = conv.get_weights()
    weights[0][..., chosen] = 0.0
    if len(weights) > 1:
        weights[1][chosen] = -1.0
    conv.set_weights(weights)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[cb])
    assert list(cb.fixed_maps(layer)) == chosen
    second = {tag: [s for s, _, _ in ev] for tag, ev in _read(tmp_path).items() if tag.startswith("deconv/")}
    assert set(second) == set(first)  # the same deconv/<layer>/map<k> tags, no new map
    assert all(steps == [4, 8, 12, 16] for steps in second.values()), second
    maps = {content["map"] for tag, ev in _read(tmp_path).items() if tag in second for _, content, _ in ev}
    assert maps == set(chosen)


def _read(logdir):
    from test_callback import read_events

    return read_events(logdir)


# ---------------------------------------------------------------- box-filter default layer
def test_mobilenet_box_filter_default_layer_is_the_last_block_end_not_conv_preds(tmp_path, capsys):
    """MobileNet's last conv is conv_preds, a (1, 1) classifier conv after pooling; the default is deconv's."""
    import keras
    from PIL import Image

    from keras_convviz import box_filter, cli, walk
    from keras_convviz.methods.boxfilter import default_layer

    model = keras.applications.MobileNet(weights=None, input_shape=(128, 128, 3))
    assert walk(model).conv_steps()[-1].name == "conv_preds"  # what the old default picked
    assert default_layer(model) == "conv_pw_13" == walk(model).block_ends()[-1]
    # a map with geometry: a corner crop reaches the near corner of conv_pw_13's 4x4 map more than the far one
    fraction = box_filter(model, default_layer(model), (0, 0, 32, 32)).maps["conv_pw_13"].fraction
    assert fraction.shape[:2] == (4, 4) and fraction[0, 0] > fraction[-1, -1]
    # the command's default
    png = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(png)
    code = cli.main(["boxfilter", "forward", "--model", "mobilenet", "--weights", "none", "--size", "64,64",
                     "--crop", "0,0,16,16", str(png), "--out", str(tmp_path / "out")])
    assert code == 0
    assert "layer conv_pw_13" in capsys.readouterr().out
