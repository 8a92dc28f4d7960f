"""Issue 25: every model and photo a user brings, no silent wrong answers.

One test (or a few) per class of failure, named after it: non-ASCII file
names, 1- and 4-channel models, several inputs, a single-unit sigmoid head and
a non-image input, flexible-size model files, and the outputs (extreme
aspect, long names, symlink loops, boxfilter naming, a signal mid-write).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import layers
from PIL import Image

from fixtures import convviz

SIDE = 24


def cnn(channels=3, sigmoid=False, flexible=False, seed=0):
    """A small CNN on ``channels``-channel images; a 3-way softmax or a single-unit sigmoid head."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((None, None, channels) if flexible else (SIDE, SIDE, channels))
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    x = layers.MaxPooling2D(2, name="p1")(x)
    x = layers.Conv2D(5, 3, padding="same", activation="relu", name="c2")(x)
    x = layers.GlobalAveragePooling2D()(x) if flexible else layers.Flatten()(x)
    head = layers.Dense(1, activation="sigmoid", name="pred") if sigmoid else \
        layers.Dense(3, activation="softmax", name="pred")
    return keras.Model(inp, head(x), name="user")


def two_inputs():
    a, b = keras.Input((SIDE, SIDE, 3)), keras.Input((SIDE, SIDE, 3))
    x = layers.Concatenate()([layers.Conv2D(4, 3, name="ca")(a), layers.Conv2D(4, 3, name="cb")(b)])
    return keras.Model([a, b], layers.Dense(3, name="logits")(layers.Flatten()(x)), name="pair")


def photo(path, size=(30, 40), seed=0):
    pixels = (np.random.default_rng(seed).random(size + (3,)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("user-models")
    saved = {"gray": cnn(1), "rgba": cnn(4), "flex": cnn(3, flexible=True), "sigmoid": cnn(3, sigmoid=True),
             "pair": two_inputs()}
    vector = keras.Input((10,))
    saved["vector"] = keras.Model(vector, layers.Dense(3)(vector), name="vector")
    paths = {name: root / f"{name}.keras" for name in saved}
    for name, model in saved.items():
        model.save(paths[name])
    paths["photo"] = photo(root / "photo.png")
    return paths


def pngs(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".png"))


def one_line_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for word in words:
        assert word in lines[0], lines[0]


# ---------------------------------------------------------------- 1. non-ASCII file names
@pytest.mark.slow
def test_non_ascii_file_names_keep_their_names_and_do_not_collide(tmp_path):
    cat, dog = photo(tmp_path / "猫.png", seed=1), photo(tmp_path / "犬.png", seed=2)
    out = tmp_path / "out"
    for image in (cat, dog):
        r = convviz("saliency", image, "--model", "demo", "--out", out)
        assert r.returncode == 0, r.stderr
    assert pngs(out) == sorted(["犬_saliency.png", "犬_saliency_overlay.png", "猫_saliency.png",
                                "猫_saliency_overlay.png"])
    # two different photos: two different maps (the second did not overwrite the first)
    assert not np.array_equal(np.asarray(Image.open(out / "猫_saliency.png")),
                              np.asarray(Image.open(out / "犬_saliency.png")))


def test_non_ascii_slug_strips_only_separators_and_control_characters():
    from keras_convviz.commands import slug

    assert slug("猫") == "猫" and slug("Straße") == "Straße" and slug("犬") != slug("猫")
    assert slug("a/b\\c\x00d\x1fe") == "a_b_c_d_e"
    assert "/" not in slug("../../etc/passwd") and slug("") == "x"


def test_non_ascii_same_name_twice_in_one_run_gets_a_suffix(tmp_path):
    import argparse

    from keras_convviz.commands import output_name

    args = argparse.Namespace(out=str(tmp_path), image="猫.png", frame=None)
    first, second = output_name(args, "a/b"), output_name(args, "a_b")  # both slugify to a_b
    assert os.path.basename(first) == "猫_a_b.png" and os.path.basename(second) == "猫_a_b_2.png"
    fresh = argparse.Namespace(out=str(tmp_path), image="猫.png", frame=None)  # a new run starts over
    assert output_name(fresh, "a_b") == first


# ---------------------------------------------------------------- 2. 1- and 4-channel models
def test_grayscale_model_input_is_bt601_luminance(files):
    from keras_convviz import presets

    preset = presets.load(str(files["gray"]))
    image = np.asarray(Image.open(files["photo"]).convert("RGB"))
    x = preset.prepare([image], fit="stretch")
    assert x.shape == (1, SIDE, SIDE, 1)
    # oracle: PIL's own "L" conversion (ITU-R 601) of the resized photo, then the model's x/255
    resized = Image.fromarray(image).resize((SIDE, SIDE), Image.BILINEAR)
    expected = np.asarray(resized.convert("L"), np.float32) / 255.0
    np.testing.assert_allclose(x[0, ..., 0], expected, atol=1.0 / 255 + 1e-6)
    assert preset.fitted(np.full((5, 5, 3), (255, 0, 0), np.uint8), preset.placement(np.zeros((5, 5, 3)), "stretch"))[
        0, 0, 0] == pytest.approx(0.299, abs=1e-6)


def test_rgba_model_input_is_rgb_plus_opaque_alpha(files):
    from keras_convviz import presets

    preset = presets.load(str(files["rgba"]))
    image = np.asarray(Image.open(files["photo"]).convert("RGB"))
    x = preset.prepare([image])  # letterboxed: the margins are the neutral pixel, also opaque
    assert x.shape == (1, SIDE, SIDE, 4)
    np.testing.assert_array_equal(x[..., 3], 1.0)  # alpha 255 -> x/255 = 1 everywhere
    rgb = presets.Preset("rgb", cnn(3), preset.preprocess, preset.deprocess, None, []).prepare([image])
    np.testing.assert_array_equal(x[..., :3], rgb)  # the colour channels are the RGB model's input


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gray", "rgba"])
def test_grayscale_and_rgba_models_run_every_image_command(files, tmp_path, kind):
    for command, extra in (("saliency", ()), ("gradcam", ()), ("occlusion", ()), ("deconv", ("--maps", "2"))):
        out = tmp_path / command
        r = convviz(command, files["photo"], "--model", files[kind], "--out", out, *extra)
        assert r.returncode == 0, (command, r.stderr)
        for name in pngs(out):  # drawn back on the RGB photo
            with Image.open(out / name) as written:
                assert written.mode == "RGB", (command, name, written.mode)
    saliency = np.asarray(Image.open(tmp_path / "saliency" / "photo_saliency.png"))
    assert saliency.std() > 0  # a real map, not a blank


# ---------------------------------------------------------------- 3. two-input models
@pytest.mark.parametrize("method", ["saliency", "gradcam", "occlusion", "deconv"])
def test_two_input_models_are_refused_naming_the_way_out(method):
    import keras_convviz as kc

    model = two_inputs()
    x = np.zeros((1, SIDE, SIDE, 3), np.float32)
    calls = {"saliency": lambda: kc.saliency(model, x), "gradcam": lambda: kc.gradcam(model, x, layer="ca"),
             "occlusion": lambda: kc.occlusion(model, x, None, 6, 6), "deconv": lambda: kc.deconv(model, x, "ca")}
    with pytest.raises(ValueError, match="2 inputs"):
        calls[method]()


@pytest.mark.slow
def test_two_input_models_cli_exit_2(files, tmp_path):
    r = convviz("saliency", files["photo"], "--model", files["pair"], "--out", tmp_path / "out")
    one_line_error(r, "2 inputs", "one image input")
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


# ---------------------------------------------------------------- 4. sigmoid heads, non-image inputs
def test_single_unit_sigmoid_head_class_model_targets_0_and_1():
    import keras_convviz as kc

    model = cnn(3, sigmoid=True)
    result = kc.class_model(model, [0, 1], steps=4)
    p = np.asarray(model(result.images), np.float64)[:, 0]
    logit = np.log(p / (1 - p))
    # oracle: target 1 is the logit, target 0 its negation (select.target_scores' convention)
    np.testing.assert_allclose(result.scores, [-logit[0], logit[1]], rtol=1e-3, atol=1e-4)
    sal0, sal1 = kc.saliency(model, result.images[:1], target=0), kc.saliency(model, result.images[:1], target=1)
    np.testing.assert_allclose(sal0, sal1, rtol=1e-5, atol=1e-7)  # |d(-s)/dx| == |ds/dx|


@pytest.mark.slow
def test_single_unit_sigmoid_head_cli_targets(files, tmp_path):
    for target in ("0", "1"):
        r = convviz("saliency", files["photo"], "--model", files["sigmoid"], "--target", target,
                    "--out", tmp_path / target)
        assert r.returncode == 0, r.stderr
        assert f"class {target}" in r.stdout


@pytest.mark.slow
def test_non_image_input_model_is_a_one_line_error(files, tmp_path):
    for command in ("saliency", "occlusion"):
        r = convviz(command, files["photo"], "--model", files["vector"], "--out", tmp_path / "out")
        one_line_error(r, "(10,)", "not an image")


# ---------------------------------------------------------------- 5. flexible-size model files
@pytest.mark.slow
def test_flexible_size_models_run_every_command(files, tmp_path):
    runs = [("saliency",), ("gradcam",), ("occlusion",), ("guided",), ("deconv", "--maps", "2"),
            ("boxfilter", "forward", "--crop", "2,2,6,6")]
    for run in runs:
        out = tmp_path / run[0]
        r = convviz(*run[:1], *(run[1:2] if run[0] == "boxfilter" else ()), files["photo"], "--model",
                    files["flex"], "--out", out, *(run[2:] if run[0] == "boxfilter" else run[1:]))
        assert r.returncode == 0, (run, r.stderr)
        assert pngs(out), run
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        photo(folder / f"p{i}.png", seed=i)
    r = convviz("topk", folder, "--model", files["flex"], "--k", "2", "--maps", "2", "--size", "32,32",
                "--out", tmp_path / "topk")
    assert r.returncode == 0, r.stderr


def test_flexible_size_pinned_model_computes_the_same_function():
    from keras_convviz import presets

    model = cnn(3, flexible=True)
    preset = presets.Preset("flex", model, lambda x: x / 255.0, None, None, [])
    image = (np.random.default_rng(3).random((30, 40, 3)) * 255).astype(np.uint8)
    placement = preset.placement(image)
    assert placement.size == (30, 40)  # run at the photo's own size
    pinned = preset.pinned(placement.size)
    assert tuple(pinned.model.inputs[0].shape[1:]) == (30, 40, 3)
    x = preset.prepare([image])
    np.testing.assert_allclose(pinned.model(x), model(x), rtol=1e-6)


# ---------------------------------------------------------------- 6. outputs
@pytest.mark.slow
@pytest.mark.parametrize("size", [(1, 1000), (5000, 10)])
def test_outputs_extreme_aspect_pictures_are_capped(tmp_path, size):
    image = photo(tmp_path / "strip.png", size=size)
    for command in ("saliency", "deconv"):
        out = tmp_path / command
        r = convviz(command, image, "--model", "demo", "--out", out, *(("--maps", "2") if command == "deconv" else ()))
        assert r.returncode == 0, r.stderr
        for name in pngs(out):
            with Image.open(out / name) as written:
                assert max(written.size) <= 1024, (name, written.size)


def test_outputs_capped_keeps_aspect_and_small_pictures():
    from keras_convviz import media

    small = np.zeros((10, 20, 3), np.uint8)
    assert media.capped(small) is not None and media.capped(small).shape == (10, 20, 3)
    big = np.zeros((2, 3000, 3), np.uint8)
    assert media.capped(big).shape == (1, 1024, 3)
    assert media.capped(np.zeros((4096, 2048), np.uint8)).shape == (1024, 512)


@pytest.mark.slow
def test_outputs_long_input_names_write_every_output(tmp_path):
    name = "é" * 120 + ".png"  # 244 bytes: a valid name, too long once "_saliency_overlay" is added
    image = photo(tmp_path / name)
    out = tmp_path / "out"
    r = convviz("saliency", image, "--model", "demo", "--out", out)
    assert r.returncode == 0, r.stderr
    written = pngs(out)
    assert len(written) == 2 and all(len(n.encode()) <= 200 for n in written), written
    assert written[0].startswith("é" * 20) and any(n.endswith("_overlay.png") for n in written)


def test_outputs_long_names_stay_distinct():
    from keras_convviz.commands import MAX_NAME_BYTES, fit_name

    a, b = fit_name("x" * 300 + "a", "_saliency.png"), fit_name("x" * 300 + "b", "_saliency.png")
    assert a != b and len(a.encode()) <= MAX_NAME_BYTES and a.endswith("_saliency.png")
    assert fit_name("short", "_saliency.png") == "short_saliency.png"
    assert len(fit_name("猫" * 200, "_" + "y" * 300 + ".png").encode()) <= MAX_NAME_BYTES


@pytest.mark.slow
def test_outputs_topk_symlink_loop_counts_each_photo_once(tmp_path):
    from keras_convviz.commands.topk import find_images

    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    photo(tree / "a.png", seed=1)
    photo(tree / "sub" / "b.png", seed=2)
    os.symlink(tree, tree / "sub" / "loop")  # tree/sub/loop/sub/loop/... is tree again
    os.symlink(tree / "a.png", tree / "alias.png")
    found = find_images(str(tree) + "/**/*.png")
    assert sorted(os.path.realpath(p) for p in found) == sorted([str(tree / "a.png"), str(tree / "sub" / "b.png")])
    assert len(find_images(str(tree))) == 2
    r = convviz("topk", str(tree) + "/**/*.png", "--model", "demo", "--k", "2", "--maps", "1",
                "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    table = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    assert table["images"] == 2


@pytest.mark.slow
def test_outputs_boxfilter_named_after_each_input(tmp_path):
    out = tmp_path / "out"
    for i in range(2):
        r = convviz("boxfilter", "forward", "--crop", "2,2,8,8", photo(tmp_path / f"p{i}.png", seed=i),
                    "--model", "demo", "--out", out)
        assert r.returncode == 0, r.stderr
    assert pngs(out) == ["p0_conv_maps.png", "p0_conv_maps_ratio.png", "p1_conv_maps.png", "p1_conv_maps_ratio.png"]


WRITER = textwrap.dedent("""
    import os, signal, sys
    from keras_convviz import cli, media
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, cli.exit_on_signal)
    data = os.urandom(1 << 20)
    print("ready", flush=True)
    i = 0
    while True:
        media.atomic_write(os.path.join(sys.argv[1], f"f{i % 4}.bin"), data)
        i += 1
""")


@pytest.mark.parametrize("delay", [0.05, 0.13, 0.31])
def test_outputs_sigterm_mid_write_leaves_no_partial_file(tmp_path, delay):
    import time

    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=30)
    assert code == 128 + signal.SIGTERM, (code, proc.stderr.read())
    names = os.listdir(tmp_path)
    assert not [n for n in names if n.endswith(".part")], names
    assert all(os.path.getsize(tmp_path / n) == 1 << 20 for n in names)  # only complete files
