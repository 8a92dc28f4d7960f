"""top_activations on real tf.distribute clusters: two MultiWorkerMirroredStrategy
worker processes on loopback (TF_CONFIG), and MirroredStrategy over two logical CPUs.

The oracle is the single-process table on the same images: exact equality of
values, ids and positions, ties included.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras import layers

from keras_convviz.methods.topk import numbered_records, record_id, top_activations

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "distributed_worker.py")


def _tiny_model():
    keras.utils.set_random_seed(3)
    inp = keras.Input((6, 6, 2))
    # two convs: oneDNN's conv gives an empty batch the wrong channel count, the second fails on it
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv0")(inp)
    x = layers.Conv2D(3, 3, padding="same", activation="relu", name="conv")(x)
    return keras.Model(inp, layers.GlobalMaxPooling2D()(x))


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    model = _tiny_model()
    model.save(folder / "model.keras")
    rng = np.random.default_rng(5)
    # quantized values: many exact ties between different images
    images = np.round(rng.uniform(0, 1, (2001, 6, 6, 2)) * 4).astype(np.float32) / 4
    conv = keras.Model(model.inputs, model.get_layer("conv").output)
    best = int(np.argmax(np.asarray(conv(images)).max(axis=(1, 2))[:, 0]))
    # duplicates of map 0's best image: a 6-way tie, one copy alone in the last global batch
    images[[3, 40, 700, 1999, 2000]] = images[best]
    images[1500] = images[12]
    np.save(folder / "images.npy", images)
    sizes = [13, 9, 0, 11]  # uneven files, one empty, 33 records
    start = 0
    for i, n in enumerate(sizes):
        with tf.io.TFRecordWriter(str(folder / f"part-{i}.tfrecord")) as w:
            for img in images[start:start + n]:
                w.write(tf.io.serialize_tensor(tf.constant(img)).numpy())
        start += n
    return folder, model, images, sizes


def _spawn(folder, tag, extra_env_per_task, mode="multiworker"):
    # oneDNN on: its conv is what failed on a replica's empty batch before pad-and-mask
    env0 = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", TF_ENABLE_ONEDNN_OPTS="1")
    procs = []
    for i, extra in enumerate(extra_env_per_task):
        out = folder / f"{tag}-{i}.json"
        cmd = [sys.executable, WORKER, ROOT, str(folder / "model.keras"), str(folder), str(out), mode]
        procs.append((subprocess.Popen(cmd, env=dict(env0, **extra), stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True), out))
    results = []
    try:
        for proc, out in procs:
            _, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err[-3000:]
            results.append(json.loads(out.read_text()))
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
    return results


def _assert_same(got, want, exact=True):
    """Same table; ``exact=False``: values to float rounding (oneDNN vs reference kernels)."""
    assert got["count"] == want["count"]
    np.testing.assert_array_equal(np.asarray(got["ids"]), np.asarray(want["ids"]))
    np.testing.assert_array_equal(np.asarray(got["positions"]), np.asarray(want["positions"]))
    compare = np.testing.assert_array_equal if exact else np.testing.assert_allclose
    compare(np.asarray(got["values"], np.float32), np.asarray(want["values"], np.float32))


def _table(result):
    return {"values": result.values, "ids": result.image_ids, "positions": result.positions,
            "count": result.count}


@pytest.mark.slow
def test_two_worker_cluster_matches_one_process(setup):
    folder, model, images, sizes = setup
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    tf_configs = [{"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
                  for i in range(2)]
    results = _spawn(folder, "mwms", tf_configs)
    assert sorted(r["task"] for r in results) == [0, 1]
    one = top_activations(model, images, "conv", k=5, batch_size=80)
    assert one.count == 2001
    # the oracle has real ties to break: some map's top-5 holds equal values
    assert any(len(set(row)) < len(row) for row in one.values.tolist())
    files = sorted(str(p) for p in folder.glob("part-*.tfrecord"))
    parse = lambda rec: tf.ensure_shape(tf.io.parse_tensor(rec, tf.float32), (6, 6, 2))  # noqa: E731
    by_file = top_activations(model, numbered_records(files, parse), "conv", k=5, batch_size=7)
    ranges = np.cumsum([0] + sizes)
    expected_ids = {record_id(f, r): ranges[f] + r for f in range(len(sizes)) for r in range(sizes[f])}
    plain = top_activations(model, images[:33], "conv", k=5, batch_size=7)
    np.testing.assert_array_equal(np.vectorize(expected_ids.get)(by_file.image_ids), plain.image_ids)
    for r in results:  # 25 full global batches + 1 image: one replica empty
        _assert_same(r["data_2001_80"], r["single_2001_80"])
        _assert_same(r["data_2001_80"], _table(one), exact=False)
        _assert_same(r["file_7"], r["single_file_7"])  # files of 13, 9, 0, 11 records
        _assert_same(r["file_7"], _table(by_file), exact=False)
        assert "auto_shard_policy is OFF" in r["off"] and "DATA" in r["off"]


@pytest.mark.slow
def test_mirrored_nine_images_batch_eight(setup):
    folder, model, images, _ = setup
    (result,) = _spawn(folder, "mirrored", [{}], mode="mirrored")
    _assert_same(result["mirrored_9_8"], result["single_9_8"])
    _assert_same(result["mirrored_9_8"], _table(top_activations(model, images[:9], "conv", k=3, batch_size=8)),
                 exact=False)


@pytest.mark.slow
def test_callback_chief_writes_and_chooses_for_all_workers(setup):
    """Hooks driven as a custom training loop does (Keras 3 fit itself fails under
    MultiWorkerMirroredStrategy in this TF/Keras pairing; see README, "Scale")."""
    folder = setup[0]
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    tf_configs = [{"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
                  for i in range(2)]
    results = sorted(_spawn(folder, "callback", tf_configs, mode="callback"), key=lambda r: r["task"])
    chief, other = results
    assert chief["own"] != other["own"]  # left to themselves the workers disagree
    assert chief["followed"] == other["followed"] == chief["own"]
    assert chief["scratch"] is None and other["scratch"] and not other["scratch_left"]  # no folder left behind
    events = [f for f in (folder / "logs").rglob("*") if f.is_file()]
    assert len(events) == 1 and "tfevents" in events[0].name
