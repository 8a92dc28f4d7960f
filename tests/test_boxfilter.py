"""Receptive-field box-filter maps against numeric oracles.

Oracles: the receptive fields of the model walk (``ReceptiveField.window``),
the exact dependency set of a model read off its own Jacobian (positive
weights, positive inputs: no cancellation), an "averaging twin" built from
Keras layers (kernels of 1 / taps), and the adjoint identity
<A m, n> = <m, A^T n> between forward and backward maps.
"""

import os

import keras
import numpy as np
import pytest
from keras import layers
from PIL import Image

from keras_convviz import box_filter, receptive_fields, walk
from keras_convviz.figures.boxfilter import pictures
from keras_convviz.methods.boxfilter import scale_crop

from fixtures import convviz, dilated_model


# ----------------------------------------------------------------- models
@pytest.fixture(scope="module")
def vgg16():
    return keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))


@pytest.fixture(scope="module")
def mobilenet():
    return keras.applications.MobileNet(weights=None, input_shape=(224, 224, 3))


@pytest.fixture(scope="module")
def dilated():
    return dilated_model()


def positive(model):
    """The same architecture with every kernel = 1 / taps and zero biases."""
    for layer in model.layers:
        for w in layer.weights:
            if "bias" in w.path:
                w.assign(np.zeros(w.shape, np.float32))
            else:
                k = np.prod(w.shape[:2]) * (w.shape[2] if isinstance(layer, layers.Conv2D) else 1)
                w.assign(np.full(w.shape, 1.0 / k, np.float32))
    return model


def spatial_layers(model, result):
    return [n for n in result.maps if n != result.input_name]


# ----------------------------------------------------------------- oracles from the receptive fields
def forward_support(rf, py, px):
    """Units (h, w) of a layer whose receptive field window contains input pixel (py, px)."""
    h, w = rf.output_shape[:2]
    i, j = np.arange(h), np.arange(w)
    y0 = i * rf.stride[0] - rf.padding[0]
    x0 = j * rf.stride[1] - rf.padding[1]
    rows = (y0 <= py) & (py < y0 + rf.size[0])
    cols = (x0 <= px) & (px < x0 + rf.size[1])
    return rows[:, None] & cols[None, :]


def inside_image(rf, hw):
    """Units whose whole receptive field window lies inside the image."""
    h, w = rf.output_shape[:2]
    y0 = np.arange(h) * rf.stride[0] - rf.padding[0]
    x0 = np.arange(w) * rf.stride[1] - rf.padding[1]
    rows = (y0 >= 0) & (y0 + rf.size[0] <= hw[0])
    cols = (x0 >= 0) & (x0 + rf.size[1] <= hw[1])
    return rows[:, None] & cols[None, :]


# ----------------------------------------------------------------- full-image crop
@pytest.mark.parametrize("name,layer", [("vgg16", "block5_pool"), ("mobilenet", "conv_pw_13"),
                                        ("dilated", "last")])
def test_full_crop_ratio_is_one_and_fraction_drops_only_at_padded_borders(request, name, layer):
    model = request.getfixturevalue(name)
    H, W = model.inputs[0].shape[1:3]
    result = box_filter(model, layer, (0, 0, W, H))
    fields = receptive_fields(model)
    assert list(result.maps)[0] == result.input_name and list(result.maps)[-1] == layer
    some_interior = some_border = False
    for lname in spatial_layers(model, result):
        maps = result.maps[lname]
        assert maps.fraction.shape == fields[lname].output_shape[:2]
        assert maps.fraction.dtype == np.float32 and maps.ratio.dtype == np.float32
        np.testing.assert_allclose(maps.ratio, 1.0, rtol=0, atol=1e-6, err_msg=lname)
        # fraction == 1 exactly where the receptive field stays inside the image,
        # < 1 where it reaches into zero padding
        inside = inside_image(fields[lname], (H, W))
        np.testing.assert_allclose(maps.fraction[inside], 1.0, atol=1e-6, err_msg=lname)
        assert (maps.fraction[~inside] < 1 - 1e-6).all(), lname
        assert (maps.fraction > 0).all() and (maps.fraction <= 1).all()
        some_interior |= inside.any()
        some_border |= (~inside).any()
    assert some_interior and some_border


def test_vgg16_has_no_border_loss_before_its_first_same_conv_reaches_padding(vgg16):
    result = box_filter(vgg16, "block1_conv1", (0, 0, 224, 224))
    frac = result.maps["block1_conv1"].fraction
    assert frac[1:-1, 1:-1].min() == 1.0
    assert frac[0, 0] == pytest.approx(4 / 9) and frac[0, 5] == pytest.approx(6 / 9)


# ----------------------------------------------------------------- one pixel forward
@pytest.mark.parametrize("name,layer,pixels", [
    ("vgg16", "block5_pool", [(100, 37), (0, 223), (223, 223)]),
    ("mobilenet", "conv_pw_13", [(100, 100), (0, 0), (223, 5), (17, 200)]),
])
def test_one_pixel_forward_support_is_exactly_the_units_that_see_it(request, name, layer, pixels):
    model = request.getfixturevalue(name)
    fields = receptive_fields(model)
    crops = [(px, py, 1, 1) for py, px in pixels]
    result = box_filter(model, layer, crops)  # one batched call
    for k, (py, px) in enumerate(pixels):
        for lname in spatial_layers(model, result):
            support = result.maps[lname].fraction[k] > 0
            np.testing.assert_array_equal(support, forward_support(fields[lname], py, px),
                                          err_msg=f"{lname} pixel {(py, px)}")
            assert ((result.maps[lname].ratio[k] > 0) == support).all()


# ----------------------------------------------------------------- one unit backward
@pytest.mark.parametrize("name,layer,units", [
    ("vgg16", "block5_pool", [(3, 3), (0, 6), (6, 0)]),
    ("vgg16", "block3_conv2", [(0, 0), (30, 41)]),
    ("mobilenet", "conv_pw_13", [(3, 3), (0, 0), (6, 2)]),
    ("mobilenet", "conv_pw_6", [(13, 13), (5, 0)]),
])
def test_one_unit_backward_support_is_its_receptive_field_clipped(request, name, layer, units):
    model = request.getfixturevalue(name)
    rf = receptive_fields(model)[layer]
    for i, j in units:
        result = box_filter(model, layer, (j, i, 1, 1), mode="backward")
        assert list(result.maps)[0] == layer and list(result.maps)[-1] == result.input_name
        support = result.maps[result.input_name].fraction > 0
        y0, y1, x0, x1 = rf.window(i, j, clip_to=(224, 224))
        expected = np.zeros((224, 224), bool)
        expected[y0:y1, x0:x1] = True
        np.testing.assert_array_equal(support, expected, err_msg=f"{layer} unit {(i, j)}")
        assert result.maps[layer].fraction[i, j] == 1 and result.maps[layer].fraction.sum() == 1


# ----------------------------------------------------------------- dilation: the exact dependency sets
def _dependency_sets(names, size):
    """{layer: (h, w, H, W) bool}: which input pixels each unit of each layer depends on.

    Read off Keras itself: with positive kernels, zero biases and non-negative
    inputs the twin network is linear and nothing cancels, so the response to
    a one-hot image at pixel p is non-zero exactly at the units that depend on p.
    """
    twin = positive(dilated_model(size=size))
    probe = keras.Model(twin.inputs[0], [twin.get_layer(n).output for n in names])
    H, W = size
    onehot = np.zeros((H * W, H, W, 3), np.float32)
    onehot[np.arange(H * W), np.repeat(np.arange(H), W), np.tile(np.arange(W), H)] = 1.0
    outs = probe.predict(onehot, batch_size=256, verbose=0)
    result = {}
    for name, y in zip(names, outs):
        y = np.asarray(y).sum(-1)  # (H*W, h, w)
        assert (y >= 0).all()
        result[name] = np.moveaxis(y > 0, 0, -1).reshape(y.shape[1:] + (H, W))
    return result


def test_dilated_model_supports_equal_its_true_dependency_sets(dilated):
    H, W = 42, 37
    fields = receptive_fields(dilated)
    names = ["dil2", "down", "dil3", "point", "merge", "pool", "dil2b", "five", "cat", "last"]
    dep = _dependency_sets(names, (H, W))  # name -> (h, w, H, W)
    pixels = [(20, 18), (0, 0), (41, 36), (13, 2), (41, 20)]
    result = box_filter(dilated, "last", [(px, py, 1, 1) for py, px in pixels])
    assert list(result.maps) == [result.input_name] + names  # ZeroPadding folds into the next conv
    assert result.panels == [result.input_name] + names
    sparse_somewhere = False
    for k, (py, px) in enumerate(pixels):
        for name in names:
            support = result.maps[name].fraction[k] > 0
            np.testing.assert_array_equal(support, dep[name][:, :, py, px], err_msg=f"{name} {(py, px)}")
            window = forward_support(fields[name], py, px)
            assert not (support & ~window).any()  # inside the receptive field windows
            sparse_somewhere |= (window & ~support).any()
    assert sparse_somewhere  # dilation leaves holes: the window is only an outer bound
    # backward from every unit of two layers: the exact dependency set; inside the clipped
    # window; and for units whose window lies inside the image, its bounding box is the window
    for name in ("dil3", "last"):
        h, w = fields[name].output_shape[:2]
        crops = [(j, i, 1, 1) for i in range(h) for j in range(w)]
        back = box_filter(dilated, name, crops, mode="backward")
        fr = back.maps[back.input_name].fraction
        for n, (j, i, _, _) in enumerate(crops):
            support = fr[n] > 0
            np.testing.assert_array_equal(support, dep[name][i, j], err_msg=f"{name} {(i, j)}")
            y0, y1, x0, x1 = fields[name].window(i, j, clip_to=(H, W))
            outside = np.ones_like(support)
            outside[y0:y1, x0:x1] = False
            assert not (support & outside).any()
            if inside_image(fields[name], (H, W))[i, j]:
                ys, xs = np.nonzero(support)
                assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (y0, y1, x0, x1)


def test_fraction_values_equal_an_averaging_twin_built_from_keras_layers():
    """Add/AveragePooling of the box filter = Keras Average / AveragePooling ('valid'
    here, as Keras' 'same' average pooling excludes padding where we count it)."""
    size = (42, 37)
    model = dilated_model(size=size)
    twin = positive(dilated_model(merge=layers.Average, size=size))
    names = ["dil2", "down", "dil3", "point", "merge", "pool", "dil2b", "five", "cat", "last"]
    probe = keras.Model(twin.inputs[0], [twin.get_layer(n).output for n in names])
    crops = [(3, 5, 20, 11), (0, 0, 37, 42), (30, 40, 7, 2), (12, 1, 1, 1)]
    result = box_filter(model, "last", crops)
    masks = np.zeros((len(crops),) + size + (3,), np.float32)
    for k, (x, y, w, h) in enumerate(crops):
        masks[k, y:y + h, x:x + w] = 1
    outs = probe(masks)
    for name, out in zip(names, outs):
        expect = np.mean(np.asarray(out), -1)  # the channel mean (Concatenate: channel-weighted)
        if name == "pool":  # 'same' pooling on odd sizes: Keras excludes the padding, we count it
            expect = expect[:, :-1, :]
            got = result.maps[name].fraction[:, :-1, :]
        else:
            got = result.maps[name].fraction
        np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-7, err_msg=name)


# ----------------------------------------------------------------- adjoint, batching, ratio
@pytest.mark.parametrize("name,layer", [("vgg16", "block4_conv3"), ("mobilenet", "conv_pw_11"),
                                        ("dilated", "last")])
def test_backward_is_the_adjoint_of_forward(request, name, layer):
    model = request.getfixturevalue(name)
    H, W = model.inputs[0].shape[1:3]
    h, w = receptive_fields(model)[layer].output_shape[:2]
    rng = np.random.default_rng(1)
    for _ in range(3):
        cin = (int(rng.integers(0, W - 9)), int(rng.integers(0, H - 9)), 9, 7)
        cout = (int(rng.integers(0, w)), int(rng.integers(0, h)), 1, 1)
        fwd = box_filter(model, layer, cin).maps[layer].fraction
        back = box_filter(model, layer, cout, mode="backward")
        m_in = np.zeros((H, W))
        m_in[cin[1]:cin[1] + cin[3], cin[0]:cin[0] + cin[2]] = 1
        lhs = fwd[cout[1], cout[0]]
        rhs = float((back.maps[back.input_name].fraction * m_in).sum())
        assert lhs == pytest.approx(rhs, rel=1e-4, abs=1e-9)


def test_ratio_is_inside_over_inside_plus_outside(dilated):
    crop = (5, 7, 12, 9)
    inside = box_filter(dilated, "last", crop).maps
    full = box_filter(dilated, "last", (0, 0, 37, 42)).maps
    for name in inside:
        # outside = A(1 - m) = A 1 - A m, so the ratio is A m / A 1
        np.testing.assert_allclose(inside[name].ratio, inside[name].fraction / full[name].fraction,
                                   rtol=1e-5, atol=1e-7)
    back = box_filter(dilated, "dil3", (2, 3, 4, 5), mode="backward")
    back_full = box_filter(dilated, "dil3", (0, 0, 18, 20), mode="backward").maps
    inp = back.input_name
    # the last row (41) of 'dil2' is seen by no unit of 'down' (valid 3x3 stride 2 on 42 rows)
    assert (back_full["dil2"].fraction[41] == 0).all() and (back_full["dil2"].ratio[41] == 0).all()
    assert (back_full["dil2"].ratio[:41] == 1).all()
    seen = back_full[inp].fraction > 0
    np.testing.assert_allclose(back_full[inp].ratio[seen], 1.0, atol=1e-6)
    np.testing.assert_allclose(back.maps[inp].ratio[seen],
                               back.maps[inp].fraction[seen] / back_full[inp].fraction[seen], rtol=1e-5)


def test_batch_of_crops_equals_single_calls_and_compiles_once(mobilenet):
    rng = np.random.default_rng(2)
    crops = [(int(x), int(y), int(w), int(h)) for x, y, w, h in
             zip(rng.integers(0, 150, 10), rng.integers(0, 150, 10), rng.integers(1, 70, 10), rng.integers(1, 70, 10))]
    batch = box_filter(mobilenet, "conv_pw_9", crops).maps
    for k in (0, 7):
        single = box_filter(mobilenet, "conv_pw_9", crops[k]).maps
        for name in single:
            assert batch[name].fraction.shape[0] == len(crops)
            np.testing.assert_allclose(batch[name].fraction[k], single[name].fraction, rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(batch[name].ratio[k], single[name].ratio, rtol=1e-6, atol=1e-9)
    small = box_filter(mobilenet, "conv_pw_9", crops, batch_size=3).maps
    np.testing.assert_allclose(small["conv_pw_9"].fraction, batch["conv_pw_9"].fraction, rtol=1e-6, atol=1e-9)
    entry = walk(mobilenet).cache[("box_filter", "forward", "conv_pw_9", (224, 224))]
    assert entry.fn.experimental_get_tracing_count() == 1


def test_every_spatial_layer_is_returned_and_panels_skip_identities(mobilenet):
    result = box_filter(mobilenet, "conv_pw_2", (10, 10, 5, 5))
    assert result.panels == [result.input_name, "conv1", "conv_dw_1", "conv_pw_1", "conv_dw_2", "conv_pw_2"]
    names = [s.name for s in walk(mobilenet).steps]
    names = [n for n in names[:names.index("conv_pw_2") + 1] if n != "conv_pad_2"]
    assert list(result.maps) == [result.input_name] + names
    assert result.maps["conv1_relu"] is result.maps["conv1"]  # identities share their maps
    assert result.maps["conv_pw_1"] is result.maps["conv_dw_1_relu"]  # 1x1 conv: identity
    back = box_filter(mobilenet, "conv_pw_2", (10, 10, 5, 5), mode="backward")
    assert list(back.maps) == list(reversed(list(result.maps)))
    assert back.maps["conv_dw_2"] is back.maps["conv_pw_2"] and back.maps["conv1"] is back.maps["conv1_relu"]
    assert back.panels == list(reversed(result.panels))


def test_backward_map_of_a_branch_counts_only_its_own_path():
    """Residual block: the 1x1 branch conv is an identity, but its backward map must
    not include the shortcut that leaves from the same tensor."""
    x = keras.Input((20, 20, 1))
    c1 = layers.Conv2D(2, 3, padding="same", name="c1")(x)
    p = layers.Conv2D(2, 1, name="p")(c1)
    q = layers.Conv2D(2, 3, padding="same", name="q")(p)
    model = keras.Model(x, layers.Add(name="add")([q, c1]))
    back = box_filter(model, "add", (10, 10, 1, 1), mode="backward")
    unit = np.zeros((20, 20), np.float32)
    unit[10, 10] = 1
    np.testing.assert_allclose(back.maps["add"].fraction, unit)
    np.testing.assert_allclose(back.maps["q"].fraction, unit / 2)  # Add averages its two branches
    around = np.zeros((20, 20), np.float32)
    around[9:12, 9:12] = 1 / 18  # through q's 3x3 average
    np.testing.assert_allclose(back.maps["p"].fraction, around, atol=1e-7)
    np.testing.assert_allclose(back.maps["c1"].fraction, around + unit / 2, atol=1e-7)  # both paths


def test_dynamic_input_size_and_nested_models():
    def fcn(size):
        x = keras.Input(size + (3,))
        y = layers.Conv2D(2, 3, strides=2, padding="same")(x)
        y = layers.MaxPooling2D(3, strides=2, padding="same", name="mp")(y)
        return keras.Model(x, layers.Conv2D(2, 3, dilation_rate=2, padding="same", name="top")(y))

    dyn = fcn((None, None))
    with pytest.raises(ValueError, match="input_shape"):
        box_filter(dyn, "top", (0, 0, 3, 3))
    a = box_filter(dyn, "top", (4, 5, 9, 6), input_shape=(45, 38))
    b = box_filter(fcn((45, 38)), "top", (4, 5, 9, 6))
    assert (list(a.maps)[-2:] == list(b.maps)[-2:] == ["mp", "top"]
            and len(a.maps) == len(b.maps) == 4 == len(a.panels))
    for (_, ma), (_, mb) in zip(a.maps.items(), b.maps.items()):
        np.testing.assert_array_equal(ma.fraction, mb.fraction)
    # a Functional base used as a layer inside a Sequential is walked into
    base = fcn((None, None))
    seq = keras.Sequential([keras.Input((45, 38, 3)), base, layers.GlobalAveragePooling2D(), layers.Dense(2)])
    c = box_filter(seq, "top", (4, 5, 9, 6))
    np.testing.assert_array_equal(c.maps["top"].fraction, b.maps["top"].fraction)


# ----------------------------------------------------------------- bad input
def test_bad_crops_layers_and_modes_are_value_errors(mobilenet, vgg16):
    for crop in [(220, 0, 5, 5), (-1, 0, 4, 4), (0, 0, 0, 3), (0, 200, 10, 25), (1.5, 0, 2, 2), (1, 2, 3)]:
        with pytest.raises(ValueError, match="crop"):
            box_filter(mobilenet, "conv_pw_13", crop)
    with pytest.raises(ValueError, match=r"outside the feature map of 'conv_pw_13' of 7x7"):
        box_filter(mobilenet, "conv_pw_13", (5, 5, 3, 1), mode="backward")
    with pytest.raises(ValueError, match="Closest: conv_pw_13"):
        box_filter(mobilenet, "conv_pw_133", (0, 0, 1, 1))
    with pytest.raises(ValueError, match="not a spatial"):
        box_filter(mobilenet, "predictions", (0, 0, 1, 1))
    with pytest.raises(ValueError, match="mode"):
        box_filter(vgg16, "block1_pool", (0, 0, 1, 1), mode="sideways")


def test_upsampling_is_followed_not_refused():
    """Issue 11: an UpSampling2D layer no longer stops the box filter (it was a ValueError).

    Nearest upsampling by 2 copies each input pixel into a 2x2 block, so the
    left-half crop of the input is exactly the left half of the upsampled map,
    and a full crop is 1 at every layer (ratio 1 on a full crop).
    """
    x = keras.Input((16, 16, 1))
    up = keras.Model(x, layers.Conv2D(1, 3)(layers.UpSampling2D(name="up")(x)))
    full = box_filter(up, up.layers[-1].name, (0, 0, 16, 16))
    for maps in full.maps.values():
        np.testing.assert_array_equal(maps.fraction, 1.0)
    half = box_filter(up, up.layers[-1].name, (0, 0, 8, 16)).maps["up"].fraction
    expected = np.zeros((32, 32), np.float32)
    expected[:, :16] = 1.0
    np.testing.assert_array_equal(half, expected)


def test_scale_crop_follows_the_resize():
    assert scale_crop((0, 0, 160, 120), (120, 160), (224, 224)) == (0, 0, 224, 224)
    assert scale_crop((80, 60, 1, 1), (120, 160), (224, 224)) == (112, 112, 2, 2)
    assert scale_crop((10, 10, 1, 1), (1000, 1000), (100, 100)) == (1, 1, 1, 1)
    with pytest.raises(ValueError, match="outside the image"):
        scale_crop((150, 0, 20, 5), (120, 160), (224, 224))


def test_pictures_one_panel_per_layer(dilated):
    img = np.random.default_rng(0).integers(0, 255, (42, 37, 3), dtype=np.uint8)
    result = box_filter(dilated, "last", (3, 4, 10, 10))
    frac, ratio = pictures(result)
    n = len(result.maps)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    zoom = 6  # panels enlarged by a whole factor to at least 192 px: 37 * 6 = 222
    assert frac.shape == (4 + rows * (42 * zoom + 16 + 4), 4 + cols * (37 * zoom + 4), 3)
    assert frac.dtype == np.uint8
    assert ratio.shape == frac.shape and not np.array_equal(frac, ratio)
    over, _ = pictures(result, image=img, overlay=True)
    assert over.shape == frac.shape
    with pytest.raises(ValueError, match="overlay needs"):
        pictures(result, overlay=True)


# ----------------------------------------------------------------- CLI (subprocess)
@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    import imageio.v2 as iio

    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    writer = iio.get_writer(str(path), fps=5, macro_block_size=16)
    for i in range(4):
        writer.append_data(np.full((96, 128, 3), 40 * i, np.uint8))
    writer.close()
    return path


@pytest.mark.slow
def test_cli_forward_on_an_rgba_png_writes_both_pictures(tmp_path):
    png = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 90, 4), dtype=np.uint8), "RGBA").save(png)
    out = tmp_path / "out"
    r = convviz("boxfilter", "forward", "--model", "demo", "--weights", "none", "--crop", "10,20,30,40", png,
             "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == ["in_conv_maps.png", "in_conv_maps_ratio.png"]  # named after the input
    assert Image.open(out / "in_conv_maps.png").size[0] > 64
    assert "wrote" in r.stdout


@pytest.mark.slow
def test_cli_backward_on_a_video_frame_with_overlay_and_errors(tmp_path, clip):
    out = tmp_path / "out"
    r = convviz("boxfilter", "backward", "--model", "mobilenet", "--weights", "none", "--size", "96,128",
             "--layer", "conv_pw_6", "--crop", "1,1,2,3", "--overlay", clip, "--frame", "3",
             "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (out / "clip_frame3_conv_maps.png").is_file() and (out / "clip_frame3_conv_maps_ratio.png").is_file()
    # a frame past the end: exit 2 and one line on stderr (no TensorFlow chatter)
    r = convviz("boxfilter", "forward", "--model", "demo", "--weights", "none", "--crop", "0,0,4,4", clip, "--frame", "9",
             "--out", tmp_path / "bad", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "frame 9 is past the end" in lines[0] and "has 4 frames" in lines[0], r.stderr
    assert not (tmp_path / "bad").exists()


def test_cli_in_process_errors(tmp_path, capsys, clip):
    from keras_convviz import cli

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    good = tmp_path / "ok.png"
    Image.new("L", (64, 64), 128).save(good)
    cases = [
        (["--crop", "0,0,4,4", bad], "cannot read image"),
        (["--crop", "100,0,40,5", clip, "--frame", "0"], "outside the image"),
        (["--crop", "0,0,4,4", tmp_path / "nope.png"], "does not exist"),
        (["--crop", "0,0,4", good], "--crop must be 4"),
        (["--crop", "0,0,4,4", "--layer", "nope", good], "unknown layer"),
    ]
    for args, message in cases:
        code = cli.main(["boxfilter", "forward", "--model", "demo", "--weights", "none", *map(str, args),
                         "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0], err
    code = cli.main(["boxfilter", "backward", "--model", "demo", "--weights", "none", "--crop", "0,0,99,1",
                     str(good), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "outside the feature map" in err[0]
    assert not (tmp_path / "o").exists()
