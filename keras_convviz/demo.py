"""The offline demo: synthetic shapes and a small VGG-style CNN trained on them.

``shapes(n, seed)`` draws deterministic 64x64 RGB images, each with one shape
(circle, square, triangle, cross) at a random position, size and colour on a
textured background, with the shape's bounding box so that localization can be
scored. ``load_model()`` returns the CNN with the weights shipped in the
package (trained by ``examples/train_demo.py``), so nothing is downloaded.
"""

from __future__ import annotations

import importlib.resources
import math

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["CLASS_NAMES", "SIZE", "shapes", "shape_mask", "build_model", "load_model", "train", "WEIGHTS",
           "SAMPLE_PHOTOS", "sample_names", "write_samples"]

CLASS_NAMES = ("circle", "square", "triangle", "cross")
SIZE = 64
WEIGHTS = "demo.weights.h5"
SAMPLE_PHOTOS = ("chelsea", "coffee", "camera", "astronaut", "rocket")  # bundled with scikit-image, offline


def _background(rng):
    """Low-frequency colour noise plus faint stripes: texture, but no shapes."""
    coarse = rng.uniform(0.15, 0.6, size=(4, 4, 3))
    img = Image.fromarray((coarse * 255).astype(np.uint8)).resize((SIZE, SIZE), Image.BICUBIC)
    base = np.asarray(img, dtype=np.float32) / 255.0
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    angle, freq = rng.uniform(0, math.pi), rng.uniform(0.3, 0.8)
    stripes = 0.06 * np.sin(freq * (xx * math.cos(angle) + yy * math.sin(angle)))
    noise = rng.normal(0, 0.03, size=(SIZE, SIZE, 3))
    return np.clip(base + stripes[..., None] + noise, 0, 1)


def shape_mask(label, box):
    """The ``(64, 64, 1)`` 0/1 float mask of class ``label``'s shape inside ``box = (y0, x0, y1, x1)``."""
    y0, x0, y1, x1 = box
    mask = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(mask)
    if label == 0:
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=255)
    elif label == 1:
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=255)
    elif label == 2:
        draw.polygon([((x0 + x1 - 1) / 2, y0), (x0, y1 - 1), (x1 - 1, y1 - 1)], fill=255)
    else:
        w = max((x1 - x0) // 3, 2)
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        draw.rectangle([cx - w // 2, y0, cx - w // 2 + w - 1, y1 - 1], fill=255)
        draw.rectangle([x0, cy - w // 2, x1 - 1, cy - w // 2 + w - 1], fill=255)
    return np.asarray(mask, dtype=np.float32)[..., None] / 255.0


def shapes(n, seed=0):
    """``(images, labels, boxes)``: ``n`` deterministic synthetic images.

    ``images`` are float32 ``(n, 64, 64, 3)`` in [0, 1] (the demo model's input
    space), ``labels`` int ``(n,)`` indexes ``CLASS_NAMES``, and ``boxes`` int
    ``(n, 4)`` holds each shape's ``(y0, x0, y1, x1)`` in pixels, end exclusive.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    images = np.empty((n, SIZE, SIZE, 3), np.float32)
    labels = rng.integers(0, len(CLASS_NAMES), size=n)
    boxes = np.empty((n, 4), np.int64)
    for i in range(n):
        side = int(rng.integers(16, 33))
        y0, x0 = (int(v) for v in rng.integers(0, SIZE - side + 1, size=2))
        boxes[i] = (y0, x0, y0 + side, x0 + side)
        background = _background(rng)
        # a saturated colour that stands out from the muted background
        colour = rng.uniform(0.0, 1.0, size=3)
        colour[rng.integers(0, 3)] = rng.uniform(0.85, 1.0)
        colour[rng.integers(0, 3)] = rng.uniform(0.0, 0.15)
        mask = shape_mask(int(labels[i]), boxes[i])
        images[i] = background * (1 - mask) + colour * mask
    return images, labels.astype(np.int64), boxes


def build_model():
    """The demo CNN: three VGG-style blocks with BatchNorm and max pooling.

    Block 1 uses a standalone BatchNorm + ReLU, the later blocks fuse ReLU
    into Conv2D, so both forms are exercised. It ends in a softmax Dense; the
    methods still explain the pre-softmax logit.
    """
    import keras
    from keras import layers

    x = inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="block1_conv1")(x)
    x = layers.BatchNormalization(momentum=0.9, name="block1_bn1")(x)
    x = layers.ReLU(name="block1_relu1")(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="block1_conv2")(x)
    x = layers.MaxPooling2D(2, name="block1_pool")(x)
    for block, width in ((2, 32), (3, 64)):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{block}_conv1")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"block{block}_bn1")(x)
        x = layers.Activation("relu", name=f"block{block}_relu1")(x)
        x = layers.Conv2D(width, 3, padding="same", activation="relu", name=f"block{block}_conv2")(x)
        if block == 2:
            x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    outputs = layers.Dense(len(CLASS_NAMES), activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="convviz_demo")


def sample_names(photos=True):
    """The file names :func:`write_samples` writes: one shape per class, then (``photos``) the photographs."""
    return [f"{name}.png" for name in CLASS_NAMES + (SAMPLE_PHOTOS if photos else ())]


def write_samples(folder, seed=0):
    """Write images for the README's CLI examples into ``folder``; returns their paths.

    ``circle.png`` ... ``cross.png``: one 64x64 image per class, the first of
    each in ``shapes(64, seed)``; and, when scikit-image is installed, its
    bundled photographs ``chelsea.png``, ``coffee.png``, ``camera.png``,
    ``astronaut.png``, ``rocket.png`` (``SAMPLE_PHOTOS``; grayscale stays
    grayscale). Without scikit-image only the shapes are written.
    """
    import os

    os.makedirs(folder, exist_ok=True)
    images, labels, _ = shapes(64, seed=seed)
    pictures = {name: np.round(images[int(np.argmax(labels == c))] * 255).astype(np.uint8)
                for c, name in enumerate(CLASS_NAMES)}
    try:
        from skimage import data
    except ImportError:
        data = None
    if data is not None:
        pictures.update({name: getattr(data, name)() for name in SAMPLE_PHOTOS})
    written = []
    for name, picture in pictures.items():
        written.append(os.path.join(folder, f"{name}.png"))
        Image.fromarray(np.ascontiguousarray(picture)).save(written[-1])
    return written


def weights_path():
    return importlib.resources.files("keras_convviz") / "data" / WEIGHTS


def load_model():
    """The demo CNN with its shipped, trained weights (no download, no training)."""
    model = build_model()
    path = weights_path()
    if not path.is_file():
        raise ValueError(
            f"the demo weights {path} are missing from this install; reinstall "
            f"keras-convviz or run examples/train_demo.py to recreate them."
        )
    model.load_weights(str(path))
    return model


def train(model=None, n=2400, epochs=5, seed=1, batch_size=64, verbose=1, callbacks=(), validation=400):
    """Train the demo CNN from scratch on ``shapes(n, seed)``; returns the model.

    ``validation`` held-out images (``shapes(validation, seed + 1000)``) are
    scored after each epoch; 0 skips that.
    """
    import keras

    model = model or build_model()
    images, labels, _ = shapes(n, seed=seed)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    val = shapes(validation, seed=seed + 1000)[:2] if validation else None
    model.fit(
        images, labels, batch_size=batch_size, epochs=epochs, verbose=verbose,
        validation_data=val, callbacks=list(callbacks),
    )
    return model
