"""Property-based fuzz suite (Hypothesis) for issue 14.

Every generated case must end cleanly: the API returns a result or raises
``ValueError``; the CLI exits 0 (complete outputs) or 2 (one line on stderr);
the dashboard answers 200, 400 or 404; no case leaves a ``.convviz-*.part``.
Where the outcome is decidable from the input, the test also checks which
outcome it is (a valid target must give a result, an invalid one an error).

The profile (tests/conftest.py) is derandomized, so CI runs the same cases
every time; ``max_examples`` per test keeps the module to about a minute and
a half on two cores. ``HYPOTHESIS_PROFILE`` can name another profile.
"""

import io
import json
import os
import shutil
import tempfile
import time
import urllib.parse

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from test_hardening import hostile_logdir, png_header, python_blob_key, python_loader_client  # noqa: E402

BASE = "/data/plugin/convviz"
SIZE = (12, 12, 3)
CLASSES = 3
CASES = {}  # test name -> cases run (printed at the end of the module)


def counted(name):
    CASES[name] = CASES.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    total = sum(CASES.values())
    print(f"\nfuzz cases: {total} ({', '.join(f'{k}={v}' for k, v in sorted(CASES.items()))})")


@pytest.fixture(scope="module")
def model():
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inp = keras.Input(SIZE)
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    x = layers.MaxPooling2D(2, name="p1")(x)
    x = layers.Conv2D(5, 3, padding="same", activation="relu", name="c2")(x)
    x = layers.Flatten()(x)
    return keras.Model(inp, layers.Dense(CLASSES, activation="softmax", name="predictions")(x))


def batch(n=2, seed=0):
    return np.random.default_rng(seed).random((n,) + SIZE).astype(np.float32)


def clean(call):
    """``(result, None)`` or ``(None, the ValueError)``; anything else fails the test."""
    try:
        return call(), None
    except ValueError as err:
        assert str(err).strip(), "a ValueError must name the fix"
        return None, err


# ---------------------------------------------------------------- API arguments
def wild_floats(low, high):
    """Floats in [low, high] (integral ones included), NaN and the infinities."""
    return st.one_of(st.floats(low, high), st.integers(int(low), int(high)).map(float),
                     st.sampled_from([float("nan"), float("inf"), -float("inf")]))


scalars = st.one_of(st.integers(-4, 6), st.integers(-(1 << 70), 1 << 70), st.floats(allow_nan=True,
                    allow_infinity=True), st.booleans(), st.text(max_size=3), st.none(),
                    st.sampled_from([np.float64(2.0), np.float32(1.5), np.int64(1), np.uint8(2), np.bool_(True)]))
targets = st.one_of(scalars, st.lists(scalars, max_size=4), st.tuples(st.integers(0, 2), st.floats(0, 3)))


def valid_class(value):
    if isinstance(value, (bool, np.bool_, str)) or value is None:
        return False
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return np.isfinite(number) and number.is_integer() and 0 <= number < CLASSES


@given(target=targets, method=st.sampled_from(["saliency", "gradcam", "guided_backprop"]))
@settings(max_examples=60)
def test_fuzz_targets(model, target, method):
    import keras_convviz as kc

    counted("targets")
    n = len(target) if isinstance(target, (list, tuple)) else 2
    x = batch(max(n, 1))
    result, err = clean(lambda: getattr(kc, method)(model, x, target=target))
    if target is None:
        expect_ok = True
    elif isinstance(target, (list, tuple)):
        expect_ok = len(target) >= 1 and all(valid_class(t) for t in target)
    else:
        expect_ok = valid_class(target)
    assert (err is None) == expect_ok, (target, err)
    if result is not None:
        assert np.all(np.isfinite(result)) and result.shape[0] == x.shape[0]


dtypes = st.sampled_from([np.float16, np.float32, np.float64, np.uint8, np.int8, np.int64, np.bool_])


@given(x=hnp.arrays(dtypes, hnp.array_shapes(min_dims=2, max_dims=5, min_side=0, max_side=13)),
       method=st.sampled_from(["saliency", "occlusion", "capture"]))
@settings(max_examples=40)
def test_fuzz_input_shapes_and_dtypes(model, x, method):
    import keras_convviz as kc

    counted("inputs")
    calls = {"saliency": lambda: kc.saliency(model, x), "occlusion": lambda: kc.occlusion(model, x, None, 6, 6),
             "capture": lambda: kc.capture(model, x, ["c1"])}
    result, err = clean(calls[method])
    fits = x.ndim == 4 and x.shape[1:] == SIZE and x.shape[0] >= 1
    finite = fits and np.all(np.isfinite(x.astype(np.float64)))
    assert (err is None) == bool(finite), (x.shape, x.dtype, err)


@given(poison=st.sampled_from([np.nan, np.inf, -np.inf]), where=st.tuples(st.integers(0, 1), st.integers(0, 11),
       st.integers(0, 11), st.integers(0, 2)), method=st.sampled_from(["saliency", "smoothgrad", "deconv"]))
@settings(max_examples=20)
def test_fuzz_nan_inf_inputs(model, poison, where, method):
    import keras_convviz as kc

    counted("nan_inf")
    x = batch()
    x[where] = poison
    calls = {"saliency": lambda: kc.saliency(model, x), "smoothgrad": lambda: kc.smoothgrad(model, x, samples=2),
             "deconv": lambda: kc.deconv(model, x, "c2")}
    with pytest.raises(ValueError, match="NaN or Inf"):
        calls[method]()


counts = st.one_of(st.integers(-2, 8), wild_floats(-1, 2), st.booleans(), st.none(),
                   st.lists(st.integers(-1, 6), max_size=4), st.text(max_size=2))


@given(maps=counts, activations=counts)
@settings(max_examples=40)
def test_fuzz_deconv_maps_and_activations(model, maps, activations):
    import keras_convviz as kc

    counted("maps_activations")
    result, err = clean(lambda: kc.deconv(model, batch(1), "c2", maps=maps, activations=activations))
    if result is not None:
        assert np.all(np.isfinite(result)) and result.shape[-3:] == SIZE


sides = st.one_of(st.integers(-2, 20), wild_floats(-1, 14), st.tuples(st.integers(-1, 14),
                  st.integers(-1, 14)), st.none(), st.booleans())


@given(patch=sides, stride=sides)
@settings(max_examples=40)
def test_fuzz_occlusion_patch_and_stride(model, patch, stride):
    import keras_convviz as kc
    from keras_convviz.methods.occlusion import grid_origins

    counted("patch_stride")
    result, err = clean(lambda: kc.occlusion(model, batch(1), None, patch, stride))
    if result is not None:  # oracle: the grid is grid_origins' grid, probabilities are probabilities
        gy = grid_origins(SIZE[0], result.patch[0], result.stride[0])
        gx = grid_origins(SIZE[1], result.patch[1], result.stride[1])
        assert result.probability.shape == (1, len(gy), len(gx))
        assert np.all((result.probability >= 0) & (result.probability <= 1 + 1e-6))


crops = st.one_of(st.tuples(*[st.integers(-3, 15)] * 4), st.tuples(*[wild_floats(-2, 14)] * 4),
                  st.lists(st.integers(0, 12), max_size=6), st.none(), st.text(max_size=3))


@given(crop=crops, mode=st.sampled_from(["forward", "backward", "sideways"]))
@settings(max_examples=40)
def test_fuzz_box_filter_crops(model, crop, mode):
    import keras_convviz as kc

    counted("crops")
    result, err = clean(lambda: kc.box_filter(model, "c2", crop, mode=mode))
    if mode == "sideways":
        assert err is not None


steps = st.one_of(st.integers(-2, 4), wild_floats(-1, 4), st.booleans(),
                  st.none(), st.text(max_size=2))


@given(samples=steps, ig_steps=steps, noise=st.one_of(wild_floats(-1, 1),
       st.none()))
@settings(max_examples=40)
def test_fuzz_steps_and_samples(model, samples, ig_steps, noise):
    import keras_convviz as kc

    counted("steps_samples")
    x = batch(1)
    sg, err = clean(lambda: kc.smoothgrad(model, x, samples=samples, noise=noise, seed=0))
    if sg is not None:
        assert np.all(np.isfinite(sg))
    ig, err = clean(lambda: kc.integrated_gradients(model, x, steps=ig_steps))
    integral = not isinstance(ig_steps, (bool, str)) and ig_steps is not None and np.isfinite(
        float(ig_steps)) and float(ig_steps).is_integer() and ig_steps >= 1
    assert (err is None) == integral, (ig_steps, err)


# ---------------------------------------------------------------- hostile files for the CLI
MODES = ["RGB", "L", "LA", "P", "PA", "RGBA", "I;16", "I", "F", "1", "CMYK"]
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}
EXTENSIONS = [".png", ".jpg", ".gif", ".bmp", ".tif", ".webp", ".txt", "", ".mp4", ".PNG", ".jpeg.part"]


def encoded(mode, fmt, size):
    from PIL import Image

    rng = np.random.default_rng(size[0] * 31 + size[1])
    img = Image.fromarray((rng.random(size + (3,)) * 255).astype(np.uint8)).convert(
        "RGBA" if mode in ("LA", "PA") else "RGB")
    try:
        img = img.convert(mode)
    except ValueError:
        img = img.convert("RGB")
    buf = io.BytesIO()
    try:
        img.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):  # this format cannot store this mode: store it as PNG
        buf = io.BytesIO()
        img.convert("RGBA" if "A" in mode else "RGB").save(buf, format="PNG")
    return buf.getvalue()


hostile_files = st.tuples(
    st.sampled_from(MODES), st.sampled_from(sorted(FORMATS)), st.tuples(st.integers(1, 40), st.integers(1, 40)),
    st.sampled_from(["none", "truncate", "flip", "huge_header", "random", "empty"]),
    st.integers(0, 10_000), st.sampled_from(EXTENSIONS))


def mutate(data, how, at):
    rng = np.random.default_rng(at)
    if how == "truncate":
        return data[: at % max(len(data), 1)]
    if how == "flip":
        buf = bytearray(data)
        for i in rng.integers(0, len(buf), 1 + at % 8):
            buf[i] ^= int(rng.integers(1, 256))
        return bytes(buf)
    if how == "huge_header":
        side = 1 << (14 + at % 17)
        return png_header(side, side + at)
    if how == "random":
        return rng.integers(0, 256, at % 2000, dtype=np.uint8).tobytes()
    if how == "empty":
        return b""
    return data


@pytest.mark.slow
@given(case=hostile_files)
@settings(max_examples=30)
def test_fuzz_hostile_files_cli(case, capsys):
    from PIL import Image

    from keras_convviz import cli

    counted("hostile_files")
    mode, fmt, size, how, at, ext = case
    folder = tempfile.mkdtemp(prefix="convviz-fuzz-")
    try:
        path = os.path.join(folder, "input" + ext)
        with open(path, "wb") as f:
            f.write(mutate(encoded(mode, fmt, size), how, at))
        out = os.path.join(folder, "out")
        capsys.readouterr()
        code = cli.main(["saliency", path, "--model", "demo", "--out", out])
        err = capsys.readouterr().err
        assert code in (0, 2), (case, code, err)
        if code == 2:
            lines = [line for line in err.strip().splitlines() if line.strip()]
            assert len(lines) == 1 and "Traceback" not in err, err
        names = os.listdir(out) if os.path.isdir(out) else []
        assert not [n for n in names if n.startswith(".convviz-") or n.endswith(".part")], names
        for name in names:  # every file written is complete
            with Image.open(os.path.join(out, name)) as written:
                written.load()
        assert (code == 0) == bool(names)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- user models and odd-mode photos (issue 25)
def user_model(channels, inputs, flexible, sigmoid, policy="float32", shared=False):
    """A generated small CNN: ``channels`` 1/3/4, ``inputs`` image inputs, a flexible size, a sigmoid head,
    a mixed-precision ``policy`` on its conv layers, and (``shared``) a nested backbone called twice."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(channels * 10 + inputs)
    shape = (None, None, channels) if flexible else (14, 16, channels)
    ins = [keras.Input(shape) for _ in range(inputs)]
    conv = lambda: layers.Conv2D(3, 3, padding="same", activation="relu", dtype=policy)  # noqa: E731
    if shared:  # one backbone, two call sites: the input and half of it
        inner = keras.Input(shape)
        backbone = keras.Model(inner, conv()(inner))
        feats = [layers.Add()([backbone(i), backbone(layers.Rescaling(0.5)(i))]) for i in ins]
    else:
        feats = [conv()(i) for i in ins]
    x = feats[0] if inputs == 1 else layers.Add()(feats)
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3, padding="same", activation="relu", dtype=policy)(x))
    head = layers.Dense(1, activation="sigmoid") if sigmoid else layers.Dense(CLASSES, activation="softmax")
    return keras.Model(ins, head(x))


def odd_photo(mode, size, rotate):
    """An RGB uint8 array read through media.read_image from a file of PIL ``mode`` (EXIF-rotated on request)."""
    from PIL import Image

    from keras_convviz import media

    rgb = Image.fromarray((np.random.default_rng(size[0] * 7 + size[1]).random(size + (3,)) * 255).astype(np.uint8))
    img = rgb.convert("I;16") if mode == "I;16" else rgb.convert(mode)
    folder = tempfile.mkdtemp(prefix="convviz-fuzz-photo-")
    try:
        path = os.path.join(folder, "p.png")
        exif = Image.Exif()
        if rotate:
            exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
        img.save(path, exif=exif.tobytes()) if rotate else img.save(path)
        return media.read_image(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


user_models = st.tuples(st.sampled_from([1, 3, 4]), st.sampled_from([1, 1, 2]), st.booleans(), st.booleans(),
                        st.sampled_from(["float32", "mixed_float16", "mixed_bfloat16"]), st.booleans())
odd_photos = st.tuples(st.sampled_from(["L", "RGBA", "P", "I;16", "RGB", "LA"]),
                       st.tuples(st.integers(1, 30), st.integers(1, 30)), st.booleans())


@given(spec=user_models, shot=odd_photos, method=st.sampled_from(["saliency", "gradcam", "occlusion"]),
       target=st.sampled_from([None, 0, 1]))
@pytest.mark.slow
@settings(max_examples=25, deadline=None)
def test_fuzz_user_models_and_odd_photos(spec, shot, method, target):
    """Any generated model through the photo-to-input path: a map of the photo's fitted size, or a ValueError
    exactly when the model has several inputs (the one thing convviz refuses)."""
    import keras_convviz as kc
    from keras_convviz import convention, presets

    counted("user_models")
    channels, inputs = spec[:2]
    model = user_model(*spec)
    image = odd_photo(*shot)
    assert image.dtype == np.uint8 and image.shape[-1] == 3
    if shot[2]:  # EXIF orientation 6: shown rotated, as taken
        assert image.shape[:2] == (shot[1][1], shot[1][0])
    found = convention.assumed()
    preset = presets.Preset("user", model, found.preprocess, found.deprocess, None, [])

    def explain():
        placement = preset.placement(image)
        pinned = preset.pinned(placement.size)
        x = pinned.prepare([image])
        assert x.shape == (1,) + tuple(placement.size) + (channels,)
        calls = {"saliency": lambda: kc.saliency(pinned.model, x, target),
                 "gradcam": lambda: kc.gradcam(pinned.model, x, target),
                 "occlusion": lambda: kc.occlusion(pinned.model, x, target, 4, 4).probability}
        return placement, calls[method]()

    result, err = clean(explain)
    assert (err is None) == (inputs == 1), (spec, shot, method, err)
    if result is not None:
        placement, m = result
        assert np.all(np.isfinite(m)) and m.shape[0] == 1
        if method == "saliency":
            assert m.shape[1:] == tuple(placement.size)


# ---------------------------------------------------------------- dashboard
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(1 << 66), 1 << 66),
                                     st.floats(allow_nan=False), st.text(max_size=6)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                           max_leaves=12)
content_objects = st.fixed_dictionaries(
    {"version": st.one_of(st.integers(-1, 4), st.floats(), st.text(max_size=2), st.none()),
     "kind": st.one_of(st.sampled_from(["heatmap", "projection", "patches", "input", "grid"]), json_values)},
    optional={"method": json_values, "layer": json_values, "detail": json_values, "params": json_values,
              "labels": json_values, "map": json_values, "scale": json_values, "ranges": json_values})
contents = st.one_of(
    content_objects.map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=64),
    st.integers(1, 200_000).map(lambda depth: b'{"version": 1, "kind": "heatmap", "params": ' + b"[" * depth
                                + b"]" * depth + b"}"),
    st.integers(1, 100_000).map(lambda depth: b"{\"a\":" * depth + b"1" + b"}" * depth))


def tags_ok(status, body):
    assert status == 200, (status, body[:300])
    runs = json.loads(body)["runs"]
    assert "saliency/predictions/heatmap" in runs["exp/convviz"]  # hostile neighbours never hide our tag
    return runs


@given(blobs=st.lists(contents, min_size=1, max_size=3))
@settings(max_examples=20)
def test_fuzz_content_blobs_python_loader(blobs):
    counted("content_python")
    folder = tempfile.mkdtemp(prefix="convviz-fuzz-tb-")
    try:
        import pathlib

        hostile_logdir(pathlib.Path(folder), blobs)
        client = python_loader_client(folder)
        r = client.get(BASE + "/tags")
        tags_ok(r.status_code, r.get_data())
        for i in range(len(blobs)):
            assert client.get(BASE + f"/series?run=exp/convviz&tag=hostile/{i}/tag").status_code in (200, 404)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


text_params = st.one_of(st.text(max_size=40), st.sampled_from(["exp/convviz", "saliency/predictions/heatmap",
                        "hostile/0/tag", "", "..", "%00", "a" * 5000]))
keys = st.one_of(
    text_params,
    st.tuples(st.sampled_from(["exp/convviz", "nope"]), st.sampled_from(["saliency/predictions/heatmap",
              "saliency/predictions/floats", "hostile/0/tag"]), json_values, json_values,
              st.sampled_from(["convviz", "images", ""])).map(lambda t: python_blob_key(*t[:2], t[2], t[3], t[4])))
routes = st.tuples(st.sampled_from(["/series", "/blob", "/tags", "/static/x.js", "/index.js"]),
                   st.lists(st.tuples(st.sampled_from(["run", "tag", "key", "x"]), st.one_of(text_params, keys)),
                            max_size=4))


def route_url(route):
    path, params = route
    return BASE + path + ("?" + urllib.parse.urlencode(params) if params else "")


def check_response(url, status, body):
    assert status in (200, 400, 404), (url, status, body[:200])
    if status == 200 and "/blob" in url:
        assert body.startswith(b"\x89PNG"), (url, body[:40])


@pytest.fixture(scope="module")
def python_client(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-python")
    hostile_logdir(root, [b"{not json", b"[" * 100_000])
    return python_loader_client(root)


@given(route=routes)
@settings(max_examples=60)
def test_fuzz_routes_python_loader(python_client, route):
    counted("routes_python")
    url = route_url(route)
    r = python_client.get(url)
    check_response(url, r.status_code, r.get_data())


@pytest.fixture(scope="module")
def rust_server(tmp_path_factory):
    from tb_helpers import tensorboard

    root = tmp_path_factory.mktemp("fuzz-rust")
    hostile_logdir(root, [b"{not json", b"[" * 100_000])
    with tensorboard(root, load_fast=True) as base:
        yield root, base


@pytest.mark.slow
@given(route=routes)
@settings(max_examples=60)
def test_fuzz_routes_rust_loader(rust_server, route):
    from tb_helpers import get

    counted("routes_rust")
    _, base = rust_server
    url = route_url(route)
    status, _, body = get(base + url)
    check_response(url, status, body)


@pytest.mark.slow
@given(blobs=st.lists(contents, min_size=1, max_size=2))
@settings(max_examples=8)
def test_fuzz_content_blobs_rust_loader(rust_server, blobs):
    """Each case adds a run of hostile contents to the served logdir and waits until TensorBoard has read it."""
    import pathlib

    import tensorflow as tf

    from keras_convviz import summary
    from tb_helpers import get
    from tb_plugin import metadata as md

    counted("content_rust")
    root, base = rust_server
    run = f"case{CASES['content_rust']}"
    with tf.summary.create_file_writer(str(pathlib.Path(root) / run)).as_default():
        for i, content in enumerate(blobs):
            meta = summary.summary_metadata(md.make_content("x", "y", "z", "heatmap"))
            meta.plugin_data.content = content
            tf.summary.write(f"hostile/{i}/tag", tf.constant([b"x"]), step=0, metadata=meta)
    with summary.Writer(str(pathlib.Path(root) / run / "ours")) as w:  # a marker: this run has been read
        w.images("saliency", "predictions", "heatmap", np.zeros((1, 4, 4, 3), np.uint8), 0, "heatmap")
    deadline = time.monotonic() + 30
    while True:
        status, _, body = get(base + BASE + "/tags")
        runs = tags_ok(status, body)
        if f"{run}/ours" in runs or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert f"{run}/ours" in runs
    for i in range(len(blobs)):
        url = BASE + "/series?" + urllib.parse.urlencode({"run": run, "tag": f"hostile/{i}/tag"})
        assert get(base + url)[0] in (200, 404)
