"""Box-filter maps (issue 4): all MobileNet maps up to conv_pw_13 vs one forward pass; batching."""

from __future__ import annotations

import numpy as np

from common import interleaved_medians, row


def rows(quick=False):
    import keras
    import tensorflow as tf

    from keras_convviz import box_filter

    model = keras.applications.MobileNet(weights=None, input_shape=(224, 224, 3))
    x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32))
    plain = tf.function(lambda t: model(t, training=False))
    crop = (144, 64, 64, 144)
    repeat = 5 if quick else 15
    out = []

    fwd, ref = interleaved_medians(
        [lambda: box_filter(model, "conv_pw_13", crop), lambda: plain(x).numpy()], repeat=repeat)
    ratio = fwd / ref
    out.append(row("box filter forward, MobileNet@224 every layer to conv_pw_13 (27 distinct maps + input), 1 crop vs model(x)",
                   f"{ratio:.2f}x ({fwd * 1e3:.1f} ms vs {ref * 1e3:.1f} ms)", "<= 0.5x", ratio <= 0.5))

    back, ref = interleaved_medians(
        [lambda: box_filter(model, "conv_pw_13", (3, 1, 3, 5), mode="backward"), lambda: plain(x).numpy()],
        repeat=repeat)
    ratio = back / ref
    out.append(row("box filter backward, MobileNet@224 conv_pw_13 down to the input, 1 crop vs model(x)",
                   f"{ratio:.2f}x ({back * 1e3:.1f} ms vs {ref * 1e3:.1f} ms)", "<= 0.5x", ratio <= 0.5))

    rng = np.random.default_rng(1)
    crops = [(int(a), int(b), int(c), int(d)) for a, b, c, d in
             zip(rng.integers(0, 160, 64), rng.integers(0, 160, 64), rng.integers(1, 64, 64), rng.integers(1, 64, 64))]

    def singles():
        for c in crops:
            box_filter(model, "conv_pw_13", c)

    batched, single = interleaved_medians(
        [lambda: box_filter(model, "conv_pw_13", crops), singles], repeat=3 if quick else 5, warmup=1)
    ratio = batched / single
    out.append(row("box filter forward, MobileNet@224, a batch of 64 crops vs 64 single calls",
                   f"{ratio:.2f}x ({batched * 1e3:.0f} ms vs {single * 1e3:.0f} ms)", "<= 0.25x", ratio <= 0.25))
    return out
