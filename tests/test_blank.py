"""Issue 11: no silent blank pictures, seeded untrained models, progress on long work.

Oracles: a map's structure survives any scale (the 1e-19 map renders like
the same map of ones); an exactly-zero map stays flat and is reported in one
line; two ``--weights none`` builds with one seed have identical weights; the
class model moves off the zero image of a bias-free ReLU net whose gradient
there is exactly zero (checked with a GradientTape); captured output shows
Keras' progress bar.
"""

import io
import warnings
from contextlib import redirect_stdout

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from skimage import data

from keras_convviz import blank, progress, render
from keras_convviz.methods.classmodel import class_model
from keras_convviz.methods.gradients import integrated_gradients, smoothgrad
from keras_convviz.methods.occlusion import occlusion
from keras_convviz.presets import load

from fixtures import convviz


def _blob():
    y, x = np.mgrid[0:48, 0:64]
    return np.exp(-((y - 20) ** 2 + (x - 40) ** 2) / 60.0) + 0.3 * (x / 64.0)


def test_a_1e19_map_shows_the_same_structure_as_at_unit_scale(tmp_path):
    m = _blob()
    tiny = render.normalize(m * 1e-19)
    np.testing.assert_allclose(tiny, render.normalize(m), atol=1e-9)
    assert tiny.min() == 0.0 and tiny.max() == 1.0
    picture = render.heatmap(m * 1e-19)
    assert picture.std() > 20  # not a flat picture
    proj = render.projection_image(np.stack([m, -m, m], -1) * 1e-19)
    assert proj.min() < 20 and proj.max() > 235  # full contrast both signs
    Image.fromarray(np.concatenate([picture, proj], 1)).save(tmp_path / "tiny.png")


def test_an_exactly_zero_map_stays_flat_and_is_reported():
    zero = np.zeros((8, 8))
    assert render.normalize(zero).max() == 0.0
    assert np.all(render.projection_image(np.zeros((4, 4, 3))) == 128)
    message = blank.diagnose(zero, "the gradcam map")
    assert message.startswith("the gradcam map is exactly zero") and "\n" not in message
    assert "off the explained output's path" in message
    assert "untrained weights" in blank.diagnose(np.full(3, 1e-20), "x", "activations")
    assert "vanishes (largest |value| 1.0e-20" in blank.diagnose(np.full(3, 1e-20), "x")
    assert blank.diagnose(_blob(), "fine") is None
    assert "NaN" in blank.diagnose(np.array([np.nan, 1.0]), "x")
    # rounding noise on a constant is flat, not structure
    assert render.normalize(np.ones(5) + np.array([0, 1e-17, 0, 0, 0])).max() == 0.0


def _bias_free_relu(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, activation="relu")(inp)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3, use_bias=False)(x))


def test_class_model_leaves_the_zero_image_of_a_bias_free_relu_net():
    model = _bias_free_relu()
    zero = tf.zeros((1, 16, 16, 3))
    with tf.GradientTape() as tape:
        tape.watch(zero)
        score = model(zero)[:, 1]
    assert float(tf.reduce_max(tf.abs(tape.gradient(score, zero)))) == 0.0  # the old start is stuck
    stuck = class_model(model, 1, steps=5, value_range=(-1, 1), init=np.zeros((1, 16, 16, 3), np.float32))
    assert np.all(stuck.images == 0.0)
    assert stuck.gain[0] == 0.0  # what convviz classmodel and the callback warn about
    r = class_model(model, 1, steps=40, lr=0.05, value_range=(-1, 1), jitter=0)  # the readable engine
    assert r.history[-1, 0] > r.history[0, 0] and r.scores[0] > 0.0
    assert np.abs(r.images).max() > 0.05
    assert r.start_scores[0] == 0.0 and r.gain[0] == r.scores[0] > 0.0  # the zero image scores 0 here


def test_class_model_gain_is_the_score_won_over_the_zero_image():
    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", bias_initializer="ones")(inp)
    model = keras.Model(inp, keras.layers.Dense(3, bias_initializer="ones")(keras.layers.Flatten()(x)))
    r = class_model(model, [0, 2], steps=10, value_range=(0, 1), param="pixel", jitter=0)
    grey = model(tf.fill((1, 8, 8, 3), 0.5)).numpy()[0]  # the zero image of range (0, 1) is mid-grey
    np.testing.assert_allclose(r.start_scores, grey[[0, 2]], rtol=1e-5)
    np.testing.assert_allclose(r.scores, model(r.images).numpy()[[0, 1], [0, 2]], rtol=1e-5)
    np.testing.assert_allclose(r.gain, r.scores - grey[[0, 2]], atol=1e-5)
    assert np.all(r.gain > 0)


def test_weights_none_is_seeded_and_reproducible():
    a = load("mobilenet", weights="none", size=(32, 32), seed=3).model.get_weights()
    b = load("mobilenet", weights="none", size=(32, 32), seed=3).model.get_weights()
    c = load("mobilenet", weights="none", size=(32, 32), seed=4).model.get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))


@pytest.mark.slow
def test_cli_says_seeded_untrained_and_vanishing_in_one_line_each(tmp_path):
    src = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()[::4, ::4]).save(src)
    proc = convviz("deconv", src, "--model", "mobilenet", "--weights", "none", "--layer", "conv_pw_13",
                   "--maps", "2", "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()  # the banner is on stderr, said once the run has succeeded
    assert any(line.startswith("convviz: --weights none: untrained mobilenet") and "--seed 0" in line
               for line in lines), proc.stderr
    # the projection of an untrained deep net used to underflow to float32's smallest numbers and was
    # flagged as vanishing; deconv now rescales the backward signal exactly (issue 25), so it is shown
    vanish = [line for line in lines if line.startswith("convviz deconv: warning: the conv_pw_13 projection")]
    assert vanish == [], proc.stderr
    written = sorted((tmp_path / "o").glob("*conv_pw_13*.png"))
    assert written and np.asarray(Image.open(written[0])).std() > 1.0


def test_callback_warns_once_in_one_line_for_a_zero_map():
    from keras_convviz.loggers.base import MethodLogger

    logger = MethodLogger("gradcam", {}, context=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logger.check_blank(np.zeros((2, 4, 4)), "conv")
        logger.check_blank(np.zeros((2, 4, 4)), "conv")  # once per layer
        logger.check_blank(np.ones((2, 4, 4)), "other")
    assert len(caught) == 1 and issubclass(caught[0].category, blank.BlankMapWarning)
    text = str(caught[0].message)
    assert text.startswith("ConvVizCallback: gradcam at conv is exactly zero") and "\n" not in text


def _captured(fn):
    out = io.StringIO()
    with redirect_stdout(out):
        result = fn()
    return result, out.getvalue()


@pytest.mark.slow
def test_progress_bars_appear_on_long_work_only(demo_model, monkeypatch):
    x = np.random.default_rng(0).uniform(0, 1, (1, 64, 64, 3)).astype(np.float32)
    _, quiet = _captured(lambda: integrated_gradients(demo_model, x, 0, steps=8))
    assert quiet == ""  # the API is quiet by default
    _, short = _captured(lambda: integrated_gradients(demo_model, x, 0, steps=8, progress=True))
    assert short == ""  # under a second: no bar
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(progress.Progress.__init__, "__defaults__", ("step", True, 0.0, None))
    for name, fn in [("point", lambda p: integrated_gradients(demo_model, x, 0, steps=8, batch_size=4, progress=p)),
                     ("sample", lambda p: smoothgrad(demo_model, x, 0, samples=8, batch_size=4, progress=p)),
                     ("position", lambda p: occlusion(demo_model, x, 0, 16, 16, progress=p)),
                     ("iteration", lambda p: class_model(demo_model, 0, steps=3, progress=p))]:
        _, text = _captured(lambda: fn(True))
        assert f"/{name}" in text and f"{name}s/s" in text, (name, text)  # Progbar time per unit, then the rate
    calls = []
    occlusion(demo_model, x, 0, 16, 16, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (16, 16)


def test_rate_text_uses_three_significant_digits():
    assert progress.rate_text(120, 2.4, "image") == "120 images in 2.4 s, 50 images/s"
    assert progress.rate_text(7, 0.123456, "image") == "7 images in 0.123 s, 56.7 images/s"
    with pytest.raises(ValueError, match="progress must be"):
        progress.tracker("yes", 3)
