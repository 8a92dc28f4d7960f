"""A nested model called more than once (siamese nets, a backbone shared by two inputs or by a flipped copy).

Keras keeps one set of inner nodes for every call of a nested model; the walk
must still make each call site its own steps with its own values. The
oracle is the model itself: ``model.predict`` and a hand-written
``tf.GradientTape`` on the model's own pre-softmax logit.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import keras_convviz as kc
from keras_convviz.graph import walk
from keras_convviz.probe import run


def backbone(seed, channels=4):
    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((12, 12, 3))
    x = layers.Conv2D(channels, 3, padding="same", activation="relu", name="shared_conv")(x)
    x = layers.MaxPooling2D(2, name="shared_pool")(x)
    return keras.Model(inputs, x, name="backbone")


def shared_model(seed=0, calls=("identity", "half"), merge="concat"):
    """One backbone applied to transformed copies of the input, merged, then a softmax head."""
    base = backbone(seed)
    x = inputs = keras.Input((12, 12, 3))
    transforms = {"identity": lambda t: t, "half": layers.Rescaling(0.5, name="half"),
                  "flip": layers.Lambda(lambda t: t[:, :, ::-1, :], name="flip"),
                  "shift": layers.Rescaling(1.0, offset=0.25, name="shift")}
    features = [base(transforms[c](x)) for c in calls]
    merged = features[0] if len(features) == 1 else (
        layers.Concatenate(name="merged")(features) if merge == "concat" else layers.Add(name="merged")(features))
    y = layers.Conv2D(3, 3, name="head_conv")(merged)
    y = layers.GlobalAveragePooling2D(name="gap")(y)
    logits = layers.Dense(3, name="logits")(y)
    return keras.Model(inputs, layers.Activation("softmax", name="predictions")(logits))


def images(n=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, 12, 12, 3)).astype(np.float32)


def tape_saliency(model, x, target):
    logits = keras.Model(model.inputs, model.get_layer("logits").output)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        score = tf.reduce_sum(logits(xt)[:, target])
    return tf.reduce_max(tf.abs(tape.gradient(score, xt)), axis=-1).numpy()


def test_every_call_site_is_its_own_step():
    names = [s.name for s in walk(shared_model()).steps]
    assert names.count("shared_conv") == 1 and "shared_conv_1" in names and "shared_pool_1" in names


@pytest.mark.parametrize("calls,merge", [(("identity", "half"), "concat"), (("identity", "flip"), "add"),
                                         (("half", "identity", "shift"), "concat")])
def test_forward_values_and_gradients_equal_the_model_itself(calls, merge):
    model, x = shared_model(1, calls, merge), images()
    np.testing.assert_allclose(run(model, x, ["predictions"])["predictions"], model.predict(x, verbose=0),
                               atol=1e-6)
    np.testing.assert_allclose(kc.saliency(model, x, 2), tape_saliency(model, x, 2), rtol=1e-5, atol=1e-7)
    result = kc.occlusion(model, x, 2, 4, 4)
    np.testing.assert_allclose(result.base_probability, model.predict(x, verbose=0)[:, 2], atol=1e-6)


def tape_gradcam(model, x, target, call):
    """Grad-CAM of ``shared_conv`` in call ``call`` (0: the input, 1: half the input), by hand."""
    conv = model.get_layer("backbone").get_layer("shared_conv")
    pool = model.get_layer("backbone").get_layer("shared_pool")
    with tf.GradientTape() as tape:
        acts = [conv(tf.constant(x)), conv(tf.constant(x * 0.5))]
        tape.watch(acts[call])
        merged = tf.concat([pool(a) for a in acts], axis=-1)
        y = model.get_layer("gap")(model.get_layer("head_conv")(merged))
        score = tf.reduce_sum(model.get_layer("logits")(y)[:, target])
    weights = tf.reduce_mean(tape.gradient(score, acts[call]), axis=(1, 2), keepdims=True)
    return tf.nn.relu(tf.reduce_sum(weights * acts[call], axis=-1)).numpy()


@pytest.mark.parametrize("target", [0, 1, 2])
def test_gradcam_of_each_call_equals_a_hand_computation(target):
    model, x = shared_model(2), images(3)
    for call, name in enumerate(("shared_conv", "shared_conv_1")):
        cam = kc.gradcam(model, x, target, layer=name, upsample=False)
        np.testing.assert_allclose(cam, tape_gradcam(model, x, target, call), rtol=1e-5, atol=1e-6)
    # each call's activations are its own: the second call sees the input at half scale
    acts = kc.capture(model, x, ["shared_conv", "shared_conv_1"]).activations
    plain = model.get_layer("backbone").get_layer("shared_conv")
    np.testing.assert_allclose(acts["shared_conv"], plain(x), atol=1e-6)
    np.testing.assert_allclose(acts["shared_conv_1"], plain(x * 0.5), atol=1e-6)


@pytest.mark.slow
def test_generated_shared_backbones_match_predict():
    from hypothesis import given, strategies as st

    @given(st.lists(st.sampled_from(["identity", "half", "flip", "shift"]), min_size=1, max_size=3, unique=True),
           st.sampled_from(["concat", "add"]), st.integers(0, 50))
    def check(calls, merge, seed):
        model, x = shared_model(seed, tuple(calls), merge), images(1, seed)
        np.testing.assert_allclose(run(model, x, ["predictions"])["predictions"], model.predict(x, verbose=0),
                                   atol=1e-6)

    check()


def test_a_layer_object_is_accepted_as_layer():
    model, x = shared_model(3, ("identity",)), images()
    conv = model.get_layer("backbone").get_layer("shared_conv")
    np.testing.assert_array_equal(kc.gradcam(model, x, 1, layer=conv), kc.gradcam(model, x, 1, layer="shared_conv"))
    twice = shared_model(3)
    with pytest.raises(ValueError, match="called 2 times.*shared_conv, shared_conv_1"):
        kc.gradcam(twice, x, 1, layer=twice.get_layer("backbone").get_layer("shared_conv"))
    with pytest.raises(ValueError, match="is not part of model"):
        kc.gradcam(model, x, 1, layer=layers.Conv2D(2, 3, name="stranger"))
