"""Capture (activations of every block end + all switches) vs a plain model(inputs)."""

from __future__ import annotations

import numpy as np

from common import interleaved_medians, row


def rows(quick=False):
    import keras
    import tensorflow as tf

    from keras_convviz import capture, walk

    model = keras.applications.VGG16(weights=None)
    x = np.random.default_rng(0).uniform(-100, 100, (1, 224, 224, 3)).astype(np.float32)
    xt = tf.constant(x)
    plain = tf.function(lambda t: model(t, training=False))
    layers = walk(model).block_ends() + ["predictions"]
    ours, ref = interleaved_medians(
        [lambda: capture(model, x, layers), lambda: plain(xt).numpy()],
        repeat=5 if quick else 15,
    )
    ratio = ours / ref
    return [row("capture VGG16@224, 1 image, 6 layers + 5 switches vs model(x)",
                f"{ratio:.2f}x ({ours * 1e3:.0f} ms vs {ref * 1e3:.0f} ms)", "<= 1.1x", ratio <= 1.1)]
