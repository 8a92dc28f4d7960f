"""Zeiler & Fergus 2014 fig. 5 (invariance): identity, periodicity, a hand computation, symmetry, CLI, callback."""

import numpy as np
import pytest

from keras_convviz import invariance
from keras_convviz.methods.invariance import default_layers, transform_matrices, transformed
from keras_convviz.graph import walk


@pytest.fixture(scope="module")
def small():
    import keras

    keras.utils.set_random_seed(3)
    inp = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    h = keras.layers.MaxPooling2D(name="p1")(h)
    h = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c2")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    out = keras.layers.Dense(5, activation="softmax", name="head")(h)
    return keras.Model(inp, out)


def _images(n=3, size=16, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


def test_identity_gives_zero_distance_and_the_models_probability(small):
    x = _images()
    r = invariance(small, x, transforms={"translate": [0.0], "scale": [1.0], "rotate": [0.0]}, batch_size=2)
    assert r.layers == ("c1", "gap") and default_layers(walk(small)) == ("c1", "gap")
    probs = small.predict(x, verbose=0)
    np.testing.assert_allclose(r.base_probability, probs.max(1), rtol=1e-5)
    for t in r.transforms:
        np.testing.assert_allclose(r.distance[t], 0.0, atol=1e-5)
        np.testing.assert_allclose(r.probability[t][:, 0], probs.max(1), rtol=1e-5)


def test_rotation_by_360_degrees_is_no_rotation(small):
    x = _images()
    r = invariance(small, x, target=[0, 1, 2], transforms={"rotate": [0.0, 90.0, 360.0, 450.0]})
    np.testing.assert_allclose(r.distance["rotate"][:, :, 2], 0.0, atol=1e-5)
    np.testing.assert_allclose(r.distance["rotate"][:, :, 3], r.distance["rotate"][:, :, 1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r.probability["rotate"][:, 2], r.probability["rotate"][:, 0], rtol=1e-5)
    assert np.all(r.distance["rotate"][:, :, 1] > 1e-3)
    np.testing.assert_array_equal(transform_matrices("rotate", [360.0], (8, 8)), transform_matrices("rotate", [0], (8, 8)))


def test_distances_equal_a_hand_computation(small):
    """Integer vertical shifts with the fill, by hand in numpy, through a Keras sub-model."""
    import keras

    x, fill = _images(2), np.array([0.1, -0.2, 0.3], np.float32)
    shifts = [-3.0, 0.0, 2.0, 5.0]
    r = invariance(small, x, target=4, transforms={"translate": shifts}, layers=["c1", "c2", "gap"], fill=fill,
                   batch_size=3)
    sub = keras.Model(small.input, [small.get_layer(n).output for n in ("c1", "c2", "gap")])
    ref = [f.reshape(len(x), -1) for f in sub.predict(x, verbose=0)]
    for k, s in enumerate(shifts):
        moved = np.empty_like(x)
        moved[:] = fill
        s = int(s)
        if s >= 0:
            moved[:, s:] = x[:, :16 - s]
        else:
            moved[:, :16 + s] = x[:, -s:]
        np.testing.assert_allclose(transformed(x, "translate", [s], fill)[:, 0], moved, atol=1e-6)
        feats = [f.reshape(len(x), -1) for f in sub.predict(moved, verbose=0)]
        for l, (a, b) in enumerate(zip(ref, feats)):
            np.testing.assert_allclose(r.distance["translate"][:, l, k], np.linalg.norm(a - b, axis=1),
                                       rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(r.relative["translate"][:, l, k],
                                       np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(r.probability["translate"][:, k], small.predict(moved, verbose=0)[:, 4], rtol=1e-4)


def test_flipping_a_symmetric_image_changes_nothing(small):
    x = _images(2)
    x = (x + x[:, :, ::-1]) / 2  # mirror-symmetric left-right
    r = invariance(small, x, transforms=("flip",))
    np.testing.assert_allclose(transformed(x, "flip", [1.0])[:, 0], x, atol=1e-6)
    np.testing.assert_allclose(r.distance["flip"], 0.0, atol=1e-5)
    np.testing.assert_allclose(r.probability["flip"][:, 1], r.base_probability, rtol=1e-5)


def test_one_compiled_call_is_reused(small):
    x = _images(2)
    invariance(small, x, steps=4)
    fn = [v for k, v in walk(small).cache.items() if k[0] == "invariance"][0]
    before = fn.experimental_get_tracing_count()
    invariance(small, _images(3, seed=1), steps=6, batch_size=5)
    assert fn.experimental_get_tracing_count() == before


def test_bad_input_names_the_fix(small):
    x = _images(1)
    with pytest.raises(ValueError, match="choose from"):
        invariance(small, x, transforms=("shear",))
    with pytest.raises(ValueError, match="fill must be"):
        invariance(small, x, fill=[1.0, 2.0])
    with pytest.raises(ValueError, match="unknown layer"):
        invariance(small, x, layers=["nope"])
    with pytest.raises(ValueError, match="scale factors"):
        invariance(small, x, transforms={"scale": [0.0]})


def test_figure_and_cli(tmp_path):
    from keras_convviz import cli, demo

    from keras_convviz.media import save_png

    path = tmp_path / "shape.png"
    save_png(str(path), (demo.shapes(1, seed=2)[0][0] * 255).astype(np.uint8))
    assert cli.main(["invariance", str(path), "--steps", "4", "--out", str(tmp_path)]) == 0
    from PIL import Image

    img = np.asarray(Image.open(tmp_path / "shape_invariance.png"))
    assert img.shape[0] > 3 * 200 and 4 * 250 < img.shape[1] <= 1024  # 3 rows x 4 panels, at full size
    data = np.load(tmp_path / "shape_invariance.npz")
    assert data["distance_translate"].shape == (2, 4)
    assert cli.main(["invariance", str(path), "--transforms", "shear", "--out", str(tmp_path)]) == 2


@pytest.mark.slow
def test_callback_logs_invariance_scalars(tmp_path, demo_model):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from keras_convviz import ConvVizCallback, demo

    x, y, _ = demo.shapes(8, seed=1)
    model = demo_model
    model.compile("adam", "sparse_categorical_crossentropy")
    weights = model.get_weights()
    cb = ConvVizCallback(str(tmp_path), x[:2], methods={"invariance": {"steps": 3}, "filters": {}})
    model.fit(x, y, epochs=2, verbose=0, callbacks=[cb])
    model.set_weights(weights)
    assert not cb.failed
    acc = EventAccumulator(str(tmp_path / "convviz"), size_guidance={"tensors": 0})
    acc.Reload()
    tags = acc.Tags()["tensors"]
    assert "convviz_invariance/rotate/gap/relative_distance" in tags
    assert len(acc.Tensors("convviz_invariance/translate/probability")) == 2
    assert any(t.startswith("filters/block1_conv1") for t in tags)
    # the whole curves of each probe image travel in the PNGs of invariance/<score layer>/curves (the dashboard's
    # image page draws them), the filter statistics in the sheet's PNG (the tag's content stays fixed)
    from keras_convviz.loggers.annotate import png_data

    curves = [t for t in tags if t.startswith("invariance/") and t.endswith("/curves")]
    assert len(curves) == 1
    events = acc.Tensors(curves[0])
    assert len(events) == 2
    blobs = events[-1].tensor_proto.string_val
    assert len(blobs) == 2
    data = png_data(blobs[1])
    assert set(data["transforms"]) == {"translate", "scale", "rotate"} and len(data["layers"]) == 2
    rotate = data["transforms"]["rotate"]
    assert rotate["unit"] == "deg" and len(rotate["values"]) == 3 and len(rotate["probability"]) == 3
    assert rotate["relative"][data["layers"][0]][0] == pytest.approx(0.0, abs=1e-5)  # 0 degrees: no change
    sheet = png_data(acc.Tensors("filters/block1_conv1/kernels")[-1].tensor_proto.string_val[0])
    assert sheet["count"] == len(sheet["norm"]) == len(sheet["high_frequency"]) and sheet["sheet"]["cell"] > 0
