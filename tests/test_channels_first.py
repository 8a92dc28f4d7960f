"""``channels_first`` layers: refused by every method with one message, never a map of the wrong shape."""

import keras
import numpy as np
import pytest
from keras import layers

import keras_convviz as kc


def channels_first_model():
    x = inputs = keras.Input((3, 12, 12))
    x = layers.Conv2D(4, 3, padding="same", activation="relu", data_format="channels_first", name="c1")(x)
    x = layers.GlobalAveragePooling2D(data_format="channels_first", name="gap")(x)
    return keras.Model(inputs, layers.Dense(2, activation="softmax", name="predictions")(x))


@pytest.mark.parametrize("method", ["saliency", "gradcam", "smoothgrad", "guided_backprop", "occlusion",
                                    "deconv", "receptive_fields", "capture"])
def test_every_method_refuses_channels_first_with_the_same_message(method):
    model, x = channels_first_model(), np.zeros((1, 3, 12, 12), np.float32)
    calls = {"saliency": lambda: kc.saliency(model, x, 0), "gradcam": lambda: kc.gradcam(model, x, 0),
             "smoothgrad": lambda: kc.smoothgrad(model, x, 0, samples=2),
             "guided_backprop": lambda: kc.guided_backprop(model, x, 0),
             "occlusion": lambda: kc.occlusion(model, x, 0, 4, 4), "deconv": lambda: kc.deconv(model, x, "c1"),
             "receptive_fields": lambda: kc.receptive_fields(model), "capture": lambda: kc.capture(model, x, ["c1"])}
    with pytest.raises(ValueError, match=r"layer 'c1' uses data_format='channels_first'.*channels_last"):
        calls[method]()
