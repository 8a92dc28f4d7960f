"""Deconvnet projections: speed on VGG16 (weights=None, 224) and the pointing game on the demo.

Speed is in units of one full-image backward pass from the same layer: a
plain Keras forward to the layer plus ``GradientTape`` back to the input,
compiled with ``tf.function`` (what one naive projection costs).
"""

from __future__ import annotations

import numpy as np

from common import interleaved_medians, row


def _backward_pass(model, layer):
    import keras
    import tensorflow as tf

    sub = keras.Model(model.inputs, model.get_layer(layer).output)

    @tf.function
    def backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            a = sub(x, training=False)
        return tape.gradient(a, x, output_gradients=a)

    return backward


def pointing_game(n=200, seed=123, dilate=4, layer="block3_conv2"):
    """Fraction of demo test images whose top-1 projection peaks inside the dilated box."""
    from keras_convviz import demo
    from keras_convviz.methods.deconv import peak, projections

    model = demo.load_model()
    images, _, boxes = demo.shapes(n, seed=seed)
    res = projections(model, images, layer, maps=1, activations=1, batch_size=50)
    hits = 0
    for p, (y0, x0, y1, x1) in zip(res.images, boxes):
        y, x = peak(p)
        hits += (y0 - dilate <= y < y1 + dilate) and (x0 - dilate <= x < x1 + dilate)
    return hits / n


def rows(quick=False):
    import keras
    import tensorflow as tf

    from keras_convviz import deconv

    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(weights=None)
    x = np.random.default_rng(0).uniform(-100, 100, (1, 224, 224, 3)).astype(np.float32)
    xt = tf.constant(x)
    repeat = 3 if quick else 7
    out = []

    layer = "block3_conv3"
    ref = _backward_pass(model, layer)
    ours, base = interleaved_medians(
        [lambda: deconv(model, x, layer, maps=64, activations=1, joint=False), lambda: ref(xt).numpy()],
        repeat=repeat,
    )
    ratio = ours / base
    out.append(row("deconv VGG16@224 block3_conv3: 64 separate top-1 projections vs 1 backward pass",
                   f"{ratio:.2f}x ({ours * 1e3:.0f} ms vs {base * 1e3:.0f} ms)", "<= 8x", ratio <= 8,
                   "naive loop ~64x"))

    layer = "block5_conv3"
    ref = _backward_pass(model, layer)
    ours, base = interleaved_medians(
        [lambda: deconv(model, x, layer, maps=9, activations=1, joint=True), lambda: ref(xt).numpy()],
        repeat=repeat,
    )
    ratio = ours / base
    out.append(row("deconv VGG16@224 block5_conv3: joint top-9 maps vs 1 backward pass",
                   f"{ratio:.2f}x ({ours * 1e3:.0f} ms vs {base * 1e3:.0f} ms)", "<= 1.3x", ratio <= 1.3))

    n = 50 if quick else 200
    score = pointing_game(n)
    out.append(row(f"deconv pointing game, demo block3_conv2 top-1, {n} test images, box +4 px",
                   f"{score:.3f}", ">= 0.9", score >= 0.9))
    return out
