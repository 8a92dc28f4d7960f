"""Zeiler & Fergus 2014 fig. 6 (filters): the grid is the normalized weights; planted dead / checkerboard filters."""

import numpy as np
import pytest

from keras_convviz import filters
from keras_convviz.methods.filters import NOISE_SHARE, high_frequency_share


@pytest.fixture()
def planted():
    import keras

    inp = keras.Input((12, 12, 3))
    h = keras.layers.Conv2D(6, 3, name="first")(inp)
    h = keras.layers.Conv2D(2, 3, name="second")(h)
    model = keras.Model(inp, h)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[-1:2, -1:2]
    smooth = np.exp(-(yy ** 2 + xx ** 2) / 2.0)[..., None] * np.array([1.0, 0.5, -0.3])
    k = np.stack([smooth * rng.uniform(0.5, 2) for _ in range(6)], -1)
    k[..., 2] = 0.0  # dead
    k[..., 4] = ((-1.0) ** (yy + xx))[..., None] * np.array([0.7, 0.7, 0.7])  # checkerboard
    model.get_layer("first").set_weights([k.astype(np.float32), np.zeros(6, np.float32)])
    return model, k


def test_grid_equals_the_normalized_weights(planted):
    model, k = planted
    r = filters(model, cell=9)
    assert r.layer == "first" and r.images.shape == (6, 3, 3, 3)
    for f in range(6):
        top = np.abs(k[..., f]).max()
        want = np.round((0.5 + 0.5 * k[..., f] / (top if top > 0 else 1)) * 255)
        np.testing.assert_array_equal(r.images[f], want.astype(np.uint8))
        np.testing.assert_allclose(r.scale[f], top, rtol=1e-6)
    # each filter enlarged 3x (nearest) at its place on the sheet: 3 px border, 3 columns of 9 + 3 px
    cell = r.grid[3 + 12:3 + 12 + 9, 3 + 12:3 + 12 + 9]  # filter 4 (row 1, column 1)
    np.testing.assert_array_equal(cell, np.repeat(np.repeat(r.images[4], 3, 0), 3, 1))


def test_planted_dead_and_checkerboard_filters_are_flagged(planted):
    model, _ = planted
    r = filters(model)
    assert list(np.flatnonzero(r.dead)) == [2]
    assert list(np.flatnonzero(r.aliased)) == [4]
    assert r.high_frequency[4] > 0.9 and np.all(np.delete(r.high_frequency, [2, 4]) < 0.5)
    noise = np.random.default_rng(1).normal(size=(3, 3, 3, 400))
    assert abs(high_frequency_share(noise).mean() - NOISE_SHARE) < 0.05
    assert filters(model, layer="second").layer == "second"


def test_bad_input_and_cli(planted, tmp_path):
    model, _ = planted
    with pytest.raises(ValueError, match="dead_fraction"):
        filters(model, dead_fraction=2)
    import keras

    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
    with pytest.raises(ValueError, match="no convolution"):
        filters(dense)
    from keras_convviz import cli

    assert cli.main(["filters", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "demo_filters.png").exists()
    assert cli.main(["filters", "--layer", "gap", "--out", str(tmp_path)]) == 2
