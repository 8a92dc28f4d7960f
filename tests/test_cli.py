"""The `convviz` command through a real subprocess: output and exit codes."""


import pytest

from fixtures import convviz


@pytest.mark.slow
def test_layers_demo_prints_the_table():
    result = convviz("layers", "--model", "demo")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split()[:4] == ["layer", "type", "output", "kernel/stride"]
    row = next(l for l in lines if l.startswith("block2_pool")).split()
    # block2_pool of the demo CNN: 2x2/2 pool, field 16 px, stride 4, padding 2+... from the walk
    assert row[1:5] == ["MaxPooling2D", "16x16x32", "2/2", "16"] and row[5] == "4"
    assert result.stderr == ""


@pytest.mark.slow
def test_layers_vgg16_without_weights_offline():
    result = convviz("layers", "--model", "vgg16", "--weights", "none")
    assert result.returncode == 0, result.stderr
    row = next(l for l in result.stdout.splitlines() if l.startswith("block5_pool")).split()
    assert row[4:7] == ["212", "32", "90"]


@pytest.mark.parametrize("args, message", [
    (("layers", "--model", "resnet9000"), "unknown model 'resnet9000'"),
    (("layers", "--model", "/nonexistent/model.keras"), "does not exist"),
    (("layers", "--model", "demo", "--weights", "/nonexistent.h5"), "does not exist"),
])
@pytest.mark.slow
def test_bad_input_exits_2_with_one_line(args, message):
    result = convviz(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.slow
def test_corrupt_model_file(tmp_path):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"this is not a zip file")
    result = convviz("layers", "--model", str(bad))
    assert result.returncode == 2 and "cannot load model file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    debug = convviz("--debug", "layers", "--model", str(bad))
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_download_failure_names_the_alternatives():
    from keras_convviz import presets

    # the message is built from the download's exception alone, so no weights are requested here
    error = presets.download_error("vgg16", Exception(
        "URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]\nsecond line"))
    text = str(error)
    assert "--weights none" in text and "--model demo" in text and "--weights PATH" in text
    assert "vgg16" in text and "URL fetch failure" in text
    assert "\n" not in text and "second line" not in text


@pytest.mark.parametrize("args", [
    ["deconv", "{img}"],
    ["saliency", "{img}"],
    ["occlusion", "{img}", "--patch", "8", "--stride", "8"],
    ["boxfilter", "forward", "--layer", "block1_pool", "--crop", "0,0,8,8", "{img}"],
    ["classmodel", "--target", "0"],
    ["invert", "{img}", "--layer", "block1_pool"],
    ["topk", "{dir}", "--layer", "block1_pool"],
])
def test_out_that_is_a_file_fails_before_any_work(tmp_path, capsys, args):
    from keras_convviz import cli, demo, media

    media.save_png(tmp_path / "in" / "shape.png", demo.shapes(1, seed=0)[0][0])
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    argv = [a.format(img=tmp_path / "in" / "shape.png", dir=tmp_path / "in") for a in args]
    assert cli.main(argv + ["--model", "demo", "--out", str(blocker)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists and is not a folder" in err[0]
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("command", ["featurevis", "classmodel"])
def test_help_states_the_class_recipe_it_runs(command, capsys):
    """``--help`` spells the recipe out as text (it must not import TensorFlow), so it can drift from it."""
    from keras_convviz.cli import build_parser
    from keras_convviz.methods.featurevis import CLASS_RECIPE

    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"temperature {CLASS_RECIPE['temperature']:g}" in text
    if command == "featurevis":
        assert f"{CLASS_RECIPE['lr']:g} for classes" in text
        assert f"(default: {CLASS_RECIPE['steps']})" in text
