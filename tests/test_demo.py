"""The offline demo: deterministic data with true boxes, and the shipped model."""

import numpy as np
import pytest

from keras_convviz import demo


def test_shapes_are_deterministic_and_boxed():
    images, labels, boxes = demo.shapes(40, seed=7)
    again = demo.shapes(40, seed=7)
    np.testing.assert_array_equal(images, again[0])
    np.testing.assert_array_equal(labels, again[1])
    assert images.dtype == np.float32 and images.shape == (40, 64, 64, 3)
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert set(labels.tolist()) == set(range(len(demo.CLASS_NAMES)))
    assert not np.array_equal(images, demo.shapes(40, seed=8)[0])
    # the object changes pixels only inside its box: rebuild the background
    for i in range(5):
        y0, x0, y1, x1 = boxes[i]
        assert 0 <= y0 < y1 <= 64 and 0 <= x0 < x1 <= 64
    # drawing the same background without the shape: differences sit in the box
    rng = np.random.default_rng(7)
    rng.integers(0, len(demo.CLASS_NAMES), size=40)
    side = int(rng.integers(16, 33))
    rng.integers(0, 64 - side + 1, size=2)
    background = demo._background(rng)
    changed = np.abs(images[0] - background).max(-1) > 1e-6
    rows, cols = np.nonzero(changed)
    y0, x0, y1, x1 = boxes[0]
    assert rows.min() >= y0 and rows.max() < y1 and cols.min() >= x0 and cols.max() < x1
    assert changed.sum() > 0.2 * (y1 - y0) * (x1 - x0)


def test_bad_count():
    with pytest.raises(ValueError):
        demo.shapes(-1)


def test_shipped_model_accuracy_and_size():
    model = demo.load_model()
    images, labels, _ = demo.shapes(400, seed=12345)
    accuracy = (model.predict(images, verbose=0).argmax(-1) == labels).mean()
    assert accuracy >= 0.95, accuracy
    assert demo.weights_path().stat().st_size <= 2_000_000
    kinds = {type(l).__name__ for l in model.layers}
    assert {"MaxPooling2D", "BatchNormalization", "Conv2D"} <= kinds
