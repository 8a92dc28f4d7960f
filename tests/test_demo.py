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


def test_write_samples_shapes_and_photos_are_readable(tmp_path):
    """``convviz demo``'s sample images (the README's CLI examples name them): one shape per class,
    scikit-image's photographs, each readable by the CLI's own reader at its own size."""
    from skimage import data

    from keras_convviz import media

    written = demo.write_samples(str(tmp_path / "samples"), seed=1)
    assert [p.rsplit("/", 1)[-1] for p in written] == demo.sample_names()
    images, labels, _ = demo.shapes(64, seed=1)
    for c, name in enumerate(demo.CLASS_NAMES):
        picture = media.read_image(str(tmp_path / "samples" / f"{name}.png"))
        first = images[int(np.flatnonzero(labels == c)[0])]
        assert picture.shape == (64, 64, 3) and picture.dtype == np.uint8
        np.testing.assert_allclose(picture, first * 255, atol=0.5)  # the class's own shape, lossless
    chelsea = media.read_image(str(tmp_path / "samples" / "chelsea.png"))
    np.testing.assert_array_equal(chelsea, data.chelsea())
    camera = media.read_image(str(tmp_path / "samples" / "camera.png"))  # grayscale, converted on read
    assert camera.shape == (512, 512, 3)


def test_write_samples_without_scikit_image_writes_the_shapes_only(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "skimage", None)  # "import skimage" raises ImportError
    written = demo.write_samples(str(tmp_path))
    assert sorted(p.rsplit("/", 1)[-1] for p in written) == sorted(demo.sample_names(photos=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(demo.sample_names(photos=False))
