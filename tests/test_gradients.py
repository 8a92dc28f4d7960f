"""Gradient methods against hand-written tf.GradientTape references and analytic cases."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_convviz import walk
from keras_convviz.methods.gradcam import default_layer, gradcam
from keras_convviz.methods.gradients import (guided_backprop, integrated_gradients, saliency,
                                             smoothgrad)

from fixtures import convviz

L = keras.layers


# ---------------------------------------------------------------- small models
def _features(name):
    keras.utils.set_random_seed(7)
    x = inputs = keras.Input((12, 12, 3), name="image")
    x = L.Conv2D(4, 3, activation="relu", name="conv1")(x)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(5, 3, padding="same", name="conv2")(x)
    x = L.ReLU(name="relu2")(x)
    f = L.GlobalAveragePooling2D(name="gap")(x)
    return inputs, f


def fused_softmax():
    inputs, f = _features("fused")
    return keras.Model(inputs, L.Dense(3, activation="softmax", name="head")(f), name="fused")


def standalone_softmax():
    inputs, f = _features("standalone")
    z = L.Dense(3, name="head")(f)
    return keras.Model(inputs, L.Activation("softmax", name="probs")(z), name="standalone")


def single_sigmoid():
    inputs, f = _features("sigmoid")
    return keras.Model(inputs, L.Dense(1, activation="sigmoid", name="head")(f), name="sigmoid")


def multi_output():
    inputs, f = _features("multi")
    a = L.Dense(3, activation="softmax", name="head_a")(f)
    b = L.Dense(2, activation="softmax", name="head_b")(f)
    return keras.Model(inputs, [a, b], name="multi")


def head_logits(model, head, feats):
    """The pre-activation of Dense ``head`` by hand: features @ W + b."""
    layer = model.get_layer(head)
    return tf.matmul(feats, layer.kernel) + layer.bias


def hand_forward(model, x, relu=tf.nn.relu, head="head"):
    """The _features network written out with raw TF ops (no Keras call)."""
    c1, c2 = model.get_layer("conv1"), model.get_layer("conv2")
    h = relu(tf.nn.conv2d(x, c1.kernel, 1, "VALID") + c1.bias)
    h = tf.nn.max_pool2d(h, 2, 2, "VALID")
    h = relu(tf.nn.conv2d(h, c2.kernel, 1, "SAME") + c2.bias)
    feats = tf.reduce_mean(h, axis=(1, 2))
    return head_logits(model, head, feats), h


def ref_gradient(model, x, targets, relu=tf.nn.relu, head="head", sign=None):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits, _ = hand_forward(model, x, relu, head)
        if logits.shape[-1] == 1:
            s = logits[:, 0] * tf.constant(np.where(np.asarray(targets) > 0, 1.0, -1.0), tf.float32)
        else:
            s = tf.gather(logits, targets, axis=1, batch_dims=1)
        s = tf.reduce_sum(s)
    return tape.gradient(s, x).numpy()


@pytest.fixture(scope="module")
def batch():
    return np.random.default_rng(0).uniform(0, 1, (3, 12, 12, 3)).astype(np.float32)


def _close(a, b, tol=1e-5):
    scale = max(float(np.abs(b).max()), 1e-6)
    np.testing.assert_allclose(a, b, atol=tol * scale, rtol=1e-4)


# ---------------------------------------------------------------- saliency
@pytest.mark.parametrize("build", [fused_softmax, standalone_softmax])
def test_saliency_matches_tape_on_logits(build, batch):
    model = build()
    targets = [0, 2, 1]
    got = saliency(model, batch, targets)
    ref = np.abs(ref_gradient(model, batch, targets)).max(-1)
    assert got.shape == (3, 12, 12) and got.dtype == np.float32
    _close(got, ref)
    # an int target applies to every image
    _close(saliency(model, batch, 2), np.abs(ref_gradient(model, batch, [2, 2, 2])).max(-1))


def test_saliency_none_is_predicted_class(batch):
    model = fused_softmax()
    predicted = np.argmax(model.predict(batch, verbose=0), -1)
    _close(saliency(model, batch, None), saliency(model, batch, list(predicted)))


def test_single_sigmoid_target_sign(batch):
    model = single_sigmoid()
    g1 = ref_gradient(model, batch, [1, 1, 1])
    _close(saliency(model, batch, 1), np.abs(g1).max(-1))
    # target 0 explains -logit (guided backprop is not odd: compare with the -logit reference)
    _close(guided_backprop(model, batch[:1], 0), ref_gradient(model, batch[:1], [0], relu=_guided_relu))
    ig1 = integrated_gradients(model, batch[:1], 1, steps=8)
    ig0 = integrated_gradients(model, batch[:1], 0, steps=8)
    _close(ig0, -ig1)
    # None: logit > 0 means class 1
    logit = hand_forward(model, tf.constant(batch))[0].numpy()[:, 0]
    _close(saliency(model, batch, None), np.abs(ref_gradient(model, batch, (logit > 0).astype(int))).max(-1))


def test_multi_output_selector(batch):
    model = multi_output()
    ref_b = np.abs(ref_gradient(model, batch, [1, 0, 1], head="head_b")).max(-1)
    _close(saliency(model, batch, [1, 0, 1], output=1), ref_b)
    _close(saliency(model, batch, [1, 0, 1], output="head_b"), ref_b)
    with pytest.raises(ValueError, match="output"):
        saliency(model, batch, 0)
    with pytest.raises(ValueError, match="outside"):
        saliency(model, batch, 2, output="head_b")


def test_linear_model_gradient_is_the_weights():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((4, 5, 2))
    out = L.Dense(3, activation="softmax")(L.Flatten()(inputs))
    model = keras.Model(inputs, out)
    w = model.layers[-1].kernel.numpy().reshape(4, 5, 2, 3)
    x = np.random.default_rng(1).normal(size=(2, 4, 5, 2)).astype(np.float32)
    _close(saliency(model, x, [1, 2]), np.stack([np.abs(w[..., 1]).max(-1), np.abs(w[..., 2]).max(-1)]))
    _close(guided_backprop(model, x, 0), np.broadcast_to(w[..., 0], x.shape))
    # SmoothGrad of a linear model is exact whatever the noise
    _close(smoothgrad(model, x, 1, samples=7, noise=0.5, batch_size=3, seed=0),
           np.broadcast_to(np.abs(w[..., 1]).max(-1), (2, 4, 5)))
    # IG of a linear model: (x - x0) * w for any number of steps
    _close(integrated_gradients(model, x, 1, steps=3), x * w[..., 1])
    _close(integrated_gradients(model, x, 1, steps=5, baseline=0.5), (x - 0.5) * w[..., 1])


def test_nested_model(batch):
    inner = fused_softmax()
    base = keras.Model(inner.input, inner.get_layer("relu2").output, name="base")
    outer = keras.Sequential([keras.Input((12, 12, 3)), base, L.GlobalAveragePooling2D(),
                              L.Dense(3, activation="softmax", name="top")])
    feats = keras.Model(outer.inputs, outer.layers[-2].output)
    x = tf.constant(batch)
    with tf.GradientTape() as tape:
        tape.watch(x)
        s = tf.reduce_sum(head_logits(outer, "top", feats(x))[:, 1])
    _close(saliency(outer, batch, 1), np.abs(tape.gradient(s, x).numpy()).max(-1))


@pytest.mark.parametrize("conv", [
    dict(kernel_size=3, padding="same"),
    dict(kernel_size=5, padding="valid"),
    dict(kernel_size=(3, 1), padding="same"),
    dict(kernel_size=2, padding="same"),  # even kernel: asymmetric SAME padding, TF's own gradient
    dict(kernel_size=3, strides=2, padding="same"),  # strided: TF's own gradient
    dict(kernel_size=3, dilation_rate=2, padding="same"),
    dict(kernel_size=3, groups=2, padding="same"),
])
def test_conv_gradient_override_is_exact(conv):
    """The flipped-kernel forward conv equals Conv2DBackpropInput wherever it is used."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((11, 10, 4))
    h = L.Conv2D(6, activation="relu", **conv)(inputs)
    h = L.Conv2D(3, 3, padding="same", activation="tanh")(h)
    model = keras.Model(inputs, L.Dense(2, activation="softmax")(L.Flatten()(h)))
    x = np.random.default_rng(0).normal(size=(2, 11, 10, 4)).astype(np.float32)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        feats = keras.Model(model.inputs, model.layers[-2].output)(xt)
        s = tf.reduce_sum((tf.matmul(feats, model.layers[-1].kernel) + model.layers[-1].bias)[:, 1])
    _close(saliency(model, x, 1), np.abs(tape.gradient(s, xt).numpy()).max(-1))


def test_conv_gradient_override_is_in_the_graph(batch):
    model = fused_softmax()
    saliency(model, batch, 0)
    fn = walk(model).cache[("gradient", "head", None, "absmax")]
    ops = fn.get_concrete_function().graph.get_operations()
    convs = [op for op in ops if op.type == "Conv2D" and "gradients" not in op.name]
    assert convs and all(op.get_attr("_gradient_op_type") == b"ConvvizFlippedConv2D" for op in convs)
    assert not any(op.type == "Conv2DBackpropInput" for op in ops)


# ---------------------------------------------------------------- smoothgrad
def test_smoothgrad_zero_noise_is_saliency(batch):
    model = fused_softmax()
    _close(smoothgrad(model, batch, [0, 1, 2], samples=3, noise=0.0), saliency(model, batch, [0, 1, 2]))


def test_smoothgrad_matches_monte_carlo_reference(batch):
    """Same noise both ways: the mean gradient over the noisy copies, then max |.|."""
    model = fused_softmax()
    x = batch[:2]
    sigma = 0.2 * (x.reshape(2, -1).max(1) - x.reshape(2, -1).min(1))
    got = smoothgrad(model, x, [1, 0], samples=6, noise=0.2, batch_size=4, seed=5, reduce=False)
    # the implementation draws one stateless normal per chunk; rebuild it the same way
    rng = np.random.default_rng(5)
    owner = np.repeat([0, 1], 6)
    total = np.zeros_like(x)
    for a, b in [(0, 4), (4, 8), (8, 12)]:
        seed = rng.integers(0, 2**31 - 1, size=2, dtype=np.int32)
        idx = owner[a:b]
        noise = tf.random.stateless_normal((b - a, 12, 12, 3), seed).numpy() * sigma[idx, None, None, None]
        g = ref_gradient(model, x[idx] + noise, np.array([1, 0])[idx])
        np.add.at(total, idx, g)
    _close(got, total / 6)
    # deterministic with a seed, different noise without
    again = smoothgrad(model, x, [1, 0], samples=6, noise=0.2, batch_size=4, seed=5, reduce=False)
    np.testing.assert_array_equal(got, again)


# ---------------------------------------------------------------- guided backprop
@tf.custom_gradient
def _guided_relu(x):
    def grad(g):
        return tf.nn.relu(g) * tf.cast(x > 0, g.dtype)

    return tf.nn.relu(x), grad


@pytest.mark.parametrize("build", [fused_softmax, standalone_softmax])
def test_guided_backprop_matches_guided_tape(build, batch):
    model = build()
    got = guided_backprop(model, batch, [2, 0, 1])
    assert got.shape == batch.shape
    _close(got, ref_gradient(model, batch, [2, 0, 1], relu=_guided_relu))


# ---------------------------------------------------------------- integrated gradients
def test_ig_is_the_right_riemann_sum(batch):
    model = fused_softmax()
    x = batch[:2]
    base = np.full_like(x, 0.25)
    total = np.zeros_like(x)
    for k in range(1, 5):
        total += ref_gradient(model, base + k / 4 * (x - base), [0, 2])
    _close(integrated_gradients(model, x, [0, 2], steps=4, baseline=0.25, batch_size=3), (x - base) * total / 4)


def test_ig_completeness_improves_with_steps():
    """sum(IG) -> S(x) - S(x0) as steps grow (a smooth model: the sum is not exact)."""
    keras.utils.set_random_seed(11)
    inputs = keras.Input((8, 8, 3))
    h = L.Conv2D(6, 3, activation="tanh")(inputs)
    h = L.Conv2D(4, 3, activation="softplus")(h)
    model = keras.Model(inputs, L.Dense(3, activation="softmax")(L.GlobalAveragePooling2D()(h)))
    feats = keras.Model(inputs, model.layers[-2].output)
    head = model.layers[-1]
    score = lambda v: (tf.matmul(feats(v), head.kernel) + head.bias).numpy()[:, 1]
    x = np.random.default_rng(2).normal(0, 2, (2, 8, 8, 3)).astype(np.float32)
    gap = score(x) - score(np.zeros_like(x))
    errors = [np.abs(integrated_gradients(model, x, 1, steps=s).reshape(2, -1).sum(1) - gap).max()
              for s in (2, 16, 256)]
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] <= errors[0] / 30 and errors[2] < 1e-3, (errors, gap)  # O(1/steps)


# ---------------------------------------------------------------- Grad-CAM
def test_gradcam_matches_tape_reference(batch):
    model = standalone_softmax()
    feats = keras.Model(model.inputs, model.get_layer("relu2").output)
    x = tf.constant(batch)
    with tf.GradientTape() as tape:
        maps = feats(x)
        tape.watch(maps)
        logits = head_logits(model, "head", tf.reduce_mean(maps, axis=(1, 2)))
        s = tf.reduce_sum(tf.gather(logits, [2, 1, 0], axis=1, batch_dims=1))
    w = tf.reduce_mean(tape.gradient(s, maps), axis=(1, 2), keepdims=True)
    ref = tf.nn.relu(tf.reduce_sum(w * maps, -1)).numpy()
    assert default_layer(model) == "relu2"
    small = gradcam(model, batch, [2, 1, 0], upsample=False)
    assert small.shape == (3, 5, 5)
    _close(small, ref)
    big = gradcam(model, batch, [2, 1, 0])
    assert big.shape == (3, 12, 12)
    _close(big, tf.image.resize(ref[..., None], (12, 12), "bilinear").numpy()[..., 0])


def test_gradcam_gap_dense_is_cam(batch):
    """GAP + Dense: the Grad-CAM weights are W[:, c] / (h w) (Zhou et al.'s CAM)."""
    model = fused_softmax()
    maps = keras.Model(model.inputs, model.get_layer("relu2").output)(batch).numpy()
    w = model.get_layer("head").kernel.numpy()
    ref = np.maximum(np.einsum("nhwk,k->nhw", maps, w[:, 1]) / 25.0, 0)
    _close(gradcam(model, batch, 1, layer="relu2", upsample=False), ref)


def test_gradcam_default_layer_on_demo_model():
    from keras_convviz import demo

    assert default_layer(demo.build_model()) == "block3_conv2"


def test_gradcam_errors(batch):
    model = fused_softmax()
    with pytest.raises(ValueError, match="spatial"):
        gradcam(model, batch, 0, layer="gap")
    with pytest.raises(ValueError, match="unknown layer"):
        gradcam(model, batch, 0, layer="conv3")


# ---------------------------------------------------------------- compiled once
def _traces(model):
    return sum(fn.experimental_get_tracing_count() for fn in walk(model).cache.values())


def test_repeated_calls_do_not_retrace(batch):
    model = fused_softmax()
    calls = [
        lambda: saliency(model, batch, 1),
        lambda: saliency(model, batch, None),
        lambda: smoothgrad(model, batch, [0, 1, 2], samples=4, batch_size=5),
        lambda: guided_backprop(model, batch, 0),
        lambda: integrated_gradients(model, batch, None, steps=6, batch_size=4),
        lambda: gradcam(model, batch, 2),
        lambda: gradcam(model, batch, 2, upsample=False),
    ]
    for call in calls:
        call()
    first = _traces(model)
    assert first == len(walk(model).cache)  # one trace per compiled function
    for call in calls:
        call()
    saliency(model, batch[:1], 0)  # another batch size: the batch dimension is open
    smoothgrad(model, batch, 1, samples=9, batch_size=4)
    assert _traces(model) == first


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("method", [saliency, smoothgrad, guided_backprop, integrated_gradients, gradcam])
def test_bad_inputs(method, batch):
    model = fused_softmax()
    for bad in (np.nan, np.inf):
        x = batch.copy()
        x[0, 1, 2, 0] = bad
        with pytest.raises(ValueError, match="NaN or Inf"):
            method(model, x, 0)
    with pytest.raises(ValueError, match="outside the model's classes"):
        method(model, batch, 3)
    with pytest.raises(ValueError, match="outside"):
        method(model, batch, -1)
    with pytest.raises(ValueError, match="one per image"):
        method(model, batch, [0, 1])
    with pytest.raises(ValueError, match="batch"):
        method(model, batch[0], 0)
    with pytest.raises(ValueError, match="batch_size"):
        method(model, batch, 0, batch_size=0)


def test_bad_counts(batch):
    model = fused_softmax()
    for steps in (0, -3):
        with pytest.raises(ValueError, match="steps"):
            integrated_gradients(model, batch, 0, steps=steps)
    for samples in (0, -1, 2.5):
        with pytest.raises(ValueError, match="samples"):
            smoothgrad(model, batch, 0, samples=samples)
    with pytest.raises(ValueError, match="noise"):
        smoothgrad(model, batch, 0, noise=-0.1)
    with pytest.raises(ValueError, match="baseline"):
        integrated_gradients(model, batch, 0, baseline=np.zeros((5, 5)))
    with pytest.raises(ValueError, match="NaN or Inf"):
        integrated_gradients(model, batch, 0, baseline=np.nan)


# ---------------------------------------------------------------- memory
# One script measures memory for the tests and the benchmarks: benchmarks/peak_memory.py.
PEAK_MEMORY = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "peak_memory.py")


def peak_memory(method, count):
    """Peak RSS (VmHWM, KiB) of a fresh process running ``method`` with ``count`` samples/steps."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    args = [method, str(count), "--size", "96", "--batch-size", "20", "--warmup-count", "20",
            "--warmup-repeats", "4"]
    out = subprocess.run([sys.executable, PEAK_MEMORY, *args], capture_output=True, text=True, env=env,
                         timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["smoothgrad", "ig"])
def test_peak_memory_does_not_grow_with_samples(method):
    small, large = peak_memory(method, 20), peak_memory(method, 200)
    # A batch of 200 would hold 200 x 2 x (96 x 96 x 32) floats of activations and as
    # many gradients (~1 GB); chunks of 20 keep the peak where 20 samples put it.
    assert large["peak_kb"] <= 1.2 * small["peak_kb"], (small, large)
    assert large["peak_kb"] - large["before_kb"] < 150_000, (small, large)


# ---------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def shape_png(tmp_path_factory):
    from keras_convviz import demo, media, render

    images, labels, _ = demo.shapes(2, seed=9)
    path = tmp_path_factory.mktemp("img") / "cross.png"
    media.save_png(path, render.to_uint8(images[1]))  # a cross (label 3)
    assert labels[1] == 3
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gradcam", "smoothgrad"])
def test_cli_writes_map_and_overlay(method, shape_png, tmp_path):
    from PIL import Image

    extra = ["--samples", "5"] if method == "smoothgrad" else []
    result = convviz(method, shape_png, "--model", "demo", "--target", "square", "--out", str(tmp_path), *extra)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "top classes:" and lines[1].startswith("  1. cross (3): ")
    assert "explained: square (1)" in result.stdout
    from keras_convviz.figures import panel

    title = f"{method}: square (1), p = "  # then the probability and the layer, wrapped to the picture's width
    for name in (f"cross_{method}.png", f"cross_{method}_overlay.png"):
        with Image.open(tmp_path / name) as img:
            rgb = np.asarray(img)
            assert img.mode == "RGB" and rgb.shape[1] == 192  # the 64 px map enlarged 3x, titled, with a colour bar
            rows = len(panel.title_lines(title + "0.000, at predictions", 192))
            bar = panel.colour_bar(panel.Scale(), 192).shape[0]
            assert rgb.shape[0] >= rows * panel.TITLE_HEIGHT + 192 + bar
            assert (rgb[1, -2] == (24, 24, 24)).all()  # the title strip
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"cross_{method}.png", f"cross_{method}_overlay.png"]


@pytest.mark.parametrize("args, message", [
    (("gradcam", "--target", "sqare"), "Closest: square"),
    (("gradcam", "--layer", "gap"), "not a spatial"),
    (("ig", "--steps", "0"), "--steps must be >= 1"),
])
@pytest.mark.slow
def test_cli_bad_input(args, message, shape_png, tmp_path):
    method, *rest = args
    result = convviz(method, shape_png, "--out", str(tmp_path / "out"), *rest)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
