"""Issue 27, the CLI's edges: --version, examples in --help, pre-flight before TensorFlow, banners on
stderr, video frames (--frame ranges, topk --frames, the .gif note), --region in photo pixels."""

import json
import os
import shlex
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

from fixtures import convviz


def one_line(err):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 6-frame 64x48 mp4 (frame i grey 40 * i) and a 4-frame 40x30 GIF, in one folder."""
    import imageio.v2 as iio

    folder = tmp_path_factory.mktemp("media")
    writer = iio.get_writer(str(folder / "clip.mp4"), fps=5, macro_block_size=16)
    for i in range(6):
        writer.append_data(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.close()
    frames = [Image.new("RGB", (40, 30), (60 * i, 100, 50)) for i in range(4)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return folder


# ---------------------------------------------------------------- 1. --version
def test_version_is_the_package_version():
    from importlib import metadata

    proc = convviz("--version")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.strip() == f"convviz (keras-convviz) {metadata.version('keras-convviz')}"


def test_version_falls_back_to_setup_cfg(monkeypatch):
    import configparser
    from importlib import metadata

    from keras_convviz import cli

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    config = configparser.ConfigParser()
    config.read(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.cfg"))
    assert cli.version() == config.get("metadata", "version")


# ---------------------------------------------------------------- 2. examples in --help
def test_every_subcommand_help_ends_with_examples_that_parse():
    from keras_convviz import cli, demo
    from keras_convviz.helptext import EXAMPLES, examples_of

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    samples = {f"runs/demo/samples/{name}.png" for name in demo.CLASS_NAMES + demo.SAMPLE_PHOTOS}
    names = {}
    for name, command in sub.choices.items():  # a command's aliases (`integrated_gradients`) follow its name
        names.setdefault(id(command), name)
    assert not [n for n in names.values() if not examples_of(n)], "commands without examples (helptext / registry)"
    for name, command in ((n, sub.choices[n]) for n in names.values()):
        examples = examples_of(name)
        shown = command.format_help().rstrip().splitlines()
        commands = [line for line in examples if line.startswith("convviz ")]  # others prepare a file
        assert 1 <= len(commands) <= 3
        assert [line.strip() for line in shown[-len(examples):]] == examples, name
        for line in commands:
            argv = shlex.split(line)
            assert argv[:2] == ["convviz", name]
            args = cli.build_parser().parse_args(argv[1:])  # raises SystemExit on a bad example
            images = getattr(args, "images", None)  # correspondence's list (demo's --images is a count)
            inputs = [getattr(args, "image", None), getattr(args, "input", None)]
            inputs += images if isinstance(images, list) else []
            assert all(path is None or path in samples for path in inputs), line
    proc = convviz("gradcam", "--help")
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith(examples_of("gradcam")[-1]), proc.stdout


@pytest.mark.slow
def test_the_demo_net_examples_run(tmp_path, monkeypatch, capsys):
    """The examples on the demo net's sample images run as written (in the folder `convviz demo` fills)."""
    from keras_convviz import cli, demo
    from keras_convviz.helptext import EXAMPLES

    monkeypatch.chdir(tmp_path)
    demo.write_samples(os.path.join("runs", "demo", "samples"))
    quick = ("saliency", "guided", "gradcam", "boxfilter", "layers", "deconv", "topk", "occlusion", "filters",
             "correspondence")
    for name in quick:
        for line in EXAMPLES[name]:
            if "--model" in line:  # efficientnet-lite0 / hed: the real networks' tests run those
                continue
            if not line.startswith("convviz "):  # a shell line preparing a file (boxes.json)
                subprocess.run(line, shell=True, check=True, cwd=tmp_path)
                continue
            code = cli.main(shlex.split(line)[1:] + ([] if name == "layers" else ["--out", "ex"]))
            assert code == 0, (line, capsys.readouterr().err)


# ---------------------------------------------------------------- 3. pre-flight before TensorFlow
PREFLIGHT = textwrap.dedent("""
    import io, json, os, sys, time
    from contextlib import redirect_stderr
    from keras_convviz import cli
    results = []
    for argv in json.loads(sys.argv[1]):
        err = io.StringIO()
        start = time.perf_counter()
        with redirect_stderr(err):
            code = cli.main(argv)
        results.append([code, err.getvalue(), time.perf_counter() - start])
    results.append("tensorflow" in sys.modules or "keras" in sys.modules)
    print(json.dumps(results))
""")


def test_bad_files_and_arguments_fail_before_tensorflow(tmp_path, clip):
    photo = tmp_path / "p.png"
    Image.new("RGB", (20, 10)).save(photo)
    (tmp_path / "file").write_text("x")
    cases = [
        (["saliency", tmp_path / "missing.png"], "image", "does not exist"),
        (["saliency", tmp_path], "is not a file", ""),
        (["saliency", photo, "--out", tmp_path / "file"], "--out", "is not a folder"),
        (["saliency", photo, "--out", tmp_path / "file" / "sub"], "--out", "is a file, not a folder"),
        (["saliency", photo, "--model", tmp_path / "m.keras"], "model file", "does not exist"),
        (["saliency", photo, "--weights", tmp_path / "w.h5"], "weights file", "does not exist"),
        (["gradcam", photo, "--class-names", tmp_path / "names.txt"], "class names file", "does not exist"),
        (["saliency", clip / "clip.mp4"], "is a video", "--frame N"),
        (["occlusion", clip / "clip.mp4", "--frame", "1:x"], "--frame", "START:STOP[:STEP]"),
        (["ig", photo, "--steps", "0"], "--steps", ">= 1"),
        (["deconv", photo, "--maps", "many"], "--maps", "a count"),
        (["demo", "--epochs", "0"], "--epochs", ">= 1"),
        (["correspondence", photo, tmp_path / "nope.png", "--boxes", "b.json", "--layer", "c"], "nope.png",
         "does not exist"),
        (["demo", "--methods", "nope"], "--methods", "unknown nope"),
        (["topk", tmp_path / "no-such-folder"], "neither a folder", ""),
        (["boxfilter", "forward", "--crop", "0,0,4,4", tmp_path / "gone.jpg"], "does not exist", ""),
    ]
    argv = [[str(a) for a in case[0]] for case in cases]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", PREFLIGHT, json.dumps(argv)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    *results, tensorflow_loaded = json.loads(proc.stdout)
    for (args, *words), (code, err, _) in zip(cases, results):
        line = one_line(err)
        assert code == 2 and all(w in line for w in words), (args, err)
    assert not tensorflow_loaded  # every one of them answered without importing TensorFlow or Keras


def test_a_missing_image_answers_at_once(tmp_path):
    """The issue's target is 0.5 s; the bound is generous for a loaded 2-core machine (measured 0.29 s)."""
    start = time.perf_counter()
    proc = convviz("saliency", tmp_path / "missing.png", "--model", "efficientnet-lite0")
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2 and "does not exist" in one_line(proc.stderr)
    print(f"missing IMAGE answered in {elapsed:.2f} s wall (a fresh `convviz` process)")
    assert elapsed < 2.0, elapsed


def test_command_modules_import_without_tensorflow():
    code = ("import sys; from keras_convviz import cli; cli._commands(); cli.build_parser();"
            "import keras_convviz.preflight, keras_convviz.helptext;"
            "print(sorted(m for m in ('tensorflow', 'keras', 'numpy') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", (proc.stdout, proc.stderr)


# ---------------------------------------------------------------- 4. banners on stderr
def test_weights_none_banner_on_stderr_and_one_line_when_a_later_check_fails(tmp_path, capsys):
    from keras_convviz import cli

    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(photo)
    assert cli.main(["saliency", str(photo), "--weights", "none", "--out", str(tmp_path / "o")]) == 0
    out, err = capsys.readouterr()
    assert "--weights none" not in out
    assert one_line(err).startswith("convviz: --weights none: untrained demo with weights drawn from --seed 0")
    # a check after the model is built (an unknown class) fails: its error is the one line
    assert cli.main(["gradcam", str(photo), "--weights", "none", "--target", "hexagon",
                     "--out", str(tmp_path / "o")]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("convviz gradcam: error: --target 'hexagon'"), line


# ---------------------------------------------------------------- 5. videos and frames
def test_frame_ranges_write_one_output_per_frame(tmp_path, clip, capsys):
    from keras_convviz import cli

    out = tmp_path / "o"
    assert cli.main(["saliency", str(clip / "clip.mp4"), "--frame", "0:6:2", "--weights", "none",
                     "--out", str(out)]) == 0
    assert "3 frames of" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == [f"clip_frame{i}_saliency{p}.png" for i in (0, 2, 4) for p in ("", "_overlay")]
    assert cli.main(["boxfilter", "forward", "--crop", "2,2,8,8", str(clip / "anim.gif"), "--frame", "all",
                     "--weights", "none", "--out", str(out)]) == 0
    assert all((out / f"anim_frame{i}_conv_maps.png").is_file() for i in range(4))
    # a stop past the end is cut at the end; a range past it selects nothing: one line, no output
    capsys.readouterr()
    assert cli.main(["occlusion", str(clip / "anim.gif"), "--frame", "5:9", "--out", str(tmp_path / "x")]) == 2
    line = one_line(capsys.readouterr().err)
    assert "--frame 5:9 selects no frame" in line and "has 4 frames" in line, line
    assert not (tmp_path / "x").exists()


def test_topk_reads_video_frames_only_when_asked_and_says_so(tmp_path, clip, capsys):
    from keras_convviz import cli

    folder = tmp_path / "folder"
    folder.mkdir()
    for name in ("clip.mp4", "anim.gif"):
        os.symlink(clip / name, folder / name)
    Image.new("RGB", (50, 40), (10, 200, 10)).save(folder / "still.png")
    common = ["--k", "1", "--maps", "2", "--weights", "none", "--layer", "block1_conv2", "--out"]
    assert cli.main(["topk", str(folder), *common, str(tmp_path / "a")]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "note:" in line]
    assert len(notes) == 1, notes
    note = notes[0]
    assert "1 multi-frame .gif file: only the first frame is read" in note and "1 video file skipped" in note
    assert "--frames" in note
    table = json.loads((tmp_path / "a" / "topk_block1_conv2.json").read_text())
    assert table["images"] == 2 and all("frame" not in row for rows in table["maps"].values() for row in rows)
    assert cli.main(["topk", str(folder), "--frames", "0:4:2", *common, str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert "only the first frame" not in err, err
    table = json.loads((tmp_path / "b" / "topk_block1_conv2.json").read_text())
    assert table["images"] == 5  # clip frames 0 and 2, gif frames 0 and 2, the still image
    rows = [row for rows in table["maps"].values() for row in rows]
    assert all(row.get("frame") in (0, 2) for row in rows if not row["image"].endswith("still.png"))


# ---------------------------------------------------------------- 6. --region in photo pixels
@pytest.fixture(scope="module")
def dense_model(tmp_path_factory):
    """A fixed 32x32 fully convolutional model (a one-channel map at input resolution), saved to a file."""
    import keras

    keras.utils.set_random_seed(4)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same", name="edges")(x))
    path = tmp_path_factory.mktemp("dense") / "dense.keras"
    model.save(path)
    return path


def test_region_is_in_photo_pixels_through_the_placement(dense_model):
    import argparse

    from keras_convviz import presets
    from keras_convviz.commands import explain_region
    from keras_convviz.fit import place

    preset = presets.load(str(dense_model))
    original = preset.model
    placement = place((32, 64), (32, 32), "pad")  # a 64x32 (WxH) photo: scale 0.5, 8 px margins top/bottom
    args = argparse.Namespace(region=(10, 4, 20, 8))
    explain_region(args, preset, placement)
    assert args.region_box == (5, 10, 10, 4)  # x 10..30 -> 5..15, y 4..12 -> 10..14 (plus the margin)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    want = original.predict(x, verbose=0)[:, 10:14, 5:15, 0].mean(axis=(1, 2))
    np.testing.assert_allclose(np.ravel(preset.model.predict(x, verbose=0)), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"--region 60,4,20,8 must be X,Y,W,H inside the 64x32 \(WxH\) photo"):
        explain_region(argparse.Namespace(region=(60, 4, 20, 8)), preset, placement)


def test_region_on_the_cli_and_errors_that_name_the_flag(tmp_path, dense_model, capsys):
    from keras_convviz import cli

    photo = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 64, 3), dtype=np.uint8)).save(photo)
    base = ["saliency", str(photo), "--model", str(dense_model), "--out", str(tmp_path / "o")]
    assert cli.main(base + ["--region", "10,4,20,8"]) == 0
    assert "explained: region 10,4,20,8 mean" in capsys.readouterr().out
    assert cli.main(base) == 2  # a spatial output without --region: the error names the flag
    line = one_line(capsys.readouterr().err)
    assert "--region X,Y,W,H" in line and "region_score" in line, line
    assert cli.main(base + ["--region", "0,0,65,4"]) == 2
    assert "inside the 64x32 (WxH) photo" in one_line(capsys.readouterr().err)
    assert cli.main(base + ["--region", "0,0,64,4", "--fit", "crop"]) == 0  # the visible middle of the photo
    capsys.readouterr()
    assert cli.main(base + ["--region", "0,0,8,4", "--fit", "crop"]) == 2  # left of what the crop shows
    line = one_line(capsys.readouterr().err)
    assert line.startswith("convviz saliency: error: --region 0,0,8,4: the box") and "--fit pad" in line
