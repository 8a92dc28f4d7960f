"""Deconvnet projections against independent numeric oracles.

The oracle re-implements each model's forward pass with raw TensorFlow ops
(tf.nn.conv2d, depthwise/separable convs, the BatchNorm formula, tf.pad,
max pooling) and a hand-written ``tf.custom_gradient`` ReLU whose backward
is ``g -> relu(g)``; the projection is its input gradient seeded with the
kept activations. None of the library's interpreter is used by the oracle.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_convviz import demo, receptive_fields, render, walk
from keras_convviz.figures import deconv as F
from keras_convviz.methods import canvas
from keras_convviz.methods import deconv as D

from fixtures import branched, convviz, randomize_bn

RTOL = 1e-5


# ---------------------------------------------------------------- the oracle
@tf.custom_gradient
def _zf_relu(x):
    def backward(g):
        return tf.nn.relu(g)
    return tf.nn.relu(x), backward


@tf.custom_gradient
def _zf_relu6(x):
    def backward(g):
        return tf.nn.relu(g)
    return tf.clip_by_value(x, 0.0, 6.0), backward


def _act(fn_name, y):
    if fn_name == "relu":
        return _zf_relu(y)
    if fn_name == "linear":
        return y
    raise AssertionError(f"oracle does not know activation {fn_name}")


def _np(v):
    return tf.constant(np.asarray(v))


def _oracle_layer(layer, x):
    """One layer's forward with raw TF ops (ReLUs with the deconv backward)."""
    cls = type(layer).__name__
    if cls in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
        s = layer.strides
        pad = layer.padding.upper()
        if cls == "Conv2D":
            y = tf.nn.conv2d(x, _np(layer.kernel), strides=s, padding=pad, dilations=layer.dilation_rate)
        elif cls == "DepthwiseConv2D":
            y = tf.nn.depthwise_conv2d(x, _np(layer.kernel), strides=(1,) + tuple(s) + (1,), padding=pad)
        else:
            y = tf.nn.separable_conv2d(x, _np(layer.depthwise_kernel), _np(layer.pointwise_kernel),
                                       strides=(1,) + tuple(s) + (1,), padding=pad)
        if layer.use_bias:
            y = y + _np(layer.bias)
        return _act(layer.activation.__name__, y)
    if cls == "BatchNormalization":
        mean, var = _np(layer.moving_mean), _np(layer.moving_variance)
        return (x - mean) / tf.sqrt(var + layer.epsilon) * _np(layer.gamma) + _np(layer.beta)
    if cls == "ReLU":
        return _zf_relu6(x) if layer.max_value is not None else _zf_relu(x)
    if cls == "Activation":
        return _act(layer.activation.__name__, x)
    if cls == "ZeroPadding2D":
        (t, b), (l, r) = layer.padding
        return tf.pad(x, [[0, 0], [t, b], [l, r], [0, 0]])
    if cls == "Cropping2D":
        (t, b), (l, r) = layer.cropping
        return x[:, t:x.shape[1] - b, l:x.shape[2] - r, :]
    if cls == "MaxPooling2D":
        return tf.nn.max_pool2d(x, layer.pool_size, layer.strides, layer.padding.upper())
    if cls in ("Dropout",):
        return x
    raise AssertionError(f"oracle does not know {cls}")


def chain_forward(model, x, upto):
    """Forward of a chain model (demo, VGG16, MobileNet) up to layer ``upto``."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        x = _oracle_layer(layer, x)
        if layer.name == upto:
            return x
    raise AssertionError(upto)


def oracle(forward, x, keep):
    """Input gradient of the kept activations, seeded with their values."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        a = forward(x)
        seed = tf.stop_gradient(a * keep)
        target = tf.reduce_sum(a * seed)
    return tape.gradient(target, x).numpy()


def select_np(a, m, k):
    """Top ``m`` maps by max activation, top ``k`` positions each: (N, M) and (N, M, K) flat."""
    n, h, w, c = a.shape
    flat = a.reshape(n, h * w, c)
    maps = np.argsort(-flat.max(1), axis=1, kind="stable")[:, :m]
    pos = np.stack([[np.argsort(-flat[i, :, ch], kind="stable")[:k] for ch in maps[i]] for i in range(n)])
    return maps, pos


def keep_mask(shape, maps, pos):
    n, h, w, c = shape
    keep = np.zeros((n, h * w, c), np.float32)
    for i in range(n):
        for j, ch in enumerate(maps[i]):
            keep[i, pos[i, j], ch] = 1.0
    return keep.reshape(shape)


def close(actual, expected, rtol=RTOL):
    scale = np.abs(expected).max()
    assert scale > 0, "oracle projection is all zeros; the check would be vacuous"
    err = np.abs(actual - expected).max()
    assert err <= rtol * scale, f"max error {err:.3g} vs scale {scale:.3g} (rel {err / scale:.3g})"


def check_model(model, x, layer, m, k, forward=None):
    """Joint and separate projections of ``layer`` against the oracle."""
    forward = forward or (lambda t: chain_forward(model, t, layer))
    a = forward(tf.constant(x)).numpy()
    mm = m if isinstance(m, int) else int(np.ceil(m * a.shape[3]))
    kk = k if isinstance(k, int) else int(np.ceil(k * a.shape[1] * a.shape[2]))
    maps, pos = select_np(a, mm, kk)
    res = D.projections(model, x, layer, maps=m, activations=k, joint=True)
    np.testing.assert_array_equal(res.maps, maps)
    close(res.images, oracle(forward, x, keep_mask(a.shape, maps, pos)))
    sep = D.deconv(model, x, layer, maps=m, activations=k, joint=False)
    assert sep.shape == (x.shape[0], mm) + x.shape[1:]
    for j in range(mm):
        close(sep[:, j], oracle(forward, x, keep_mask(a.shape, maps[:, j:j + 1], pos[:, j:j + 1])))
    return a


def unit_oracle(forward, x, a, unit):
    i, y, xx, c = unit
    keep = np.zeros(a.shape[1:], np.float32)
    keep[y, xx, c] = 1.0
    return oracle(forward, x[i:i + 1], keep[None])[0]


def interesting_units(a, n=6):
    """Corner, border and interior units with a positive activation (nearest such spot)."""
    _, h, w, c = a.shape
    spots = [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (h // 2, 0), (h // 2, w // 2)][:n]
    units = []
    for k, (y, xx) in enumerate(spots):
        i = k % a.shape[0]
        best = a[i].max(-1)
        cand = [(abs(yy - y) + abs(x2 - xx), yy, x2) for yy in range(h) for x2 in range(w) if best[yy, x2] > 0]
        _, yy, x2 = min(cand)
        units.append((i, yy, x2, int(np.argmax(a[i, yy, x2]))))
    return np.array(units)


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def demo_images():
    return demo.shapes(3, seed=7)[0]


@pytest.fixture(scope="module")
def vgg():
    keras.utils.set_random_seed(0)
    return keras.applications.VGG16(weights=None, include_top=False, input_shape=(96, 96, 3))


@pytest.fixture(scope="module")
def mobilenet():
    keras.utils.set_random_seed(1)
    model = keras.applications.MobileNet(weights=None, include_top=False, input_shape=(128, 128, 3))
    randomize_bn(model, 1)
    return model


# ---------------------------------------------------------------- the rule identity
def test_demo_matches_oracle(demo_model, demo_images):
    # block2_conv2: fused ReLU, standalone ReLU layer and Activation, BN, two pools
    check_model(demo_model, demo_images, "block2_conv2", 3, 4)
    # last conv layer, a fraction of maps, and all activations of each map
    check_model(demo_model, demo_images[:1], "block3_conv2", 0.05, 1.0)


def test_demo_units_match_oracle_everywhere(demo_model, demo_images):
    layer = "block3_conv2"
    forward = lambda t: chain_forward(demo_model, t, layer)  # noqa: E731
    a = forward(tf.constant(demo_images)).numpy()
    assert canvas.canvas_geometry(walk(demo_model), layer)[0][0] < 64  # the crop path runs
    units = interesting_units(a)
    got = D.deconv_units(demo_model, demo_images, layer, units)
    for unit, g in zip(units, got):
        close(g, unit_oracle(forward, demo_images, a, unit))


@pytest.mark.slow
def test_vgg16_matches_oracle(vgg):
    rng = np.random.default_rng(0)
    x = rng.uniform(-100, 100, (2, 96, 96, 3)).astype(np.float32)
    check_model(vgg, x, "block5_conv3", 4, 3)
    layer = "block3_conv3"
    forward = lambda t: chain_forward(vgg, t, layer)  # noqa: E731
    a = forward(tf.constant(x)).numpy()
    assert canvas.canvas_geometry(walk(vgg), layer) == ((44, 4), (44, 4))
    units = interesting_units(a)
    got = D.deconv_units(vgg, x, layer, units)
    for unit, g in zip(units, got):
        close(g, unit_oracle(forward, x, a, unit))
    # separate top-1 projections go through the same crops
    maps, pos = select_np(a, 3, 1)
    sep = D.deconv(vgg, x, layer, maps=3, activations=1, joint=False)
    for j in range(3):
        close(sep[:, j], oracle(forward, x, keep_mask(a.shape, maps[:, j:j + 1], pos[:, j:j + 1])))


@pytest.mark.slow
def test_mobilenet_matches_oracle(mobilenet):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (2, 128, 128, 3)).astype(np.float32)
    # ReLU6 layers, depthwise convs, ZeroPadding + valid stride-2 convs, BN
    check_model(mobilenet, x, "conv_pw_7_relu", 3, 2)
    layer = "conv_pw_4_relu"
    forward = lambda t: chain_forward(mobilenet, t, layer)  # noqa: E731
    a = forward(tf.constant(x)).numpy()
    assert canvas.canvas_geometry(walk(mobilenet), layer)[0][0] < 128
    units = interesting_units(a)
    got = D.deconv_units(mobilenet, x, layer, units)
    for unit, g in zip(units, got):
        close(g, unit_oracle(forward, x, a, unit))


def _branched_forward(model, upto):
    get = model.get_layer

    def forward(t):
        x = _oracle_layer(get("c1"), t)
        x = _oracle_layer(get("bn"), _oracle_layer(get("c2"), _oracle_layer(get("pad"), x)))
        x = _oracle_layer(get("r1"), x)
        a = _oracle_layer(get("sep"), x)
        b = _oracle_layer(get("r6"), _oracle_layer(get("dw"), x))
        x = tf.concat([a + b, b], -1)
        x = _oracle_layer(get("crop"), _oracle_layer(get("pool"), x))
        x = _oracle_layer(get("c3"), x)
        if upto == "c3":
            return x
        return _oracle_layer(get("c4"), _oracle_layer(get("pool2"), x))

    return forward


@pytest.mark.slow
def test_branches_padding_cropping_separable():
    model = branched()
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (2, 30, 30, 3)).astype(np.float32)
    for layer in ("c3", "c4"):
        # the single-unit crops are smaller than the image
        assert canvas.canvas_geometry(walk(model), layer)[0][0] < 30
        forward = _branched_forward(model, layer)
        a = check_model(model, x, layer, 2, 3, forward=forward)
        h, w = a.shape[1:3]
        units = np.array([(i, y, xx, int(np.argmax(a[i, y, xx]))) for i in range(2)
                          for y in range(h) for xx in range(w) if (y + xx + i) % 4 == 0])
        got = D.deconv_units(model, x, layer, units)
        for unit, g in zip(units, got):
            if a[tuple(unit)] > 0:
                close(g, unit_oracle(forward, x, a, unit))
            else:
                assert not np.any(g)


# ---------------------------------------------------------------- locality
def test_single_activation_is_local(demo_model, demo_images, vgg):
    cases = [(demo_model, demo_images, "block2_conv2"), (demo_model, demo_images, "block3_conv2")]
    x = np.random.default_rng(5).uniform(-100, 100, (1, 96, 96, 3)).astype(np.float32)
    cases.append((vgg, x, "block3_conv3"))
    for model, images, layer in cases:
        rf = receptive_fields(model)[layer]
        res = D.projections(model, images, layer, maps=3, activations=1, joint=False)
        # the full-image pass (joint, one map, one activation) of the same units
        for j, c in enumerate(res.maps[0]):
            full = D.deconv(model, images[:1], layer, maps=[int(c)], activations=1)[0]
            y, xx = res.positions[0, j, 0]
            y0, y1, x0, x1 = rf.window(int(y), int(xx), clip_to=images.shape[1:3])
            outside = np.abs(full).sum(-1)
            assert outside[y0:y1, x0:x1].max() > 0
            outside[y0:y1, x0:x1] = 0
            assert not np.any(outside), f"{layer} unit {(y, xx, c)} leaks outside its field"
            close(res.images[0, j], full)


# ---------------------------------------------------------------- selection & API
def test_activation_fraction_and_explicit_maps(demo_model, demo_images):
    layer = "block3_conv2"
    a = chain_forward(demo_model, tf.constant(demo_images), layer).numpy()
    res = D.projections(demo_model, demo_images, layer, maps=[7, 3], activations=0.25)
    assert res.maps.tolist() == [[7, 3]] * 3
    k = int(np.ceil(0.25 * 16 * 16))
    assert res.values.shape == (3, 2, k)
    # the kept values are the k strongest of each map, strongest first
    for i in range(3):
        for j, c in enumerate((7, 3)):
            np.testing.assert_allclose(res.values[i, j], np.sort(a[i, :, :, c].ravel())[::-1][:k], rtol=1e-5)
            y, xx = res.positions[i, j].T
            np.testing.assert_allclose(a[i, y, xx, c], res.values[i, j], rtol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(maps=0), "maps=0"),
    (dict(maps=-2), "maps=-2"),
    (dict(maps=65), "maps=65"),
    (dict(maps=1.5), "fraction"),
    (dict(maps=0.0), "fraction"),
    (dict(maps="3"), "count or a (float )?fraction"),
    (dict(maps=[]), "selects nothing"),
    (dict(maps=[1, 64]), "out of range"),
    (dict(maps=[2, 2]), "more than once"),
    (dict(activations=0), "activations=0"),
    (dict(activations=257), "activations=257"),
    (dict(activations=2.0), "fraction"),
    (dict(activations=True), "count or a (float )?fraction"),
    (dict(layer="block3_conv9"), "block3_conv2"),
    (dict(layer="predictions"), "spatial"),
    (dict(joint="yes"), "True or False"),
    (dict(batch_size=0), "batch_size"),
])
def test_bad_arguments(demo_model, demo_images, kwargs, message):
    args = dict(layer="block3_conv2")
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        D.deconv(demo_model, demo_images[:1], **args)


def test_bad_units_and_inputs(demo_model, demo_images):
    with pytest.raises(ValueError, match="channel must be in 0..63"):
        D.deconv_units(demo_model, demo_images, "block3_conv2", [[0, 1, 1, 64]])
    with pytest.raises(ValueError, match="image_index"):
        D.deconv_units(demo_model, demo_images, "block3_conv2", [[3, 1, 1, 0]])
    with pytest.raises(ValueError, match="shape"):
        D.deconv_units(demo_model, demo_images, "block3_conv2", [[0, 1, 1]])
    with pytest.raises(ValueError, match="batch"):
        D.deconv(demo_model, demo_images[0], "block3_conv2")


def test_public_name():
    import keras_convviz

    assert keras_convviz.deconv is D.deconv


def test_compiled_once(demo_model, demo_images):
    graph = walk(demo_model)
    for n in (1, 3, 2):
        D.deconv(demo_model, demo_images[:n], "block2_conv2", maps=2, activations=3)
        D.deconv(demo_model, demo_images[:n], "block2_conv2", maps=2, activations=1, joint=False)
        D.deconv_units(demo_model, demo_images[:n], "block2_conv2", [[0, n, 2 * n, n]])
    fns = {k: v for k, v in graph.cache.items()
           if isinstance(k, tuple) and str(k[0]).startswith("deconv.") and hasattr(v, "experimental_get_tracing_count")}
    assert any(k[0] == "deconv.joint" for k in fns) and any(k[0] == "deconv.masked" for k in fns)
    for key, fn in fns.items():
        assert fn.experimental_get_tracing_count() == 1, key


def test_batching_does_not_change_results(demo_model, demo_images):
    a = D.deconv(demo_model, demo_images, "block2_conv2", maps=4, activations=2, joint=False, batch_size=1)
    b = D.deconv(demo_model, demo_images, "block2_conv2", maps=4, activations=2, joint=False, batch_size=64)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())
    c = D.deconv(demo_model, demo_images, "block2_conv2", maps=4, activations=2, batch_size=1)
    d = D.deconv(demo_model, demo_images, "block2_conv2", maps=4, activations=2, batch_size=64)
    np.testing.assert_allclose(c, d, rtol=1e-5, atol=1e-5 * np.abs(d).max())


def test_cumulative_frames_are_joint_projections(demo_model, demo_images):
    res = D.cumulative(demo_model, demo_images[:1], "block3_conv2", maps=3, activations=2)
    assert res.images.shape == (1, 3, 64, 64, 3)
    for j in range(3):
        joint = D.deconv(demo_model, demo_images[:1], "block3_conv2", maps=j + 1, activations=2)
        close(res.images[:, j], joint)


def test_pointing_on_demo(demo_model):
    images, _, boxes = demo.shapes(24, seed=11)
    res = D.projections(demo_model, images, "block3_conv2", maps=1, activations=1)
    hits = 0
    for p, (y0, x0, y1, x1) in zip(res.images, boxes):
        y, xx = D.peak(p)
        hits += (y0 - 4 <= y < y1 + 4) and (x0 - 4 <= xx < x1 + 4)
    assert hits / len(images) >= 0.8


# ---------------------------------------------------------------- pictures
def test_pictures(demo_model, demo_images):
    from keras_convviz.presets import _caffe_preprocess, _unit_preprocess

    assert F.display_order(_caffe_preprocess) == [2, 1, 0]
    assert F.display_order(_unit_preprocess) == [0, 1, 2]
    rgb = (demo_images[0] * 255).astype(np.uint8)
    results = [D.projections(demo_model, demo_images[:1], layer, maps=4, activations=1, joint=False)
               for layer in ("block1_conv2", "block3_conv2")]
    grid = F.layer_grid(rgb, results, demo_model, cell=40)
    assert grid.dtype == np.uint8 and grid.ndim == 3
    # two rows of four cells; each cell is projection | patch of the unit's field
    assert grid.shape[0] >= 2 * 40 and grid.shape[1] >= 4 * 82
    # the patch half of the first cell of the last row is the input's receptive-field patch
    y0, y1, x0, x1 = D.selection_boxes(demo_model, results[1])[0]
    patch = render.fit_square(rgb[y0:y1, x0:x1], 40)
    row_top = grid.shape[0] - 40
    np.testing.assert_array_equal(grid[row_top:, 42:82], patch)
    frames = F.gif_frames(rgb, D.cumulative(demo_model, demo_images[:1], "block3_conv2", maps=3).images[0],
                          "block3_conv2")
    assert len(frames) == 3 and frames[0].shape == frames[2].shape
    assert not np.array_equal(frames[0], frames[2])


# ---------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli(tmp_path, demo_images):
    from keras_convviz import media

    image = tmp_path / "shape.png"
    media.save_png(image, (demo_images[1] * 255).astype(np.uint8))
    out = tmp_path / "out"
    done = convviz("deconv", str(image), "--model", "demo", "--maps", "3", "--activations", "2", "--gif", "--out", str(out))
    assert done.returncode == 0, done.stderr
    names = sorted(os.listdir(out))
    for layer in walk(demo.load_model()).block_ends():
        assert f"shape_{layer}.png" in names and f"shape_{layer}.gif" in names
    assert "shape_grid.png" in names
    assert not [n for n in names if n.startswith(".")]
    img = media.read_image(out / "shape_block3_conv2.png")
    assert img.std() > 5  # a real picture, not a blank canvas
    # bad input: exit 2 with one line, nothing written
    bad_out = tmp_path / "bad"
    done = convviz("deconv", str(image), "--model", "demo", "--layer", "block3_conv9", "--out", str(bad_out))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "block3_conv2" in lines[0], done.stderr
    assert not bad_out.exists()


@pytest.mark.parametrize("args, needle", [
    (("--maps", "1.5"), "fraction"),
    (("--maps", "x"), "--maps"),
    (("--maps", "3,99"), "out of range"),
    (("--activations", "0"), "activations=0"),
    (("--layer", "gap"), "spatial"),
])
def test_cli_bad_input(tmp_path, demo_images, capsys, args, needle):
    from keras_convviz import cli, media

    image = tmp_path / "shape.png"
    media.save_png(image, (demo_images[1] * 255).astype(np.uint8))
    capsys.readouterr()
    bad_out = tmp_path / "bad"
    code = cli.main(["deconv", str(image), "--model", "demo", *args, "--out", str(bad_out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and needle in err[0], err
    assert not bad_out.exists()
