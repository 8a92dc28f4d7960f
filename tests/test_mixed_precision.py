"""Mixed-precision models (``mixed_float16`` / ``mixed_bfloat16`` layers): every method works and agrees.

The library computes mixed-precision layers in float32 from their float32
variables, so the oracle is the same network built in float32 with the same
weights: every method's result equals it to float32 rounding.
"""

import keras
import numpy as np
import pytest
from keras import layers

import keras_convviz as kc
from keras_convviz.methods.objectives import channel


def model(policy, seed=0):
    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="c1", dtype=policy)(x)
    x = layers.MaxPooling2D(2, name="p1", dtype=policy)(x)
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="c2", dtype=policy)(x)
    x = layers.GlobalAveragePooling2D(name="gap", dtype=policy)(x)
    return keras.Model(inputs, layers.Dense(3, activation="softmax", name="predictions", dtype="float32")(x))


def pair(policy):
    mixed, plain = model(policy), model("float32")
    plain.set_weights(mixed.get_weights())
    return mixed, plain


X = np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)
METHODS = {
    "occlusion": lambda m: kc.occlusion(m, X, 0, 4, 4).probability,
    "top_activations": lambda m: kc.top_activations(m, X, "c2", k=2).values,
    "invert": lambda m: kc.invert(m, X[:1], "c2", steps=3, seed=0),
    "deconv": lambda m: kc.deconv(m, X, "c2"),
    "saliency": lambda m: kc.saliency(m, X, 0),
    "gradcam": lambda m: kc.gradcam(m, X, 0),
    "class_model": lambda m: kc.class_model(m, 0, steps=2),
    "featurevis": lambda m: kc.featurevis(m, channel("c2", 0), steps=2),
}


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_under_mixed_precision_and_equals_float32(policy, method):
    mixed, plain = pair(policy)
    ours, reference = (np.asarray(_array(METHODS[method](m)), np.float32) for m in (mixed, plain))
    assert ours.shape == reference.shape and np.isfinite(ours).all()
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5 * max(float(np.abs(reference).max()), 1))


def _array(result):
    for attr in ("image", "images", "values", "inputs"):
        if hasattr(result, attr):
            return getattr(result, attr)
    return result


def test_the_callback_logs_deconv_occlusion_and_topk_under_mixed_float16(tmp_path):
    from keras_convviz import ConvVizCallback

    mixed = model("mixed_float16")
    mixed.compile("adam", "sparse_categorical_crossentropy")
    y = np.array([0, 1])
    cb = ConvVizCallback(str(tmp_path), X, methods={"deconv": {}, "occlusion": {"patch": 4, "stride": 4},
                                                   "topk": {"k": 2}, "saliency": {}}, maps=2, heldout=X)
    mixed.fit(X, y, epochs=1, verbose=0, callbacks=[cb])
    assert not cb.failed, cb.failed
