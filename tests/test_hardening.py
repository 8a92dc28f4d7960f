"""Issue 14: one regression test per class of hostile input or fault.

Each test is named after the class it covers (hostile images, files and the
OS, models and weights, arguments, callback, dashboard) and checks the
contract: the API raises ``ValueError`` naming the fix, the CLI exits 2 (or
130/143 on a signal) with one line on stderr, no partial file is left, the
dashboard answers 4xx, training is never stopped by logging.
"""

import base64
import errno
import json
import os
import resource
import signal
import struct
import subprocess
import sys
import time
import warnings
import zlib

import keras
import numpy as np
import pytest
from keras import layers

from fixtures import convviz

BASE = "/data/plugin/convviz"


def png_header(width, height):
    """A valid PNG header claiming ``width x height`` pixels, with no pixel data worth the name."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def one_line_error(stderr):
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def leftovers(folder):
    return [n for n in os.listdir(folder) if n.startswith(".convviz-") or n.endswith(".part")]


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    from keras_convviz import media

    path = tmp_path_factory.mktemp("img") / "cross.png"
    media.save_png(path, (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8))
    return path


# ---------------------------------------------------------------- hostile images
@pytest.mark.parametrize("size", [(10_000, 10_000), (20_000, 20_000), (1 << 20, 1 << 20)])
def test_hostile_images_decompression_bomb_is_value_error(tmp_path, size):
    from PIL import Image

    from keras_convviz import media

    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(*size))
    pil_limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may escape either
        with pytest.raises(ValueError, match="cannot read image"):
            media.read_image(path)
    assert Image.MAX_IMAGE_PIXELS == pil_limit  # PIL's global limit is put back


def test_hostile_images_pixel_limit_is_configurable(tmp_path):
    from keras_convviz import media

    path = tmp_path / "small.png"
    media.save_png(path, np.zeros((30, 40, 3), np.uint8))
    assert media.read_image(path).shape == (30, 40, 3)
    with pytest.raises(ValueError, match="1199|limit"):
        media.read_image(path, max_pixels=1199)
    assert media.read_image(path, max_pixels=1200).shape == (30, 40, 3)  # exactly at the limit is fine


@pytest.mark.slow
def test_hostile_images_topk_folder_skips_bomb(tmp_path):
    from keras_convviz import media

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        media.save_png(folder / f"ok{i}.png", (rng.random((64, 64, 3)) * 255).astype(np.uint8))
    (folder / "bomb.png").write_bytes(png_header(30_000, 30_000))
    (folder / "truncated.png").write_bytes(png_header(64, 64)[:40])
    out = tmp_path / "out"
    result = convviz("topk", str(folder), "--model", "demo", "--k", "2", "--maps", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "skipping" in result.stderr and "bomb.png" in result.stderr
    assert "skipped 2 unreadable files" in result.stderr
    tables = [n for n in os.listdir(out) if n.endswith(".json")]
    table = json.loads((out / tables[0]).read_text())
    assert table["skipped"] == 2 and table["images"] == 3
    assert not leftovers(out)


# ---------------------------------------------------------------- files and the OS
def test_files_and_os_out_below_existing_file_exits_2(image_file, tmp_path, capsys):
    from keras_convviz import cli

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code = cli.main(["saliency", str(image_file), "--model", "demo", "--out", str(blocker / "sub")])
    assert code == 2
    assert "Not a directory" in one_line_error(capsys.readouterr().err)


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_files_and_os_write_errors_exit_2(image_file, tmp_path, capsys, monkeypatch, err):
    """A full disk, a read-only place, no permission (root ignores modes, so the OS error is injected)."""
    from keras_convviz import cli

    real_fdopen = os.fdopen

    class Failing:
        def __init__(self, fd, mode):
            self.f = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def fileno(self):
            return self.f.fileno()

        def write(self, data):
            raise OSError(err, os.strerror(err))

    monkeypatch.setattr(os, "fdopen", Failing)
    out = tmp_path / "out"
    code = cli.main(["saliency", str(image_file), "--model", "demo", "--out", str(out)])
    assert code == 2
    assert os.strerror(err) in one_line_error(capsys.readouterr().err)
    assert not leftovers(out)


@pytest.mark.slow
def test_files_and_os_file_size_limit_efbig_exits_2(image_file, tmp_path):
    """``ulimit -f``: the write fails with EFBIG (SIGXFSZ ignored), exit 2, no temporary left."""
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-m", "keras_convviz.cli", "saliency", str(image_file), "--model", "demo", "--out",
         str(out)], capture_output=True, text=True, env=env, timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024)))
    assert result.returncode == 2, result.stderr
    assert "File too large" in one_line_error(result.stderr)
    assert not out.exists() or not leftovers(out)


def test_files_and_os_outputs_follow_umask(tmp_path):
    from keras_convviz import media

    old = os.umask(0o027)
    try:
        media.atomic_write(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert oct(os.stat(tmp_path / "a.bin").st_mode & 0o777) == oct(0o640)  # not mkstemp's 0600
    media.save_png(tmp_path / "b.png", np.zeros((2, 2, 3), np.uint8))
    assert os.stat(tmp_path / "b.png").st_mode & 0o777 == 0o666 & ~old


SIGNAL_MID_WRITE = """
import os, signal, sys
real_fdopen = os.fdopen
def fdopen_then_signal(fd, mode="r", *args, **kwargs):
    f = real_fdopen(fd, mode, *args, **kwargs)
    if ".convviz-" in os.readlink(f"/proc/self/fd/{fd}"):  # our temporary: the write is under way
        os.kill(os.getpid(), int(os.environ["SIGNAL_MID_WRITE"]))
    return f
os.fdopen = fdopen_then_signal
from keras_convviz.cli import main
sys.exit(main())
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_files_and_os_signal_during_write_leaves_no_part(image_file, tmp_path, signum, code):
    """SIGTERM / SIGINT arriving while a file is written: exit 143 / 130, one line, no ``.convviz-*.part``."""
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", SIGNAL_MID_WRITE=str(int(signum)))
    result = subprocess.run([sys.executable, "-c", SIGNAL_MID_WRITE, "saliency", str(image_file), "--model", "demo",
                             "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == code, result.stderr
    assert signal.Signals(signum).name in one_line_error(result.stderr)
    assert out.exists() and os.listdir(out) == []  # the folder was made, the file was being written: nothing left


def test_files_and_os_in_process_main_keeps_callers_signal_handlers(image_file, tmp_path):
    from keras_convviz import cli

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGXFSZ)}
    assert cli.main(["saliency", str(image_file), "--model", "demo", "--out", str(tmp_path / "out")]) == 0
    assert {s: signal.getsignal(s) for s in handlers} == handlers


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_files_and_os_signal_during_imports_one_line(image_file, tmp_path, signum, code):
    """Ctrl-C or SIGTERM while TensorFlow is still being imported: one line, 130/143, no traceback."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.Popen([sys.executable, "-m", "keras_convviz.cli", "saliency", str(image_file), "--model",
                             "demo", "--out", str(tmp_path / "out")], stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(1.0)  # past start-up, inside the imports (TensorFlow takes several seconds)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert "interrupted" in one_line_error(stderr)


# ---------------------------------------------------------------- models and weights
@pytest.mark.slow
def test_models_corrupt_demo_weights_exit_2(image_file, tmp_path):
    from keras_convviz import demo

    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(demo.weights_path().read_bytes()[:300])
    result = convviz("saliency", str(image_file), "--model", "demo", "--weights", str(bad), "--out",
                     str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert "could not load weights" in one_line_error(result.stderr)


def _variable_size_model():
    inp = keras.Input((None, None, 3))
    x = layers.Conv2D(4, 3, activation="relu", name="c")(inp)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(3, name="logits")(x))


@pytest.mark.parametrize("method", ["occlusion", "gradcam", "saliency", "deconv"])
def test_models_without_fixed_input_size_value_error(method):
    import keras_convviz as kc

    model = _variable_size_model()
    x = np.random.default_rng(0).random((1, 16, 16, 3)).astype(np.float32)
    calls = {"occlusion": lambda: kc.occlusion(model, x, None, 4, 4), "gradcam": lambda: kc.gradcam(model, x),
             "saliency": lambda: kc.saliency(model, x), "deconv": lambda: kc.deconv(model, x, "c")}
    with pytest.raises(ValueError, match=r"fixed \(H, W, C\)"):
        calls[method]()
    assert kc.capture(model, x, ["c"]).activations["c"].shape == (1, 14, 14, 4)  # capture still takes any size


def test_models_spatial_output_occlusion_value_error():
    import keras_convviz as kc

    inp = keras.Input((16, 16, 3))
    model = keras.Model(inp, layers.Conv2D(3, 3, padding="same", name="c")(inp))
    x = np.zeros((1, 16, 16, 3), np.float32)
    with pytest.raises(ValueError, match="class score vector"):
        kc.occlusion(model, x, None, 4, 4)


def test_models_dataset_none_dims_wrong_size_value_error(demo_model):
    import tensorflow as tf

    import keras_convviz as kc

    spec = tf.TensorSpec((None, None, 3), tf.float32)
    dataset = tf.data.Dataset.from_generator(lambda: (np.zeros((20, 20, 3), np.float32) for _ in range(3)),
                                             output_signature=spec)
    layer = next(s.name for s in kc.walk(demo_model).steps if s.kind == "conv")
    with pytest.raises(ValueError, match=r"dataset images are \(20, 20, 3\).*expects \(64, 64, 3\)"):
        kc.top_activations(demo_model, dataset, layer, k=1)


# ---------------------------------------------------------------- arguments
@pytest.mark.parametrize("target", [1.5, np.float64(2.5), float("nan"), float("inf"), True, "2", [1.5], [0, 2.7]])
def test_arguments_float_class_index_is_value_error(demo_model, target):
    import keras_convviz as kc

    x = np.zeros((1, 64, 64, 3), np.float32) if np.ndim(target) == 0 else np.zeros((len(target), 64, 64, 3),
                                                                                       np.float32)
    for method in (kc.saliency, kc.gradcam):
        with pytest.raises(ValueError, match="not a class index"):
            method(demo_model, x, target=target)
    with pytest.raises(ValueError, match="class index"):
        kc.class_model(demo_model, target=target, steps=1)


def test_arguments_fractional_target_list_is_refused_not_truncated(demo_model):
    import keras_convviz as kc

    x = np.random.default_rng(0).random((2, 64, 64, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="1.9"):
        kc.saliency(demo_model, x, target=[1.9, 2.0])  # truncation would have explained class 1


def test_arguments_integral_float_target_is_that_class(demo_model):
    """Decision: an integral float (2.0, np.float64(2.0)) is accepted as the class it names."""
    import keras_convviz as kc

    x = np.random.default_rng(0).random((2, 64, 64, 3)).astype(np.float32)
    want = kc.saliency(demo_model, x, target=2)
    np.testing.assert_array_equal(kc.saliency(demo_model, x, target=np.float64(2.0)), want)
    np.testing.assert_array_equal(kc.saliency(demo_model, x, target=[2.0, np.float32(2)]), want)


# ---------------------------------------------------------------- callback
def _fit(model, callback, epochs=2):
    x = np.random.default_rng(0).random((8, 64, 64, 3)).astype(np.float32)
    model.compile("sgd", "sparse_categorical_crossentropy")
    ended = []
    counter = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: ended.append(epoch))
    history = model.fit(x, np.arange(8) % 4, epochs=epochs, batch_size=4, verbose=0, callbacks=[callback, counter])
    return history, ended


def test_callback_unwritable_log_dir_keeps_training(demo_model, tmp_path):
    from keras_convviz import ConvVizCallback

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    probe = np.random.default_rng(1).random((2, 64, 64, 3)).astype(np.float32)
    weights = demo_model.get_weights()
    cb = ConvVizCallback(str(blocker / "logs"), probe, methods=("saliency", "gradcam"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history, ended = _fit(demo_model, cb)
    demo_model.set_weights(weights)
    assert ended == [0, 1] and len(history.history["loss"]) == 2
    mine = [w for w in caught if "cannot write to log_dir" in str(w.message)]
    assert len(mine) == 1, [str(w.message) for w in caught]  # warned once, not once per epoch
    assert cb.unwritable is not None


@pytest.mark.parametrize("methods, match", [({"smoothgrad": {"samples": 0}}, "samples"),
                                            ({"integrated": {"steps": 2.5}}, "steps"),
                                            ({"smoothgrad": {"noise": float("nan")}}, "noise"),
                                            ({"occlusion": {"patch": 0}}, "patch"),
                                            ({"occlusion": {"stride": (8, -1)}}, "stride")])
def test_callback_bad_option_values_checked_in_on_train_begin(demo_model, tmp_path, methods, match):
    from keras_convviz import ConvVizCallback

    probe = np.zeros((1, 64, 64, 3), np.float32)
    weights = demo_model.get_weights()
    cb = ConvVizCallback(str(tmp_path / "logs"), probe, methods=methods)
    ended = []
    counter = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: ended.append(epoch))
    demo_model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=match):
        demo_model.fit(probe, np.zeros(1), epochs=1, verbose=0, callbacks=[cb, counter])
    demo_model.set_weights(weights)
    assert ended == []  # refused before an epoch was spent


def test_callback_fractional_targets_refused_in_on_train_begin(demo_model, tmp_path):
    from keras_convviz import ConvVizCallback

    probe = np.zeros((2, 64, 64, 3), np.float32)
    cb = ConvVizCallback(str(tmp_path / "logs"), probe, methods=("saliency",), targets=[0.5, 1])
    demo_model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="not a class index"):
        demo_model.fit(probe, np.zeros(2), epochs=1, verbose=0, callbacks=[cb])


# ---------------------------------------------------------------- dashboard
def hostile_logdir(root, contents):
    import tensorflow as tf

    from keras_convviz import summary
    from tb_plugin import metadata as md

    with summary.Writer(str(root / "exp" / "convviz")) as w:
        w.images("saliency", "predictions", "heatmap", np.zeros((2, 8, 8, 3), np.uint8), 0, "heatmap")
    with tf.summary.create_file_writer(str(root / "exp" / "convviz")).as_default():
        for i, content in enumerate(contents):
            meta = summary.summary_metadata(md.make_content("x", "y", "z", "heatmap"))
            meta.plugin_data.content = content
            tf.summary.write(f"hostile/{i}/tag", tf.constant([b"x"]), step=0, metadata=meta)
        # a float tensor under the convviz plugin: a blob "sequence" whose blobs are not bytes
        meta = summary.summary_metadata(md.make_content("saliency", "predictions", "floats", "heatmap"))
        tf.summary.write("saliency/predictions/floats", tf.constant([1.5, 2.5]), step=0, metadata=meta)


DEEP = b'{"version": 1, "kind": "heatmap", "params": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def python_loader_client(logdir):
    """A werkzeug client of the dashboard served by TensorBoard's Python loader (``tb_helpers.python_loader_app``)."""
    from tb_helpers import python_loader_app

    return python_loader_app(logdir)[0]


def python_blob_key(run, tag, step, index, plugin="convviz"):
    raw = json.dumps(["", plugin, run, tag, step, index], separators=(",", ":")).encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def test_dashboard_deeply_nested_content_is_skipped_python_loader(tmp_path):
    hostile_logdir(tmp_path, [DEEP, b"[" * 50_000, b'{"version": 1, "kind": {"a": ' * 3000 + b"1" + b"}" * 6000])
    client = python_loader_client(tmp_path)
    r = client.get(BASE + "/tags")
    assert r.status_code == 200
    tags = json.loads(r.get_data(as_text=True))["runs"]["exp/convviz"]
    assert "saliency/predictions/heatmap" in tags and not any(t.startswith("hostile/") for t in tags)
    for i in range(3):
        assert client.get(BASE + f"/series?run=exp/convviz&tag=hostile/{i}/tag").status_code == 404


@pytest.mark.parametrize("index", [1.5, [0, 1], None, -1, True, 1 << 70, "0"])
def test_dashboard_blob_route_checks_type_and_range_python_loader(tmp_path, index):
    hostile_logdir(tmp_path, [])
    client = python_loader_client(tmp_path)
    good = python_blob_key("exp/convviz", "saliency/predictions/heatmap", 0, 0)
    r = client.get(BASE + "/blob?key=" + good)
    assert r.status_code == 200 and r.get_data().startswith(b"\x89PNG")
    bad = python_blob_key("exp/convviz", "saliency/predictions/heatmap", 0, index)
    assert client.get(BASE + "/blob?key=" + bad).status_code == 400
    for key in (python_blob_key("exp/convviz", "saliency/predictions/floats", 0, 0),  # a float, not bytes
                python_blob_key("exp/convviz", "saliency/predictions/heatmap", 0, 99),  # past the end
                python_blob_key("exp/convviz", "saliency/predictions/heatmap", 1.0, 0),
                python_blob_key("exp/convviz", "saliency/predictions/heatmap", 0, 0, plugin="images")):
        code = client.get(BASE + "/blob?key=" + key).status_code
        assert 400 <= code < 500, (key, code)
