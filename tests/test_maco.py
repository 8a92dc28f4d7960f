"""MaCo (Fel et al. 2023): phase-only feature visualization with a fixed natural magnitude spectrum, and the
ImageNet class recipe (issue 24). The slow test runs the recipe on EfficientNet-Lite0."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from keras_convviz import class_model
from keras_convviz.graph import walk
from keras_convviz.methods import maco
from keras_convviz.methods import objectives as obj
from keras_convviz.methods.featurevis import (CLASS_RECIPE, DEMO_MODEL, DEMO_RECIPE, class_recipe, featurevis,
                                              recipe, recipe_score)
from keras_convviz.methods.parameterize import Parameterization, normalized_colors


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(5)
    x = inputs = keras.Input((8, 10, 3))
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(3, activation="softmax", name="head")(x))


def _spectrum(y):
    """|rfft2| of images ``(N, H, W, C)`` as ``(N, C, H, W // 2 + 1)``."""
    return np.abs(np.fft.rfft2(np.transpose(np.asarray(y, np.float64), (0, 3, 1, 2)), axes=(2, 3)))


def _hand_render(phase, magnitude, colors, low, high):
    """MaCo's image by hand: the phase made odd on the folded columns with numpy indexing, the inverse real
    FFT, the colour matrix and the sigmoid onto the range."""
    h, w = phase.shape[2], 2 * (phase.shape[3] - 1)
    mirror = tf.gather(phase, (-np.arange(h)) % h, axis=2)
    odd = 0.5 * (phase - mirror)
    folded = np.zeros(phase.shape[3], bool)
    folded[[0, -1]] = True
    phase = tf.where(folded, odd, phase)
    spectrum = tf.complex(magnitude * tf.cos(phase), magnitude * tf.sin(phase))
    y = tf.transpose(tf.signal.irfft2d(spectrum, fft_length=[h, w]), [0, 2, 3, 1])
    return low + (high - low) * tf.sigmoid(tf.einsum("nhwc,dc->nhwd", y, colors))


@pytest.mark.parametrize("shape", [(8, 10), (7, 9), (6, 7)])
def test_the_phase_image_has_exactly_the_fixed_magnitude(shape):
    h, w = shape
    magnitude = maco.natural_magnitude(h, w)
    phase = maco.initial_phase(np.random.default_rng(1), (2, 3, h, w // 2 + 1))
    y = maco.phase_image(tf.constant(phase), magnitude, w).numpy()
    np.testing.assert_allclose(_spectrum(y), np.broadcast_to(magnitude, (2,) + magnitude.shape), atol=1e-4)


@pytest.mark.slow
def test_one_step_moves_the_phase_along_the_hand_gradient_and_keeps_the_magnitude(tiny):
    colors = normalized_colors(None, 3)
    image = Parameterization("maco", (8, 10, 3), True)
    magnitude = maco.natural_magnitude(8, 10)
    p0 = tf.constant(image.initial(np.random.default_rng(2), 2))
    x0 = _hand_render(p0, magnitude, colors, 0.0, 1.0).numpy()
    r1 = featurevis(tiny, obj.channel("conv", [1, 3]), param="maco", steps=1, lr=1e-3, optimizer="sgd", jitter=0,
                    zoom=0, rotate=0, init=x0, value_range=(0, 1))
    p = tf.constant(image.encode(x0, colors, 0.0, 1.0, 0.5, 0.5))
    np.testing.assert_allclose(_hand_render(p, magnitude, colors, 0.0, 1.0).numpy(), x0, atol=1e-4)  # encode
    conv = tiny.get_layer("conv")
    with tf.GradientTape() as tape:
        tape.watch(p)
        a = tf.nn.conv2d(_hand_render(p, magnitude, colors, 0.0, 1.0), conv.kernel, 1, "SAME") + conv.bias
        total = tf.reduce_sum(tf.gather(tf.reduce_mean(a, [1, 2]), [1, 3], axis=1, batch_dims=1))
    g = tape.gradient(total, p).numpy()
    g = g / np.sqrt((g ** 2).reshape(2, -1).mean(1)).reshape(2, 1, 1, 1)  # unit RMS per image
    expected = _hand_render(tf.constant(p.numpy() + 1e-3 * g), magnitude, colors, 0.0, 1.0).numpy()
    np.testing.assert_allclose(r1.images, expected, atol=2e-5)
    # phase only: the decorrelated image behind the result still has the fixed magnitude spectrum
    y = maco.decorrelated_logits(r1.images, colors)
    np.testing.assert_allclose(_spectrum(y)[:, :, 1:, 1:], np.broadcast_to(magnitude, (2,) + magnitude.shape)[
        :, :, 1:, 1:], rtol=1e-2, atol=1e-2)


def test_shipped_natural_spectrum_is_the_fit_to_the_photographs():
    colors = normalized_colors(None, 3)
    fitted = maco.fit_spectrum(maco.decorrelated_logits(maco.photo_inputs(224), colors))
    np.testing.assert_allclose(np.asarray(fitted), np.asarray(maco.NATURAL_SPECTRUM), rtol=1e-3)
    assert all(1.0 < a < 1.6 for _, a in maco.NATURAL_SPECTRUM)  # natural images: 1/f^a, a a bit above 1


def test_magnitude_from_the_users_images_is_kept_and_importance_is_a_map(tiny):
    rng = np.random.default_rng(3)
    photos = rng.uniform(0.1, 0.9, (3, 8, 10, 3)).astype(np.float32)
    r = featurevis(tiny, obj.channel("conv", [0, 2]), param="maco", steps=20, value_range=(0, 1), jitter=1,
                   magnitude=photos)
    colors = normalized_colors(None, 3)
    expected = maco.image_magnitude(maco.decorrelated_logits(photos, colors))
    y = maco.decorrelated_logits(r.images, colors)
    np.testing.assert_allclose(_spectrum(y)[:, :, 1:, 1:], np.broadcast_to(expected, (2,) + expected.shape)[
        :, :, 1:, 1:], rtol=1e-2, atol=1e-2)
    assert r.importance.shape == (2, 8, 10) and r.importance.min() >= 0 and np.allclose(r.importance.max((1, 2)), 1)
    assert r.images.min() >= 0 and r.images.max() <= 1


@pytest.mark.parametrize("call, message", [
    (lambda m: featurevis(m, obj.channel("conv", 0), param="fourier", magnitude=np.ones((3, 8, 6))), "param='maco'"),
    (lambda m: featurevis(m, obj.channel("conv", 0), param="maco", magnitude=np.ones((3, 8, 5))), "spectrum"),
    (lambda m: featurevis(m, obj.channel("conv", 0), param="maco", magnitude=np.ones((1, 8, 10, 3))),
     "value_range"),
    (lambda m: featurevis(m, obj.channel("conv", 0), param="maco", alpha=0.2, value_range=(0, 1)), "fourier"),
])
def test_bad_maco_input_names_the_fix(tiny, call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny)


def test_recipes_keep_the_image_in_range_and_do_not_retrace(tiny):
    for steps, seed in ((3, 0), (4, 1)):
        for param in ("maco", "fourier", "decorrelated"):
            r = class_model(tiny, [0, 2], steps=steps, seed=seed, value_range=(-0.5, 0.25), param=param)
            assert r.images.min() >= -0.5 and r.images.max() <= 0.25, param
    counts = {k: fn.experimental_get_tracing_count() for k, fn in walk(tiny).cache.items()
              if isinstance(k, tuple) and str(k[0]).startswith("optimize.featurevis")}
    assert len(counts) >= 3 and all(c == 1 for c in counts.values()), counts


def test_the_demo_net_keeps_its_own_recipe_and_others_take_imagenets():
    assert recipe(DEMO_MODEL) is DEMO_RECIPE and recipe("efficientnet_lite0") is CLASS_RECIPE
    assert class_recipe(224, 224)["param"] == "fourier" and class_recipe(224, 224)["jitter"] == 16
    assert class_recipe(64, 64, DEMO_MODEL)["alpha"] == 0.2
    assert recipe_score("softmax") == "logit" and recipe_score("softmax", DEMO_MODEL) == "log_probability"


@pytest.mark.slow
def test_lite0_class_models_of_four_classes_are_its_top1():
    from keras_convviz import presets
    from keras_convviz.methods.optimize import input_range

    preset = presets.load("efficientnet-lite0")
    low, high = input_range(preset.preprocess)
    classes = [1, 130, 340, 951]  # goldfish, flamingo, zebra, lemon
    r = class_model(preset.model, classes, value_range=(low, high), seed=0)
    assert r.images.min() >= low.min() and r.images.max() <= high.max()
    assert list(np.argmax(r.probabilities, 1)) == classes, np.argmax(r.probabilities, 1)


def test_a_dead_model_reports_failure_against_a_random_image():
    """An objective the image cannot move is never above a random image's: ``failed`` says so."""
    x = inputs = keras.Input((8, 10, 3))
    x = layers.Conv2D(2, 3, padding="same", kernel_initializer="zeros", name="conv")(x)
    x = layers.GlobalAveragePooling2D()(x)
    dead = keras.Model(inputs, layers.Dense(3, kernel_initializer="zeros", activation="softmax", name="head")(x))
    r = class_model(dead, [0, 1], steps=2, value_range=(0, 1))
    assert np.all(r.failed) and np.allclose(r.scores, r.random_scores)
    v = featurevis(dead, obj.channel("conv", [0, 1]), param="maco", steps=2, value_range=(0, 1), jitter=1)
    assert np.all(v.failed)


@pytest.mark.slow
def test_cli_prints_objective_and_probability_and_takes_size(tmp_path):
    from fixtures import convviz

    out = tmp_path / "out"
    r = convviz("featurevis", "--model", "demo", "--class", "square", "--steps", "2", "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "square (1): objective" in r.stdout and "(random image" in r.stdout and ", probability " in r.stdout
    r = convviz("featurevis", "--model", "hed", "--size", "48,40", "--layer", "block2_conv1", "--channels", "0",
                "--param", "maco", "--steps", "2", "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    from PIL import Image

    assert Image.open(out / "featurevis_block2_conv1_0.png").size == (40, 48)
    r = convviz("classmodel", "--model", "demo", "--target", "1", "--steps", "2", "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "square (1): logit" in r.stdout and "objective" in r.stdout and "(random image" in r.stdout
    r = convviz("featurevis", "--model", "demo", "--class", "square", "--size", "4x4", "--out", out, cwd=tmp_path)
    assert r.returncode == 2 and "--size" in r.stderr
