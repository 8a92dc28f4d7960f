"""Top-k activation mining: brute force, streaming shapes, distribution, bad input, fig. 2."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras import layers

from keras_convviz.figures.topk import figure
from keras_convviz.methods.topk import top_activations

from fixtures import convviz


def _model():
    keras.utils.set_random_seed(0)
    x = inp = keras.Input((12, 12, 3))
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(x)
    x = layers.MaxPooling2D(2, name="p1")(x)
    x = layers.Conv2D(5, 3, padding="same", name="c2")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(3, activation="softmax", name="dense")(x)
    return keras.Model(inp, out)


def _brute(model, images, layer, k):
    acts = np.asarray(keras.Model(model.inputs, model.get_layer(layer).output)(images, training=False))
    n, h, w, c = acts.shape
    flat = acts.reshape(n, h * w, c)
    peak, arg = flat.max(1), flat.argmax(1)  # (N, C)
    values = np.zeros((c, k), np.float32)
    ids = np.zeros((c, k), np.int64)
    pos = np.zeros((c, k, 2), np.int64)
    for ch in range(c):
        order = np.lexsort((np.arange(n), -peak[:, ch]))[:k]  # value desc, then dataset order
        values[ch], ids[ch] = peak[order, ch], order
        pos[ch] = np.stack([arg[order, ch] // w, arg[order, ch] % w], -1)
    return values, ids, pos


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (23, 12, 12, 3)).astype(np.float32)
    images[7] = images[3]  # an exact tie: the earlier image must win
    labels = rng.integers(0, 3, 23)
    return images, labels


@pytest.mark.parametrize("layer", ["c1", "c2"])
def test_brute_force_with_partial_last_batch(data, layer):
    images, labels = data
    model = _model()
    ds = tf.data.Dataset.from_tensor_slices((images, labels))  # (image, label), unbatched
    got = top_activations(model, ds, layer, k=4, batch_size=5)  # 23 = 4 * 5 + 3
    values, ids, pos = _brute(model, images, layer, 4)
    assert got.count == 23 and got.values.shape == values.shape
    np.testing.assert_allclose(got.values, values, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got.image_ids, ids)
    np.testing.assert_array_equal(got.positions, pos)
    assert np.all(np.diff(got.values, axis=1) <= 0)


def test_batched_dataset_and_array_inputs(data):
    images, _ = data
    model = _model()
    a = top_activations(model, tf.data.Dataset.from_tensor_slices(images).batch(6), "c2", k=3)
    b = top_activations(model, images, "c2", k=3, batch_size=4)
    np.testing.assert_array_equal(a.image_ids, b.image_ids)
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-5)
    assert a.count == b.count == 23


def test_callback_and_no_retracing(data):
    images, _ = data
    model = _model()
    seen = []
    top_activations(model, images, "c1", k=2, batch_size=10, callback=seen.append)
    assert seen == [10, 20, 23]
    from keras_convviz.graph import walk

    fn = walk(model).cache[("topk", "c1", 2)]
    top_activations(model, images[:9], "c1", k=2, batch_size=4)
    assert fn.experimental_get_tracing_count() <= 2


def test_bad_input(data):
    images, _ = data
    model = _model()
    empty = tf.data.Dataset.from_tensor_slices(images[:0])
    with pytest.raises(ValueError, match="empty"):
        top_activations(model, empty, "c1")
    unknown = tf.data.Dataset.from_tensor_slices(images).filter(lambda x: False)
    with pytest.raises(ValueError, match="empty"):
        top_activations(model, unknown, "c1")
    with pytest.raises(ValueError, match="only 5 images"):
        top_activations(model, tf.data.Dataset.from_tensor_slices(images[:5]), "c1", k=9)
    with pytest.raises(ValueError, match="only 5 images"):  # length unknown up front
        top_activations(model, tf.data.Dataset.from_tensor_slices(images[:5]).batch(2), "c1", k=9)
    with pytest.raises(ValueError, match="k must be"):
        top_activations(model, images, "c1", k=0)
    with pytest.raises(ValueError, match="not a spatial"):
        top_activations(model, images, "dense")
    with pytest.raises(ValueError, match="model expects"):
        top_activations(model, np.zeros((2, 8, 8, 3), np.float32), "c1", k=1)
    with pytest.raises(ValueError, match="strategy must be"):
        top_activations(model, images, "c1", strategy="mirrored")


_DISTRIBUTED = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    sys.path.insert(0, sys.argv[1])
    from test_topk import _model
    from keras_convviz.methods.topk import top_activations

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (21, 12, 12, 3)).astype(np.float32)
    images[9] = images[2]
    model = _model()
    ds = tf.data.Dataset.from_tensor_slices(images)
    one = top_activations(model, ds, "c1", k=5, batch_size=8)
    many = top_activations(model, ds, "c1", k=5, batch_size=8, strategy=strategy)  # 8, 8, 5 -> 3 + 2
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "ids": bool(np.array_equal(one.image_ids, many.image_ids)),
        "pos": bool(np.array_equal(one.positions, many.positions)),
        "values": float(np.max(np.abs(one.values - many.values))),
        "count": [one.count, many.count],
    }))
""")


@pytest.mark.slow
def test_mirrored_strategy_matches_one_device():
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", _DISTRIBUTED, here], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["ids"] and result["pos"]
    assert result["values"] == 0.0
    assert result["count"] == [21, 21]


def test_figure_grid(data):
    images, _ = data
    model = _model()
    res = top_activations(model, images, "c2", k=3)
    grid, chosen = figure(model, res, images, maps=2, cell=24)
    assert list(chosen) == list(res.strongest_maps(2))
    assert grid.dtype == np.uint8 and grid.shape[1] >= 6 * 24 and grid.shape[0] >= 2 * 24


@pytest.mark.slow
def test_cli_topk(tmp_path):
    from keras_convviz import demo, media

    images, _, _ = demo.shapes(7, seed=11)
    src = tmp_path / "photos"
    for i, img in enumerate(images):
        media.save_png(src / ("nested" if i % 2 else "") / f"img{i}.png", (img * 255).astype(np.uint8))
    (src / "broken.jpg").write_bytes(b"not an image")
    (src / "notes.txt").write_text("ignored: not an image extension")
    out = tmp_path / "out"
    proc = convviz("topk", str(src), "--model", "demo", "--layer", "block2_conv2", "--k", "3", "--maps", "4",
                "--batch-size", "4", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "skipping" in proc.stderr and "broken.jpg" in proc.stderr
    assert "skipped 1 unreadable file" in proc.stderr
    assert "images/s" in proc.stdout and "7 images streamed" in proc.stdout
    assert (out / "topk_block2_conv2.png").is_file()
    table = json.loads((out / "topk_block2_conv2.json").read_text())
    assert table["images"] == 7 and table["skipped"] == 1 and len(table["maps"]) == 32
    first = table["maps"]["0"]
    assert len(first) == 3 and first[0]["value"] >= first[1]["value"] >= first[2]["value"]
    assert os.path.isfile(first[0]["image"])

    glob_run = convviz("topk", str(src / "**" / "*.png"), "--model", "demo", "--layer", "block1_conv2",
                    "--k", "2", "--maps", "2", "--out", str(out))
    assert glob_run.returncode == 0, glob_run.stderr

    empty = tmp_path / "empty"
    empty.mkdir()
    bad = convviz("topk", str(empty), "--model", "demo", "--out", str(out))
    assert bad.returncode == 2 and "no image files" in bad.stderr
    bad = convviz("topk", str(src), "--model", "demo", "--k", "50", "--out", str(out))
    assert bad.returncode == 2 and "holds only 8 image files" in bad.stderr
    bad = convviz("topk", str(src), "--model", "demo", "--layer", "predictions", "--k", "3", "--out", str(out))
    assert bad.returncode == 2 and "not a spatial" in bad.stderr
