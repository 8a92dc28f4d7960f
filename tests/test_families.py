"""Every keras.applications family: complete receptive fields against an independent recurrence,
squeeze-excite gates, resampling layers, default layers and clear refusals.

The recurrence here is written from the standard formulas (Araujo et al. 2019,
"Computing receptive fields of convolutional neural networks", Distill): per
layer ``r_out = r_in + (k - 1) j_in``, ``j_out = s j_in`` and the centre of the
first unit ``c_out = c_in + ((k - 1) / 2 - p) j_in``, with TF 'SAME' padding
``p = max((ceil(n / s) - 1) s + k - n, 0) // 2`` from the real input size
``n``; it reads each layer's config, not keras_convviz.fields.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import keras_convviz as kc
from keras_convviz.fields import declare_pointwise
from keras_convviz.methods.gradcam import default_layer

from fixtures import APPLICATIONS, application


def _kernel_stride_pad(layer, n_in):
    cfg, name = layer.get_config(), type(layer).__name__
    if name in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling2D", "AveragePooling2D"):
        k = cfg.get("kernel_size") or cfg["pool_size"]
        s, d = cfg["strides"], cfg.get("dilation_rate", (1, 1))
        k = [(kk - 1) * dd + 1 for kk, dd in zip(k, d)]
        if cfg["padding"] == "valid":
            return k, s, [0, 0]
        return k, s, [max((math.ceil(n / ss) - 1) * ss + kk - n, 0) // 2 for n, kk, ss in zip(n_in, k, s)]
    if name == "ZeroPadding2D":
        return [1, 1], [1, 1], [cfg["padding"][0][0], cfg["padding"][1][0]]
    if name == "Cropping2D":
        return [1, 1], [1, 1], [-cfg["cropping"][0][0], -cfg["cropping"][1][0]]
    return [1, 1], [1, 1], [0, 0]


def _union(fields):
    """Fields as (size, jump, centre); the union covers every branch."""
    out = []
    for d in range(2):
        lo = min(c[d] - (r[d] - 1) / 2 for r, j, c in fields)
        hi = max(c[d] + (r[d] - 1) / 2 for r, j, c in fields)
        out.append((hi - lo + 1, max(j[d] for r, j, c in fields), (hi + lo) / 2))
    return tuple(tuple(o[i] for o in out) for i in range(3))


def independent_fields(model):
    """{layer: (size, jump, padding)} for every spatial layer, by the recurrence above."""
    graph = kc.walk(model)
    field = {t: ((1, 1), (1, 1), (0.0, 0.0)) for t in graph.input_ids}
    result = {}
    for step in graph.steps:
        ins = [field[t] for t in step.input_ids]
        shapes, out = step.input_shapes, step.output_shape
        if len(shapes[0]) == 3 and len(ins) > 1 and len(out) == 3:  # squeeze-excite: drop (1, 1) gates
            gates = [i for i, sh in enumerate(shapes) if tuple(sh[:2]) == (1, 1) != tuple(out[:2])]
            ins = [f for i, f in enumerate(ins) if i not in gates]
        r, j, c = _union(ins) if len(ins) > 1 else ins[0]
        whole = len(out) != 3 or step.type_name.startswith("Global") or all(len(sh) != 3 for sh in shapes)
        if whole:  # a vector or a global pool: one unit over the whole input map
            n = shapes[0][:2] if len(shapes[0]) == 3 else (1, 1)
            k, s, p = list(n), list(n), [0, 0]
        else:
            k, s, p = _kernel_stride_pad(step.layer, shapes[0][:2])
        r = tuple(rr + (kk - 1) * jj for rr, kk, jj in zip(r, k, j))
        c = tuple(cc + ((kk - 1) / 2 - pp) * jj for cc, kk, pp, jj in zip(c, k, p, j))
        j = tuple(jj * ss for jj, ss in zip(j, s))
        for o in step.output_ids:
            field[o] = (r, j, c)
        if len(out) == 3:
            result[step.name] = (r, j, tuple((rr - 1) / 2 - cc for rr, cc in zip(r, c)))
    return result


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(APPLICATIONS))
def test_every_layer_of_every_family_matches_the_recurrence(family):
    # MobileNet at 64 px: the model test_default_layers_have_more_than_one_position needs, built once
    model = application(family, 64 if family == "MobileNet" else None)
    fields = kc.receptive_fields(model)
    expected = independent_fields(model)
    spatial = [s.name for s in kc.walk(model).steps if s.is_spatial]
    assert list(fields) == spatial, "a spatial layer is missing from the walk"
    for name, (size, jump, pad) in expected.items():
        got = fields[name]
        assert got.size == size and got.stride == jump and got.padding == pad, (family, name, got)
    # the deepest map sees (nearly) the whole 32-75 px input; nothing stopped early
    last = kc.walk(model).block_ends()[-1]
    assert min(fields[last].size) >= min(kc.walk(model).input_shape[:2]) // 2


def test_squeeze_excite_is_a_spatial_identity_and_not_local():
    model = application("EfficientNetB0")
    fields = kc.receptive_fields(model)
    gate = fields["block2a_se_excite"]
    assert gate.size == fields["block2a_activation"].size and not gate.local
    assert "squeeze-excite" in gate.note
    assert fields["block1a_activation"].local and not fields["top_activation"].local
    assert fields["block2a_se_reshape"].output_shape[:2] == (1, 1)  # listed, not dropped


@pytest.mark.parametrize("family", ["MobileNetV3Small", "EfficientNetB0"])
def test_box_filter_through_gates_equals_the_map_branch(family):
    model = application(family)
    graph = kc.walk(model)
    layer = graph.block_ends()[-1]
    result = kc.box_filter(model, layer, (8, 8, 16, 16))
    gates = 0
    for step in graph.steps:
        if step.name in result.maps and step.type_name == "Multiply" and step.output_shape[:2] != (1, 1):
            branch = next(graph.producer(t).name for t, sh in zip(step.input_ids, step.input_shapes)
                          if tuple(sh[:2]) != (1, 1))
            np.testing.assert_array_equal(result.maps[step.name].fraction, result.maps[branch].fraction)
            gates += 1
    assert gates >= 1
    assert 0 < result.maps[layer].fraction.max() <= 1


@pytest.mark.slow
def test_gradients_and_single_unit_projections_are_exact_on_gated_models():
    model = application("EfficientNetB0")  # swish, no ReLU: a projection is act * d act / d x
    x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        feats = keras.Model(model.inputs, model.get_layer("top_dropout").output)(xt)
        kernel, bias = model.get_layer("predictions").get_weights()
        logits = tf.matmul(feats, kernel) + bias  # the pre-softmax logits
        score = tf.reduce_max(logits)
    target = int(np.argmax(logits.numpy()))
    sal = kc.saliency(model, x, target=target)
    expected = np.abs(tape.gradient(score, xt).numpy()).max(-1)
    np.testing.assert_allclose(sal, expected, rtol=1e-3, atol=1e-6 * expected.max())
    layer = "block2a_project_conv"
    sub = keras.Model(model.inputs, model.get_layer(layer).output)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        unit = sub(xt)[0, 4, 3, 5]
    oracle = (unit * tape.gradient(unit, xt)).numpy()
    got = kc.deconv_units(model, x, layer, [(0, 4, 3, 5)])
    np.testing.assert_allclose(got[0], oracle[0], rtol=1e-3, atol=1e-5 * np.abs(oracle).max())


def test_resampling_layers_are_covered_not_truncated():
    inp = keras.Input((24, 24, 1))
    a = layers.Conv2D(2, 3, strides=2, padding="same", name="down")(inp)
    b = layers.UpSampling2D(2, interpolation="bilinear", name="up")(a)
    c = layers.Conv2D(2, 3, padding="same", name="after")(b)
    d = layers.Resizing(10, 10, name="resize")(c)
    model = keras.Model(inp, d)
    for w in model.weights:
        w.assign(np.abs(np.random.default_rng(0).normal(size=w.shape)).astype("float32") + 0.1)
    fields = kc.receptive_fields(model)
    assert list(fields) == ["down", "up", "after", "resize"]
    assert "resampling" in fields["after"].note and not fields["after"].aligned
    x = tf.constant(np.random.default_rng(1).uniform(size=(1, 24, 24, 1)).astype(np.float32))
    for name in ("up", "after", "resize"):
        sub = keras.Model(inp, model.get_layer(name).output)
        h, w = fields[name].output_shape[:2]
        for y, xx in [(0, 0), (h // 2, w // 3), (h - 1, w - 1)]:
            with tf.GradientTape() as tape:
                tape.watch(x)
                v = sub(x)[0, y, xx, 0]
            ys, xs = np.nonzero(tape.gradient(v, x).numpy()[0, :, :, 0])
            y0, y1, x0, x1 = fields[name].window(y, xx)
            assert ys.min() >= y0 and ys.max() < y1 and xs.min() >= x0 and xs.max() < x1, (name, y, xx)
    maps = kc.box_filter(model, "resize", (4, 4, 8, 8)).maps
    assert maps["resize"].fraction.shape == (10, 10) and maps["resize"].fraction.max() > 0


def test_default_layers_have_more_than_one_position():
    graph = kc.walk(application("MobileNet", 64))
    assert graph.block_ends()[-1] == "conv_pw_13" and "conv_preds" not in graph.block_ends()
    assert default_layer(graph) == "conv_pw_13_relu"


def test_gradcam_default_lies_on_the_explained_output_path():
    inp = keras.Input((16, 16, 3))
    trunk = layers.Conv2D(4, 3, padding="same", activation="relu", name="trunk")(inp)
    a = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(trunk)
    b = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_b")(trunk)
    head_a = layers.Dense(3, name="head_a")(layers.GlobalAveragePooling2D()(a))
    head_b = layers.Dense(3, name="head_b")(layers.GlobalAveragePooling2D()(b))
    model = keras.Model(inp, [head_a, head_b])
    assert default_layer(model, output="head_a") == "conv_a"
    assert default_layer(model, output="head_b") == "conv_b"
    cam = kc.gradcam(model, np.random.default_rng(0).uniform(size=(1, 16, 16, 3)), output="head_a", target=0)
    assert np.abs(cam).max() > 0


class Blur(keras.layers.Layer):
    def call(self, x):
        return tf.nn.avg_pool2d(x, 3, 1, "SAME")


class Scale(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x


def test_unknown_custom_layers_are_refused_with_the_way_out():
    inp = keras.Input((12, 12, 1))
    model = keras.Model(inp, layers.Conv2D(1, 3, name="c")(Blur(name="blur")(inp)))
    with pytest.raises(ValueError, match=r"'blur' \(Blur\).*declare_pointwise"):
        kc.receptive_fields(model)
    with pytest.raises(ValueError, match="declare_pointwise"):
        kc.box_filter(model, "c", (0, 0, 3, 3))
    scaled = keras.Model(inp, layers.Conv2D(1, 3, name="c2")(Scale(name="scale")(inp)))
    with pytest.raises(ValueError, match="scale"):
        kc.receptive_fields(scaled)
    declare_pointwise(Scale)
    assert kc.receptive_fields(scaled)["c2"].size == (3, 3)


def test_spatial_output_models_name_region_score():
    inp = keras.Input((12, 12, 3))
    model = keras.Model(inp, layers.Conv2D(1, 3, padding="same", name="dense_out")(inp))
    x = np.zeros((1, 12, 12, 3), np.float32)
    with pytest.raises(ValueError, match="region_score"):
        kc.saliency(model, x)
    with pytest.raises(ValueError, match="region_score"):
        kc.occlusion(model, x, None, patch=4, stride=4)
