"""The model walk and receptive fields, against published tables and brute force."""

import numpy as np
import pytest
import keras
import tensorflow as tf
from keras import layers

from keras_convviz import receptive_fields, walk

from fixtures import random_model

# google-research/receptive_field, RECEPTIVE_FIELD_TABLE.md, vgg_16 at 224:
# end-point -> (RF, effective stride, effective padding)
VGG16_TABLE = {
    "block1_conv1": (3, 1, 1),
    "block1_pool": (6, 2, 2),
    "block2_conv1": (10, 2, 4),
    "block2_pool": (16, 4, 6),
    "block3_conv1": (24, 4, 10),
    "block3_conv2": (32, 4, 14),
    "block3_pool": (44, 8, 18),
    "block4_conv1": (60, 8, 26),
    "block4_conv2": (76, 8, 34),
    "block4_pool": (100, 16, 42),
    "block5_conv1": (132, 16, 58),
    "block5_conv2": (164, 16, 74),
    "block5_pool": (212, 32, 90),
}


@pytest.fixture(scope="module")
def vgg16():
    return keras.applications.VGG16(weights=None)


@pytest.mark.slow
def test_vgg16_matches_published_table(vgg16):
    fields = receptive_fields(vgg16)
    for name, (size, stride, padding) in VGG16_TABLE.items():
        info = fields[name]
        assert info.size == (size, size), name
        assert info.stride == (stride, stride), name
        assert info.padding == (padding, padding), name
    # only spatial layers, in model order
    assert list(fields)[0] == "block1_conv1" and list(fields)[-1] == "block5_pool"
    assert "fc1" not in fields and "flatten" not in fields
    assert fields["block3_conv2"].kernel == (3, 3) and fields["block3_pool"].layer_stride == (2, 2)
    assert fields["block5_pool"].output_shape == (7, 7, 512)


def test_mobilenet_conv_pw_13():
    model = keras.applications.MobileNet(weights=None)
    info = receptive_fields(model)["conv_pw_13"]
    assert info.size == (315, 315) and info.stride == (32, 32)
    # ZeroPadding((0,1),(0,1)) + valid stride-2 conv adds no top/left padding
    assert receptive_fields(model)["conv1"].padding == (0, 0)


def test_nested_application_inside_sequential_is_walked_into(vgg16):
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(None, None, 3))
    model = keras.Sequential([keras.Input((96, 96, 3)), base, layers.GlobalAveragePooling2D(), layers.Dense(3)])
    fields = receptive_fields(model)
    # named as inside the base; sizes from the outer 96x96 input
    assert fields["block4_conv2"].size == (76, 76)
    assert fields["block5_pool"].output_shape == (3, 3, 512)
    assert walk(model).names[-2:] == [model.layers[-2].name, model.layers[-1].name]


def test_merge_reports_cover_and_misalignment():
    x = inp = keras.Input((32, 32, 3))
    a = layers.Conv2D(4, 3, padding="same")(x)
    b = layers.Conv2D(4, 5, padding="same")(x)
    add = layers.Add(name="add")([a, b])
    c = layers.Conv2D(4, 3, padding="same", name="after")(add)
    same = layers.Concatenate(name="cat")([layers.Conv2D(2, 3, padding="same")(x),
                                            layers.Conv2D(2, 3, padding="same")(x)])
    model = keras.Model(inp, [c, same])
    fields = receptive_fields(model)
    assert fields["add"].size == (5, 5) and fields["add"].padding == (2, 2)
    assert not fields["add"].aligned and "cover every branch" in fields["add"].note
    assert fields["after"].size == (7, 7)
    assert fields["cat"].aligned and fields["cat"].size == (3, 3)


def test_errors_name_the_fix():
    model = keras.Sequential([keras.Input((None, None, 3)), layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="static height"):
        receptive_fields(model)
    graph = walk(keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3)))
    with pytest.raises(ValueError, match="block3_conv3"):
        graph.step("block3_conv33")
    dense = keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(name="flat"), layers.Dense(2)])
    with pytest.raises(ValueError, match="not a spatial"):
        walk(dense).spatial_step("flat")


# ------------------------------------------------------------ brute force
@pytest.mark.parametrize("seed", range(10))
def test_receptive_field_equals_gradient_support(seed):
    """d unit / d input is non-zero exactly on the unit's receptive-field window.

    Interior units (window inside the image) must match it exactly (bounding
    box: dilation may leave holes); border units, whose window is clipped,
    must stay inside it. Max pools route a gradient to one input only, so the
    brute-force probe runs the twin model with average pools: same geometry.
    """
    model = random_model(seed, "max")
    twin = random_model(seed, "avg")
    fields = receptive_fields(model)
    last = list(fields.values())[-1]
    height, width = model.inputs[0].shape[1:3]
    x = tf.constant(np.random.default_rng(seed).uniform(0.5, 1.0, (1, height, width, 1)).astype("float32"))
    oh, ow = last.output_shape[:2]
    rng = np.random.default_rng(seed)
    units = {(0, 0), (oh - 1, ow - 1), (oh // 2, ow // 2)} | {
        (int(rng.integers(0, oh)), int(rng.integers(0, ow))) for _ in range(3)}
    interior_seen = 0
    for y, xx in sorted(units):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = twin(x)[0, y, xx, 0]
        grad = tape.gradient(out, x)[0, :, :, 0].numpy()
        rows, cols = np.nonzero(grad)
        full = last.window(y, xx)
        y0, y1, x0, x1 = last.window(y, xx, clip_to=(height, width))
        if full == (y0, y1, x0, x1):
            interior_seen += 1
            assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == full, (seed, y, xx)
        elif rows.size:
            assert y0 <= rows.min() and rows.max() < y1 and x0 <= cols.min() and cols.max() < x1
    assert interior_seen or min(last.size) > min(height, width) // 2
