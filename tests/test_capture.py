"""capture(): activations against keras' own intermediate outputs, switches
against tf.nn.max_pool_with_argmax, fused and standalone activations, nesting,
no copied variables and no retracing."""

import numpy as np
import pytest
import keras
import tensorflow as tf
from keras import layers

from keras_convviz import capture, walk
from keras_convviz.probe import run
from keras_convviz.select import logits

from fixtures import small_cnn


def _reference(model, names, x):
    """Intermediate outputs through a plain keras.Model on the same layers."""
    inner = model.get_layer("base") if "base" in [l.name for l in model.layers] else model
    outs = [inner.get_layer(n).output for n in names]
    return keras.Model(inner.inputs[0], outs)(x, training=False)


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).normal(size=(3, 20, 18, 3)).astype("float32")


@pytest.mark.parametrize("nested", [False, True])
def test_activations_match_keras_and_switches_match_argmax(nested, data):
    model = small_cnn(nested)
    bn = (model.get_layer("base") if nested else model).get_layer("bn")
    bn.moving_mean.assign(np.linspace(-0.5, 0.5, 5).astype("float32"))
    bn.moving_variance.assign(np.linspace(0.5, 2.0, 5).astype("float32"))
    names = ["c1", "p1", "relu6", "p2"]
    got = capture(model, data, names)
    ref = _reference(model, names, data)
    for name, expected in zip(names, ref):
        np.testing.assert_allclose(got.activations[name], np.asarray(expected), rtol=1e-6, atol=1e-6)
    assert set(got.switches) == {"p1", "p2"}
    for pool, source, layer in (("p1", "c1", (2, 2, "VALID")), ("p2", "relu6", (3, 2, "SAME"))):
        k, s, pad = layer
        out, argmax = tf.nn.max_pool_with_argmax(
            got.activations[source], ksize=k, strides=s, padding=pad, include_batch_in_index=False)
        np.testing.assert_array_equal(got.switches[pool], argmax.numpy())
        np.testing.assert_allclose(got.activations[pool], out.numpy())
    # the switch is (y * width + x) * channels + c into the pool's input
    sw = got.switches["p1"][1, 2, 3, 1]
    width, channels = got.activations["c1"].shape[2:]
    y, rest = divmod(int(sw), width * channels)
    xx, c = divmod(rest, channels)
    assert c == 1 and got.activations["c1"][1, y, xx, c] == got.activations["p1"][1, 2, 3, 1]
    if nested:
        head = capture(model, data, "head").activations["head"]
        np.testing.assert_allclose(head, model.predict(data, verbose=0), rtol=1e-5, atol=1e-6)


def test_only_switches_on_the_way(data):
    got = capture(small_cnn(), data, ["c2"])
    assert list(got.switches) == ["p1"] and list(got.activations) == ["c2"]


def test_shares_weights_and_copies_no_variables(data):
    model = small_cnn()
    n_weights = len(model.weights)
    first = capture(model, data, ["c2"]).activations["c2"]
    kernel = model.get_layer("c2").kernel
    kernel.assign(kernel * 2.0)
    second = capture(model, data, ["c2"]).activations["c2"]
    bias = model.get_layer("c2").bias.numpy()
    np.testing.assert_allclose(second - bias, 2.0 * (first - bias), rtol=1e-5, atol=1e-5)
    assert len(model.weights) == n_weights


def test_traced_once_per_model_and_layers(data):
    model = small_cnn()
    capture(model, data, ["p2"])
    fn = walk(model).cache[("capture", ("p2",))]
    for batch in (data, data[:1], data[:2] + 1.0):
        capture(model, batch, ["p2"])
    assert fn.experimental_get_tracing_count() == 1


def test_bad_inputs_are_clear(data):
    model = small_cnn()
    with pytest.raises(ValueError, match=r"inputs\[None\]"):
        capture(model, data[0], ["c1"])
    with pytest.raises(ValueError, match="expects"):
        capture(model, data[:, :10], ["c1"])
    with pytest.raises(ValueError, match="NaN"):
        capture(model, np.full_like(data, np.nan), ["c1"])
    with pytest.raises(ValueError, match="Closest: c1"):
        capture(model, data, ["c11"])


def test_rules_swap_relu_backward(data):
    """deconv: g -> relu(g); guided: relu(g) * (x > 0); checked on one fused ReLU."""
    x = inp = keras.Input((6, 6, 1))
    out = layers.Conv2D(2, 3, padding="same", activation="relu", name="c")(x)
    model = keras.Model(inp, out)
    xs = tf.constant(np.random.default_rng(1).normal(size=(2, 6, 6, 1)).astype("float32"))
    seed = tf.constant(np.random.default_rng(2).normal(size=(2, 6, 6, 2)).astype("float32"))
    kernel, bias = (w.numpy() for w in model.get_layer("c").weights)
    pre = tf.nn.conv2d(xs, kernel, 1, "SAME") + bias

    def backprop(g):
        return tf.nn.conv2d_transpose(g, kernel, xs.shape, 1, "SAME")

    for rule, mask in (("deconv", 1.0), ("guided", tf.cast(pre > 0, tf.float32)), (None, tf.cast(pre > 0, tf.float32))):
        with tf.GradientTape() as tape:
            tape.watch(xs)
            y = run(model, xs, ["c"], rule=rule)["c"]
        got = tape.gradient(y, xs, output_gradients=seed)
        g = seed if rule is None else tf.nn.relu(seed)
        np.testing.assert_allclose(got.numpy(), backprop(g * mask).numpy(), rtol=1e-5, atol=1e-5)


def test_logits_are_pre_softmax_fused_and_standalone():
    inp = keras.Input((4, 4, 1))
    flat = layers.Flatten()(inp)
    fused = keras.Model(inp, layers.Dense(3, activation="softmax", name="d")(flat))
    dense = layers.Dense(3, name="d2")
    standalone = keras.Model(inp, layers.Softmax(name="sm")(dense(flat)))
    x = np.random.default_rng(3).normal(size=(2, 4, 4, 1)).astype("float32")
    w, b = (v.numpy() for v in fused.get_layer("d").weights)
    np.testing.assert_allclose(logits(fused, tf.constant(x)).numpy(), x.reshape(2, -1) @ w + b, rtol=1e-5)
    w, b = (v.numpy() for v in dense.weights)
    np.testing.assert_allclose(logits(standalone, tf.constant(x)).numpy(), x.reshape(2, -1) @ w + b, rtol=1e-5)
    # the model's own forward pass is untouched
    np.testing.assert_allclose(fused(x).numpy().sum(-1), 1.0, rtol=1e-5)
