"""Faithfulness metrics against hand-computed expectations."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_convviz import metrics
from keras_convviz.randomization import rankdata

L = keras.layers


# ---------------------------------------------------------------- pointing game
def test_pointing_game_hits_and_misses():
    maps = np.zeros((3, 8, 8))
    maps[0, 2, 3] = 1.0  # inside (2..4, 3..5)
    maps[1, 4, 3] = 1.0  # row 4 is past the end-exclusive y1 = 4
    maps[2, 0, 0] = maps[2, 2, 2] = 1.0  # tie: one of two maxima inside
    boxes = np.array([[2, 3, 4, 5], [2, 3, 4, 5], [1, 1, 3, 3]])
    np.testing.assert_array_equal(metrics.pointing_game(maps, boxes), [1.0, 0.0, 0.5])


def test_pointing_game_constant_map_is_not_a_free_hit():
    maps = np.zeros((1, 4, 4))
    assert metrics.pointing_game(maps, np.array([[0, 0, 2, 2]]))[0] == pytest.approx(4 / 16)


def test_pointing_game_tolerance_and_masks():
    maps = np.zeros((1, 10, 10))
    maps[0, 7, 8] = 1.0  # box rows 0..3, cols 0..4: 4 rows and 4 columns away -> sqrt(32) = 5.66
    box = np.array([[0, 0, 4, 5]])
    assert metrics.pointing_game(maps, box, tolerance=5.6)[0] == 0.0
    assert metrics.pointing_game(maps, box, tolerance=5.7)[0] == 1.0
    mask = np.zeros((1, 10, 10), bool)
    mask[0, 7, 5] = True  # 3 pixels left of the maximum
    assert metrics.pointing_game(maps, mask)[0] == 0.0
    assert metrics.pointing_game(maps, mask, tolerance=3)[0] == 1.0
    # 4-D maps: max over channels of |m|
    four = np.zeros((1, 10, 10, 3))
    four[0, 1, 1, 2] = -5.0
    four[0, 8, 8, 0] = 2.0
    assert metrics.pointing_game(four, box)[0] == 1.0


def test_pointing_game_errors():
    with pytest.raises(ValueError, match="boxes"):
        metrics.pointing_game(np.zeros((2, 4, 4)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.pointing_game(np.full((1, 4, 4), np.nan), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="maps must be"):
        metrics.pointing_game(np.zeros((4, 4)), np.zeros((1, 4)))


# ---------------------------------------------------------------- Spearman
def test_spearman_by_hand():
    assert metrics.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert metrics.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # one swap of neighbours: 1 - 6 * 2 / (4 * (16 - 1)) = 0.8
    assert metrics.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    np.testing.assert_array_equal(rankdata([5, 1, 1, 7]), [3, 1.5, 1.5, 4])
    # ties: ranks (1.5, 1.5, 3, 4) vs (1, 2, 3, 4): Pearson of the ranks
    ra, rb = np.array([1.5, 1.5, 3, 4]), np.arange(1, 5.0)
    expected = np.corrcoef(ra, rb)[0, 1]
    assert metrics.spearman([0, 0, 1, 2], [1, 2, 3, 4]) == pytest.approx(expected)
    assert np.isnan(metrics.spearman([1, 1, 1], [1, 2, 3]))


# ---------------------------------------------------------------- deletion / insertion
def _linear(units=1, activation="sigmoid", w=(4.0, 3.0, 2.0, 1.0)):
    inputs = keras.Input((2, 2, 1))
    dense = L.Dense(units, activation=activation)
    model = keras.Model(inputs, dense(L.Flatten()(inputs)))
    kernel = np.asarray(w, np.float32).reshape(4, 1)
    if units == 2:
        kernel = np.concatenate([np.zeros_like(kernel), kernel], axis=1)  # logit_1 - logit_0 = w . x
    dense.set_weights([kernel, np.zeros(units, np.float32)])
    return model


def test_deletion_and_insertion_logit_curves_by_hand():
    model = _linear()
    x = np.ones((1, 2, 2, 1), np.float32)
    maps = np.array([[[4.0, 3.0], [2.0, 1.0]]])  # the true importance order
    f, curve = metrics.deletion_curve(model, x, maps, 1, steps=4, score="logit")
    np.testing.assert_allclose(f, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(curve[0], [10, 6, 3, 1, 0], atol=1e-5)
    # trapezoid: 0.25 * (8 + 4.5 + 2 + 0.5) = 3.75
    assert metrics.deletion_auc(model, x, maps, 1, steps=4, score="logit")[0] == pytest.approx(3.75)
    f, curve = metrics.insertion_curve(model, x, maps, 1, steps=4, baseline=0.0, score="logit")
    np.testing.assert_allclose(curve[0], [0, 4, 7, 9, 10], atol=1e-5)
    assert metrics.insertion_auc(model, x, maps, 1, steps=4, baseline=0.0, score="logit")[0] == pytest.approx(6.25)
    # the reversed (worst) order deletes the least important pixels first
    worst = metrics.deletion_auc(model, x, -maps, 1, steps=4, score="logit")[0]
    assert worst == pytest.approx(0.25 * ((10 + 9) / 2 + (9 + 7) / 2 + (7 + 4) / 2 + (4 + 0) / 2))
    # two steps: 2 pixels per step -> [10, 3, 0]
    np.testing.assert_allclose(metrics.deletion_curve(model, x, maps, 1, steps=2, score="logit")[1][0],
                               [10, 3, 0], atol=1e-5)


def test_probabilities_sigmoid_and_softmax():
    sig = lambda z: 1 / (1 + np.exp(-np.asarray(z, np.float64)))
    x = np.full((1, 2, 2, 1), 0.5, np.float32)
    maps = np.array([[[4.0, 3.0], [2.0, 1.0]]])
    logits = np.array([5, 3, 1.5, 0.5, 0])  # 0.5 * [10, 6, 3, 1, 0]
    _, p1 = metrics.deletion_curve(_linear(), x, maps, 1, steps=4)
    np.testing.assert_allclose(p1[0], sig(logits), rtol=1e-5)
    _, p0 = metrics.deletion_curve(_linear(), x, maps, 0, steps=4)
    np.testing.assert_allclose(p0[0], 1 - sig(logits), rtol=1e-5)
    # a 2-class softmax with logits (0, w . x): p(1) = sigmoid(w . x) again
    _, p = metrics.deletion_curve(_linear(2, "softmax"), x, maps, 1, steps=4)
    np.testing.assert_allclose(p[0], sig(logits), rtol=1e-5)
    # target None: the class predicted on the clean input (1, since the logit is 5)
    _, pn = metrics.deletion_curve(_linear(2, "softmax"), x, maps, None, steps=4)
    np.testing.assert_allclose(pn, p)


def test_batching_does_not_change_curves():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 2))
    h = L.Conv2D(3, 3, activation="relu")(inputs)
    model = keras.Model(inputs, L.Dense(3, activation="softmax")(L.Flatten()(h)))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (5, 6, 6, 2)).astype(np.float32)
    maps = rng.uniform(0, 1, (5, 6, 6))
    ref = metrics.deletion_curve(model, x, maps, [0, 1, 2, 0, 1], steps=9, batch_size=1000)[1]
    for bs in (1, 4, 10, 23):
        got = metrics.deletion_curve(model, x, maps, [0, 1, 2, 0, 1], steps=9, batch_size=bs)[1]
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert metrics.deletion_curve(model, x, maps, 0)[1].shape == (5, 7)  # steps default: H
    # endpoints: the clean image first, the baseline last
    probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(ref[:, 0], probs[np.arange(5), [0, 1, 2, 0, 1]], rtol=1e-5)
    blank = model.predict(np.zeros_like(x), verbose=0)
    np.testing.assert_allclose(ref[:, -1], blank[np.arange(5), [0, 1, 2, 0, 1]], rtol=1e-5)
    ins = metrics.insertion_curve(model, x, maps, [0, 1, 2, 0, 1], steps=3)[1]
    np.testing.assert_allclose(ins[:, -1], ref[:, 0], rtol=1e-5)
    blurred = model.predict(metrics.blur(x), verbose=0)
    np.testing.assert_allclose(ins[:, 0], blurred[np.arange(5), [0, 1, 2, 0, 1]], rtol=1e-5)


def test_blur_keeps_constants_and_mass():
    x = np.full((1, 9, 9, 2), 0.3, np.float32)
    np.testing.assert_allclose(metrics.blur(x, sigma=2), x, atol=1e-6)
    spike = np.zeros((1, 21, 21, 1), np.float32)
    spike[0, 10, 10] = 1
    out = metrics.blur(spike, sigma=2)
    assert out.sum() == pytest.approx(1.0, rel=1e-5) and out[0, 10, 10, 0] == out.max() < 0.1


def test_perturbation_errors():
    model = _linear()
    x = np.ones((1, 2, 2, 1), np.float32)
    with pytest.raises(ValueError, match="input space"):
        metrics.deletion_auc(model, x, np.zeros((1, 3, 3)), 1)
    with pytest.raises(ValueError, match="steps"):
        metrics.deletion_auc(model, x, np.zeros((1, 2, 2)), 1, steps=0)
    with pytest.raises(ValueError, match="outside"):
        metrics.insertion_auc(model, x, np.zeros((1, 2, 2)), 2)
    with pytest.raises(ValueError, match="baseline"):
        metrics.insertion_auc(model, x, np.zeros((1, 2, 2)), 1, baseline="grey")
    with pytest.raises(ValueError, match="NaN"):
        metrics.insertion_auc(model, x * np.nan, np.zeros((1, 2, 2)), 1)


# ---------------------------------------------------------------- randomization
def _two_layer():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4, 4, 1))
    h = L.Conv2D(2, 3, padding="same", activation="relu", name="conv")(inputs)
    return keras.Model(inputs, L.Dense(3, activation="softmax", name="head")(L.Flatten()(h)))


def test_randomization_cascade_by_hand():
    model = _two_layer()
    head, conv = model.get_layer("head"), model.get_layer("conv")
    before = [w.copy() for w in model.get_weights()]
    seen = []

    def method(model, inputs, target):
        # a "map" that is the first 16 head weights of the target class, and record the cascade state
        seen.append((head.kernel.numpy().copy(), conv.kernel.numpy().copy()))
        return np.repeat(head.kernel.numpy()[:16, target[0]].reshape(1, 4, 4), len(inputs), 0)

    x = np.random.default_rng(0).uniform(0, 1, (2, 4, 4, 1)).astype(np.float32)
    result = metrics.randomization(model, method, x, 1)
    assert result.layers == ["head", "conv"] == metrics.randomization_layers(model)
    (h0, c0), (h1, c1), (h2, c2) = seen
    assert not np.allclose(h1, h0) and np.allclose(c1, c0)  # stage 0: only the top layer
    np.testing.assert_array_equal(h2, h1)  # stage 1: the top layer stays randomized
    assert not np.allclose(c2, c0)
    expected = metrics.spearman(h0[:16, 1], h1[:16, 1])
    np.testing.assert_allclose(result.correlations, [[expected] * 2, [expected] * 2])
    assert result.mean()["head"] == pytest.approx(expected)
    for a, b in zip(before, model.get_weights()):  # weights restored
        np.testing.assert_array_equal(a, b)


def test_randomization_restores_weights_on_error_and_keeps_the_class():
    model = _two_layer()
    before = [w.copy() for w in model.get_weights()]
    targets = []

    def method(model, inputs, target):
        targets.append(list(target))
        if len(targets) == 2:
            raise RuntimeError("boom")
        return np.zeros((len(inputs), 4, 4))

    x = np.random.default_rng(0).uniform(0, 1, (2, 4, 4, 1)).astype(np.float32)
    with pytest.raises(RuntimeError):
        metrics.randomization(model, method, x, None)
    predicted = list(np.argmax(model.predict(x, verbose=0), -1))
    assert targets == [predicted, predicted]
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_randomization_with_a_real_method():
    model = _two_layer()
    x = np.random.default_rng(0).uniform(0, 1, (3, 4, 4, 1)).astype(np.float32)
    result = metrics.randomization(model, "saliency", x, 0, seed=3)
    assert result.correlations.shape == (2, 3) and result.maps.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(result.original, metrics.to_2d(keras_convviz_saliency(model, x, 0)))
    again = metrics.randomization(model, "saliency", x, 0, seed=3)
    np.testing.assert_array_equal(result.correlations, again.correlations)
    with pytest.raises(ValueError, match="unknown method"):
        metrics.randomization(model, "lime", x, 0)
    with pytest.raises(ValueError, match="unknown layer"):
        metrics.randomization(model, "saliency", x, 0, layers=["nope"])


def keras_convviz_saliency(model, x, target):
    from keras_convviz import saliency

    return saliency(model, x, target)


def test_randomization_stages_of_several_layers():
    model = _two_layer()
    before = [w.copy() for w in model.get_weights()]
    x = np.random.default_rng(0).uniform(0, 1, (2, 4, 4, 1)).astype(np.float32)
    seen = []

    def method(model, inputs, target):
        seen.append([w.copy() for w in model.get_weights()])
        return np.random.default_rng(len(seen)).uniform(size=(len(inputs), 4, 4))

    full = metrics.randomization(model, method, x, 0, layers=[["head", "conv"]])
    assert full.layers == ["head,conv"] and full.correlations.shape == (1, 2)
    assert len(seen) == 2 and all(not np.allclose(a, b) for a, b in zip(seen[0][::2], seen[1][::2]))  # kernels
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="no layer"):
        metrics.randomization(model, "saliency", x, 0, layers=[[]])
