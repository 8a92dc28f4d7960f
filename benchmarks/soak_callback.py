"""Soak test: ConvVizCallback through many logging steps with every method, served live (issue 14).

The demo model trains for ``--steps`` batches with ``ConvVizCallback(every_n_batches=1)``
logging every method in ``callbacks.METHODS`` at every batch, while
``tensorboard --load_fast=true`` (the Rust data server, loopback only) serves
the growing logdir and a poller asks for the ConvViz tag listing twice a
second. Checked: training finishes, no method fails, every listing answer is
200, every event file reads back record by record, each per-step tag holds
one entry per step, and the served series has every step. Reported: the
process's resident memory growth per logging step (least-squares slope of
RSS over the steps after a warm-up), the time per step and the poll count.

    python benchmarks/soak_callback.py --steps 200
    python benchmarks/soak_callback.py --steps 1000 --cheap --figure benchmarks/soak_rss.png   # issue 28

``--cheap`` keeps every method but at its cheapest sizes (one probe image,
one followed map, one class model of one step, 4 held-out images): the soak
is about memory over many steps. Reported as well (issue 28): the RSS growth
from step ``--after`` (200) to the end, the slope after it, and Python's
object count (``gc``) every 50 steps; ``--figure`` draws the RSS curve.

tests/test_soak.py runs the same function with a few steps.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Cheap settings for every method: the soak is about many steps, not big maps.
OPTIONS = {
    "deconv": {}, "guided": {}, "saliency": {}, "smoothgrad": {"samples": 2}, "integrated": {"steps": 4},
    "gradcam": {}, "occlusion": {"patch": 16, "stride": 16}, "topk": {"k": 4}, "classmodel": {"steps": 2},
    "boxfilter": {},
}
# --all: also every method the registry added since (LRP, the CAM family, RISE, feature visualization, the
# Zeiler & Fergus analyses), at cheap sizes.
ADDED = {"lrp": {}, "gradcam_plus_plus": {}, "layercam": {}, "xgradcam": {}, "hirescam": {}, "eigencam": {},
         "scorecam": {"max_channels": 4}, "ablationcam": {}, "rise": {"masks": 8}, "featurevis": {"steps": 1},
         "filters": {}, "invariance": {"steps": 3}}
# --cheap: the same methods at their cheapest sizes (1,000 steps on 2 shared cores).
CHEAP = dict(OPTIONS, smoothgrad={"samples": 1}, integrated={"steps": 2}, topk={"k": 1},
             classmodel={"steps": 1, "classes": [0]})


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Poller(threading.Thread):
    """Asks for ``/tags`` every ``interval`` seconds; keeps every status code."""

    def __init__(self, base, interval=0.5):
        super().__init__(daemon=True)
        self.base, self.interval = base, interval
        self.codes, self.stop = [], threading.Event()

    def run(self):
        from tb_helpers import get

        while not self.stop.is_set():
            try:
                self.codes.append(get(self.base + "/data/plugin/convviz/tags", timeout=10)[0])
            except OSError as err:  # a refused or dropped connection counts as a failure
                self.codes.append(f"{type(err).__name__}")
            self.stop.wait(self.interval)


def read_back(logdir):
    """``{tag: steps}`` over every event file, each read record by record (raises on a corrupt one)."""
    import tensorflow as tf

    steps, files = {}, sorted(glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True))
    for path in files:
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                steps.setdefault(value.tag, set()).add(int(event.step))
    return files, steps


class Memory:
    """RSS after every logging step (a Keras callback placed after ConvVizCallback)."""

    def __init__(self, objects_every=50, trim_every=0):
        import keras

        self.samples, self.objects = [], []
        self.trim_every = trim_every
        self.objects_every = objects_every
        self.callback = keras.callbacks.LambdaCallback(on_train_batch_end=self.sample)

    def sample(self, batch, logs=None):
        import gc

        if self.trim_every and (len(self.samples) + 1) % self.trim_every == 0:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)  # --trim: freed heap given back, to tell it from live memory
        self.samples.append(rss_bytes())
        if self.objects_every and len(self.samples) % self.objects_every == 0:
            self.objects.append((len(self.samples), len(gc.get_objects())))

    def growth_after(self, step):
        """RSS growth in bytes from logging step ``step`` (1-based) to the last one."""
        if len(self.samples) <= step:
            return float("nan")
        return float(self.samples[-1] - self.samples[step - 1])

    def growth_per_step(self, warmup):
        import numpy as np

        y = np.asarray(self.samples[warmup:], np.float64)
        if len(y) < 3:
            return float("nan")
        return float(np.polyfit(np.arange(len(y)), y, 1)[0])


def soak(steps=200, logdir=None, methods=tuple(OPTIONS), warmup=None, cheap=False, after=200, trim=0,
         added=False):
    """Run the soak; returns a dict of measurements (raises AssertionError when a check fails)."""
    import numpy as np

    from keras_convviz import ConvVizCallback, demo
    from tb_helpers import get, tensorboard

    logdir = logdir or tempfile.mkdtemp(prefix="convviz-soak-")
    os.makedirs(logdir, exist_ok=True)
    model = demo.load_model()
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y, _ = demo.shapes(max(steps * 2, 16), seed=3)
    x, y = x[:steps * 2], y[:steps * 2]
    heldout = np.asarray(demo.shapes(4 if cheap else 16, seed=4)[0], np.float32)
    x = np.asarray(x, np.float32)
    options = dict(CHEAP if cheap else OPTIONS, **(ADDED if added else {}))
    methods = tuple(methods) + (tuple(ADDED) if added else ())
    cb = ConvVizCallback(logdir, x[:1 if cheap else 2], methods={m: dict(options[m]) for m in methods},
                         every_n_epochs=None, every_n_batches=1, maps=1 if cheap else 2, heldout=heldout)
    memory = Memory(trim_every=trim)
    with tensorboard(logdir, load_fast=True, extra=["--samples_per_plugin", "convviz=0"], wait_for_tags=False) as base:
        poller = Poller(base)
        poller.start()
        start = time.perf_counter()
        history = model.fit(x, np.asarray(y), batch_size=2, epochs=1, shuffle=False, verbose=0,
                            callbacks=[cb, memory.callback])
        seconds = time.perf_counter() - start
        time.sleep(3)  # two more reloads of the served logdir, still polled
        poller.stop.set()
        poller.join(timeout=15)
        tags_status, _, body = get(base + "/data/plugin/convviz/tags")
        runs = json.loads(body)["runs"]
        series_steps = {}
        for tag in ("saliency/predictions/heatmap",):
            found = [t for t in runs.get("convviz", {}) if t.split("/")[0] == tag.split("/")[0]]
            if found:
                url = base + "/data/plugin/convviz/series?" + urllib.parse.urlencode({"run": "convviz", "tag": found[0]})
                series_steps[found[0]] = len(json.loads(get(url)[2])["steps"])
    files, tag_steps = read_back(logdir)
    per_step = {t: len(s) for t, s in tag_steps.items() if len(s) > 1}
    result = {
        "steps": steps, "methods": list(methods), "trained_batches": len(memory.samples),
        "loss_finite": bool(np.isfinite(history.history["loss"][-1])), "failed": dict(cb.failed),
        "unwritable": cb.unwritable, "seconds": round(seconds, 1),
        "seconds_per_step": round(seconds / steps, 3), "polls": len(poller.codes),
        "non_200_polls": [c for c in poller.codes if c != 200], "final_tags_status": tags_status,
        "event_files": len(files), "tags": len(tag_steps),
        "per_step_tags_complete": all(n == steps for n in per_step.values()) and bool(per_step),
        "served_series_steps": series_steps,
        "rss_start_mb": round(memory.samples[0] / 2**20, 1) if memory.samples else None,
        "rss_end_mb": round(memory.samples[-1] / 2**20, 1) if memory.samples else None,
        "rss_growth_kb_per_step": round(memory.growth_per_step(warmup if warmup is not None else min(20, steps // 4))
                                        / 1024, 1),
        "cheap": cheap, "after": after, "trim_every": trim,
        "rss_growth_after_mb": round(memory.growth_after(after) / 2**20, 2),
        "rss_growth_kb_per_step_after": round(memory.growth_per_step(after) / 1024, 2),
        "python_objects": memory.objects,
        "rss_mb": [round(v / 2**20, 2) for v in memory.samples],
    }
    return result


def check(result):
    """The soak's pass conditions."""
    assert result["trained_batches"] == result["steps"], result
    assert result["loss_finite"] and not result["failed"] and result["unwritable"] is None, result
    assert result["polls"] > 0 and not result["non_200_polls"] and result["final_tags_status"] == 200, result
    assert result["event_files"] >= 1 and result["per_step_tags_complete"], result
    assert all(n == result["steps"] for n in result["served_series_steps"].values()), result


def figure(results, path, after=200):
    """The RSS curve(s) of ``{label: result}`` over logging steps, as a PNG (drawn with Pillow)."""
    import math

    from PIL import Image, ImageDraw, ImageFont

    w, h, left, right, top, bottom = 1000, 560, 90, 20, 50, 70
    font, small = ImageFont.load_default(size=16), ImageFont.load_default(size=13)
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    series = [(label, r["rss_mb"]) for label, r in results.items()]
    steps = max(len(v) for _, v in series)
    lo = math.floor(min(min(v) for _, v in series) / 20) * 20
    hi = math.ceil(max(max(v) for _, v in series) / 20) * 20
    px = lambda i: left + (w - left - right) * i / max(steps, 1)  # noqa: E731
    py = lambda mb: top + (h - top - bottom) * (hi - mb) / max(hi - lo, 1e-9)  # noqa: E731
    for mb in range(int(lo), int(hi) + 1, 20):  # horizontal grid and y ticks
        d.line([(left, py(mb)), (w - right, py(mb))], fill=(225, 225, 225))
        d.text((left - 8, py(mb)), f"{mb}", fill="black", font=small, anchor="rm")
    for i in range(0, steps + 1, 100):
        d.line([(px(i), h - bottom), (px(i), h - bottom + 5)], fill="black")
        d.text((px(i), h - bottom + 8), str(i), fill="black", font=small, anchor="mt")
    d.line([(px(after), top), (px(after), h - bottom)], fill=(150, 150, 150), width=1)
    d.text((px(after) + 4, top + 4), f"step {after}", fill=(120, 120, 120), font=small)
    d.rectangle([left, top, w - right, h - bottom], outline="black")
    colours = [(200, 40, 40), (30, 90, 200), (40, 150, 60), (140, 60, 160), (230, 140, 0), (90, 90, 90)]
    for (label, rss), colour in zip(series, colours):
        d.line([(px(i + 1), py(v)) for i, v in enumerate(rss)], fill=colour, width=2)
    for k, ((label, _), colour) in enumerate(zip(series, colours)):
        y = top + 40 + 20 * k  # upper left, above the curves' start
        grown = results[label]["rss_growth_after_mb"]
        d.line([(left + 20, y), (left + 50, y)], fill=colour, width=3)
        d.text((left + 56, y), f"{label}: {grown:+.1f} MB, step {after} to {steps}", fill="black", font=small,
               anchor="lm")
    d.text((w / 2, 18), "ConvVizCallback soak: demo model, every method logged at every batch", fill="black",
           font=font, anchor="mm")
    d.text(((left + w - right) / 2, h - 22), "logging step (one training batch each)", fill="black", font=font,
           anchor="mm")
    label_img = Image.new("RGB", (h - top - bottom, 24), "white")
    ImageDraw.Draw(label_img).text(((h - top - bottom) / 2, 12), "resident memory of the training process (MB)",
                                   fill="black", font=font, anchor="mm")
    img.paste(label_img.rotate(90, expand=True), (8, top))
    img.save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--logdir", default=None)
    parser.add_argument("--cheap", action="store_true", help="every method at its cheapest sizes")
    parser.add_argument("--all", action="store_true", help="also the methods the registry added (ADDED)")
    parser.add_argument("--after", type=int, default=200, help="report the RSS growth from this step on")
    parser.add_argument("--json", help="write the result here (with the RSS per step)")
    parser.add_argument("--figure", help="draw the RSS curve here (PNG)")
    parser.add_argument("--label", default="soak")
    parser.add_argument("--trim", type=int, default=0, help="malloc_trim(0) every N steps (a diagnosis)")
    parser.add_argument("--plot", nargs="+", metavar="LABEL=JSON",
                        help="only draw --figure from saved --json results (no soak)")
    args = parser.parse_args()
    if args.plot:
        results = {}
        for item in args.plot:
            label, path = item.rsplit("=", 1)
            with open(path) as f:
                results[label] = json.load(f)
        figure(results, args.figure, args.after)
        return
    result = soak(args.steps, args.logdir, cheap=args.cheap, after=args.after, trim=args.trim, added=args.all)
    shown = {k: v for k, v in result.items() if k != "rss_mb"}
    print(json.dumps(shown, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)
    if args.figure:
        figure({args.label: result}, args.figure, args.after)
    check(result)
    print("soak passed")


if __name__ == "__main__":
    main()
