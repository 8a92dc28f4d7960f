"""Helpers for the tests that start a real ``tensorboard`` process (not a test module)."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np

from tb_plugin import metadata as md

STEPS = 3
CLASS_NAMES = ["circle", "square", "triangle", "cross"]
PROBE_LABELS = ["probe 0", "probe 1"]

# A hand-written model walk for the 32x32 pictures below (the browser test checks the dashboard
# against this geometry, independently of keras_convviz.fields).
WALK_LAYERS = [
    {"name": "block1_conv1", "type": "Conv2D", "output_shape": [32, 32, 8], "rf_size": [3, 3], "rf_stride": [1, 1],
     "rf_padding": [1, 1]},
    {"name": "block1_conv2", "type": "Conv2D", "output_shape": [32, 32, 8], "rf_size": [5, 5], "rf_stride": [1, 1],
     "rf_padding": [2, 2]},
    {"name": "block1_pool", "type": "MaxPooling2D", "output_shape": [16, 16, 8], "rf_size": [6, 6],
     "rf_stride": [2, 2], "rf_padding": [2, 2]},
    {"name": "block3_conv2", "type": "Conv2D", "output_shape": [8, 8, 16], "rf_size": [14, 14], "rf_stride": [4, 4],
     "rf_padding": [5, 5]},
    {"name": "predictions", "type": "Dense", "output_shape": [4]},
]


def unit_position(step, probe, m):
    """Where followed map ``m`` of block3_conv2 peaks on ``probe`` at ``step`` (moves with the step)."""
    return (1 + step + probe) % 8, (2 * m + step) % 8, 1.5 + step


def predictions(step):
    """Per probe: the top classes with probabilities; probe 0 becomes a confident circle."""
    p = 0.4 + 0.2 * step
    return [[(0, p), (1, 1 - p)], [(2, 0.7), (3, 0.3)]]


def featurevis_image(step, m):
    """A stand-in feature visualization of map ``m``: stripes whose period is the map index (one 48 px image)."""
    yy, xx = np.mgrid[0:48, 0:48]
    stripes = (np.sin((xx + 2 * yy + 4 * step) * np.pi / m) + 1) * 127.5
    return np.stack([stripes, np.full_like(stripes, 40 * m % 256), 255 - stripes], -1)[None].astype(np.uint8)


def write_step(w, step, rng):
    """One step of every tag and its step document."""
    from keras_convviz.loggers.base import heatmap_images, projection_images

    yy, xx = np.mgrid[0:32, 0:32]
    blob = np.exp(-((yy - 6 - 10 * step) ** 2 + (xx - 16) ** 2) / 30.0) * (step + 1)
    ranges = {}

    def put(method, layer, detail, pictures, kind, **kw):
        tag = w.images(method, layer, detail, pictures.images, step, kind, labels=PROBE_LABELS,
                       scale=pictures.scale, **kw)
        ranges[tag] = pictures.ranges.tolist()

    put("gradcam", "block3_conv2", "heatmap", heatmap_images(np.stack([blob, blob.T]), (32, 32)), "heatmap",
        params={"target": "predicted"})
    put("ig", "predictions", "heatmap", heatmap_images(np.stack([blob - 0.5, 0.5 - blob.T]), (32, 32),
                                                       drawing="signed"), "heatmap", params={"target": [0, 2]})
    for m in (3, 7):
        put("deconv", "block3_conv2", f"map{m:04d}", projection_images(rng.normal(0, 1, (2, 32, 32, 3)) * (step + 1)),
            "projection", map=m)
    w.images("topk", "block3_conv2", "map0003", rng.integers(0, 255, (4, 12, 12, 3), dtype=np.uint8), step,
             "patches", map=3, params={"k": 4})
    w.images("topk", "block3_conv2", "map0003_projections", rng.integers(0, 255, (4, 12, 12, 3), dtype=np.uint8),
             step, "patches", map=3, params={"k": 4})
    for m in (3, 7):  # what the callback's featurevis method logs for each followed unit
        w.images("featurevis", "block3_conv2", f"map{m:04d}", featurevis_image(step, m), step, "image", map=m,
                 params={"objective": "channel mean", "steps": 64}, labels=[f"map {m}"])
    w.images("classmodel", "predictions", "class0002", rng.integers(0, 255, (1, 32, 32, 3), dtype=np.uint8), step,
             "image", params={"target": 2})
    units = {"block3_conv2": {m: [unit_position(step, i, m) for i in range(2)] for m in (3, 7)}}
    w.document(md.STEP_TAG, "stepinfo", md.make_step_info(predictions(step), [0, 2], units, ranges), step)


def write_logdir(root, run="demo", steps=STEPS):
    """A small real logdir: one run with probe images, heatmaps (one signed), deconv maps, top-k patches,
    a class model, the model walk with class names and a step document per step.

    Every step's images differ, so a step slider visibly changes them.
    """
    from keras_convviz import summary

    rng = np.random.default_rng(0)
    with summary.Writer(os.path.join(str(root), run, "convviz")) as w:
        probe = rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
        w.images(*md.split_tag(md.INPUT_TAG), probe, 0, "input", labels=PROBE_LABELS)
        w.document(md.WALK_TAG, "walk", md.make_walk(WALK_LAYERS, (32, 32), CLASS_NAMES), 0)
        for step in range(steps):
            write_step(w, step, rng)
    return str(root)


def append_step(root, step, run="demo"):
    """Write one more step into ``run`` (a new event file, as a resumed training would)."""
    from keras_convviz import summary

    with summary.Writer(os.path.join(str(root), run, "convviz")) as w:
        write_step(w, step, np.random.default_rng(step))


def write_old_logdir(root, run="old"):
    """A run written with content version 1 (before issue 12): no scales, no walk, no step documents."""
    import tensorflow as tf

    from keras_convviz import summary

    rng = np.random.default_rng(1)
    path = os.path.join(str(root), run, "convviz")
    with tf.summary.create_file_writer(path).as_default():
        for tag, kind, images in ((md.INPUT_TAG, "input", rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)),
                                  ("saliency/predictions/heatmap", "heatmap",
                                   rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8))):
            method, layer, detail = md.split_tag(tag)
            content = md.make_content(method, layer, detail, kind, labels=PROBE_LABELS)
            content["version"] = 1  # exactly what the version-1 writer stored
            for step in range(2):
                summary.write_images(tag, images, step, content)
    return str(root)


def free_port():
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=10):
    """``(status, headers, body)``; HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


@contextlib.contextmanager
def tensorboard(logdir, load_fast, extra=(), wait_for_tags=True, timeout=90):
    """Run ``tensorboard`` on a free loopback port; yields its base URL; always stops it."""
    port = free_port()
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
           "--port", str(port), f"--load_fast={'true' if load_fast else 'false'}", "--reload_interval", "1",
           *extra]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    log = open(os.path.join(str(logdir), f".tensorboard-{port}.log"), "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        ready = False
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                status, _, body = get(base + "/data/plugin/convviz/tags", timeout=5)
                if status == 200 and (not wait_for_tags or json.loads(body)["runs"]):
                    ready = True
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        if not ready:
            log.flush()
            with open(log.name, "rb") as f:
                tail = f.read()[-3000:].decode("utf-8", "replace")
            raise AssertionError(f"tensorboard (load_fast={load_fast}) did not serve ConvViz data within "
                                 f"{timeout} s (exit code {proc.poll()}):\n{tail}")
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()


def python_loader_app(logdir):
    """``(werkzeug Client, ConvViz plugin, multiplexer)`` of a TensorBoard app on ``logdir`` served the way
    ``tensorboard --load_fast=false`` does (the Python loader's multiplexer and its data provider)."""
    from tensorboard.backend import application
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from werkzeug.test import Client

    from tb_plugin import metadata as md
    from tb_plugin.plugin import ConvVizPluginLoader

    multiplexer = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={md.PLUGIN_NAME: 0})
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    context = base_plugin.TBContext(logdir=str(logdir), data_provider=provider, multiplexer=multiplexer)
    plugin = ConvVizPluginLoader().load(context)
    return Client(application.TensorBoardWSGI([plugin], data_provider=provider)), plugin, multiplexer
