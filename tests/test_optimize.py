"""Class-model visualization and representation inversion (keras_convviz.methods.optimize).

Numeric oracles: one SGD step equals a hand-written GradientTape step of the
documented objective; the objective improves; the targets of issue 5 on the
demo model (class images classified as their class with p >= 0.9, inversion
error < 0.05 at the first conv block within 300 steps); no retracing; clear
errors; and the two CLI commands end to end.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from keras_convviz import class_model, demo, invert
from keras_convviz.graph import walk
from keras_convviz.methods.classmodel import ClassModel
from keras_convviz.methods.inversion import Inversion
from keras_convviz.methods.optimize import input_range

from fixtures import convviz


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def demo_images():
    images, labels, _ = demo.shapes(4, seed=7)
    return images, labels


def _tiny(activation="softmax", units=3):
    keras.utils.set_random_seed(3)
    x = inputs = keras.Input((10, 12, 2))
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(units, activation=activation, name="head")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def tiny():
    return _tiny()


def _logits(model, x):
    """Hand-written pre-softmax logits of the tiny model."""
    h = model.get_layer("conv")(x)
    h = model.get_layer("pool")(h)
    h = model.get_layer("gap")(h)
    head = model.get_layer("head")
    return tf.matmul(h, head.kernel) + head.bias


def _tv(x, beta, scale):
    x = x / scale
    dy = x[:, 1:, :-1, :] - x[:, :-1, :-1, :]
    dx = x[:, :-1, 1:, :] - x[:, :-1, :-1, :]
    eps = 0.0 if beta == 2.0 else 1e-8
    return tf.reduce_mean((dx ** 2 + dy ** 2 + eps) ** (beta / 2.0), axis=[1, 2, 3])


# ----------------------------------------------------------------- gradient oracles
def test_one_sgd_step_of_class_model_is_the_hand_written_gradient(tiny):
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, (3, 10, 12, 2)).astype(np.float32)
    targets = [0, 2, 1]
    lr, l2, tv, scale = 0.1, 0.7, 0.3, 2.0
    result = class_model(tiny, targets, steps=1, lr=lr, l2=l2, tv=tv, jitter=0, optimizer="sgd",
                         init=x0, scale=scale)
    x = tf.constant(x0)
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = _logits(tiny, x)
        s = tf.gather(z, targets, axis=1, batch_dims=1)
        objective = s - l2 * tf.reduce_mean((x / scale) ** 2, axis=[1, 2, 3]) - tv * _tv(x, 2.0, scale)
        total = tf.reduce_sum(objective)
    grad = tape.gradient(total, x).numpy()
    assert np.abs(grad).max() > 1e-4
    np.testing.assert_allclose(result.images, x0 + lr * scale * grad, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result.history[0], objective.numpy(), rtol=1e-5, atol=1e-6)


def test_one_sgd_step_of_invert_is_the_hand_written_gradient(tiny):
    rng = np.random.default_rng(1)
    inputs = rng.uniform(-1, 1, (2, 10, 12, 2)).astype(np.float32)
    x0 = rng.uniform(-1, 1, (2, 10, 12, 2)).astype(np.float32)
    lr, l_alpha, alpha, tv, beta, scale = 0.05, 0.2, 6.0, 0.1, 1.0, 1.5
    result = invert(tiny, inputs, "pool", steps=1, lr=lr, l_alpha=l_alpha, alpha=alpha, tv=tv,
                    tv_beta=beta, optimizer="sgd", init=x0, scale=scale)
    feature = lambda t: tiny.get_layer("pool")(tiny.get_layer("conv")(t))  # noqa: E731
    phi0 = feature(tf.constant(inputs))
    norm = tf.reduce_sum(phi0 ** 2, axis=[1, 2, 3])
    x = tf.constant(x0)
    with tf.GradientTape() as tape:
        tape.watch(x)
        err = tf.reduce_sum((feature(x) - phi0) ** 2, axis=[1, 2, 3]) / norm
        loss = err + l_alpha * tf.reduce_mean(tf.abs(x / scale) ** alpha, axis=[1, 2, 3]) + tv * _tv(x, beta, scale)
        total = tf.reduce_sum(loss)
    grad = tape.gradient(total, x).numpy()
    np.testing.assert_allclose(result.images, x0 - lr * scale * grad, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result.history[0], loss.numpy(), rtol=1e-5)
    # the reported error is the plain normalized feature error of the final images
    final = feature(tf.constant(result.images))
    expected = (tf.reduce_sum((final - phi0) ** 2, axis=[1, 2, 3]) / norm).numpy()
    np.testing.assert_allclose(result.errors, expected, rtol=1e-5)


def test_score_is_the_pre_softmax_logit_or_the_log_probability(tiny):
    x0 = np.random.default_rng(2).uniform(0, 1, (2, 10, 12, 2)).astype(np.float32)
    r = class_model(tiny, [1, 2], steps=1, lr=1e-6, l2=0, jitter=0, init=x0)
    z = _logits(tiny, tf.constant(r.images)).numpy()
    np.testing.assert_allclose(r.logits, z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.scores, z[[0, 1], [1, 2]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.probabilities, tf.nn.softmax(z).numpy(), rtol=1e-5, atol=1e-6)
    r = class_model(tiny, [1, 2], steps=1, lr=1e-6, l2=0, jitter=0, init=x0, score="log_probability")
    z = _logits(tiny, tf.constant(r.images))
    np.testing.assert_allclose(r.scores, tf.nn.log_softmax(z).numpy()[[0, 1], [1, 2]], rtol=1e-5, atol=1e-6)


def test_single_unit_sigmoid_target_zero_is_the_negated_logit():
    model = _tiny("sigmoid", units=1)
    x0 = np.random.default_rng(3).uniform(0, 1, (1, 10, 12, 2)).astype(np.float32)
    one = class_model(model, 1, steps=1, lr=1e-6, l2=0, jitter=0, init=x0)
    zero = class_model(model, 0, steps=1, lr=1e-6, l2=0, jitter=0, init=x0)
    z = _logits(model, tf.constant(x0)).numpy()[0, 0]
    np.testing.assert_allclose(one.scores, [z], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(zero.scores, [-z], rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------- behaviour
def test_objective_rises_and_images_stay_in_range(tiny):
    r = class_model(tiny, [0, 1, 2], steps=40, value_range=(0, 1), blur_every=5, tv=0.01, noise=0.1)
    assert isinstance(r, ClassModel) and r.images.shape == (3, 10, 12, 2)
    assert r.history.shape == (40, 3)
    assert np.all(r.history[-1] > r.history[0])
    assert r.images.min() >= 0.0 and r.images.max() <= 1.0
    assert np.asarray(r.images).shape == r.images.shape
    rgb = r.rgb()
    assert rgb.dtype == np.uint8 and rgb.shape == (3, 10, 12, 3)


def test_feature_map_mode_raises_the_map_mean(tiny):
    r = class_model(tiny, layer="conv", map=[1, 3], steps=30, value_range=(0, 1), noise=0.1)
    assert list(r.targets) == [1, 3]
    assert np.all(r.history[-1] > r.history[0])
    conv = tiny.get_layer("conv")
    saved = conv.activation
    conv.activation = None  # the pre-activation map is maximized, like the class logit
    try:
        pre = conv(tf.constant(r.images)).numpy()
    finally:
        conv.activation = saved
    np.testing.assert_allclose(r.scores, pre.mean(axis=(1, 2))[[0, 1], [1, 3]], rtol=1e-4, atol=1e-5)


def test_inversion_loss_falls_and_result_unpacks(tiny):
    inputs = np.random.default_rng(4).uniform(0, 1, (2, 10, 12, 2)).astype(np.float32)
    result = invert(tiny, inputs, "conv", steps=60, value_range=(0, 1))
    assert isinstance(result, Inversion)
    images, errors = result.images, result.errors
    assert images.shape == inputs.shape and errors.shape == (2,)
    assert np.all(result.history[-1] < 0.5 * result.history[0])
    assert images.min() >= 0 and images.max() <= 1
    jittered = invert(tiny, inputs, "conv", steps=60, value_range=(0, 1), jitter=1)
    assert np.all(jittered.history[-1] < jittered.history[0])


def test_repeated_calls_do_not_retrace(tiny):
    class_model(tiny, 0, steps=2, value_range=(0, 1))
    class_model(tiny, [1, 2], steps=3, value_range=(0, 1), l2=0.5, tv=0.2, blur_every=1, blur_sigma=1.0, seed=5)
    inputs = np.random.default_rng(5).uniform(0, 1, (1, 10, 12, 2)).astype(np.float32)
    invert(tiny, inputs, "pool", steps=2, value_range=(0, 1))
    invert(tiny, np.concatenate([inputs, inputs]), "pool", steps=3, value_range=(0, 1), alpha=2.0, jitter=2)
    counts = {k: fn.experimental_get_tracing_count() for k, fn in walk(tiny).cache.items()
              if isinstance(k, tuple) and str(k[0]).startswith("optimize.")}
    assert counts and all(c == 1 for c in counts.values()), counts


def test_input_range_of_the_presets():
    lo, hi = input_range(lambda x: x / 255.0)
    np.testing.assert_allclose(lo, 0) and np.testing.assert_allclose(hi, 1)
    lo, hi = input_range(lambda x: x[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32))
    np.testing.assert_allclose(lo, [-103.939, -116.779, -123.68], rtol=1e-6)
    np.testing.assert_allclose(hi, [151.061, 138.221, 131.32], rtol=1e-5)


# ----------------------------------------------------------------- the targets
@pytest.mark.slow
def test_demo_class_models_are_classified_as_their_class(demo_model):
    # The log probability (log-softmax of the logits) reaches p >= 0.9 for every class.
    r = class_model(demo_model, [0, 1, 2, 3], steps=100, value_range=(0, 1), score="log_probability", seed=0)
    p = r.probabilities[np.arange(4), [0, 1, 2, 3]]
    assert np.all(p >= 0.9), p
    assert np.array_equal(r.probabilities.argmax(1), [0, 1, 2, 3])


@pytest.mark.slow
def test_demo_logit_class_models_for_square_triangle_cross(demo_model):
    # Simonyan's pre-softmax logit: p >= 0.9 for square, triangle and cross; the
    # circle logit also rises but drifts into triangle features (README, "Class models and representation inversion").
    r = class_model(demo_model, [1, 2, 3, 0], steps=100, value_range=(0, 1), seed=0)
    p = r.probabilities[np.arange(4), [1, 2, 3, 0]]
    assert np.all(p[:3] >= 0.9), p
    assert np.all(r.history[-1] > r.history[0] + 1.0)


@pytest.mark.slow
def test_demo_inversion_error_at_the_first_block(demo_model, demo_images):
    images, _ = demo_images
    for layer in ("block1_conv2", "block1_pool"):
        result = invert(demo_model, images, layer, steps=300, value_range=(0, 1))
        assert np.all(result.errors < 0.05), (layer, result.errors)


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("steps", [0, -3, 2.5, True, None])
def test_bad_steps(tiny, steps):
    if steps is not None:  # class_model's None is its method's default step count
        with pytest.raises(ValueError, match="steps must be a positive integer"):
            class_model(tiny, 0, steps=steps)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        invert(tiny, np.zeros((1, 10, 12, 2), np.float32), "conv", steps=steps)


@pytest.mark.parametrize("target", [3, -1, [0, 7]])
def test_target_outside_the_classes(tiny, target):
    with pytest.raises(ValueError, match="outside the model's classes 0..2"):
        class_model(tiny, target, steps=1)


def test_other_bad_inputs(tiny):
    x = np.zeros((1, 10, 12, 2), np.float32)
    with pytest.raises(ValueError, match="needs target"):
        class_model(tiny, None, steps=1)
    with pytest.raises(ValueError, match="unknown layer 'cnov'.*conv"):
        class_model(tiny, layer="cnov", map=0, steps=1)
    with pytest.raises(ValueError, match="unknown layer 'pol'.*pool"):
        invert(tiny, x, "pol", steps=1)
    with pytest.raises(ValueError, match="needs map"):
        class_model(tiny, layer="conv", steps=1)
    with pytest.raises(ValueError, match="map 4 is outside 0..3"):
        class_model(tiny, layer="conv", map=4, steps=1)
    bad = x.copy()
    bad[0, 1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        invert(tiny, bad, "conv", steps=1)
    with pytest.raises(ValueError, match="NaN or Inf"):
        class_model(tiny, 0, steps=1, init=bad)
    with pytest.raises(ValueError, match="value_range"):
        class_model(tiny, 0, steps=1, value_range=(1, 0))
    with pytest.raises(ValueError, match="clip=True needs value_range"):
        class_model(tiny, 0, steps=1, clip=True)
    with pytest.raises(ValueError, match="score must be one of"):
        class_model(tiny, 0, steps=1, score="probability")
    with pytest.raises(ValueError, match="lr must be"):
        class_model(tiny, 0, steps=1, lr=0)
    with pytest.raises(ValueError, match="optimizer must be"):
        invert(tiny, x + 0.5, "conv", steps=1, optimizer="rmsprop")
    inputs = keras.Input((10, 12, 2))
    ones = keras.Model(inputs, layers.Conv2D(2, 1, activation="relu", kernel_initializer="ones", name="c")(inputs))
    with pytest.raises(ValueError, match="all zeros"):
        invert(ones, np.full_like(x, -1.0), "c", steps=1)


# ----------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_classmodel_writes_images_with_a_progress_bar(tmp_path):
    out = tmp_path / "out"
    r = convviz("classmodel", "--model", "demo", "--target", "square,cross", "--steps", "80", "--out", out,
             cwd=tmp_path)  # the class recipe needs about 80 of its 256 steps for the cross
    assert r.returncode == 0, r.stderr
    names = sorted(os.listdir(out))
    assert names == ["classmodel_1_square.png", "classmodel_3_cross.png", "classmodel_grid.png"]
    assert "80/80" in r.stdout  # keras Progbar over the steps
    assert "square (1): logit" in r.stdout and "predicted cross" in r.stdout


@pytest.mark.slow
def test_cli_invert_writes_reconstructions_and_prints_errors(tmp_path):
    from keras_convviz.media import save_png

    images, _, _ = demo.shapes(1, seed=3)
    save_png(tmp_path / "shape.png", images[0])
    out = tmp_path / "out"
    r = convviz("invert", tmp_path / "shape.png", "--model", "demo", "--layer", "block1_pool", "--steps", "30",
             "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == ["shape_invert.png", "shape_invert_block1_pool.png"]
    assert "30/30" in r.stdout and "block1_pool: normalized feature error" in r.stdout


@pytest.mark.slow
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    r = convviz("classmodel", "--model", "demo", "--target", "hexagon", "--out", out, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "hexagon" in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["classmodel", "--target", "9"], "outside the model's classes 0..3"),
    (["classmodel", "--target", "circle", "--steps", "0"], "steps must be a positive integer"),
    (["classmodel", "--layer", "block1_cnv2", "--map", "0"], "unknown layer 'block1_cnv2'"),
    (["classmodel"], "needs --target"),
    (["invert", "IMG", "--layer", "block1_pol"], "unknown layer 'block1_pol'"),
    (["invert", "IMG", "--layer", "block1_pool", "--steps", "-1"], "steps must be a positive integer"),
    (["invert", "missing.png", "--layer", "block1_pool"], "does not exist"),
])
def test_cli_errors_in_process(tmp_path, capsys, argv, message):
    from keras_convviz.cli import main
    from keras_convviz.media import save_png

    save_png(tmp_path / "img.png", np.zeros((64, 64, 3), np.uint8))
    out = tmp_path / "out"
    argv = [str(tmp_path / "img.png") if a == "IMG" else a for a in argv]
    argv = [argv[0]] + (argv[1:2] if argv[0] == "invert" else []) + ["--model", "demo"] + \
        (argv[2:] if argv[0] == "invert" else argv[1:]) + ["--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()
