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


def write_logdir(root):
    """A small real logdir: one run with probe images, a heatmap, deconv maps and top-k patches.

    Every step's images differ, so a step slider visibly changes them.
    """
    from keras_convviz import render, summary

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    with summary.Writer(os.path.join(str(root), "demo", "convviz")) as w:
        probe = rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
        w.images(*md.split_tag(md.INPUT_TAG), probe, 0, "input", labels=["probe 0", "probe 1"])
        for step in range(STEPS):
            blob = np.exp(-((yy - 6 - 10 * step) ** 2 + (xx - 16) ** 2) / 30.0)
            heat = np.stack([render.heatmap(blob), render.heatmap(blob.T)])
            w.images("gradcam", "block3_conv2", "heatmap", heat, step, "heatmap", params={"target": "predicted"},
                     labels=["probe 0", "probe 1"])
            for m in (3, 7):
                proj = rng.normal(0, 1, (2, 32, 32, 3)) * (step + 1)
                w.images("deconv", "block3_conv2", f"map{m:04d}", [render.projection_image(p) for p in proj],
                         step, "projection", map=m, labels=["probe 0", "probe 1"])
            w.images("topk", "block3_conv2", "map0003", rng.integers(0, 255, (4, 12, 12, 3), dtype=np.uint8),
                     step, "patches", map=3, params={"k": 4})
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
