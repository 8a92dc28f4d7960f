"""Feature visualization (keras_convviz.methods.featurevis, objectives, parameterize).

Oracles: one SGD step of every objective equals a hand-written GradientTape
step on hand-written layer calls; one step through the Fourier
parameterization equals a hand-written render; the Fourier / colour /
sigmoid inverse round-trips an image; an estimated colour matrix is
orthogonal up to scale and squares to the covariance; the spread of squares,
pairs of squares and a disc equals its closed form; transformations stay in
range; no retracing; bad input names the fix; the CLI end to end.
"""

import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from keras_convviz.graph import walk
from keras_convviz.methods import objectives as obj
from keras_convviz.methods.featurevis import FeatureVis, featurevis
from keras_convviz.methods.featurevis import DEMO_RECIPE
from keras_convviz.methods.parameterize import (ALPHA_WEIGHT, GAIN, IMAGENET_COLORS, SPREAD_LIMIT, SPREAD_WEIGHT,
                                                Parameterization, colour_matrix, fourier_scale, normalized_colors,
                                                preset_colors, spread, transform)

from fixtures import convviz


def _tiny():
    keras.utils.set_random_seed(5)
    x = inputs = keras.Input((8, 10, 3))
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(3, activation="softmax", name="head")(x))


@pytest.fixture(scope="module")
def tiny():
    return _tiny()


def _conv(model, x):
    """The conv layer's pre-activation output, by hand."""
    conv = model.get_layer("conv")
    return tf.nn.conv2d(x, conv.kernel, 1, "SAME") + conv.bias


def _logits(model, x):
    h = tf.nn.relu(_conv(model, x))
    h = tf.reduce_mean(tf.nn.max_pool2d(h, 2, 2, "VALID"), axis=[1, 2])
    head = model.get_layer("head")
    return tf.matmul(h, head.kernel) + head.bias


def _hand_values(model, x, n):
    """Every objective of the oracle test, written out by hand: name -> (N,) values."""
    z, a = _logits(model, x), _conv(model, x)
    rows = np.arange(n)
    v = np.asarray([[1.0, -2.0, 0.5, 3.0]] * n, np.float32)
    flat = tf.reshape(a, [n, -1, 4])
    gram = tf.reshape(tf.matmul(flat, flat, transpose_a=True) / 80.0, [n, -1])
    gram = gram / tf.norm(gram, axis=1, keepdims=True)
    sim = tf.matmul(gram, gram, transpose_b=True)
    return {
        "logit": tf.gather(z, [2, 0], axis=1, batch_dims=1),
        "log_probability": tf.gather(tf.nn.log_softmax(z), [1, 1], axis=1, batch_dims=1),
        "log_probability_t4": tf.gather(tf.nn.log_softmax(z / 4.0), [0, 2], axis=1, batch_dims=1),
        "channel": tf.gather(tf.reduce_mean(a, axis=[1, 2]), [3, 1], axis=1, batch_dims=1),
        "neuron": tf.gather_nd(a, np.stack([rows, [1, 7], [2, 0], [0, 2]], 1)),
        "direction": tf.reduce_mean(tf.einsum("nhwc,c->nhw", a, v[0] / np.linalg.norm(v[0])), axis=[1, 2]),
        "diversity": -(tf.reduce_sum(sim, 1) - tf.linalg.diag_part(sim)) / (n - 1),
    }


OBJECTIVES = {
    "logit": lambda: obj.class_logit([2, 0]),
    "log_probability": lambda: obj.class_log_probability(1),
    "log_probability_t4": lambda: obj.class_log_probability([0, 2], temperature=4),
    "channel": lambda: obj.channel("conv", [3, 1]),
    "neuron": lambda: obj.neuron("conv", [0, 2], position=[(1, 2), (7, 0)]),
    "direction": lambda: obj.direction("conv", [1.0, -2.0, 0.5, 3.0]),
    "diversity": lambda: obj.diversity("conv"),
}


# ----------------------------------------------------------------- gradient oracles
@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(OBJECTIVES))
def test_one_sgd_step_of_each_objective_is_the_hand_written_gradient(tiny, kind):
    x0 = np.random.default_rng(1).uniform(-1, 1, (2, 8, 10, 3)).astype(np.float32)
    lr, scale = 0.1, 2.0
    objective = OBJECTIVES[kind]() * 0.7 + obj.channel("conv", 2)  # weights compose
    r = featurevis(tiny, objective, param="pixel", steps=1, lr=lr, optimizer="sgd", jitter=0, init=x0,
                   scale=scale, images=2)
    x = tf.constant(x0)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = 0.7 * _hand_values(tiny, x, 2)[kind] + tf.reduce_mean(_conv(tiny, x)[..., 2], axis=[1, 2])
        s = tf.reduce_sum(total)
    grad = tape.gradient(s, x).numpy()
    assert np.abs(grad).max() > 1e-5
    np.testing.assert_allclose(r.images, x0 + lr * scale * grad, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r.history[0], total.numpy(), rtol=1e-4, atol=1e-5)
    # the reported terms are the unweighted values on the final images
    final = _hand_values(tiny, tf.constant(r.images), 2)[kind].numpy()
    np.testing.assert_allclose(r.terms[:, 0], final, rtol=1e-4, atol=1e-5)
    assert isinstance(r, FeatureVis) and r.values.shape == (2,)


def _hand_render(p, colors, low, high):
    """The Fourier parameterization written out: 1/f-scaled spectrum -> inverse FFT -> colours -> sigmoid."""
    h, w = 8, 10
    f = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2)
    s = (np.sqrt(h * w) / np.maximum(f, 1.0 / max(h, w))).astype(np.float32)
    y = tf.signal.irfft2d(tf.complex(p[:, 0] * s, p[:, 1] * s), fft_length=[h, w]) * (GAIN / 4.0)
    z = tf.einsum("nchw,dc->nhwd", y, colors)
    return low + (high - low) * tf.sigmoid(z)


def test_one_step_through_the_fourier_parameterization(tiny):
    colors = normalized_colors(None, 3)
    image = Parameterization("fourier", (8, 10, 3), True)
    p0 = image.initial(np.random.default_rng(2), 2)
    x0 = _hand_render(tf.constant(p0), colors, 0.0, 1.0).numpy()
    r1 = featurevis(tiny, obj.channel("conv", [1, 3]), steps=1, lr=1e-3, optimizer="sgd", jitter=0, zoom=0,
                    rotate=0, init=x0, value_range=(0, 1))
    p = tf.constant(image.encode(x0, colors, 0.0, 1.0, 0.5, 0.5))
    with tf.GradientTape() as tape:
        tape.watch(p)
        total = tf.reduce_sum(tf.gather(tf.reduce_mean(_conv(tiny, _hand_render(p, colors, 0.0, 1.0)), [1, 2]),
                                        [1, 3], axis=1, batch_dims=1))
    g = tape.gradient(total, p).numpy()
    g = g / np.sqrt((g ** 2).reshape(2, -1).mean(1)).reshape(2, 1, 1, 1, 1)  # unit RMS per image
    expected = _hand_render(tf.constant(p.numpy() + 1e-3 * g), colors, 0.0, 1.0).numpy()
    np.testing.assert_allclose(r1.images, expected, atol=2e-5)


# ----------------------------------------------------------------- parameterizations
@pytest.mark.parametrize("kind", ["fourier", "decorrelated"])
@pytest.mark.parametrize("bounded", [True, False])
def test_inverse_round_trips_an_image(kind, bounded):
    rng = np.random.default_rng(3)
    image = Parameterization(kind, (12, 9, 3), bounded)  # odd width: the real FFT's edge case
    colors = normalized_colors(colour_matrix(rng.uniform(0, 1, (4, 6, 6, 3))), 3)
    low, high = np.array([-1.0, 0.0, 2.0], np.float32), np.array([1.0, 3.0, 5.0], np.float32)
    x = rng.uniform(low + 0.05 * (high - low), high - 0.05 * (high - low), (2, 12, 9, 3)).astype(np.float32)
    centre, scale = (low + high) / 2, 1.5
    p = image.encode(x, colors, low, high, centre, scale)
    assert p.shape == (2,) + image.variable_shape
    back = image.render(tf.constant(p), tf.constant(colors), low, high, centre, scale).numpy()
    np.testing.assert_allclose(back, x, atol=2e-4)


def test_colour_matrix_is_orthogonal_up_to_scale_and_squares_to_the_covariance():
    rng = np.random.default_rng(4)
    mix = np.array([[1.0, 0.5, 0.2], [0.3, 1.0, 0.1], [0.0, 0.4, 0.8]])
    images = (rng.standard_normal((6, 10, 10, 3)) @ mix.T).astype(np.float32)
    m = colour_matrix(images).astype(np.float64)
    gram = m.T @ m
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-6 * np.abs(gram).max())
    assert np.all(np.diff(np.diag(gram)) <= 0)  # columns by decreasing variance
    np.testing.assert_allclose(m @ m.T, np.cov(images.reshape(-1, 3), rowvar=False), rtol=1e-4, atol=1e-6)
    lucid = IMAGENET_COLORS.T @ IMAGENET_COLORS  # the published matrix: orthogonal to 2 decimals
    assert np.abs(lucid - np.diag(np.diag(lucid))).max() < 0.01 * np.diag(lucid).max()
    # Caffe-style presets take BGR: the published rows are put in that order
    bgr = preset_colors(lambda x: x[..., ::-1] - 100.0)
    np.testing.assert_array_equal(bgr, IMAGENET_COLORS[::-1])
    np.testing.assert_array_equal(preset_colors(lambda x: x / 255.0), IMAGENET_COLORS)


def test_transformations_keep_the_image_in_range():
    rng = np.random.default_rng(5)
    low, high = np.array([-2.0, 0.0, 1.0], np.float32), np.array([-1.0, 5.0, 1.5], np.float32)
    x = tf.constant(rng.uniform(low, high, (6, 16, 20, 3)).astype(np.float32))
    centre = tf.constant((low + high) / 2)
    for t in range(1, 6):
        out = transform(x, tf.constant([3, -4]), tf.constant(float(t)), centre, tf.constant([7.0, 0.5, 45.0])).numpy()
        assert np.all(out >= low - 1e-5) and np.all(out <= high + 1e-5)
        assert not np.allclose(out, x.numpy())
    same = transform(x, tf.constant([0, 0]), tf.constant(1.0), centre, tf.constant([7.0, 0.0, 0.0])).numpy()
    np.testing.assert_allclose(same, x.numpy(), atol=1e-5)  # no rotation, scale or shift: the identity
    moved = transform(x, tf.constant([2, 3]), tf.constant(1.0), centre, tf.constant([7.0, 0.0, 0.0])).numpy()
    np.testing.assert_allclose(moved[:, 2:, 3:], x.numpy()[:, :-2, :-3], atol=1e-5)  # a shift by (2, 3)
    np.testing.assert_allclose(moved[:, :2], np.broadcast_to(centre, moved[:, :2].shape), atol=1e-6)


def test_transparent_image_is_the_object_over_the_zero_image_and_costs_its_opacity_share():
    """The alpha parameterization by hand: the image channels as in the Fourier render, an opacity
    channel through a sigmoid, the final picture over the zero image, and the view's cost
    ALPHA_WEIGHT * (mean opacity - share)^2 with random backgrounds inside the range."""
    h, w, share = 8, 10, 0.15
    image = Parameterization("fourier", (h, w, 3), True, decay=2.0, alpha=share)
    assert image.variable_shape == (2, 4, h, w // 2 + 1)
    p = tf.constant(image.initial(np.random.default_rng(6), 3))
    colors = normalized_colors(None, 3)
    low, high, centre = np.zeros(3, np.float32), np.ones(3, np.float32), np.full(3, 0.5, np.float32)
    s = fourier_scale(h, w, 2.0)
    f = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2)
    np.testing.assert_allclose(s, np.sqrt(h * w) / np.maximum(f, 1.0 / w) ** 2, rtol=1e-6)
    y = tf.signal.irfft2d(tf.complex(p[:, 0] * s, p[:, 1] * s), fft_length=[h, w]).numpy() * (GAIN / 4.0)
    rgb = 1 / (1 + np.exp(-np.einsum("nchw,dc->nhwd", y[:, :3], colors)))
    opacity = 1 / (1 + np.exp(-y[:, 3]))[..., None]
    final = image.render(p, tf.constant(colors), low, high, centre, 1.0).numpy()
    np.testing.assert_allclose(final, opacity * rgb + (1 - opacity) * 0.5, atol=1e-5)
    extra = (tf.constant(colors), tf.constant([3.0, 0.0, 0.0]))
    shown, seen, cost = image.view(p, tf.constant([0, 0]), tf.constant(1.0), low, high, centre, 1.0, extra)
    np.testing.assert_allclose(cost.numpy(), ALPHA_WEIGHT * (opacity.mean(axis=(1, 2, 3)) - share) ** 2, rtol=1e-5)
    clear = np.broadcast_to(opacity < 0.9, rgb.shape)
    background = ((shown.numpy() - opacity * rgb) / (1 - opacity))[clear]  # what the object was laid over
    assert clear.mean() > 0.1 and background.min() >= 0 and background.max() <= 1 and background.std() > 0.05
    np.testing.assert_allclose(seen.numpy(), shown.numpy(), atol=1e-5)  # no rotation, scale or shift
    later = image.view(p, tf.constant([0, 0]), tf.constant(2.0), low, high, centre, 1.0, extra)[0].numpy()
    assert not np.allclose(later, shown.numpy())  # a fresh background every step
    solid = dataclasses.replace(image, solid=True)
    assert solid.key != image.key  # its own compiled step
    colour = 1 / (1 + np.exp(-np.einsum("nc,dc->nd", y[:, :3].mean(axis=(2, 3)), colors)))[:, None, None, :]
    final = solid.render(p, tf.constant(colors), low, high, centre, 1.0).numpy()
    np.testing.assert_allclose(final, opacity * colour + (1 - opacity) * 0.5, atol=1e-5)  # one colour, same shape
    compact = dataclasses.replace(image, compact=True)
    assert compact.key != image.key
    compact_cost = compact.view(p, tf.constant([0, 0]), tf.constant(1.0), low, high, centre, 1.0, extra)[2].numpy()
    spreads = np.array([_spread_by_hand(o[..., 0]) for o in opacity])
    np.testing.assert_allclose(compact_cost, cost.numpy() + SPREAD_WEIGHT * np.maximum(spreads - SPREAD_LIMIT, 0),
                               rtol=1e-4)


def _spread_by_hand(a):
    """2 pi (var_y + var_x) / area of the weights ``a`` (H, W), with numpy's weighted averages."""
    rows, cols = np.mgrid[:a.shape[0], :a.shape[1]]
    var = sum(np.average((c - np.average(c, weights=a)) ** 2, weights=a) for c in (rows, cols))
    return 2 * np.pi * var / a.sum()


def _mask(*boxes, size=64):
    m = np.zeros((size, size), np.float32)
    for y0, x0, s in boxes:
        m[y0:y0 + s, x0:x0 + s] = 1.0
    return m


def test_spread_is_one_for_a_disc_and_counts_scattered_pieces():
    """Exact values: an s x s square of pixel centres has variance (s^2 - 1) / 12 along each axis, so its
    spread is pi (s^2 - 1) / (3 s^2); two of them d apart add (d / 2)^2 to the variance."""
    from keras_convviz import demo

    def measure(*masks):
        return spread(tf.constant(np.stack(masks)[..., None])).numpy()

    s, d = 12, 40
    square, moved = _mask((5, 5, s)), _mask((40, 30, s))
    pair = _mask((10, 5, s), (10, 5 + d, s))
    one, other, two = measure(square, moved, pair)
    np.testing.assert_allclose(one, np.pi * (s * s - 1) / (3 * s * s), rtol=1e-4)  # spread() adds 1e-3 to the area
    np.testing.assert_allclose(other, one, rtol=1e-4)  # position-invariant
    variance = 2 * (s * s - 1) / 12 + (d / 2) ** 2
    np.testing.assert_allclose(two, 2 * np.pi * variance / (2 * s * s), rtol=1e-4)
    rows, cols = np.mgrid[:64, :64]
    disc = ((rows - 31.5) ** 2 + (cols - 31.5) ** 2 <= 20 ** 2).astype(np.float32)
    np.testing.assert_allclose(measure(disc), 1.0, atol=0.01)  # the least any shape has
    soft = np.random.default_rng(3).uniform(0, 1, (64, 64)).astype(np.float32) * disc
    np.testing.assert_allclose(measure(soft), _spread_by_hand(soft), rtol=1e-4)
    shapes = [demo.shape_mask(label, (8, 8, 8 + size, 8 + size))[..., 0] for label in range(4) for size in (12, 40)]
    assert np.all(measure(*shapes) < SPREAD_LIMIT)  # every real single shape is free
    assert two > 3 * SPREAD_LIMIT


def covered_masks(images):
    """Where images ``(N, H, W, C)`` in [0, 1] differ from the grey zero image: ``(N, H, W, 1)`` 0/1."""
    return (np.abs(images - 0.5).max(-1, keepdims=True) > 0.05).astype(np.float32)


@pytest.mark.slow
def test_class_recipe_gives_compact_objects_the_model_reads_as_their_class(demo_model):
    """class_model's default on the demo model (its own DEMO_RECIPE): each image is its class for the model, and
    about DEMO_RECIPE's share of it differs from the grey zero image (a compact object, not a texture)."""
    from keras_convviz import class_model

    r = class_model(demo_model, [0, 1, 2, 3], value_range=(0, 1), steps=128)
    assert np.all(r.probabilities[np.arange(4), np.arange(4)] > 0.9), r.probabilities
    assert r.images.min() >= 0 and r.images.max() <= 1
    covered = covered_masks(r.images).mean(axis=(1, 2, 3))
    assert np.all((covered > 0.3 * DEMO_RECIPE["alpha"]) & (covered < 3 * DEMO_RECIPE["alpha"])), covered
    corners = np.concatenate([r.images[:, :4, :4], r.images[:, -4:, -4:]], axis=1)
    assert np.median(np.abs(corners - 0.5)) < 0.02  # the frame is mostly the zero image
    spreads = spread(tf.constant(covered_masks(r.images))).numpy()
    assert np.median(spreads) < 2.2, spreads  # one piece each (without compact: 3-6, scattered copies)
    for image in r.images:  # solid: every pixel lies between grey and the object's one colour
        away = (image - 0.5).reshape(-1, 3)
        away = away[np.linalg.norm(away, axis=1) > 0.05]
        unit = away / np.linalg.norm(away, axis=1, keepdims=True)
        assert np.min(unit @ (unit.mean(0) / np.linalg.norm(unit.mean(0)))) > 0.99


# ----------------------------------------------------------------- behaviour
@pytest.mark.parametrize("param", ["fourier", "decorrelated", "pixel"])
def test_channels_rise_and_images_stay_in_range(tiny, param):
    r = featurevis(tiny, obj.channel("conv", [0, 1, 2, 3]), param=param, steps=25, value_range=(0, 1), jitter=1)
    assert r.images.shape == (4, 8, 10, 3) and r.history.shape == (25, 4)
    assert r.images.min() >= 0.0 and r.images.max() <= 1.0
    start = featurevis(tiny, obj.channel("conv", [0, 1, 2, 3]), param=param, steps=1, lr=1e-9, value_range=(0, 1))
    assert np.all(r.values > start.values), (r.values, start.values)
    assert r.labels == tuple(f"channel conv:{k}" for k in range(4))
    assert r.rgb().dtype == np.uint8


def test_repeated_calls_do_not_retrace(tiny):
    for param in ("fourier", "decorrelated", "pixel"):
        featurevis(tiny, obj.channel("conv", [0, 1]), param=param, steps=2, value_range=(0, 1))
        featurevis(tiny, obj.channel("conv", [3, 2, 1]) * 2.0, param=param, steps=3, value_range=(0, 1), seed=4)
        featurevis(tiny, obj.channel("conv", 1), param=param, steps=2, value_range=(0, 1), lr=0.1, zoom=0.3)
    featurevis(tiny, obj.class_logit([0, 1]) + obj.diversity("conv"), steps=2, value_range=(0, 1))
    featurevis(tiny, obj.class_logit(2) + 3 * obj.diversity("conv"), steps=2, value_range=(0, 1), images=3)
    for temperature, targets in ((4.0, [0, 1]), (2.0, [2])):  # the temperature is an argument, not a key
        featurevis(tiny, obj.class_log_probability(targets, temperature=temperature), steps=2, value_range=(0, 1),
                   alpha=0.15, decay=2.0, seed=len(targets))
    counts = {k: fn.experimental_get_tracing_count() for k, fn in walk(tiny).cache.items()
              if isinstance(k, tuple) and str(k[0]).startswith("optimize.featurevis")}
    assert len(counts) >= 8 and all(c == 1 for c in counts.values()), counts


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, message", [
    (lambda m: featurevis(m, obj.channel("cnov", 0), steps=1), "unknown layer 'cnov'.*conv"),
    (lambda m: featurevis(m, obj.channel("gap", 0), steps=1), "not a spatial"),
    (lambda m: featurevis(m, obj.channel("conv", 4), steps=1), "channel 4 is outside 0..3"),
    (lambda m: featurevis(m, obj.channel("conv", "a"), steps=1), "channel of layer 'conv' must be an index"),
    (lambda m: featurevis(m, obj.neuron("conv", 0, (8, 0)), steps=1), r"position \(8, 0\) is outside the 8x10"),
    (lambda m: featurevis(m, obj.channel("conv", 0), steps=0), "steps must be a positive integer"),
    (lambda m: featurevis(m, obj.channel("conv", 0), steps=-2), "steps must be a positive integer"),
    (lambda m: featurevis(m, obj.channel("conv", 0), param="wavelet"), "unknown parameterization.*fourier"),
    (lambda m: featurevis(m, "conv:0"), "objective must be built with"),
    (lambda m: featurevis(m, obj.diversity("conv"), steps=1), "pass images=N"),
    (lambda m: featurevis(m, obj.direction("conv", [1.0, 2.0]), steps=1), "direction vector"),
    (lambda m: featurevis(m, obj.class_logit(5), steps=1), "outside the model's classes 0..2"),
    (lambda m: featurevis(m, obj.channel("conv", [0, 1]) + obj.class_logit([0, 1, 2]), steps=1), "has 2 entries for 3 images"),
    (lambda m: featurevis(m, obj.channel("conv", 0), colors=np.zeros((3, 3))), "invertible"),
    (lambda m: featurevis(m, obj.channel("conv", 0), zoom=1.5), "zoom must be below 1"),
    (lambda m: obj.channel("conv", 0) * float("nan"), "finite number"),
    (lambda m: featurevis(m, obj.channel("conv", 0), alpha=1.5), r"opaque share of the image, in \(0, 1\)"),
    (lambda m: featurevis(m, obj.channel("conv", 0), alpha=0.2, param="pixel"), "needs param='fourier'"),
    (lambda m: featurevis(m, obj.channel("conv", 0), alpha=0.2, init=np.zeros((1, 8, 10, 3))),
     "cannot be combined"),
    (lambda m: featurevis(m, obj.channel("conv", 0), decay=-1), "decay must be a finite number >= 0"),
    (lambda m: featurevis(m, obj.channel("conv", 0), solid=True), r"solid=True .* pass alpha="),
    (lambda m: featurevis(m, obj.channel("conv", 0), compact=True), r"compact=True .* one piece; pass alpha="),
    (lambda m: obj.class_log_probability(0, temperature=0), "temperature must be a finite number > 0"),
])
def test_bad_input_names_the_fix(tiny, call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny)


# ----------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_featurevis_writes_a_labelled_grid_with_a_progress_bar(tmp_path):
    out = tmp_path / "out"
    r = convviz("featurevis", "--model", "demo", "--layer", "block3_conv2", "--channels", "0,5", "--steps", "4",
                "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == ["featurevis_block3_conv2_0.png", "featurevis_block3_conv2_5.png",
                                       "featurevis_block3_conv2_grid.png"]
    assert "4/4" in r.stdout and "channel block3_conv2:5: objective" in r.stdout
    r = convviz("featurevis", "--model", "demo", "--class", "square", "--param", "pixel", "--steps", "3",
                "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "featurevis_class_1_square.png" in os.listdir(out)
    r = convviz("featurevis", "--model", "demo", "--class", "cross", "--steps", "3", "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr  # the readable class recipe (transparent, temperature 4)
    assert "featurevis_class_3_cross.png" in os.listdir(out) and "3/3" in r.stdout


@pytest.mark.parametrize("argv, message", [
    (["--layer", "block3_conv2", "--channels", "64"], "channel 64 is outside 0..63"),
    (["--layer", "block3_cnv2", "--channels", "1"], "unknown layer 'block3_cnv2'"),
    (["--layer", "block3_conv2"], "needs --channels"),
    (["--class", "hexagon"], "hexagon"),
    (["--layer", "block3_conv2", "--channels", "1", "--param", "wavelet"], "invalid choice"),
    (["--class", "square", "--steps", "0"], "positive integer"),
    ([], "give either --layer"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    from keras_convviz.cli import main

    out = tmp_path / "out"
    try:
        code = main(["featurevis", "--model", "demo"] + argv + ["--out", str(out)])
    except SystemExit as exit:  # argparse's own usage errors
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0
    assert not out.exists()


# ----------------------------------------------------------------- callback
@pytest.mark.slow
def test_callback_logs_followed_units_and_class_models(tmp_path):
    import keras

    from keras_convviz import ConvVizCallback, demo
    from test_callback import read_events

    x, y, _ = demo.shapes(32, seed=3)
    keras.utils.set_random_seed(0)
    model = demo.build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    cb = ConvVizCallback(str(tmp_path), x[:2], maps=[3, 7], layers=["block2_conv2"],
                         methods={"featurevis": {"steps": 3, "classes": [1]}, "deconv": {}})
    model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    assert not cb.failed, cb.failed
    events = read_events(tmp_path)
    vis = sorted(t for t in events if t.startswith("featurevis/"))
    assert vis == ["featurevis/block2_conv2/map0003", "featurevis/block2_conv2/map0007",
                   "featurevis/predictions/class0001"]
    content = events["featurevis/block2_conv2/map0007"][0][1]
    assert content["map"] == 7 and content["layer"] == "block2_conv2" and content["kind"] == "image"
    assert "deconv/block2_conv2/map0007" in events  # the same unit: the dashboard pairs them
    bad = ConvVizCallback(str(tmp_path / "bad"), x[:2], methods={"featurevis": {"stpes": 3}})
    bad.set_model(model)
    with pytest.raises(ValueError, match="unknown option.*stpes"):
        bad.configure()
