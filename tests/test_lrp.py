"""LRP through the probe interpreter (methods/lrp.py): oracles, conservation, compilation, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_convviz.graph import walk
from keras_convviz.methods.lrp import COMPOSITES, RULES, lrp
from keras_convviz.probe import run


def _gradient_times_input(model, x, targets):
    name = walk(model).output_steps[0].name
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        scores = run(model, xt, [], linear=[name])[name]
        score = tf.reduce_sum(tf.gather(scores, targets, axis=1, batch_dims=1))
    return tape.gradient(score, xt).numpy() * x, tf.gather(scores, targets, axis=1, batch_dims=1).numpy()


@pytest.fixture(scope="module")
def plain():
    """A bias-free ReLU CNN (Conv2D, max pooling, Conv2D, average pooling, Dense) with fixed random weights."""
    keras.utils.set_random_seed(3)
    x = keras.Input((10, 10, 3))
    h = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, activation="relu")(x)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(8, 3, use_bias=False)(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.AveragePooling2D(2)(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(12, use_bias=False, activation="relu")(h)
    h = keras.layers.Dense(4, use_bias=False, activation="softmax")(h)
    return keras.Model(x, h)


@pytest.fixture(scope="module")
def batch():
    return np.random.default_rng(0).normal(size=(3, 10, 10, 3)).astype(np.float32)


def _predicted(model, x):
    name = walk(model).output_steps[0].name
    return np.argmax(run(model, tf.constant(x), [], linear=[name])[name].numpy(), axis=1)


def test_lrp0_equals_gradient_times_input(plain, batch):
    targets = _predicted(plain, batch)
    expected, _ = _gradient_times_input(plain, batch, targets)
    for rule, kw in (("zero", {}), ("epsilon", {"epsilon": 0.0})):
        got = lrp(plain, batch, target=list(targets), rule=rule, **kw)
        assert got.dtype == np.float32 and got.shape == batch.shape
        assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max(), rule


def test_relevance_is_conserved_layer_by_layer(plain, batch):
    targets = _predicted(plain, batch)
    _, logit = _gradient_times_input(plain, batch, targets)
    for kw in ({"rule": "zero"}, {"rule": "epsilon", "epsilon": 0.0}):
        relevance, layers = lrp(plain, batch, target=None, return_layers=True, **kw)
        assert list(layers)[0] == "input" and len(layers) == len(walk(plain).steps) + 1
        np.testing.assert_allclose(relevance.sum(axis=(1, 2, 3)), logit, rtol=1e-4)
        for name, total in layers.items():
            np.testing.assert_allclose(total, logit, rtol=1e-4, atol=1e-6, err_msg=name)


def test_zplus_is_non_negative_and_conserving_for_non_negative_inputs(plain):
    x = np.random.default_rng(1).uniform(0, 1, size=(3, 10, 10, 3)).astype(np.float32)
    targets = _predicted(plain, x)
    _, logit = _gradient_times_input(plain, x, targets)
    assert np.all(logit > 0)
    relevance, layers = lrp(plain, x, rule="zplus", return_layers=True)
    assert relevance.min() >= 0 and np.all(relevance.sum(axis=(1, 2, 3)) > 0)
    for name, total in layers.items():  # bias-free, x >= 0: every active unit has a positive contribution
        np.testing.assert_allclose(total, logit, rtol=1e-4, err_msg=name)


def test_alpha1_beta0_equals_zplus(plain):
    x = np.random.default_rng(2).uniform(0, 1, size=(2, 10, 10, 3)).astype(np.float32)
    zplus = lrp(plain, x, rule="zplus")
    np.testing.assert_allclose(lrp(plain, x, rule="alpha_beta", alpha=1.0, beta=0.0), zplus, rtol=1e-6, atol=1e-9)
    assert not np.allclose(lrp(plain, x, rule="alpha_beta"), zplus)  # alpha=2, beta=1 differs


# ---------------------------------------------------------------- by hand
@pytest.fixture(scope="module")
def tiny():
    """x (2 inputs) -> Dense(2, relu) -> Dense(2), no biases; x = (1, 2) gives hidden (5, 1), logits (2, 11)."""
    x = keras.Input((1, 1, 2))
    h = keras.layers.Flatten()(x)
    h = keras.layers.Dense(2, use_bias=False, activation="relu")(h)
    out = keras.layers.Dense(2, use_bias=False)(h)
    model = keras.Model(x, out)
    model.layers[2].set_weights([np.array([[1.0, -1.0], [2.0, 1.0]], np.float32)])
    model.layers[3].set_weights([np.array([[1.0, 2.0], [-3.0, 1.0]], np.float32)])
    return model


# Target 0 (logit 2). Hidden contributions to it: h_j w_j0 = (5, -3).
# LRP-0: R_h = (5, -3); input contributions x_i w_ij: to h0 (1, 4) / 5, to h1 (-1, 2) / 1, so
#   R_x = (1/5*5 + -1/1*-3, 4/5*5 + 2/1*-3) = (4, -2)  (= gradient x input).
# epsilon=1: R_h = (5, -3) * 2/3 = (10/3, -2); R_x = (1/6*10/3 + -1/2*-2, 4/6*10/3 + 2/2*-2) = (14/9, 2/9).
# z+: R_h = (2, 0); R_x = (1/5*2, 4/5*2) = (0.4, 1.6).
# alpha=2, beta=1: R_h = 2*(2, 0) - (0, 2) = (4, -2); for h0 (all positive, no negative part)
#   2*(1, 4)/5*4 = (1.6, 6.4); for h1 2*(0, 2)/2*-2 - (-1, 0)/-1*-2 = (0, -4) - (-2, 0) = (2, -4);
#   R_x = (3.6, 2.4).
# first="flat" on top of LRP-0: R_h = (5, -3) spread evenly over the 2 inputs: R_x = (1, 1).
# first="zbox", bounds (0, 3): z_0 = 5, z_1 = (1*-1 - 3*-1) + 2 = 4;
#   R_x = (1/5*5 + 2/4*-3, 4/5*5 + 2/4*-3) = (-0.5, 2.5).
@pytest.mark.parametrize("kw, expected", [
    ({"rule": "zero"}, (4.0, -2.0)),
    ({"rule": "epsilon", "epsilon": 1.0}, (14 / 9, 2 / 9)),
    ({"rule": "zplus"}, (0.4, 1.6)),
    ({"rule": "alpha_beta"}, (3.6, 2.4)),
    ({"rule": "zero", "first": "flat"}, (1.0, 1.0)),
    ({"rule": "zero", "first": "zbox", "bounds": (0, 3)}, (-0.5, 2.5)),
])
def test_hand_computed_two_layer_dense(tiny, kw, expected):
    x = np.array([[[[1.0, 2.0]]]], np.float32)
    got = lrp(tiny, x, target=0, **kw)
    np.testing.assert_allclose(got.reshape(2), expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- BatchNormalization, Add, pooling
def test_batchnorm_is_folded_into_the_layer_before(batch):
    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    x = keras.Input((10, 10, 3))
    conv = keras.layers.Conv2D(6, 3, padding="same", use_bias=True)
    bn = keras.layers.BatchNormalization()
    head = keras.layers.Dense(3)
    h = keras.layers.ReLU()(bn(conv(x)))
    model = keras.Model(x, head(keras.layers.GlobalAveragePooling2D()(h)))
    bn.set_weights([rng.normal(size=6), rng.normal(size=6), rng.normal(size=6), rng.uniform(0.5, 2, size=6)])
    gamma, beta, mean, var = bn.get_weights()
    scale = gamma / np.sqrt(var + bn.epsilon)
    kernel, bias = conv.get_weights()
    merged_conv = keras.layers.Conv2D(6, 3, padding="same")
    m = keras.layers.ReLU()(merged_conv(x))
    merged = keras.Model(x, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(m)))
    merged_conv.set_weights([kernel * scale, (bias - mean) * scale + beta])
    merged.layers[-1].set_weights(head.get_weights())
    for kw in ({"rule": "epsilon"}, {"rule": "zplus"}, {"composite": "epsilon_gamma_box"}):
        a, b = lrp(model, batch, target=1, **kw), lrp(merged, batch, target=1, **kw)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max(), err_msg=str(kw))


def test_add_splits_relevance_in_proportion_and_conserves(batch):
    keras.utils.set_random_seed(6)
    x = keras.Input((10, 10, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, activation="relu")(x)
    b = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(a)
    h = keras.layers.Add(name="sum")([a, keras.layers.ReLU(6.0)(b)])
    h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
    model = keras.Model(x, keras.layers.Dense(3, use_bias=False)(h))
    targets = _predicted(model, batch)
    _, logit = _gradient_times_input(model, batch, targets)
    relevance, layers = lrp(model, batch, rule="epsilon", epsilon=0.0, return_layers=True)
    for name in ("input", "sum", "pool"):
        np.testing.assert_allclose(layers[name], logit, rtol=1e-4, err_msg=name)
    # the ReLU6 passes relevance on, so LRP-0 is no longer gradient x input where it clips, but sums agree
    np.testing.assert_allclose(relevance.sum(axis=(1, 2, 3)), logit, rtol=1e-4)


# ---------------------------------------------------------------- compilation, errors
def test_compiled_once_per_rule_and_never_retraced(plain, batch):
    graph = walk(plain)
    lrp(plain, batch[:2], rule="wsquare")
    lrp(plain, batch, target=[0, 1, 2], rule="wsquare", batch_size=2)
    lrp(plain, batch[:1], target=3, rule="wsquare", bounds=(-3, 3))
    fns = [fn for key, fn in graph.cache.items() if key[0] == "lrp" and "wsquare" in key]
    assert len(fns) == 1 and fns[0].experimental_get_tracing_count() == 1


def test_bad_names_and_layers_are_refused(plain, batch):
    with pytest.raises(ValueError, match="zplus.*alpha_beta"):
        lrp(plain, batch, rule="z+")
    with pytest.raises(ValueError, match="epsilon_plus.*epsilon_gamma_box"):
        lrp(plain, batch, composite="plus")
    with pytest.raises(ValueError, match="either rule= or composite="):
        lrp(plain, batch, rule="zplus", composite="epsilon_plus")
    with pytest.raises(ValueError, match="first must be one of"):
        lrp(plain, batch, first="box")
    with pytest.raises(ValueError, match="bounds"):
        lrp(plain, batch, first="zbox", bounds=(1, 0))
    with pytest.raises(ValueError, match="epsilon must be"):
        lrp(plain, batch, epsilon=-1)
    x = keras.Input((8, 8, 3))
    sep = keras.Model(x, keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.SeparableConv2D(2, 3)(x))))
    with pytest.raises(ValueError, match="separable_conv2d.*SeparableConv2D"):
        lrp(sep, batch[:1, :8, :8])
    assert set(RULES) >= {"zero", "epsilon", "zplus", "alpha_beta", "zbox", "flat"} and "epsilon_plus" in COMPOSITES


# ---------------------------------------------------------------- real networks
def _conserved(model, x, **kw):
    relevance, layers = lrp(model, x, return_layers=True, **kw)
    logit = list(layers.values())[-1]
    return relevance, layers["input"] / logit


@pytest.mark.slow
@pytest.mark.parametrize("build", ["vgg16", "mobilenet"])
def test_untrained_applications_conserve(build):
    """weights=None: zero biases and identity BatchNormalization, so conserving rules conserve end to end."""
    keras.utils.set_random_seed(0)
    if build == "vgg16":
        model = keras.applications.VGG16(weights=None, input_shape=(32, 32, 3), classes=10)
    else:
        model = keras.applications.MobileNet(weights=None, input_shape=(32, 32, 3), alpha=0.25, classes=10)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    for kw in ({"rule": "epsilon", "epsilon": 0.0}, {"composite": "epsilon_plus", "epsilon": 0.0}):
        relevance, ratio = _conserved(model, x, **kw)
        assert np.all(np.isfinite(relevance)) and np.abs(relevance).max() > 0
        np.testing.assert_allclose(ratio, 1.0, rtol=1e-3, err_msg=f"{build} {kw}")


@pytest.mark.slow
def test_efficientnet_lite0_composites():
    from keras_convviz import presets
    from skimage import data

    p = presets.load("efficientnet-lite0")
    photos = np.stack([tf.image.resize(getattr(data, n)()[..., :3], (224, 224)).numpy() for n in ("chelsea", "coffee")])
    x = p.preprocess(photos)
    for composite in ("epsilon_plus", "epsilon_gamma_box"):
        relevance, layers = lrp(p.model, x, composite=composite, return_layers=True)
        logit = layers["logits"]
        print(composite, "input relevance / logit:", layers["input"] / logit)
        assert np.all(np.isfinite(relevance)) and relevance.shape == x.shape
        per_pixel = np.abs(relevance).sum(-1)
        assert np.all((per_pixel > 1e-3 * per_pixel.max(axis=(1, 2), keepdims=True)).mean(axis=(1, 2)) > 0.05)
        # above the first bias-carrying rule nothing is lost: the top conv and pooling carry the logit
        np.testing.assert_allclose(layers["avg_pool"], logit, rtol=0.05)
        assert np.all(np.isfinite(layers["input"] / logit))
