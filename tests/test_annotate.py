"""Numbers inside the logged PNGs (keras_convviz.loggers.annotate): round trip, class models, feature visualization."""

import io

import numpy as np
import pytest

from keras_convviz.loggers.annotate import class_model_images, optimized_data, png_data, png_with_data


def test_round_trip_keeps_the_picture_and_the_numbers():
    from PIL import Image

    image = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    png = png_with_data(image, {"objective": np.float32(1.5), "bad": float("nan"), "x": np.arange(3)})
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), image)
    assert Image.open(io.BytesIO(png)).text["convviz"].startswith("{")  # any PNG reader shows it
    assert png_data(png) == {"objective": 1.5, "bad": None, "x": [0, 1, 2]}
    assert png_data(png_with_data(png, {"a": 1})) == {"a": 1}  # PNG bytes given as they are
    assert png_data(b"not a png") is None
    with pytest.raises(ValueError, match="not a PNG"):
        png_with_data(b"GIF89a....", {})


def test_failure_is_not_above_the_random_image():
    assert optimized_data(1.0, 0.5, 0.9)["failed"] is False
    assert optimized_data(0.5, 0.5, 0.9)["failed"] is True
    assert optimized_data(0.5, None, 0.9)["failed"] is None


def test_class_model_images_carry_score_random_and_probability(demo_model):
    from keras_convviz.methods.classmodel import class_model

    result = class_model(demo_model, [2, 0], steps=3)
    pngs = class_model_images(result.rgb(), result)
    for i, (png, c) in enumerate(zip(pngs, (2, 0))):
        data = png_data(png)
        assert data["target"] == c and data["objective"] == pytest.approx(float(result.scores[i]))
        assert data["probability"] == pytest.approx(float(result.probabilities[i, c]))
        assert data["random"] == pytest.approx(float(result.random_scores[i]))
        assert data["failed"] == bool(result.failed[i])


@pytest.mark.slow
def test_callback_featurevis_cards_carry_objective_and_probability(tmp_path, demo_model):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from keras_convviz import ConvVizCallback, demo

    x, y, _ = demo.shapes(8, seed=1)
    demo_model.compile("adam", "sparse_categorical_crossentropy")
    weights = demo_model.get_weights()
    cb = ConvVizCallback(str(tmp_path), x[:2], maps=2,
                         methods={"featurevis": {"steps": 2, "classes": [1]}}, layers={"featurevis": "block2_conv2"})
    demo_model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    demo_model.set_weights(weights)
    assert not cb.failed
    acc = EventAccumulator(str(tmp_path / "convviz"), size_guidance={"tensors": 0})
    acc.Reload()
    tags = acc.Tags()["tensors"]
    maps = [t for t in tags if t.startswith("featurevis/block2_conv2/map")]
    classes = [t for t in tags if t.startswith("featurevis/") and t.endswith("class0001")]
    assert len(maps) == 2 and len(classes) == 1
    for tag in maps + classes:
        data = png_data(acc.Tensors(tag)[-1].tensor_proto.string_val[0])
        assert np.isfinite(data["objective"]) and np.isfinite(data["random"]) and 0 <= data["probability"] <= 1
        assert isinstance(data["failed"], bool)
    cls = png_data(acc.Tensors(classes[0])[-1].tensor_proto.string_val[0])
    assert cls["target"] == 1 and cls["top"] is not None
